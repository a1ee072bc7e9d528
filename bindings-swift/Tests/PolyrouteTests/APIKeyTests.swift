// Keys from the app (`APIKeyProvider`): a policy whose provider has no key, the app hands one
// over per request. The mock server records only whether a credential header was present
// (never its value); the exact `Authorization: Bearer <key>` on the wire, rotation included,
// is checked by the core's `host_keys` integration test against a byte-recording server.
import Foundation
import XCTest
@testable import Polyroute

/// Hands out `keys` in turn (the last one forever), records who asked.
final class RotatingKeys: APIKeyProvider, @unchecked Sendable {
    private let lock = NSLock()
    private let keys: [String?]
    private var _asked: [String] = []
    var asked: [String] { lock.lock(); defer { lock.unlock() }; return _asked }

    init(_ keys: [String?]) { self.keys = keys }

    func apiKey(provider: String) throws -> String? {
        lock.lock(); defer { lock.unlock() }
        _asked.append(provider)
        return keys[min(_asked.count - 1, keys.count - 1)]
    }
}

struct KeychainLocked: Error, CustomStringConvertible {
    var description: String { "errSecInteractionNotAllowed (test)" }
}

final class APIKeyTests: XCTestCase {
    /// `mockPolicy` without the provider's `api_key`.
    private func keylessPolicy(_ models: [String]) async throws -> JSONValue {
        // Scripted, so the mock's log (read by script name) holds their attempts.
        for m in models { try await Mock.script(m, ["then": ["text": "ok"]]) }
        guard case .object(var p) = try mockPolicy(primary: models) else { fatalError() }
        p["providers"] = ["mock": ["kind": "openai", "base_url": .string(try Mock.baseURL() + "/v1")]]
        return .object(p)
    }

    func testTheAppsKeyIsSentAndARotatedKeyIsAskedForOnTheNextRequest() async throws {
        let m = uniqueModel("keys")
        let keys = RotatingKeys(["sk-app-key-one", "sk-app-key-two"])
        let policy = try await keylessPolicy([m])
        let router = try Router(policyObject: policy, apiKeys: keys)
        _ = try await router.chat(.user("one"))
        _ = try await router.chat(.user("two"))
        XCTAssertEqual(keys.asked, ["mock", "mock"], "asked per request, by provider name")
        let log = try await Mock.log(m)
        XCTAssertEqual(log.count, 2)
        for entry in log {
            XCTAssertEqual(entry["auth_present"], .bool(true), "\(entry)")
        }
    }

    func testNoKeyIsAnAuthErrorAndNothingIsSent() async throws {
        let m = uniqueModel("nokey")
        let keys = RotatingKeys([nil, "sk-app-key-late"])
        let policy = try await keylessPolicy([m])
        let router = try Router(policyObject: policy, apiKeys: keys)
        guard let e = await expectPolyrouteError({ try await router.chat(.user("hi")) }) else { return }
        guard case .Auth(let d) = e else { return XCTFail("\(e)") }
        XCTAssertNil(d.status)
        XCTAssertTrue(d.message.contains("no API key for provider `mock`"), d.message)
        let sent = try await Mock.log(m)
        XCTAssertEqual(sent.count, 0)
        // The key arrives later (the user signed in): the same router uses it, no breaker ban.
        _ = try await router.chat(.user("hi"))
        let later = try await Mock.log(m)
        XCTAssertEqual(later.count, 1)
    }

    func testAThrowingProviderIsATypedAuthErrorNotACrash() async throws {
        let m = uniqueModel("throws")
        let policy = try await keylessPolicy([m])
        let router = try Router(policyObject: policy, apiKeys: APIKeys { _ in throw KeychainLocked() })
        guard let e = await expectPolyrouteError({ try await router.chat(.user("hi")) }) else { return }
        guard case .Auth(let d) = e else { return XCTFail("\(e)") }
        XCTAssertTrue(d.message.contains("errSecInteractionNotAllowed"), d.message)
        // Streams fail the same way, and the router keeps working.
        do {
            for try await _ in router.stream(.user("hi")) {}
            XCTFail("expected an auth error")
        } catch let e as PolyrouteError {
            XCTAssertEqual(e.kind, .auth)
        }
        let sent = try await Mock.log(m)
        XCTAssertEqual(sent.count, 0)
    }

    func testTheKeyNeverShowsInErrorsOrTraces() async throws {
        let m = uniqueModel("leak")
        let policy = try await keylessPolicy([m])
        try await Mock.script(m, ["then": ["status": 401, "error_code": "invalid_api_key"]])
        let router = try Router(policyObject: policy, apiKeys: APIKeys { _ in "sk-app-canary-8d2f" })
        guard let e = await expectPolyrouteError({ try await router.chat(.user("hi")) }) else { return }
        guard case .Auth(let d) = e else { return XCTFail("\(e)") }
        XCTAssertEqual(d.status, 401)
        for text in [e.description, "\(e)", String(reflecting: e), d.json, d.traceJson ?? "", try router.policyJson(), try router.metricsText()] {
            XCTAssertFalse(text.contains("app-canary"), text) // not the bare word: a metric family is named canary
        }
    }

    func testWithoutAKeyProviderAKeylessHostedProviderIsRefused() async throws {
        let policy = try await keylessPolicy([uniqueModel("refused")])
        XCTAssertThrowsError(try Router(policyObject: policy)) { e in
            guard case PolyrouteError.Config(let d) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(d.message.contains("needs `api_key_env`"), d.message)
        }
    }
}
