// OpenAI-shaped request builders: the part of the generated API (`chatJson(requestJson:)`) that
// is awkward to use from Swift.
//
// These types only *build* the body the openai SDK would send (`messages`, `tools`,
// `tool_choice`, `response_format`, `metadata`, ...) plus the `polyroute` routing object. They validate nothing: the core parses
// and validates the body and throws `PolyrouteError.InvalidRequest` naming the bad field, so
// Swift, Python and Node reject exactly the same requests.
import Foundation

public enum Role: String, Sendable {
    case system, user, assistant, tool, developer
}

/// A tool call as it is sent back in an assistant turn.
public struct ToolCall: Sendable, Equatable, Decodable {
    public var id: String
    public var name: String
    /// Raw JSON text exactly as the model produced it.
    public var arguments: String

    public init(id: String, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }

    public init(from decoder: Decoder) throws {
        try self.init(node: JSONNode(JSONValue(from: decoder), at: decoder.codingPath))
    }

    init(node: JSONNode) throws {
        let f = try JSONFields(node)
        id = try f.string(ifPresent: "id") ?? ""
        let fn = try JSONFields(f.required("function"))
        name = try fn.string("name")
        arguments = try fn.string(ifPresent: "arguments") ?? ""
    }

    var json: JSONValue {
        ["id": .string(id), "type": "function", "function": ["name": .string(name), "arguments": .string(arguments)]]
    }
}

public struct Message: Sendable, Equatable {
    public var role: Role
    /// Plain text, or OpenAI content parts (`[{"type": "text", ...}, {"type": "image_url", ...}]`).
    public var content: JSONValue?
    public var name: String?
    public var toolCalls: [ToolCall] = []
    public var toolCallId: String?

    public init(role: Role, content: JSONValue?, name: String? = nil, toolCalls: [ToolCall] = [], toolCallId: String? = nil) {
        self.role = role
        self.content = content
        self.name = name
        self.toolCalls = toolCalls
        self.toolCallId = toolCallId
    }

    public static func system(_ text: String) -> Message { Message(role: .system, content: .string(text)) }
    public static func user(_ text: String) -> Message { Message(role: .user, content: .string(text)) }
    public static func assistant(_ text: String) -> Message { Message(role: .assistant, content: .string(text)) }
    public static func assistant(toolCalls: [ToolCall]) -> Message { Message(role: .assistant, content: nil, toolCalls: toolCalls) }
    public static func tool(callId: String, result: String) -> Message {
        Message(role: .tool, content: .string(result), toolCallId: callId)
    }

    var json: JSONValue {
        var m: [String: JSONValue] = ["role": .string(role.rawValue), "content": content ?? .null]
        if let name { m["name"] = .string(name) }
        if !toolCalls.isEmpty { m["tool_calls"] = .array(toolCalls.map(\.json)) }
        if let toolCallId { m["tool_call_id"] = .string(toolCallId) }
        return .object(m)
    }
}

public struct Tool: Sendable, Equatable {
    public var name: String
    public var description: String?
    /// JSON Schema of the arguments.
    public var parameters: JSONValue
    public var strict: Bool?

    public init(name: String, description: String? = nil, parameters: JSONValue = ["type": "object", "properties": [:]], strict: Bool? = nil) {
        self.name = name
        self.description = description
        self.parameters = parameters
        self.strict = strict
    }

    var json: JSONValue {
        var f: [String: JSONValue] = ["name": .string(name), "parameters": parameters]
        if let description { f["description"] = .string(description) }
        if let strict { f["strict"] = .bool(strict) }
        return ["type": "function", "function": .object(f)]
    }
}

public enum ToolChoice: Sendable, Equatable {
    case auto, none, required
    case function(String)

    var json: JSONValue {
        switch self {
        case .auto: return "auto"
        case .none: return "none"
        case .required: return "required"
        case .function(let n): return ["type": "function", "function": ["name": .string(n)]]
        }
    }
}

public enum ResponseFormat: Sendable, Equatable {
    case text
    case jsonObject
    case jsonSchema(name: String, schema: JSONValue, strict: Bool? = nil)

    var json: JSONValue {
        switch self {
        case .text: return ["type": "text"]
        case .jsonObject: return ["type": "json_object"]
        case .jsonSchema(let name, let schema, let strict):
            var js: [String: JSONValue] = ["name": .string(name), "schema": schema]
            if let strict { js["strict"] = .bool(strict) }
            return ["type": "json_schema", "json_schema": .object(js)]
        }
    }
}

