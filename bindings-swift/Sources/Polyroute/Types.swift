// Swift views of the core's serde JSON: responses, stream events, traces, plans, health.
//
// The FFI hands these over as the core's own JSON (the same objects Python and Node see), so
// these types only decode; they add no behaviour. Only fields an app reasonably reads are
// lifted into properties; `raw` keeps the whole object for everything else. Keys are spelled
// out (no `convertFromSnakeCase`) because that strategy would also rewrite the keys of free-form
// JSON such as tool arguments schemas.
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

    private enum Keys: String, CodingKey {
        case prompt = "prompt_tokens", completion = "completion_tokens", total = "total_tokens"
        case promptDetails = "prompt_tokens_details", completionDetails = "completion_tokens_details"
    }
    private enum PromptKeys: String, CodingKey { case cached = "cached_tokens", cacheWrite = "cache_write_tokens" }
    private enum CompletionKeys: String, CodingKey { case reasoning = "reasoning_tokens" }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        inputTokens = try c.decodeIfPresent(Int.self, forKey: .prompt) ?? 0
        outputTokens = try c.decodeIfPresent(Int.self, forKey: .completion) ?? 0
        totalTokens = try c.decodeIfPresent(Int.self, forKey: .total) ?? inputTokens + outputTokens
        // `contains` first: a missing key would throw (an error built and dropped) per response.
        let p = c.contains(.promptDetails) ? try? c.nestedContainer(keyedBy: PromptKeys.self, forKey: .promptDetails) : nil
        cacheReadTokens = (try? p?.decodeIfPresent(Int.self, forKey: .cached)) ?? 0
        cacheWriteTokens = (try? p?.decodeIfPresent(Int.self, forKey: .cacheWrite)) ?? 0
        let d = c.contains(.completionDetails) ? try? c.nestedContainer(keyedBy: CompletionKeys.self, forKey: .completionDetails) : nil
        reasoningTokens = (try? d?.decodeIfPresent(Int.self, forKey: .reasoning)) ?? 0
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

    private enum Keys: String, CodingKey {
        case role, content, refusal, toolCalls = "tool_calls", reasoning = "reasoning_content"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        role = try c.decodeIfPresent(String.self, forKey: .role) ?? "assistant"
        switch try c.decodeIfPresent(JSONValue.self, forKey: .content) {
        case .string(let s): content = s
        case .array(let parts): content = parts.compactMap { $0["text"]?.stringValue }.joined()
        default: content = ""
        }
        toolCalls = try c.decodeIfPresent([ToolCall].self, forKey: .toolCalls) ?? []
        refusal = try c.decodeIfPresent(String.self, forKey: .refusal)
        reasoning = try c.decodeIfPresent(String.self, forKey: .reasoning)
    }
}

public struct Choice: Sendable, Equatable, Decodable {
    public var index: Int
    public var message: ResponseMessage
    /// `stop`, `length`, `tool_calls`, `content_filter`, ...
    public var finishReason: String?

    private enum CodingKeys: String, CodingKey { case index, message, finishReason = "finish_reason" }
}

public struct CandidateTrace: Sendable, Equatable, Decodable {
    public var deployment: String
    public var provider: String
    public var model: String
    public var tier: Int
    /// Why it was not tried (breaker open, missing capability, ...); nil if it was eligible.
    public var skipped: String?
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

    private enum CodingKeys: String, CodingKey {
        case deployment, provider, model, tier, outcome, error, status, hedge
        case latencyMs = "latency_ms", ttftMs = "ttft_ms", backoffMs = "backoff_ms", costUsd = "cost_usd"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        deployment = try c.decode(String.self, forKey: .deployment)
        provider = try c.decode(String.self, forKey: .provider)
        model = try c.decode(String.self, forKey: .model)
        tier = try c.decode(Int.self, forKey: .tier)
        outcome = try c.decode(String.self, forKey: .outcome)
        error = try c.decodeIfPresent(String.self, forKey: .error)
        status = try c.decodeIfPresent(Int.self, forKey: .status)
        latencyMs = try c.decode(Double.self, forKey: .latencyMs)
        ttftMs = try c.decodeIfPresent(Double.self, forKey: .ttftMs)
        backoffMs = try c.decodeIfPresent(Double.self, forKey: .backoffMs) ?? 0
        costUsd = try c.decodeIfPresent(Double.self, forKey: .costUsd)
        hedge = try c.decodeIfPresent(Bool.self, forKey: .hedge) ?? false
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

