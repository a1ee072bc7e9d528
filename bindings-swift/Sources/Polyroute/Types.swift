// Swift views of the core's serde JSON: responses, stream events, traces, plans, health.
//
// The FFI hands these over as the core's own JSON (the same objects Python and Node see), so
// these types only decode; they add no behaviour. Only fields an app reasonably reads are
// lifted into properties; `raw` keeps the whole object for everything else. Keys are spelled
// out (no `convertFromSnakeCase`) because that strategy would also rewrite the keys of free-form
// JSON such as tool arguments schemas. What an answer or a stream event is made of is read
// straight from the text's tape (`init(node:)` over `JSONFields`, JSONTape.swift: every call
// does it); their `Decodable` conformances write the value they are given to text and go
// through the same initialisers, so each type has one reading. The rest (plans, health) keep
// Codable's, from a `JSONValue` tree (`JSONTreeDecoder`).
import Foundation

/// Token counts with one meaning across providers: `inputTokens` includes cache reads and
/// writes, `outputTokens` includes reasoning.
public struct Usage: Sendable, Equatable, Decodable {
    public var inputTokens: Int
    public var outputTokens: Int
    public var totalTokens: Int
    public var cacheReadTokens: Int
    public var cacheWriteTokens: Int
    public var reasoningTokens: Int

    public init(from decoder: Decoder) throws {
        try self.init(node: JSONNode(JSONValue(from: decoder), at: decoder.codingPath))
    }

    init(node: JSONNode) throws {
        let f = try JSONFields(node)
        inputTokens = try f.int(ifPresent: "prompt_tokens") ?? 0
        outputTokens = try f.int(ifPresent: "completion_tokens") ?? 0
        totalTokens = try f.int(ifPresent: "total_tokens") ?? inputTokens + outputTokens
        // Provider-shaped details: a malformed one counts as absent, never fails the answer.
        let p = try? f.value(ifPresent: "prompt_tokens_details") { try JSONFields($0) }
        cacheReadTokens = (try? p?.int(ifPresent: "cached_tokens")) ?? 0
        cacheWriteTokens = (try? p?.int(ifPresent: "cache_write_tokens")) ?? 0
        let d = try? f.value(ifPresent: "completion_tokens_details") { try JSONFields($0) }
        reasoningTokens = (try? d?.int(ifPresent: "reasoning_tokens")) ?? 0
    }
}

/// The assistant's turn in a response.
public struct ResponseMessage: Sendable, Equatable, Decodable {
    public var role: String
    /// All text parts joined (`""` for a turn that only calls tools).
    public var content: String
    public var toolCalls: [ToolCall]
    public var refusal: String?
    public var reasoning: String?

    public init(from decoder: Decoder) throws {
        try self.init(node: JSONNode(JSONValue(from: decoder), at: decoder.codingPath))
    }

    init(node: JSONNode) throws {
        let f = try JSONFields(node)
        role = try f.string(ifPresent: "role") ?? "assistant"
        let c = f.optional("content")
        if let parts = c?.elements({ try? JSONFields($0).find("text")?.string() }) {
            content = parts.compactMap { $0 }.joined()
        } else {
            content = (try? c?.string()) ?? ""
        }
        toolCalls = try f.array(ifPresent: "tool_calls") { try ToolCall(node: $0) } ?? []
        refusal = try f.string(ifPresent: "refusal")
        reasoning = try f.string(ifPresent: "reasoning_content")
    }
}

public struct Choice: Sendable, Equatable, Decodable {
    public var index: Int
    public var message: ResponseMessage
    /// `stop`, `length`, `tool_calls`, `content_filter`, ...
    public var finishReason: String?

    public init(from decoder: Decoder) throws {
        try self.init(node: JSONNode(JSONValue(from: decoder), at: decoder.codingPath))
    }

    init(node: JSONNode) throws {
        let f = try JSONFields(node)
        index = try f.int("index")
        message = try ResponseMessage(node: f.required("message"))
        finishReason = try f.string(ifPresent: "finish_reason")
    }
}

public struct CandidateTrace: Sendable, Equatable, Decodable {
    public var deployment: String
    public var provider: String
    public var model: String
    public var tier: Int
    /// Why it was not tried (breaker open, missing capability, ...); nil if it was eligible.
    public var skipped: String?

    public init(from decoder: Decoder) throws {
        try self.init(node: JSONNode(JSONValue(from: decoder), at: decoder.codingPath))
    }