/// What the policy's route rules match on: the body's `polyroute` object. Never sent to a
/// provider (OpenAI's own `metadata` is `ChatRequest.metadata`, and is).
public struct RequestMetadata: Sendable, Equatable {
    /// Ask for a route by name (otherwise `model`, the rules and then the default route decide).
    public var route: String?
    public var tenant: String?
    public var feature: String?
    public var tier: String?
    public var tags: [String] = []
    /// Data classification (`pii`, ...) that the policy's data rules restrict.
    public var dataClass: String?
    /// Deployments of the route to try first, in this order (trusted callers only).
    public var order: [String] = []

    public init(route: String? = nil, tenant: String? = nil, feature: String? = nil, tier: String? = nil, tags: [String] = [], dataClass: String? = nil, order: [String] = []) {
        self.route = route
        self.tenant = tenant
        self.feature = feature
        self.tier = tier
        self.tags = tags
        self.dataClass = dataClass
        self.order = order
    }

    func json(timeout: Double?) -> JSONValue? {
        var m: [String: JSONValue] = [:]
        if let route { m["route"] = .string(route) }
        if let tenant { m["tenant"] = .string(tenant) }
        if let feature { m["feature"] = .string(feature) }
        if let tier { m["tier"] = .string(tier) }
        if !tags.isEmpty { m["tags"] = .array(tags.map { .string($0) }) }
        if let dataClass { m["data_class"] = .string(dataClass) }
        if !order.isEmpty { m["order"] = .array(order.map { .string($0) }) }
        if let timeout { m["timeout"] = .double(timeout) }
        return m.isEmpty ? nil : .object(m)
    }
}

/// A chat request in the OpenAI body shape. Unset fields are left out of the body.
public struct ChatRequest: Sendable, Equatable {
    public var messages: [Message]
    /// A route, a deployment or a provider model id the policy serves (in that order). An
    /// unknown name throws `PolyrouteError.NoRoute` unless `routing.route` names a route.
    /// `nil`: the policy's rules decide.
    public var model: String?
    public var tools: [Tool] = []
    public var toolChoice: ToolChoice?
    public var responseFormat: ResponseFormat?
    public var maxTokens: Int?
    public var temperature: Double?
    public var topP: Double?
    public var stop: [String] = []
    public var seed: Int?
    /// Routing metadata (the body's `polyroute` object).
    public var routing = RequestMetadata()
    /// OpenAI's own `metadata` (labels of a stored completion): forwarded to OpenAI-shaped
    /// providers, never read for routing.
    public var metadata: [String: String] = [:]
    /// The request's total deadline in seconds, all attempts included; it can only shorten
    /// the route's `timeouts.total`. Past it the call throws `PolyrouteError.Timeout`.
    public var timeout: Double?
    /// Any other top-level body field, passed through verbatim (`user`, `logprobs`, ...).
    public var extra: [String: JSONValue] = [:]

    public init(messages: [Message], model: String? = nil, routing: RequestMetadata = RequestMetadata(), timeout: Double? = nil) {
        self.messages = messages
        self.model = model
        self.routing = routing
        self.timeout = timeout
    }

    /// One user message, optionally to a named route.
    public static func user(_ text: String, route: String? = nil) -> ChatRequest {
        ChatRequest(messages: [.user(text)], routing: RequestMetadata(route: route))
    }

    /// The OpenAI request body this request stands for.
    public var body: JSONValue {
        var b = extra
        b["messages"] = .array(messages.map(\.json))
        if let model { b["model"] = .string(model) }
        if !tools.isEmpty { b["tools"] = .array(tools.map(\.json)) }
        if let toolChoice { b["tool_choice"] = toolChoice.json }
        if let responseFormat { b["response_format"] = responseFormat.json }
        if let maxTokens { b["max_tokens"] = .int(maxTokens) }
        if let temperature { b["temperature"] = .double(temperature) }
        if let topP { b["top_p"] = .double(topP) }
        if !stop.isEmpty { b["stop"] = .array(stop.map { .string($0) }) }
        if let seed { b["seed"] = .int(seed) }
        if let r = routing.json(timeout: timeout) { b["polyroute"] = r }
        if !metadata.isEmpty { b["metadata"] = .object(metadata.mapValues { .string($0) }) }
        return .object(b)
    }
}
