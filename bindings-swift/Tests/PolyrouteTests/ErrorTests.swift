// Every error kind, raised from a real exchange where the mock server can produce it, arrives
// as its own `PolyrouteError` case with its fields.
import Foundation
import XCTest
@testable import Polyroute

final class ErrorTests: XCTestCase {
    /// One scripted provider failure, no retries or fallbacks, so the kind reaches the caller as is.
    private func providerError(
        _ step: JSONValue, request: ChatRequest = .user("hi"), timeouts: [String: JSONValue] = [:],
        file: StaticString = #filePath, line: UInt = #line
    ) async throws -> (PolyrouteError, String)? {
        let m = uniqueModel("err")
        try await Mock.script(m, ["then": step])
        let router = try Router(policyObject: try mockPolicy(primary: [m], timeouts: timeouts))
        guard let e = await expectPolyrouteError({ try await router.chat(request) }, file: file, line: line) else { return nil }
        // The blocking call fails the same way (a fresh model and router, so the first call's
        // cooldown or breaker cannot change the answer).
        let mb = uniqueModel("err-blocking")
        try await Mock.script(mb, ["then": step])
        let blocking = try Router(policyObject: try mockPolicy(primary: [mb], timeouts: timeouts))
        switch await onThread({ try blocking.chatBlocking(request) }) {
        case .failure(let b as PolyrouteError):
            XCTAssertEqual(b.kind, e.kind, "chatBlocking", file: file, line: line)
            XCTAssertEqual(b.details.status, e.details.status, "chatBlocking", file: file, line: line)
            XCTAssertEqual(b.details.providerCode, e.details.providerCode, "chatBlocking", file: file, line: line)
        case let other:
            XCTFail("chatBlocking: expected \(e.kind), got \(other)", file: file, line: line)
        }
        return (e, m)
    }

    func testRateLimitedCarriesStatusCodeRetryAfterAndRequestId() async throws {
        guard let (e, m) = try await providerError(["status": 429, "error_code": "rate_limit_exceeded", "retry_after": "7"]) else { return }
        guard case .RateLimited(let d) = e else { return XCTFail("\(e)") }
        XCTAssertEqual(d.kind, .rateLimited)
        XCTAssertEqual(d.code, "rate_limited")
        XCTAssertEqual(d.status, 429)
        XCTAssertEqual(d.providerCode, "rate_limit_exceeded")
        XCTAssertEqual(d.retryAfter, 7)
        XCTAssertEqual(e.retryAfter, 7)
        XCTAssertEqual(d.provider, "mock")
        XCTAssertEqual(d.model, m)
        XCTAssertNotNil(d.requestId)
        XCTAssertEqual(e.trace?.attempts.map(\.outcome), ["rate_limited"])
        XCTAssertTrue(e.description.hasPrefix("rate_limited"), e.description)
        XCTAssertFalse(e.description.contains("sk-test-not-a-real-key"))
    }

    func testQuotaExhausted() async throws {
        guard let (e, _) = try await providerError(["status": 429, "error_code": "insufficient_quota"]) else { return }
        guard case .QuotaExhausted(let d) = e else { return XCTFail("\(e)") }
        XCTAssertEqual(d.status, 429)
        XCTAssertEqual(d.providerCode, "insufficient_quota")
    }

    func testOverloaded() async throws {
        guard let (e, _) = try await providerError(["status": 503]) else { return }
        guard case .Overloaded(let d) = e else { return XCTFail("\(e)") }
        XCTAssertEqual(d.status, 503)
    }

    func testServerError() async throws {
        guard let (e, _) = try await providerError(["status": 500]) else { return }
        guard case .ServerError(let d) = e else { return XCTFail("\(e)") }
        XCTAssertEqual(d.status, 500)
    }

    func testTimeoutWhenTheProviderHangs() async throws {
        let start = Date()
        guard let (e, _) = try await providerError(["fault": "hang"], timeouts: ["first_token": "300ms"]) else { return }
        guard case .Timeout(let d) = e else { return XCTFail("\(e)") }
        XCTAssertNil(d.status)
        XCTAssertLessThan(Date().timeIntervalSince(start), 3)
    }

    func testConnectionWhenTheProviderDrops() async throws {
        guard let (e, _) = try await providerError(["fault": "drop"]) else { return }
        guard case .Connection = e else { return XCTFail("\(e)") }
    }