    init(node: JSONNode) throws {
        let f = try JSONFields(node)
        deployment = try f.string("deployment")
        provider = try f.string("provider")
        model = try f.string("model")
        tier = try f.int("tier")
        skipped = try f.string(ifPresent: "skipped")
    }
}

public struct AttemptTrace: Sendable, Equatable, Decodable {
    public var deployment: String
    public var provider: String
    public var model: String
    public var tier: Int
    /// `ok` or an error kind code.
    public var outcome: String
    public var error: String?
    public var status: Int?
    public var latencyMs: Double
    public var ttftMs: Double?
    public var backoffMs: Double
    public var costUsd: Double?
    public var hedge: Bool

    public init(from decoder: Decoder) throws {
        try self.init(node: JSONNode(JSONValue(from: decoder), at: decoder.codingPath))
    }

    init(node: JSONNode) throws {
        let f = try JSONFields(node)
        deployment = try f.string("deployment")
        provider = try f.string("provider")
        model = try f.string("model")
        tier = try f.int("tier")
        outcome = try f.string("outcome")
        error = try f.string(ifPresent: "error")
        status = try f.int(ifPresent: "status")
        latencyMs = try f.double("latency_ms")
        ttftMs = try f.double(ifPresent: "ttft_ms")
        backoffMs = try f.double(ifPresent: "backoff_ms") ?? 0
        costUsd = try f.double(ifPresent: "cost_usd")
        hedge = try f.bool(ifPresent: "hedge") ?? false
    }
}

/// Why a request went where it went: the candidates, every attempt, and one sentence.
public struct RouteTrace: Sendable, Equatable, Decodable {
    public var requestId: String
    public var route: String
    public var matched: String
    public var strategy: String
    public var candidates: [CandidateTrace]
    public var attempts: [AttemptTrace]
    public var servedBy: String?
    public var degraded: Bool
    /// What the response cache did (`hit`, `fallback`, `miss`, `stored`, `bypass`); nil when
    /// the route does not cache.
    public var cache: String?
    public var totalCostUsd: Double?
    public var totalMs: Double
    public var notes: [String]
    public var explanation: String

    public init(from decoder: Decoder) throws {
        try self.init(node: JSONNode(JSONValue(from: decoder), at: decoder.codingPath))
    }

    init(node: JSONNode) throws {
        let f = try JSONFields(node)
        requestId = try f.string("request_id")
        route = try f.string("route")
        matched = try f.string("matched")
        strategy = try f.string("strategy")
        candidates = try f.array(ifPresent: "candidates") { try CandidateTrace(node: $0) } ?? []
        attempts = try f.array(ifPresent: "attempts") { try AttemptTrace(node: $0) } ?? []
        servedBy = try f.string(ifPresent: "served_by")
        degraded = try f.bool(ifPresent: "degraded") ?? false
        cache = try f.string(ifPresent: "cache")
        totalCostUsd = try f.double(ifPresent: "total_cost_usd")
        totalMs = try f.double(ifPresent: "total_ms") ?? 0
        notes = try f.array(ifPresent: "notes") { try $0.string() } ?? []
        explanation = try f.string("explanation")
    }
}

/// A complete answer: the OpenAI chat.completion shape plus Polyroute's `provider`,
/// `costUsd` and `trace`.
public struct ChatResponse: Sendable, Equatable, Decodable {
    public var id: String
    /// The model that served the request, as the provider reported it.
    public var model: String
    public var choices: [Choice]
    public var usage: Usage?
    /// Which configured provider served it.
    public var provider: String?
    public var costUsd: Double?
    /// Why the request went where it went. For an answer a call returned it is read from the
    /// answer's text the first time it is asked for: it is over half of the text, and most
    /// calls never look at it (issue 18, seventeenth round: 3.9–4.9 → 2.4–3.3 CPU-µs per answer
    /// read, hot). The core wrote that text; if it ever could not be read, `trace` is nil.
    /// `init(coreJSON:)` and `Decodable` read it at once and fail on a malformed one.
    public var trace: RouteTrace? {
        get { traceField.value }
        set { traceField = Deferred(newValue) }
    }
    private var traceField: Deferred<RouteTrace?>
    /// The whole chat.completion object (built from the answer's text when first read).
    public var raw: JSONValue {
        get { rawJSON.value }
        set { rawJSON = Deferred(newValue) }
    }
    // No default values: each would make a box per answer only to replace it.
    private var rawJSON: Deferred<JSONValue>

