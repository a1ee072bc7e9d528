// Conveniences on the generated `PolyrouteError` (one case per core error kind, each carrying
// `ErrorDetails`). uniffi names error cases after the Rust variants (`RateLimited`, upstream
// uniffi issue #2262), so generic handling reads `error.kind`, which is a lowerCamelCase enum.
import Foundation

extension PolyrouteError: CustomStringConvertible {
    /// The fields every case carries.
    public var details: ErrorDetails {
        switch self {
        case .RateLimited(let d), .QuotaExhausted(let d), .Overloaded(let d), .ServerError(let d),
             .Timeout(let d), .Connection(let d), .Auth(let d), .PermissionDenied(let d),
             .ContentFilter(let d), .ContextLengthExceeded(let d), .InvalidRequest(let d),
             .NotFound(let d), .StreamInterrupted(let d), .MalformedResponse(let d),
             .InvalidOutput(let d), .BudgetExceeded(let d), .CircuitOpen(let d), .NoRoute(let d),
             .Cancelled(let d), .Config(let d), .GuardRejected(let d), .StateUnavailable(let d):
            return d
        }
    }

    public var kind: ErrorKind { details.kind }
    /// The stable snake_case code (`rate_limited`, ...), the same in Python and Node.
    public var code: String { details.code }
    public var message: String { details.message }
    public var retryAfter: TimeInterval? { details.retryAfter }
    /// Every attempt that led to this error.
    public var trace: RouteTrace? { details.traceJson.flatMap { try? CoreJSON.decode(RouteTrace.self, $0) } }
    public var description: String { details.summary }
}
