// Events, budgets and metrics from Swift.
//
// The listener is a foreign trait (`EventListener`, generated): any Sendable Swift class can
// implement it. `subscribe(_:)` and `events()` are conveniences over it for closures and
// `for await`. Events arrive on the core's telemetry thread, never on the requesting task.
import Foundation

/// One router event: `type` is `request_started`, `attempt_started`, `attempt_finished`,
/// `fallback_taken`, `breaker_changed`, `request_finished`, `budget_threshold` or
/// `policy_reloaded`; the other fields depend on it (see the core's `RouterEvent`).
public struct RouterEvent: Sendable, Equatable {
    public let type: String
    public let fields: JSONValue

    public subscript(key: String) -> JSONValue? { fields[key] }

    public init(json: String) throws {
        fields = try JSONValue.parse(json)
        type = fields["type"]?.stringValue ?? ""
    }
}

/// Spent, reserved and remaining of one budget in its current period.
public struct BudgetStatus: Sendable, Equatable, Decodable {
    public var budget: String
    /// `tenant:acme`, `route:chat`, `all`, ...
    public var scope: String
    /// `usd` or `tokens`.
    public var unit: String
    public var limit: Double
    public var spent: Double
    public var reserved: Double
    public var remaining: Double
    /// Unix seconds when the period resets.
    public var resetsAt: Double

    private enum CodingKeys: String, CodingKey {
        case budget, scope, unit, limit, spent, reserved, remaining, resetsAt = "resets_at"
    }
}

/// Cost per successful request of a route (failed attempts included in the cost).
public struct RouteCost: Sendable, Equatable, Decodable {
    public var route: String
    public var requests: Int
    public var successes: Int
    public var totalCostUsd: Double
    public var costPerSuccessUsd: Double?

    private enum CodingKeys: String, CodingKey {
        case route, requests, successes, totalCostUsd = "total_cost_usd", costPerSuccessUsd = "cost_per_success_usd"
    }
}

private final class ClosureListener: EventListener {
    let handler: @Sendable (RouterEvent) -> Void
    init(_ handler: @escaping @Sendable (RouterEvent) -> Void) { self.handler = handler }
    func onEvent(eventJson: String) {
        if let ev = try? RouterEvent(json: eventJson) { handler(ev) }
    }
}

extension Router {
    /// Call `handler` with every router event. Returns an id for `unsubscribe(id:)`.
    @discardableResult
    public func subscribe(_ handler: @escaping @Sendable (RouterEvent) -> Void) throws -> UInt64 {
        try subscribe(listener: ClosureListener(handler))
    }

    /// The router's events as an async sequence; ending the iteration unsubscribes.
    public func events() -> AsyncStream<RouterEvent> {
        AsyncStream { continuation in
            // Subscribing fails only on an internal error; the sequence then ends at once.
            guard let id = try? subscribe({ continuation.yield($0) }) else {
                continuation.finish()
                return
            }
            continuation.onTermination = { _ in _ = try? self.unsubscribe(id: id) }
        }
    }

    public func budgets() throws -> [BudgetStatus] {
        try CoreJSON.decode([BudgetStatus].self, budgetsJson())
    }

    public func routeCosts() throws -> [RouteCost] {
        try CoreJSON.decode([RouteCost].self, routeCostsJson())
    }
}