    /// The first choice's text.
    public var content: String { choices.first?.message.content ?? "" }
    public var toolCalls: [ToolCall] { choices.first?.message.toolCalls ?? [] }
    public var finishReason: String? { choices.first?.finishReason }

    public init(from decoder: Decoder) throws {
        let value = try JSONValue(from: decoder)
        try self.init(node: JSONNode(value, at: decoder.codingPath), traceOnRead: false)
        rawJSON = Deferred(value)
    }

    /// `raw` is `node`'s value, built when first read; so is `trace` with `traceOnRead`.
    init(node: JSONNode, traceOnRead: Bool) throws {
        try self.init(fields: JSONFields(node), raw: Deferred(node: node) { $0.value }) { f in
            if traceOnRead, let t = f.optional("trace") {
                return Deferred(node: t) { try? RouteTrace(node: $0) }
            }
            return Deferred(try f.value(ifPresent: "trace") { try RouteTrace(node: $0) })
        }
    }

    /// An answer a typed call returned (`node`: its text, without the trace), and the trace,
    /// which the core writes as JSON only when `trace` or `raw` is first read (issue 18,
    /// twentieth round: writing it was ~11 % of a sync call's Rust side).
    init(node: JSONNode, answer: Answer) throws {
        let raw = Deferred<JSONValue>(answer: answer, node: node) { t, node in
            guard case .object(var members)? = node?.value else { return node?.value ?? .null }
            if let text = (try? t.traceJson()).flatMap({ $0 }), let value = try? JSONText.parse(text) {
                members["trace"] = value
            }
            return .object(members)
        }
        try self.init(fields: JSONFields(node), raw: raw) { _ in
            Deferred(answer: answer) { t, _ in
                (try? t.traceJson()).flatMap { $0 }.flatMap { try? RouteTrace(node: JSONTape($0).root) }
            }
        }
    }

    /// The fields every reading has, then `trace` (read after them, so a missing `id` is
    /// reported before a malformed trace).
    private init(fields f: JSONFields, raw: Deferred<JSONValue>, trace: (JSONFields) throws -> Deferred<RouteTrace?>) throws {
        id = try f.string("id")
        model = try f.string("model")
        choices = try f.array(ifPresent: "choices") { try Choice(node: $0) } ?? []
        usage = try f.value(ifPresent: "usage") { try Usage(node: $0) }
        provider = try f.string(ifPresent: "provider")
        costUsd = try f.double(ifPresent: "cost_usd")
        traceField = try trace(f)
        rawJSON = raw
    }
}

/// One event of a streamed answer.
public enum StreamEvent: Sendable, Equatable, Decodable {
    /// The provider accepted the request; `model` is what it says is serving.
    case start(id: String, model: String)
    case contentDelta(String)
    case refusalDelta(String)
    case reasoningDelta(String, signature: String?)
    /// A fragment of tool call number `index`; `arguments` fragments concatenate.
    case toolCallDelta(index: Int, id: String?, name: String?, arguments: String)
    case usage(Usage)
    /// `reason` is `stop`, `length`, `tool_calls`, `content_filter` or `other`.
    case finish(reason: String, native: String?)
    /// Restart mode: discard what was received; the answer is streamed again from another deployment.
    case reset(reason: String)
    /// An event type this version of the Swift layer does not know (forward compatibility).
    case other(type: String, raw: JSONValue)

    public init(from decoder: Decoder) throws {
        try self.init(node: JSONNode(JSONValue(from: decoder), at: decoder.codingPath))
    }

    init(node: JSONNode) throws {
        let f = try JSONFields(node)
        let type = try f.string("type")
        switch type {
        case "start": self = .start(id: try f.string("id"), model: try f.string("model"))
        case "content_delta": self = .contentDelta(try f.string("text"))
        case "refusal_delta": self = .refusalDelta(try f.string("text"))
        case "reasoning_delta": self = .reasoningDelta(try f.string("text"), signature: try f.string(ifPresent: "signature"))
        case "tool_call_delta":
            self = .toolCallDelta(
                index: try f.int("index"), id: try f.string(ifPresent: "id"), name: try f.string(ifPresent: "name"),
                arguments: try f.string(ifPresent: "arguments") ?? "")
        case "usage": self = .usage(try Usage(node: f.required("usage")))
        case "finish": self = .finish(reason: try f.string("reason"), native: try f.string(ifPresent: "native"))
        case "reset": self = .reset(reason: try f.string("reason"))
        default: self = .other(type: type, raw: node.value)
        }
    }

    /// The text this event adds to the visible answer, if any.
    public var text: String? {
        if case .contentDelta(let t) = self { return t }
        return nil
    }
}

