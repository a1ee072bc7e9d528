// Fleet-wide state by policy alone: two routers in one process, built from the same policy
// whose `state.redis` names test.sh's redis-server, share one budget. What one spends refuses
// the other, and the refused request never reaches the provider.
import Foundation
import XCTest
@testable import Polyroute

final class FleetTests: XCTestCase {
    func testABudgetSpentByOneRouterRefusesAnotherThroughTheSameRedis() async throws {
        let limit = 0.2
        let settled = 0.015 // 15 output tokens at $1000/Mtok; 20 (max_tokens) are reserved
        let m = uniqueModel("fleet")
        try await Mock.script(m, ["then": ["usage": ["input_tokens": 10, "output_tokens": 15], "latency_ms": 5]])
        let extra: [String: JSONValue] = [
            "deployments": [m: [
                "provider": "mock", "model": .string(m), "pricing": ["input_per_mtok": 0.0, "output_per_mtok": 1000.0],
            ]],
            "budgets": [["name": "fleet", "limit_usd": .double(limit), "period": "day"]],
            "state": ["redis": [
                "url": .string(try testRedisURL()),
                "key_prefix": .string("polyroute-test:\(m):"),
                // fail_closed and a generous timeout: a slow store must fail the test, not
                // quietly hold the budget in one router (on_error: local).
                "timeout": "2s", "on_error": "fail_closed", "sync_interval": "100ms",
            ]],
        ]
        let policy = try mockPolicy(primary: [m], extra: extra)
        let a = try Router(policyObject: policy)
        let b = try Router(policyObject: policy)
        let req: ChatRequest = {
            var r = ChatRequest.user("hi")
            r.maxTokens = 20
            return r
        }()

        // Router A spends the budget, four requests at a time, until a round is all refused.
        var ok = 0
        var spent = 0.0
        var refusedRounds = 0
        var rounds = 0
        while refusedRounds < 2 && rounds < 100 {
            rounds += 1
            let results = await withTaskGroup(of: Result<Double, Error>.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        do { return .success(try await a.chat(req).costUsd ?? 0) } catch { return .failure(error) }
                    }
                }
                var all: [Result<Double, Error>] = []
                for await r in group { all.append(r) }
                return all
            }
            var roundOk = 0
            for r in results {
                switch r {
                case .success(let cost):
                    roundOk += 1
                    spent += cost
                case .failure(let e):
                    guard case .BudgetExceeded? = e as? PolyrouteError else { return XCTFail("unexpected \(e)") }
                }
            }
            ok += roundOk
            refusedRounds = roundOk == 0 ? refusedRounds + 1 : 0
        }
        XCTAssertEqual(spent, Double(ok) * settled, accuracy: 1e-9)
        XCTAssertLessThanOrEqual(spent, limit + 1e-9)
        XCTAssertGreaterThanOrEqual(spent, 0.9 * limit)

        // Router B never sent anything, has its own in-process state, and is refused: the
        // budget A spent is the one in the shared store.
        let e = await expectPolyrouteError { try await b.chat(req) }
        guard case .BudgetExceeded? = e else { return XCTFail("\(String(describing: e))") }
        let sent = try await Mock.log(m)
        XCTAssertEqual(sent.count, ok, "only A's successful requests reached the provider")

        // After a fleet sync both routers report the fleet's spend, nothing held.
        try await Task.sleep(nanoseconds: 600_000_000)
        for r in [a, b] {
            let budgets = try r.budgets()
            XCTAssertEqual(budgets.count, 1)
            XCTAssertEqual(budgets.first?.spent ?? -1, spent, accuracy: 1e-6)
            XCTAssertEqual(budgets.first?.reserved ?? -1, 0, accuracy: 1e-9)
        }
    }
}
