// What a Swift `Router.chat` adds per call over the least a Swift program can do for the same
// request: the Swift rows of BENCHMARKS.md's issue-18 tables (`bash bench/swift/run.sh`).
//
// Interleaved call by call, one process, one mock server (release build, started by run.sh and
// passed in POLYROUTE_MOCK_URL), one kept-alive connection per client, as bench/python/split.py:
//
// - floor: a blocking socket sending pre-encoded request bytes and reading the answer's
//   Content-Length bytes (no HTTP library, no JSON);
// - `chatJson` served from the response cache: the binding's own cost with no HTTP (uniffi's
//   async call, the hop to the binding's runtime and back, the core's cache hit);
// - `chatJson`: the generated call, the answer as the core's JSON text;
// - `chatJsonBlocking`: the sync call, on the calling thread (no hand-off to the runtime);
// - `Router.chat` / `chatBlocking`: what users call, the above plus the request encoded from a
//   `JSONValue` and the answer decoded into `ChatResponse` (its trace and `raw` when read);
// - `chatJsonBlocking` + `ChatResponse(coreJSON:)`: the decode alone over the sync call, with
//   the trace read at once and on read, side by side; and `chatAnswerBlocking` +
//   `ChatResponse(answer:)`, the trace left unwritten in the core (what `chatBlocking` does).
//
// The sync rows run on the main task's thread like the floor does (a bench, not a pattern:
// apps call `chatBlocking` from threads of their own).
//
// Each round calls every row once, in an order of its own (a fixed order made one row pay for
// its place). Twice: back to back, and with an idle gap of 1 ms before each call (`usleep`:
// the runtime's workers park, so each call pays its wake-ups). CPU µs per call is the process's
// (CLOCK_PROCESS_CPUTIME_ID), mock server excluded.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Polyroute

let model = "bench-model"
let fakeKey = "sk-test-not-a-real-key"

func env(_ name: String) -> String? { ProcessInfo.processInfo.environment[name] }

func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func cpuNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// One kept-alive blocking socket: the floor every row is measured against.
final class RawClient {
    let fd: Int32
    let request: [UInt8]
    var buf = [UInt8](repeating: 0, count: 65536)

    init(host: String, port: UInt16) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw BenchError("connect to \(host):\(port) failed: errno \(errno)") }
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let body = #"{"model":"\#(model)","messages":[{"role":"user","content":"hello benchmark"}]}"#
        let head = "POST /v1/chat/completions HTTP/1.1\r\nhost: \(host):\(port)\r\ncontent-type: application/json\r\n"
            + "authorization: Bearer \(fakeKey)\r\ncontent-length: \(body.utf8.count)\r\n\r\n"
        request = Array((head + body).utf8)
    }

    /// Send the request, read the head and exactly Content-Length bytes of body.
    func call() throws {
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, request.count - sent, 0) }
            guard n > 0 else { throw BenchError("send failed: errno \(errno)") }
            sent += n
        }
        var have = 0
        var want = Int.max
        while have < want {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + have, $0.count - have, 0) }
            guard n > 0 else { throw BenchError("recv failed or closed: \(n), errno \(errno)") }
            have += n
            if want == Int.max, let (headEnd, length) = parseHead(buf[0..<have]) { want = headEnd + length }
        }
    }

    private func parseHead(_ bytes: ArraySlice<UInt8>) -> (Int, Int)? {
        let crlf2: [UInt8] = [13, 10, 13, 10]
        guard let end = (bytes.startIndex...(bytes.endIndex - 4)).first(where: { bytes[$0..<$0 + 4].elementsEqual(crlf2) }) else { return nil }
        let head = String(decoding: bytes[bytes.startIndex..<end], as: UTF8.self).lowercased()
        guard let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
              let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) else { return nil }
        return (end + 4, length)
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func policy(_ base: String) -> JSONValue {
    [
        "providers": ["mock": ["kind": "openai", "base_url": .string(base + "/v1"), "api_key": .string(fakeKey)]],
        "deployments": ["d": ["provider": "mock", "model": .string(model)]],
        "routes": [
            ["name": "chat", "deployments": ["d"]],
            ["name": "cached", "deployments": ["d"], "cache": ["mode": "read_write"]],
        ],
        "default_route": "chat",
    ]
}

