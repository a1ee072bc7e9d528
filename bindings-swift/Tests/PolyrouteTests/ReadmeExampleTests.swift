// The README's Swift example, run as a test. `readmeExample` is the README code verbatim
// (only `policyPath` differs: the README's policy names real providers, the test's points the
// same route layout at the mock server). Keep the two in sync when either changes.
import Foundation
import XCTest
import Polyroute

func readmeExample(policyPath: String) async throws -> [String] {
    var out: [String] = []
    let router = try Router.fromPolicyFile(path: policyPath)

    // One answer, with who served it and why.
    let reply = try await router.chat(.user("What is the capital of France?"))
    out.append("\(reply.content) [\(reply.provider ?? "?"), $\(reply.costUsd ?? 0)]")
    out.append(reply.trace?.explanation ?? "")

    // Streaming: cancelling the task or leaving the loop cancels the request.
    var story = ""
    for try await event in router.stream(.user("Tell me a story")) {
        if case .contentDelta(let text) = event { story += text }
    }
    out.append(story)

    // Typed errors: one case per error kind, every case carries the same details.
    do {
        _ = try await router.chat(.user("hi", route: "no-such-route"))
    } catch PolyrouteError.RateLimited(let details) {
        out.append("retry in \(details.retryAfter ?? 1) s")
    } catch let error as PolyrouteError {
        out.append("\(error.code): \(error.message)")
    }
    return out
}

final class ReadmeExampleTests: XCTestCase {
    func testReadmeExampleRuns() async throws {
        let primary = uniqueModel("readme-gpt"), backup = uniqueModel("readme-claude")
        try await Mock.script(primary, ["then": ["status": 429, "error_code": "rate_limit_exceeded", "retry_after": "30"]])
        try await Mock.script(backup, ["then": ["text": "Paris.", "chunk_delay_ms": 2]])
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(primary).json").path
        try Data(try mockPolicy(primary: [primary], fallback: [backup], priced: true).jsonString().utf8)
            .write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }

        let out = try await readmeExample(policyPath: path)

        XCTAssertEqual(out.count, 4, "\(out)")
        XCTAssertTrue(out[0].hasPrefix("Paris. [mock, $"), out[0])
        XCTAssertTrue(out[1].contains(backup), "the explanation names the deployment that served: \(out[1])")
        XCTAssertEqual(out[2], "Paris.")
        XCTAssertTrue(out[3].hasPrefix("no_route: "), out[3])
    }
}
