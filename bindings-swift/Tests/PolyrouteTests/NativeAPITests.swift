// The request surface an SDK user expects (issue 16): `model` naming a deployment or a route,
// an unknown name refused instead of ignored, `timeout` as the deadline, and the assembled
// answer of a stream.
import Foundation
import XCTest
@testable import Polyroute

final class NativeAPITests: XCTestCase {
    func testModelNamesADeploymentFirstAndUnknownNamesAreNoRoute() async throws {
        let a = uniqueModel("first"), b = uniqueModel("second")
        try await Mock.script(a, ["then": ["text": "from a"]])
        try await Mock.script(b, ["then": ["text": "from b"]])
        let router = try Router(policyObject: try mockPolicy(primary: [a, b]))

        let byDeployment = try await router.chat(ChatRequest(messages: [.user("hi")], model: b))
        XCTAssertEqual(byDeployment.content, "from b")
        XCTAssertEqual(byDeployment.trace?.route, "main")
        let byRoute = try await router.chat(ChatRequest(messages: [.user("hi")], model: "main"))
        XCTAssertEqual(byRoute.content, "from a")

        do {
            _ = try await router.chat(ChatRequest(messages: [.user("hi")], model: "gpt-unknown"))
            XCTFail("an unknown model must not be ignored")
        } catch PolyrouteError.NoRoute(let d) {
            XCTAssertTrue(d.message.contains("gpt-unknown"), d.message)
        }
        // With an explicit route the name is only a preference.
        var explicit = ChatRequest(messages: [.user("hi")], model: "gpt-unknown")
        explicit.routing.route = "main"
        let r = try await router.chat(explicit)
        XCTAssertEqual(r.content, "from a")
    }

    func testTimeoutIsTheWholeRequestsDeadline() async throws {
        let m = uniqueModel("hangs")
        try await Mock.script(m, ["then": ["fault": "hang"]])
        let router = try Router(policyObject: try mockPolicy(primary: [m], timeouts: ["first_token": "20s", "total": "30s"]))

        let started = Date()
        do {
            _ = try await router.chat(ChatRequest(messages: [.user("hi")], timeout: 0.5))
            XCTFail("a hanging provider must time out")
        } catch PolyrouteError.Timeout {
            XCTAssertLessThan(Date().timeIntervalSince(started), 10, "the caller's 0.5 s, not the route's 30 s")
        }
    }

    func testFinalResponseAfterFailoverCarriesUsageCostAndTrace() async throws {
        let primary = uniqueModel("down"), backup = uniqueModel("up")
        try await Mock.script(primary, ["then": ["status": 503]])
        try await Mock.script(backup, ["then": ["text": "the whole answer"]])
        let router = try Router(policyObject: try mockPolicy(primary: [primary], fallback: [backup], priced: true))

        let stream = try await router.openStream(.user("hi"))
        let final = try await stream.finalResponse()

        XCTAssertEqual(final.content, "the whole answer")
        XCTAssertEqual(final.trace?.servedBy, backup)
        XCTAssertEqual(final.trace?.attempts.map(\.deployment), [primary, backup])
        XCTAssertNotNil(final.usage)
        XCTAssertGreaterThan(final.costUsd ?? 0, 0)
    }

    func testFinalResponseThrowsTheInterruption() async throws {
        let m = uniqueModel("cut-final")
        try await Mock.script(m, ["then": ["text": "alpha beta gamma delta", "fault": ["cut_after": ["chunks": 2]]]])
        let router = try Router(policyObject: try mockPolicy(primary: [m]))

        let stream = try await router.openStream(.user("hi"))
        do {
            _ = try await stream.finalResponse()
            XCTFail("a cut stream has no final response")
        } catch PolyrouteError.StreamInterrupted(let d) {
            XCTAssertEqual(d.partialText, "alpha beta")
        }
    }
}
