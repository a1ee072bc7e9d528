// The Swift-implemented event listener (a uniffi foreign trait), budgets and metrics.
import Foundation
import XCTest
@testable import Polyroute

/// A listener as an app would write one: Sendable, state behind a lock.
final class CollectingListener: EventListener, @unchecked Sendable {
    private let lock = NSLock()
    private var _events: [RouterEvent] = []
    var events: [RouterEvent] { lock.lock(); defer { lock.unlock() }; return _events }

    func onEvent(eventJson: String) {
        guard let ev = try? RouterEvent(json: eventJson) else { return }
        lock.lock(); _events.append(ev); lock.unlock()
    }

    /// Events arrive on the core's telemetry thread, shortly after the request returns.
    func waitFor(_ type: String, count: Int = 1) async throws -> [RouterEvent] {
        for _ in 0..<200 {
            if events.filter({ $0.type == type }).count >= count { return events }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        XCTFail("no \(type) event in \(events.map(\.type))")
        return events
    }
}

final class TelemetryTests: XCTestCase {
    func testListenerSeesAttemptsFallbackAndTheFinishedRequest() async throws {
        let primary = uniqueModel("ev-down"), backup = uniqueModel("ev-backup")
        try await Mock.script(primary, ["then": ["status": 503]])
        try await Mock.script(backup, ["then": ["text": "served"]])
        let router = try Router(policyObject: try mockPolicy(primary: [primary], fallback: [backup]))
        let listener = CollectingListener()
        let id = try router.subscribe(listener: listener)

        let r = try await router.chat(.user("hi"))
        let events = try await listener.waitFor("request_finished")

        XCTAssertEqual(events.first?.type, "request_started")
        let attempts = events.filter { $0.type == "attempt_finished" }
        XCTAssertEqual(attempts.map { $0["deployment"]?.stringValue ?? "" }, [primary, backup])
        XCTAssertEqual(attempts.map { $0["outcome"]?.stringValue ?? "" }, ["overloaded", "ok"])
        let fallback = try XCTUnwrap(events.first { $0.type == "fallback_taken" })
        XCTAssertEqual(fallback["reason"]?.stringValue, "overloaded")
        let finished = try XCTUnwrap(events.first { $0.type == "request_finished" })
        XCTAssertEqual(finished["outcome"]?.stringValue, "ok")
        XCTAssertEqual(finished["request_id"]?.stringValue, r.trace?.requestId)
        XCTAssertFalse(events.contains { (try? $0.fields.jsonString())?.contains("served") ?? false },
                       "events never carry answer text")

        XCTAssertTrue(try router.unsubscribe(id: id))
        let before = listener.events.count
        _ = try await router.chat(.user("again"))
        try await Task.sleep(nanoseconds: 200_000_000)
        XCTAssertEqual(listener.events.count, before, "no events after unsubscribe")
    }

    func testEventsAsAnAsyncSequence() async throws {
        let m = uniqueModel("ev-seq")
        let router = try Router(policyObject: try mockPolicy(primary: [m]))
        let stream = router.events()
        let reader = Task { () -> [String] in
            var types: [String] = []
            for await ev in stream {
                types.append(ev.type)
                if ev.type == "request_finished" { break }
            }
            return types
        }
        try await Task.sleep(nanoseconds: 50_000_000)

        _ = try await router.chat(.user("hi"))
        let types = await reader.value

        XCTAssertEqual(types.first, "request_started")
        XCTAssertEqual(types.last, "request_finished")
    }

    func testBreakerTransitionsReachTheListener() async throws {
        let m = uniqueModel("ev-breaker")
        let router = try Router(policyObject: try mockPolicy(primary: [m]))
        let listener = CollectingListener()
        _ = try router.subscribe(listener: listener)

        try router.setBreaker(deployment: m, state: .forcedOpen)
        _ = await expectPolyrouteError { try await router.chat(.user("hi")) }
        let events = try await listener.waitFor("request_finished")

        let finished = try XCTUnwrap(events.first { $0.type == "request_finished" })
        XCTAssertEqual(finished["outcome"]?.stringValue, "circuit_open")
    }

    func testTokenBudgetIsTrackedAndEnforced() async throws {
        let m = uniqueModel("budget")
        try await Mock.script(m, ["then": ["text": "four words of answer"]])
        let policy = try mockPolicy(primary: [m], priced: true, extra: [
            "budgets": [["name": "daily-tokens", "limit_tokens": 200, "period": "day"]],
        ])
        let router = try Router(policyObject: policy)
        var req = ChatRequest.user("hello there")
        req.maxTokens = 20

        let r = try await router.chat(req)

        let budget = try XCTUnwrap(try router.budgets().first { $0.budget == "daily-tokens" })
        XCTAssertEqual(budget.unit, "tokens")
        XCTAssertEqual(budget.limit, 200)
        XCTAssertEqual(budget.spent, Double(try XCTUnwrap(r.usage).totalTokens))
        XCTAssertEqual(budget.remaining, budget.limit - budget.spent - budget.reserved)

        // A request whose worst case no longer fits is refused before it is sent.
        req.maxTokens = 190
        let e = await expectPolyrouteError { try await router.chat(req) }
        guard case .BudgetExceeded(let d)? = e else { return XCTFail("\(String(describing: e))") }
        XCTAssertTrue(d.message.contains("daily-tokens"), d.message)
        let sent = try await Mock.log(m)
        XCTAssertEqual(sent.count, 1)
    }

    func testMetricsTextAndRouteCosts() async throws {
        let m = uniqueModel("metrics")
        let router = try Router(policyObject: try mockPolicy(primary: [m], priced: true))
        _ = try await router.chat(.user("hi"))

        let text = try router.metricsText()
        XCTAssertTrue(text.contains("# TYPE"), text)
        XCTAssertTrue(text.contains("polyroute_"), text)
        XCTAssertTrue(text.contains(m), "per-deployment series are labelled with the deployment")
        XCTAssertFalse(text.contains("sk-test-not-a-real-key"))
        let cost = try XCTUnwrap(try router.routeCosts().first { $0.route == "main" })
        XCTAssertEqual(cost.requests, 1)
        XCTAssertEqual(cost.successes, 1)
        XCTAssertGreaterThan(cost.totalCostUsd, 0)
    }
}
