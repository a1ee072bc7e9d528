// Test support: the loopback mock server's control API and policy helpers.
//
// test.sh starts `polyroute-mock-server` on the host and passes its URL in POLYROUTE_MOCK_URL
// (the Swift chroot shares the host's network namespace), and likewise a throwaway
// redis-server (random loopback port, no persistence) in POLYROUTE_TEST_REDIS_URL. Every test scripts its own uniquely
// named models, so tests never see each other's attempts in the mock's log.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import XCTest
@testable import Polyroute

struct MockServerMissing: Error, CustomStringConvertible {
    var description: String { "POLYROUTE_MOCK_URL is not set: run bindings-swift/test.sh, which starts the mock server" }
}

struct MockControlError: Error, CustomStringConvertible {
    let description: String
}

enum Mock {
    static func baseURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["POLYROUTE_MOCK_URL"], !url.isEmpty else {
            throw MockServerMissing()
        }
        return url
    }

    private static func call(_ method: String, _ path: String, body: JSONValue? = nil) async throws -> JSONValue {
        var req = URLRequest(url: URL(string: try baseURL() + path)!)
        req.httpMethod = method
        if let body {
            req.httpBody = Data(try body.jsonString().utf8)
            req.setValue("application/json", forHTTPHeaderField: "content-type")
        }
        let (data, status): (Data, Int) = try await withCheckedThrowingContinuation { cont in
            URLSession.shared.dataTask(with: req) { data, response, error in
                if let error { return cont.resume(throwing: error) }
                cont.resume(returning: (data ?? Data(), (response as? HTTPURLResponse)?.statusCode ?? 0))
            }.resume()
        }
        let text = String(decoding: data, as: UTF8.self)
        guard status == 200 else { throw MockControlError(description: "\(method) \(path) -> \(status): \(text)") }
        return try JSONValue.parse(text)
    }

    /// Install (or replace) the script served for model `name`.
    static func script(_ name: String, _ script: JSONValue) async throws {
        _ = try await call("PUT", "/_mock/scripts/\(name)", body: script)
    }

    /// Every attempt the mock saw for model `name`, in order.
    static func log(_ name: String) async throws -> [JSONValue] {
        guard case .array(let entries) = try await call("GET", "/_mock/log?script=\(name)") else { return [] }
        return entries
    }
}

/// A model name no other test uses.
func uniqueModel(_ label: String) -> String {
    "\(label)-\(UUID().uuidString.prefix(8).lowercased())"
}

/// A policy with one route `main` over the mock server's OpenAI endpoint. Deployment names equal
/// model names (= mock script names). Defaults keep tests fast and free of hidden retries.
func mockPolicy(
    primary: [String],
    fallback: [String] = [],
    retry: [String: JSONValue] = [:],
    timeouts: [String: JSONValue] = [:],
    breaker: [String: JSONValue] = [:],
    priced: Bool = false,
    route: [String: JSONValue] = [:],
    extra: [String: JSONValue] = [:]
) throws -> JSONValue {
    var deployments: [String: JSONValue] = [:]
    for m in primary + fallback {
        var d: [String: JSONValue] = ["provider": "mock", "model": .string(m)]
        if priced { d["pricing"] = ["input_per_mtok": 1.0, "output_per_mtok": 2.0] }
        deployments[m] = .object(d)
    }
    var r: [String: JSONValue] = [
        "name": "main",
        "deployments": .array(primary.map { .string($0) }),
        "retry": .object(["attempts_per_deployment": 1, "max_attempts": 4, "base_delay": "10ms", "max_delay": "50ms", "max_retry_after": "1s"]
            .merging(retry) { _, new in new }),
        "timeouts": .object(["first_token": "3s", "idle": "3s", "total": "10s"].merging(timeouts) { _, new in new }),
    ]
    if !fallback.isEmpty {
        r["fallbacks"] = [["name": "backup", "deployments": .array(fallback.map { .string($0) })]]
    }
    r.merge(route) { _, new in new }
    let policy: [String: JSONValue] = [
        "version": 1,
        "providers": ["mock": ["kind": "openai", "base_url": .string(try Mock.baseURL() + "/v1"), "api_key": "sk-test-not-a-real-key"]],
        "deployments": .object(deployments),
        "routes": [.object(r)],
        "default_route": "main",
        "breaker": .object(breaker),
    ]
    return .object(policy.merging(extra) { _, new in new })
}

/// Run `body`, expecting a `PolyrouteError`; returns it (or fails the test).
func expectPolyrouteError<T>(_ body: () async throws -> T, file: StaticString = #filePath, line: UInt = #line) async -> PolyrouteError? {
    do {
        let value = try await body()
        XCTFail("expected a PolyrouteError, got \(value)", file: file, line: line)
    } catch let e as PolyrouteError {
        return e
    } catch {
        XCTFail("expected a PolyrouteError, got \(type(of: error)): \(error)", file: file, line: line)
    }
    return nil
}

/// Collect a stream to the end: its events, and the error that ended it if any.
func collect(_ stream: AsyncThrowingStream<StreamEvent, Error>) async -> (events: [StreamEvent], error: Error?) {
    var events: [StreamEvent] = []
    do {
        for try await ev in stream { events.append(ev) }
        return (events, nil)
    } catch {
        return (events, error)
    }
}

func text(of events: [StreamEvent]) -> String {
    events.compactMap(\.text).joined()
}

struct RedisMissing: Error, CustomStringConvertible {
    var description: String { "POLYROUTE_TEST_REDIS_URL is not set: run bindings-swift/test.sh, which starts a redis-server" }
}

/// The URL of test.sh's redis-server.
func testRedisURL() throws -> String {
    guard let url = ProcessInfo.processInfo.environment["POLYROUTE_TEST_REDIS_URL"], !url.isEmpty else { throw RedisMissing() }
    return url
}

struct SocketError: Error, CustomStringConvertible {
    let description: String
}

/// A loopback TCP port nothing listens on (the kernel's pick, released again).
func freeLoopbackPort() throws -> Int {
    #if os(Linux)
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { throw SocketError(description: "socket() failed") }
    defer { close(fd) }
    var addr = sockaddr_in()
    #if !os(Linux)
    addr.sin_len = UInt8(MemoryLayout<sockaddr_in>.size)
    #endif
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
            bind(fd, sa, len) == 0 && getsockname(fd, sa, &len) == 0
        }
    }
    guard ok else { throw SocketError(description: "bind() failed") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Run `body` on a thread of its own (not one of Swift's cooperative threads), as a sync caller
/// of `chatBlocking` would, and await what it returned or threw.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async -> Result<T, Error> {
    await withCheckedContinuation { cont in
        Thread { cont.resume(returning: Result { try body() }) }.start()
    }
}

/// Wait (up to ~2 s) until the mock has logged a request for model `name`: it is on the wire.
func waitUntilSent(_ name: String) async throws {
    for _ in 0..<100 where try await Mock.log(name).isEmpty { try await Task.sleep(nanoseconds: 20_000_000) }
}

/// Whether the mock saw the client close the connection of model `name`'s first request
/// (polled for up to ~5 s): what dropping a cancelled request must do.
func mockSawDisconnect(_ name: String) async throws -> Bool {
    for _ in 0..<100 {
        if try await Mock.log(name).first?["client_disconnected"]?.boolValue == true { return true }
        try await Task.sleep(nanoseconds: 50_000_000)
    }
    return false
}