    func testAuth() async throws {
        guard let (e, _) = try await providerError(["status": 401]) else { return }
        guard case .Auth(let d) = e else { return XCTFail("\(e)") }
        XCTAssertEqual(d.status, 401)
    }

    func testPermissionDenied() async throws {
        guard let (e, _) = try await providerError(["status": 403, "error_code": "unsupported_country_region_territory"]) else { return }
        guard case .PermissionDenied(let d) = e else { return XCTFail("\(e)") }
        XCTAssertEqual(d.providerCode, "unsupported_country_region_territory")
    }

    func testContentFilter() async throws {
        guard let (e, _) = try await providerError(["status": 400, "error_code": "content_filter"]) else { return }
        guard case .ContentFilter(let d) = e else { return XCTFail("\(e)") }
        XCTAssertEqual(d.status, 400)
    }

    func testContextLengthExceeded() async throws {
        guard let (e, _) = try await providerError(["status": 400, "error_code": "context_length_exceeded"]) else { return }
        guard case .ContextLengthExceeded(let d) = e else { return XCTFail("\(e)") }
        XCTAssertEqual(d.providerCode, "context_length_exceeded")
    }

    func testInvalidRequestFromTheProvider() async throws {
        guard let (e, _) = try await providerError(["status": 400, "error_message": "bad field"]) else { return }
        guard case .InvalidRequest(let d) = e else { return XCTFail("\(e)") }
        XCTAssertEqual(d.status, 400)
    }

    func testInvalidRequestCaughtByTheCoreBeforeSending() async throws {
        let m = uniqueModel("local-invalid")
        let router = try Router(policyObject: try mockPolicy(primary: [m]))
        var req = ChatRequest.user("hi")
        req.temperature = 9
        let e = await expectPolyrouteError { try await router.chat(req) }
        guard case .InvalidRequest(let d)? = e else { return XCTFail("\(String(describing: e))") }
        XCTAssertTrue(d.message.contains("temperature"), d.message)
        let sent = try await Mock.log(m)
        XCTAssertEqual(sent.count, 0)
    }

    func testNotFound() async throws {
        guard let (e, _) = try await providerError(["status": 404, "error_code": "model_not_found"]) else { return }
        guard case .NotFound(let d) = e else { return XCTFail("\(e)") }
        XCTAssertEqual(d.status, 404)
    }

    func testMalformedResponse() async throws {
        guard let (e, _) = try await providerError(["fault": ["malformed_after": ["chunks": 0]]]) else { return }
        guard case .MalformedResponse = e else { return XCTFail("\(e)") }
    }

    func testInvalidOutputWhenTheAnswerDoesNotMatchTheSchema() async throws {
        var req = ChatRequest.user("give me json")
        req.responseFormat = .jsonSchema(name: "city", schema: ["type": "object", "properties": ["city": ["type": "string"]], "required": ["city"]])
        guard let (e, _) = try await providerError(["text": "certainly not json"], request: req) else { return }
        guard case .InvalidOutput = e else { return XCTFail("\(e)") }
    }

    func testBudgetExceeded() async throws {
        let m = uniqueModel("budget")
        let router = try Router(policyObject: try mockPolicy(primary: [m], retry: ["max_request_cost_usd": 0], priced: true))
        let e = await expectPolyrouteError { try await router.chat(.user("hi")) }
        guard case .BudgetExceeded? = e else { return XCTFail("\(String(describing: e))") }
        let sent = try await Mock.log(m)
        XCTAssertEqual(sent.count, 0)
    }

    func testCircuitOpenWhenTheOnlyDeploymentIsForcedOpen() async throws {
        let m = uniqueModel("forced")
        let router = try Router(policyObject: try mockPolicy(primary: [m]))
        try router.setBreaker(deployment: m, state: .forcedOpen)
        let e = await expectPolyrouteError { try await router.chat(.user("hi")) }
        guard case .CircuitOpen? = e else { return XCTFail("\(String(describing: e))") }
        let sent = try await Mock.log(m)
        XCTAssertEqual(sent.count, 0)
    }

    func testNoRouteForAnUnknownRouteName() async throws {
        let router = try Router(policyObject: try mockPolicy(primary: [uniqueModel("x")]))
        let e = await expectPolyrouteError { try await router.chat(.user("hi", route: "does-not-exist")) }
        guard case .NoRoute(let d)? = e else { return XCTFail("\(String(describing: e))") }
        XCTAssertTrue(d.message.contains("does-not-exist"), d.message)
    }

