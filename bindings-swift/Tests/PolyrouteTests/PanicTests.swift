// The last line of defence: a panic inside the core (a bug) reaches Swift as
// `PolyrouteError.Config` ("internal error: ...; please report it"), from synchronous and async
// calls alike, never as uniffi's unexpected-error path (a crash under `try!`), and the process
// keeps working. The panic is real: `debugPanic*` panic inside the core on purpose, under the
// same guard every export runs under (the async one on the binding's runtime, like every chat,
// stream and stream read).
import Foundation
import XCTest
@testable import Polyroute

final class PanicTests: XCTestCase {
    private func checkInternal(_ e: PolyrouteError?, site: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let e else { return }
        guard case .Config(let d) = e else { return XCTFail("expected Config, got \(e)", file: file, line: line) }
        XCTAssertEqual(d.kind, .config, file: file, line: line)
        XCTAssertEqual(d.message, "internal error: deliberate panic for testing (\(site)); please report it", file: file, line: line)
    }

    func testAPanicInASyncCallThrowsConfigAndTheRouterKeepsWorking() async throws {
        let m = uniqueModel("panic-sync")
        try await Mock.script(m, ["then": ["text": "still here"]])
        let router = try Router(policyObject: try mockPolicy(primary: [m]))
        for _ in 0..<2 {
            checkInternal(await expectPolyrouteError({ try debugPanic() }), site: "swift sync call")
        }
        let response = try await router.chat(.user("hi"))
        XCTAssertEqual(response.content, "still here")
    }

    func testAPanicInAnAsyncCallThrowsConfigAndTheRouterKeepsWorking() async throws {
        let m = uniqueModel("panic-async")
        try await Mock.script(m, ["then": ["text": "still here"]])
        let router = try Router(policyObject: try mockPolicy(primary: [m]))
        for _ in 0..<2 {
            checkInternal(await expectPolyrouteError({ try await debugPanicAsync() }), site: "swift async call")
        }
        let response = try await router.chat(.user("hi"))
        XCTAssertEqual(response.content, "still here")
    }
}