    private enum CodingKeys: String, CodingKey {
        case route, matched, strategy, candidates, attempts, degraded, cache, notes, explanation
        case requestId = "request_id", servedBy = "served_by", totalCostUsd = "total_cost_usd", totalMs = "total_ms"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        requestId = try c.decode(String.self, forKey: .requestId)
        route = try c.decode(String.self, forKey: .route)
        matched = try c.decode(String.self, forKey: .matched)
        strategy = try c.decode(String.self, forKey: .strategy)
        candidates = try c.decodeIfPresent([CandidateTrace].self, forKey: .candidates) ?? []
        attempts = try c.decodeIfPresent([AttemptTrace].self, forKey: .attempts) ?? []
        servedBy = try c.decodeIfPresent(String.self, forKey: .servedBy)
        degraded = try c.decodeIfPresent(Bool.self, forKey: .degraded) ?? false
        cache = try c.decodeIfPresent(String.self, forKey: .cache)
        totalCostUsd = try c.decodeIfPresent(Double.self, forKey: .totalCostUsd)
        totalMs = try c.decodeIfPresent(Double.self, forKey: .totalMs) ?? 0
        notes = try c.decodeIfPresent([String].self, forKey: .notes) ?? []
        explanation = try c.decode(String.self, forKey: .explanation)
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
    public var trace: RouteTrace?
    /// The whole chat.completion object.
    public var raw: JSONValue = .null

    /// The first choice's text.
    public var content: String { choices.first?.message.content ?? "" }
    public var toolCalls: [ToolCall] { choices.first?.message.toolCalls ?? [] }
    public var finishReason: String? { choices.first?.finishReason }

    private enum CodingKeys: String, CodingKey {
        case id, model, choices, usage, provider, trace, costUsd = "cost_usd"
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

    private enum Keys: String, CodingKey {
        case type, id, model, text, signature, index, name, arguments, usage, reason, native
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let type = try c.decode(String.self, forKey: .type)
        switch type {
        case "start": self = .start(id: try c.decode(String.self, forKey: .id), model: try c.decode(String.self, forKey: .model))
        case "content_delta": self = .contentDelta(try c.decode(String.self, forKey: .text))
        case "refusal_delta": self = .refusalDelta(try c.decode(String.self, forKey: .text))
        case "reasoning_delta":
            self = .reasoningDelta(try c.decode(String.self, forKey: .text), signature: try c.decodeIfPresent(String.self, forKey: .signature))
        case "tool_call_delta":
            self = .toolCallDelta(
                index: try c.decode(Int.self, forKey: .index),
                id: try c.decodeIfPresent(String.self, forKey: .id),
                name: try c.decodeIfPresent(String.self, forKey: .name),
                arguments: try c.decodeIfPresent(String.self, forKey: .arguments) ?? "")
        case "usage": self = .usage(try c.decode(Usage.self, forKey: .usage))
        case "finish":
            self = .finish(reason: try c.decode(String.self, forKey: .reason), native: try c.decodeIfPresent(String.self, forKey: .native))
        case "reset": self = .reset(reason: try c.decode(String.self, forKey: .reason))
        default: self = .other(type: type, raw: try JSONValue(from: decoder))
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
    /// `raw` included.
    public init(coreJSON text: String) throws {
        self = try CoreJSON.response(text)
    }
}

enum CoreJSON {
    static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        try JSONTreeDecoder.decode(type, from: JSONText.parse(text))
    }

    /// A `ChatResponse` and its `raw`, from one reading of the text.
    static func response(_ text: String) throws -> ChatResponse {
        let tree = try JSONText.parse(text)
        var response = try JSONTreeDecoder.decode(ChatResponse.self, from: tree)
        response.raw = tree
        return response
    }
}
