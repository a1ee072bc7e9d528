// The Swift-shaped router API over the generated one: typed requests and responses, task
// cancellation, and streams as `AsyncThrowingStream`.
//
// uniffi does not propagate Swift task cancellation into Rust, so every call here passes a
// `CancelToken` and fires it from `withTaskCancellationHandler` (chat, opening a stream) or
// from the stream's `onTermination` (consumer cancelled or stopped iterating). The Rust side
// then drops the request, which closes the provider connection.
import Foundation

extension Router {
    /// Build from a policy given as a Swift value (the same structure as the YAML file).
    public convenience init(policyObject: JSONValue) throws {
        try self.init(policy: policyObject.jsonString())
    }

    /// Send a request and wait for the complete answer. Cancelling the calling task cancels
    /// the request (`PolyrouteError.Cancelled`).
    public func chat(_ request: ChatRequest) async throws -> ChatResponse {
        try await chat(body: request.body)
    }

    /// Send a raw OpenAI request body (`messages`, `tools`, ..., `polyroute`).
    public func chat(body: JSONValue) async throws -> ChatResponse {
        let json = try body.jsonString()
        let token = CancelToken()
        let answer = try await withTaskCancellationHandler {
            try await chatAnswer(requestJson: json, cancel: token)
        } onCancel: {
            token.cancel()
        }
        return try CoreJSON.answer(answer)
    }

    /// `chat` for code that is not async (a command-line tool, a thread of your own): blocks the
    /// calling thread until the answer. Requests to plain-http providers run on this thread, with
    /// no hand-off to Polyroute's runtime and back, so it is the cheapest call (BENCHMARKS.md,
    /// issue 18 fifteenth round); HTTPS ones run on the runtime as for `chat`. Do not call it from a Swift
    /// concurrency task: it would hold one of the few cooperative threads for the whole request.
    /// To cancel, fire `cancel` from another thread (`PolyrouteError.Cancelled`).
    public func chatBlocking(_ request: ChatRequest, cancel: CancelToken? = nil) throws -> ChatResponse {
        try chatBlocking(body: request.body, cancel: cancel)
    }

    public func chatBlocking(body: JSONValue, cancel: CancelToken? = nil) throws -> ChatResponse {
        try CoreJSON.answer(chatAnswerBlocking(requestJson: body.jsonString(), cancel: cancel))
    }

    /// Stream the answer. Errors before the first content (after failover) and errors that end
    /// the stream later are both thrown from the iteration. Cancelling the consuming task, or
    /// leaving the loop early, cancels the request.
    public func stream(_ request: ChatRequest) -> AsyncThrowingStream<StreamEvent, Error> {
        stream(body: request.body)
    }

    public func stream(body: JSONValue) -> AsyncThrowingStream<StreamEvent, Error> {
        let token = CancelToken()
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    let handle = try await streamJson(requestJson: try body.jsonString(), cancel: token)
                    try await handle.pump(into: continuation)
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { termination in
                if case .cancelled = termination {
                    token.cancel()
                    task.cancel()
                }
            }
        }
    }

    /// Open a stream and wait until it has committed (first content arrived, or it failed
    /// before that, thrown here). Use it when you want pre-stream errors thrown here and the
    /// route trace afterwards (`ChatEventStream.trace`).
    public func openStream(_ request: ChatRequest) async throws -> ChatEventStream {
        let json = try request.body.jsonString()
        let token = CancelToken()
        return try await withTaskCancellationHandler {
            try await streamJson(requestJson: json, cancel: token)
        } onCancel: {
            token.cancel()
        }
    }

    /// Where this request would go and why, without sending anything.
    public func plan(_ request: ChatRequest) throws -> RoutePlan {
        try CoreJSON.decode(RoutePlan.self, planJson(requestJson: request.body.jsonString()))
    }

    /// Breaker state and health of every deployment of the current policy.
    public func deployments() throws -> [DeploymentStatus] {
        try CoreJSON.decode([DeploymentStatus].self, deploymentsJson())
    }

    /// The policy serving now (literal API keys are never included).
    public func policy() throws -> JSONValue {
        try JSONValue.parse(policyJson())
    }

    /// Replace the policy with a Swift value; on error the current policy keeps serving.
    public func reload(policyObject: JSONValue) throws {
        try reload(policy: policyObject.jsonString())
    }
}

extension ChatEventStream {
    /// The events as an `AsyncThrowingStream`; ending it early cancels the request.
    public var events: AsyncThrowingStream<StreamEvent, Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await self.pump(into: continuation)
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { termination in
                if case .cancelled = termination {
                    self.cancel()
                    task.cancel()
                }
            }
        }
    }

    /// The whole answer, as `chat` would have returned it (content, tool calls, usage, cost,
    /// trace): reads what is left of the stream first. Throws the error the stream ended with,
    /// or `PolyrouteError.Cancelled` if it was cancelled before its end.
    public func finalResponse() async throws -> ChatResponse {
        let text = try await finalResponseJson()
        return try CoreJSON.answer(text)
    }

    /// The route trace, once the stream has ended.
    public var trace: RouteTrace? {
        (try? traceJson())?.flatMap { try? CoreJSON.decode(RouteTrace.self, $0) }
    }

    fileprivate func pump(into continuation: AsyncThrowingStream<StreamEvent, Error>.Continuation) async throws {
        while let json = try await next() {
            continuation.yield(try CoreJSON.event(json))
        }
        continuation.finish()
    }
}