    func testGuardRejectedWhenARejectGuardFindsACardNumber() async throws {
        let m = uniqueModel("guarded")
        let guards: JSONValue = [["name": "no-cards", "detect": ["credit_card"], "action": "reject"]]
        let router = try Router(policyObject: try mockPolicy(primary: [m], extra: ["guards": guards]))
        let e = await expectPolyrouteError { try await router.chat(.user("pay with 4111 1111 1111 1111")) }
        guard case .GuardRejected(let d)? = e else { return XCTFail("\(String(describing: e))") }
        XCTAssertEqual(d.kind, .guardRejected)
        XCTAssertEqual(d.code, "guard_rejected")
        XCTAssertTrue(d.message.contains("no-cards"), d.message)
        XCTAssertTrue(d.message.contains("credit_card"), d.message)
        XCTAssertFalse(d.summary.contains("4111"), d.summary)
        XCTAssertFalse(d.json.contains("4111"), d.json)
        let sent = try await Mock.log(m)
        XCTAssertEqual(sent.count, 0)
    }

    func testStateUnavailableWhenTheSharedStoreIsDownAndFailClosed() async throws {
        // A budget held in a Redis where nothing listens, `on_error: fail_closed`: refused
        // within the store timeout, and nothing reaches the provider.
        let m = uniqueModel("state")
        let extra: [String: JSONValue] = [
            "budgets": [["name": "b", "limit_usd": 10, "period": "day"]],
            "state": ["redis": ["url": .string("redis://127.0.0.1:\(try freeLoopbackPort())"), "on_error": "fail_closed", "timeout": "50ms"]],
        ]
        let router = try Router(policyObject: try mockPolicy(primary: [m], priced: true, extra: extra))
        for _ in 0..<2 { // the first call finds the store down, the second knows it already
            let start = Date()
            let e = await expectPolyrouteError { try await router.chat(.user("hi")) }
            XCTAssertLessThan(Date().timeIntervalSince(start), 2)
            guard case .StateUnavailable(let d)? = e else { return XCTFail("\(String(describing: e))") }
            XCTAssertEqual(d.kind, .stateUnavailable)
            XCTAssertEqual(d.code, "state_unavailable")
            XCTAssertTrue(d.message.contains("fail_closed"), d.message)
        }
        let sent = try await Mock.log(m)
        XCTAssertEqual(sent.count, 0)
    }

    func testCancelledWhenTheCallingTaskIsCancelled() async throws {
        let m = uniqueModel("slow")
        try await Mock.script(m, ["then": ["latency_ms": 5000]])
        let router = try Router(policyObject: try mockPolicy(primary: [m], timeouts: ["first_token": "10s", "total": "20s"]))
        let task = Task { try await router.chat(.user("hi")) }
        // Wait until the request is on the wire, then cancel the task.
        try await waitUntilSent(m)
        let start = Date()
        task.cancel()

        let e = await expectPolyrouteError { try await task.value }

        guard case .Cancelled(let d)? = e else { return XCTFail("\(String(describing: e))") }
        XCTAssertEqual(d.code, "cancelled")
        XCTAssertLessThan(Date().timeIntervalSince(start), 1.0)
        // Dropping the request closed the connection before the 5 s answer.
        let disconnected = try await mockSawDisconnect(m)
        XCTAssertTrue(disconnected)
    }

    func testConfigForAnInvalidPolicy() throws {
        XCTAssertThrowsError(try Router(policy: "version: 1\nroutes: [{name: r, deployments: [ghost]}]\nbogus_field: 1")) { error in
            guard case .Config(let d)? = error as? PolyrouteError else { return XCTFail("\(error)") }
            XCTAssertEqual(d.code, "config")
            XCTAssertFalse(d.message.isEmpty)
        }
        XCTAssertThrowsError(try Router.fromPolicyFile(path: "/nonexistent/policy.yaml")) { error in
            XCTAssertEqual((error as? PolyrouteError)?.kind, .config)
        }
    }

    func testEveryCoreKindHasItsOwnCase() {
        let kinds = allErrorKinds()
        XCTAssertEqual(kinds.count, 22)
        XCTAssertEqual(Set(kinds.map(\.code)).count, kinds.count)
        XCTAssertEqual(ErrorKind(code: "context_length_exceeded"), .contextLengthExceeded)
        XCTAssertEqual(ErrorKind(code: "guard_rejected"), .guardRejected)
        XCTAssertEqual(ErrorKind(code: "state_unavailable"), .stateUnavailable)
        XCTAssertNil(ErrorKind(code: "nope"))
    }
}