/// Where a request would go and why, without sending it.
public struct RoutePlan: Sendable, Equatable, Decodable {
    public var route: String
    public var matched: String
    public var strategy: String
    /// Eligible deployments in the order they would be tried, tier by tier.
    public var order: [String]
    public var candidates: [CandidateTrace]
    public var explanation: String
}

public struct BreakerSnapshot: Sendable, Equatable, Decodable {
    public var state: BreakerState
    public var callsInWindow: Int
    public var failuresInWindow: Int
    public var consecutiveFailures: Int
    /// Milliseconds until an open breaker admits a probe.
    public var retryInMs: Int?
    public var trips: Int
    public var lastError: ErrorKind?

    private enum CodingKeys: String, CodingKey {
        case state, trips
        case callsInWindow = "calls_in_window", failuresInWindow = "failures_in_window"
        case consecutiveFailures = "consecutive_failures", retryInMs = "retry_in_ms", lastError = "last_error"
    }
}

/// Breaker and health of one deployment.
public struct DeploymentStatus: Sendable, Equatable, Decodable {
    public var deployment: String
    public var provider: String
    public var model: String
    public var breaker: BreakerSnapshot
    public var ttftEwmaMs: Double?
    public var ttftP95Ms: Double?
    public var successRate: Double

    private enum CodingKeys: String, CodingKey {
        case deployment, provider, model, breaker
        case ttftEwmaMs = "ttft_ewma_ms", ttftP95Ms = "ttft_p95_ms", successRate = "success_rate"
    }
}

extension BreakerState: Decodable {
    /// The core's snake_case name (`forced_open`, ...).
    public var code: String {
        switch self {
        case .closed: return "closed"
        case .open: return "open"
        case .halfOpen: return "half_open"
        case .forcedOpen: return "forced_open"
        case .disabled: return "disabled"
        }
    }

    public init(from decoder: Decoder) throws {
        let code = try decoder.singleValueContainer().decode(String.self)
        let all: [BreakerState] = [.closed, .open, .halfOpen, .forcedOpen, .disabled]
        guard let s = all.first(where: { $0.code == code }) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown breaker state \(code)"))
        }
        self = s
    }
}

extension ErrorKind: Decodable {
    /// The stable snake_case code (`rate_limited`, ...), from the core.
    public var code: String { errorKindCode(kind: self) }

    /// The kind with this code, if any.
    public init?(code: String) {
        guard let k = allErrorKinds().first(where: { errorKindCode(kind: $0) == code }) else { return nil }
        self = k
    }

    public init(from decoder: Decoder) throws {
        let code = try decoder.singleValueContainer().decode(String.self)
        guard let k = ErrorKind(code: code) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown error kind \(code)"))
        }
        self = k
    }
}

extension ChatResponse {
    /// Decode the core's chat.completion JSON (what `chatJson` returns, or one you stored),
    /// `raw` included. With `traceOnRead`, `trace` is read the first time it is asked for, as
    /// for the answers calls return (cheaper when it is not read; a malformed trace then reads
    /// as nil instead of failing here).
    public init(coreJSON text: String, traceOnRead: Bool = false) throws {
        self = try traceOnRead ? CoreJSON.answer(text) : CoreJSON.response(text)
    }

    /// What `chatAnswer` / `chatAnswerBlocking` return (what `chat` and `chatBlocking` read):
    /// the answer's text without its trace, which the core writes when `trace` or `raw` is first
    /// read (a trace the core could not write then reads as nil).
    public init(answer: Answer) throws {
        self = try CoreJSON.answer(answer)
    }
}

enum CoreJSON {
    static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        try JSONTreeDecoder.decode(type, from: JSONText.parse(text))
    }

    /// A `ChatResponse` and its `raw`, from one reading of the text, every field checked.
    static func response(_ text: String) throws -> ChatResponse {
        try ChatResponse(node: JSONTape(text).root, traceOnRead: false)
    }

    /// An answer a call returned: as `response`, with its trace read when first asked for.
    static func answer(_ text: String) throws -> ChatResponse {
        try ChatResponse(node: JSONTape(text).root, traceOnRead: true)
    }

    /// An answer a typed call returned, its trace still in the core.
    static func answer(_ answer: Answer) throws -> ChatResponse {
        try ChatResponse(node: JSONTape(answer.json()).root, answer: answer)
    }

    static func event(_ text: String) throws -> StreamEvent {
        try StreamEvent(node: JSONTape(text).root)
    }
}