/// A small seeded generator (SplitMix64), so a run's call orders repeat.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

@main
struct Bench {
    static func main() async throws {
        // `main` is isolated to the main actor: awaiting a nonisolated async call from it hops to
        // the cooperative pool and back each time (two thread switches per call, measured at
        // ~80 µs here). A server's calls run in tasks on that pool, so the rows do too.
        try await Task.detached { try await run() }.value
    }

    static func run() async throws {
        guard let base = env("POLYROUTE_MOCK_URL") else { throw BenchError("POLYROUTE_MOCK_URL is not set: run bench/swift/run.sh") }
        let n = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 3000
        let hostPort = base.replacingOccurrences(of: "http://", with: "").split(separator: ":")
        let raw = try RawClient(host: String(hostPort[0]), port: UInt16(hostPort[1])!)
        let router = try Router(policyObject: policy(base))
        let messages: JSONValue = [["role": "user", "content": "hello benchmark"]]
        let body: JSONValue = ["messages": messages]
        let cachedJson = try JSONValue.object(["messages": messages, "polyroute": ["route": "cached"]]).jsonString()
        let bodyJson = try body.jsonString()

        var rows: [(String, () async throws -> Void)] = [
            ("floor (raw blocking socket)", { try raw.call() }),
            ("`chatJson`, cache hit (no HTTP)", { _ = try await router.chatJson(requestJson: cachedJson) }),
            ("`chatJsonBlocking`, cache hit (no HTTP)", { _ = try router.chatJsonBlocking(requestJson: cachedJson) }),
            ("`chatJson`", { _ = try await router.chatJson(requestJson: bodyJson) }),
            ("`chatJsonBlocking`", { _ = try router.chatJsonBlocking(requestJson: bodyJson) }),
            ("`Router.chat(body:)`", { _ = try await router.chat(body: body) }),
            ("`Router.chatBlocking(body:)`", { _ = try router.chatBlocking(body: body) }),
            // The answer's trace read at once (as before the seventeenth round) or when asked for
            // (as calls now do), side by side: the request text is the same prepared one in both.
            ("`chatJsonBlocking` + `ChatResponse`, trace at once", { _ = try ChatResponse(coreJSON: router.chatJsonBlocking(requestJson: bodyJson)) }),
            ("`chatJsonBlocking` + `ChatResponse`, trace on read", { _ = try ChatResponse(coreJSON: router.chatJsonBlocking(requestJson: bodyJson), traceOnRead: true) }),
            // What `chatBlocking` reads since the twentieth round: the trace left in the core.
            ("`chatAnswerBlocking` + `ChatResponse`, trace held in the core", { _ = try ChatResponse(answer: router.chatAnswerBlocking(requestJson: bodyJson)) }),
        ]
        // POLYROUTE_BENCH_ROWS=text|text...: the floor and the rows whose name contains one of them
        // (for a profiler, or to see whether a row's neighbours move it).
        if let only = env("POLYROUTE_BENCH_ROWS")?.split(separator: "|") {
            rows = rows.enumerated().filter { r in r.offset == 0 || only.contains { r.element.0.contains($0) } }.map(\.element)
        }
        for (_, call) in rows { for _ in 0..<200 { try await call() } }
        if CommandLine.arguments.contains("--json") {
            return try jsonParts(request: body, response: try await router.chatJson(requestJson: bodyJson), n: n)
        }

        print("n=\(n) per row, Swift \(swiftVersion()), polyroute \(coreVersion())\n")
        for gap in [0, 1000] {
            let rounds = gap == 0 ? n : n / 3
            var lat = [[Double]](repeating: [], count: rows.count)
            var cpu = [UInt64](repeating: 0, count: rows.count)
            // Each round in its own order (a shuffle, seeded so runs repeat): in a fixed order the
            // row right after the floor paid 4-6 CPU-µs more than the same call elsewhere back to
            // back and 15-35 after a gap (seventeenth round), whichever row it was; a rotation
            // keeps every row's predecessor, so it does not help.
            var rng = SplitMix(seed: 18)
            for _ in 0..<rounds {
                var order = Array(rows.indices)
                for k in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(k, Int(rng.next() % UInt64(k + 1))) }
                for i in order {
                    let call = rows[i].1
                    if gap > 0 { usleep(useconds_t(gap)) }
                    let c0 = cpuNanos()
                    let t0 = now()
                    try await call()
                    lat[i].append(Double(now() - t0) / 1000)
                    cpu[i] += cpuNanos() - c0
                }
            }
            let title = gap == 0 ? "interleaved, no gap" : "interleaved, idle gap of 1 ms before each call"
            print("| \(title) (n=\(rounds)) | p50 µs | p99 µs | added p50 over the floor µs | CPU µs/call |")
            print("|---|---|---|---|---|")
            let sorted = lat.map { $0.sorted() }
            let floor50 = percentile(sorted[0], 0.5)
            for (i, (name, _)) in rows.enumerated() {
                let p50 = percentile(sorted[i], 0.5)
                let added = i == 0 ? "–" : String(format: "%.0f", p50 - floor50)
                print("| \(name) | \(String(format: "%.0f", p50)) | \(String(format: "%.0f", percentile(sorted[i], 0.99))) | \(added) | \(String(format: "%.1f", Double(cpu[i]) / Double(rounds) / 1000)) |")
            }
            print()
        }
    }

    /// `--json`: what the Swift layer's own JSON work costs per call, part by part (CPU µs).
    static func jsonParts(request: JSONValue, response: String, n: Int) throws {
        // POLYROUTE_BENCH_ONLY=text: only the parts whose name contains it (for a profiler).
        let only = env("POLYROUTE_BENCH_ONLY")
        func time(_ name: String, _ body: () throws -> Void) rethrows {
            if let only, !name.contains(only) { return }
            let c0 = cpuNanos()
            for _ in 0..<n { try body() }
            print("| \(name) | \(String(format: "%.2f", Double(cpuNanos() - c0) / Double(n) / 1000)) |")
        }
        print("answer: \(response.utf8.count) bytes\n\n| part | CPU µs/call |\n|---|---|")
        try time("request `JSONValue` -> text") { _ = try request.jsonString() }
        try time("answer text -> `JSONValue`") { _ = try JSONValue.parse(response) }
        time("`CancelToken` made and freed (async `chat` makes one per call)") { _ = CancelToken().isCancelled() }
        try time("answer -> `ChatResponse` (one read of the text)") { _ = try ChatResponse(coreJSON: response) }
        try time("answer -> `ChatResponse`, trace read when asked for (as calls do)") { _ = try ChatResponse(coreJSON: response, traceOnRead: true) }
        try time("the same, then `trace` read") { _ = try ChatResponse(coreJSON: response, traceOnRead: true).trace }
        // The trace's share: the same answer with `trace` left out.
        if case .object(var o) = try JSONValue.parse(response) {
            o["trace"] = nil
            let bare = try JSONValue.object(o).jsonString()
            try time("answer without its trace (\(bare.utf8.count) bytes) -> `ChatResponse`") { _ = try ChatResponse(coreJSON: bare) }
        }
        try time("answer -> `ChatResponse` with JSONDecoder (before)") { _ = try JSONDecoder().decode(ChatResponse.self, from: Data(response.utf8)) }
        try time("answer -> `JSONValue` with JSONDecoder (before)") { _ = try JSONDecoder().decode(JSONValue.self, from: Data(response.utf8)) }
    }

    static func swiftVersion() -> String {
        #if swift(>=6.1)
        return "6.1+"
        #elseif swift(>=6.0)
        return "6.0"
        #else
        return "5.x"
        #endif
    }
}
