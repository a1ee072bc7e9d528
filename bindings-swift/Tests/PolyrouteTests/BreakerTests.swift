// Circuit breakers seen from Swift: state after failures, operator override, reset.
import Foundation
import XCTest
@testable import Polyroute

final class BreakerTests: XCTestCase {
    func testFailuresOpenTheBreakerAndTrafficSkipsTheDeployment() async throws {
        let bad = uniqueModel("bad"), good = uniqueModel("good")
        try await Mock.script(bad, ["then": ["status": 500]])
        try await Mock.script(good, ["then": ["text": "fine"]])
        let router = try Router(policyObject: try mockPolicy(
            primary: [bad], fallback: [good], breaker: ["consecutive_failures": 2, "open_for": "30s"]))

        for _ in 0..<2 { _ = try await router.chat(.user("hi")) }
        let status = try XCTUnwrap(try router.deployments().first { $0.deployment == bad })
        XCTAssertEqual(status.breaker.state, .open)
        XCTAssertEqual(status.breaker.lastError, .serverError)
        XCTAssertGreaterThan(status.breaker.retryInMs ?? 0, 0)

        let r = try await router.chat(.user("hi"))
        XCTAssertEqual(r.content, "fine")
        let skipped = try XCTUnwrap(r.trace?.candidates.first { $0.deployment == bad }?.skipped)
        XCTAssertTrue(skipped.contains("open"), skipped)
        let badLog = try await Mock.log(bad)
        XCTAssertEqual(badLog.count, 2, "an open breaker costs no round trip")
    }

    func testOperatorCanForceOpenAndReset() async throws {
        let a = uniqueModel("a"), b = uniqueModel("b")
        try await Mock.script(a, ["then": ["text": "from a"]])
        try await Mock.script(b, ["then": ["text": "from b"]])
        let router = try Router(policyObject: try mockPolicy(primary: [a], fallback: [b]))

        try router.setBreaker(deployment: a, state: .forcedOpen)
        XCTAssertEqual(try router.deployments().first { $0.deployment == a }?.breaker.state, .forcedOpen)
        let drained = try await router.chat(.user("hi")).content
        XCTAssertEqual(drained, "from b")

        try router.resetBreaker(deployment: a)
        XCTAssertEqual(try router.deployments().first { $0.deployment == a }?.breaker.state, .closed)
        let restored = try await router.chat(.user("hi")).content
        XCTAssertEqual(restored, "from a")

        XCTAssertThrowsError(try router.resetBreaker(deployment: "ghost")) { e in
            XCTAssertEqual((e as? PolyrouteError)?.kind, .config)
        }
    }
}
