// Types of the public `polyroute` API (polyroute.js). Hand-written because the napi-generated
// `index.d.ts` describes the JSON-text native layer, not what users call. Data shapes mirror
// the core's serde output (OpenAI chat-completions shape, snake_case) and are deliberately
// structural and open (`[key: string]: unknown`) so an openai-node request object type-checks.

/** Stable error codes, equal to the Rust core's `ErrorKind` codes. */
export type ErrorKind =
  | 'rate_limited'
  | 'quota_exhausted'
  | 'overloaded'
  | 'server_error'
  | 'timeout'
  | 'connection'
  | 'auth'
  | 'permission_denied'
  | 'content_filter'
  | 'context_length_exceeded'
  | 'invalid_request'
  | 'not_found'
  | 'stream_interrupted'
  | 'malformed_response'
  | 'invalid_output'
  | 'budget_exceeded'
  | 'circuit_open'
  | 'no_route'
  | 'cancelled'
  | 'config'
  | 'guard_rejected'
  | 'state_unavailable'

export type Role = 'system' | 'developer' | 'user' | 'assistant' | 'tool'

export interface ContentPart {
  type: string
  [key: string]: unknown
}

export interface ToolCall {
  id: string
  type: 'function'
  function: { name: string; arguments: string }
}

export interface ChatMessage {
  role: Role
  content?: string | ContentPart[] | null
  name?: string
  tool_calls?: ToolCall[] | null
  tool_call_id?: string
  refusal?: string | null
  [key: string]: unknown
}

/**
 * What the router reads to choose a route: the request's `polyroute` object. Never forwarded
 * to a provider.
 */
export interface RoutingMetadata {
  /** Ask for a route by name (bypasses match rules; `model` is then only a preference). */
  route?: string
  tenant?: string
  feature?: string
  tier?: string
  tags?: string[]
  data_class?: string
  /** Deployments of the route to try first, in this order. */
  order?: string[]
  /**
   * The request's total deadline in seconds, all attempts included (the route's
   * `timeouts.total` still applies: the shorter wins); ends in `TimeoutError`. The call
   * option `timeout` sets it in milliseconds.
   */
  timeout?: number
  [key: string]: unknown
}

/** @deprecated Renamed `RoutingMetadata` (the `polyroute` object; `metadata` is OpenAI's). */
export type RequestMetadata = RoutingMetadata

/** The body openai-node's `chat.completions.create` takes, plus routing metadata. */
export interface ChatRequest {
  /**
   * A route name, else a deployment name (tried first, the route's others as fallbacks),
   * else a provider model id the policy's deployments serve. Unknown is `no_route`, unless a
   * route is asked for (`route`, `polyroute.route`); absent, the policy's rules choose.
   */
  model?: string
  messages: ChatMessage[]
  tools?: Array<{ type: 'function'; function: { name: string; description?: string; parameters?: unknown; strict?: boolean | null } }>
  tool_choice?: 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } }
  response_format?: { type: 'text' } | { type: 'json_object' } | { type: 'json_schema'; json_schema: { name: string; schema?: unknown; strict?: boolean | null; [key: string]: unknown } }
  max_tokens?: number | null
  max_completion_tokens?: number | null
  temperature?: number | null
  top_p?: number | null
  stop?: string | string[] | null
  seed?: number | null
  /** OpenAI's `metadata`: forwarded to OpenAI-shaped providers, never read for routing. */
  metadata?: Record<string, string> | null
  /** Routing metadata (the gateway's `polyroute` body object). */
  polyroute?: RoutingMetadata | null
  /** Shortcut for `polyroute.route`. */
  route?: string
  [key: string]: unknown
}

export interface RequestOptions {
  /** Aborting rejects the call (or the stream's pending `next()`) with `CancelledError`. */
  signal?: AbortSignal
  /**
   * The request's total deadline in milliseconds (openai-node's unit), all attempts and
   * fallbacks included; sent as `polyroute.timeout` in seconds and never longer than the
   * route's `timeouts.total`. Expiry rejects with `TimeoutError`.
   */
  timeout?: number
}

export interface Usage {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
  prompt_tokens_details?: { cached_tokens?: number; [key: string]: unknown }
  completion_tokens_details?: { reasoning_tokens?: number; [key: string]: unknown }
  [key: string]: unknown
}

export interface CandidateTrace {
  deployment: string
  provider: string
  model: string
  tier: number
  /** Why it was not tried; absent for eligible candidates. */
  skipped?: string
}

export interface AttemptTrace {
  deployment: string
  provider: string
  model: string
  tier: number
  /** `ok` or an ErrorKind code. */
  outcome: 'ok' | ErrorKind | (string & {})
  error?: string
  status?: number
  latency_ms: number
  ttft_ms?: number
  backoff_ms: number
  usage?: Usage
  cost_usd?: number
  hedge?: boolean
}

/** Why a request went where it went. */
export interface RouteTrace {
  request_id: string
  route: string
  matched: string
  strategy: string
  candidates: CandidateTrace[]
  attempts: AttemptTrace[]
  served_by?: string
  degraded?: boolean
  /** What the response cache did; absent when the route does not cache. */
  cache?: 'hit' | 'fallback' | 'miss' | 'stored' | 'bypass'
  total_cost_usd?: number
  total_ms: number
  notes?: string[]
  /** One sentence: why there. */
  explanation: string
}

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'other' | (string & {})

/** OpenAI `chat.completion` plus `provider`, `cost_usd` and `trace`. */
export interface ChatResponse {
  id: string
  object: 'chat.completion' | (string & {})
  created: number
  model: string
  choices: Array<{
    index: number
    message: ChatMessage & { role: 'assistant'; content: string | null; reasoning_content?: string }
    finish_reason: FinishReason | null
    logprobs: unknown
  }>
  usage?: Usage
  provider?: string
  cost_usd?: number
  trace?: RouteTrace
  [key: string]: unknown
}

export type StreamEvent =
  | { type: 'start'; id: string; model: string }
  | { type: 'content_delta'; text: string }
  | { type: 'refusal_delta'; text: string }
  | { type: 'reasoning_delta'; text: string; signature?: string }
  | { type: 'tool_call_delta'; index: number; id?: string; name?: string; arguments: string }
  | { type: 'usage'; usage: Usage }
  | { type: 'finish'; reason: FinishReason; native?: string }
  /** `stream_recovery: restart` only: discard what was received; the answer starts again. */
  | { type: 'reset'; reason: string }

/** One OpenAI `chat.completion.chunk`, as openai-node streams them. */
export interface ChatCompletionChunk {
  id: string
  object: 'chat.completion.chunk'
  created: number
  model: string
  choices: Array<{
    index: number
    delta: {
      role?: 'assistant'
      content?: string | null
      refusal?: string | null
      reasoning_content?: string
      tool_calls?: Array<{ index: number; id?: string; type?: 'function'; function?: { name?: string; arguments?: string } }>
      [key: string]: unknown
    }
    finish_reason: FinishReason | null
    logprobs?: unknown
  }>
  /** On the last chunk (whose `choices` is empty). */
  usage?: Usage
  [key: string]: unknown
}

export interface RoutePlan {
  route: string
  matched: string
  strategy: string
  /** Eligible deployments in attempt order, tier by tier. */
  order: string[]
  candidates: CandidateTrace[]
  explanation: string
}

export type BreakerState = 'closed' | 'open' | 'half_open' | 'forced_open' | 'disabled'

export interface DeploymentStatus {
  deployment: string
  provider: string
  model: string
  breaker: {
    state: BreakerState
    calls_in_window: number
    failures_in_window: number
    consecutive_failures: number
    retry_in_ms?: number
    trips: number
    last_error?: ErrorKind
  }
  ttft_ewma_ms?: number
  ttft_p95_ms?: number
  success_rate: number
}

export interface BudgetStatus {
  budget: string
  /** `tenant:acme`, `route:chat`, `all`... */
  scope: string
  unit: 'usd' | 'tokens' | (string & {})
  limit: number
  spent: number
  reserved: number
  remaining: number
  /** Unix seconds. */
  resets_at: number
}

export interface RouteCost {
  route: string
  requests: number
  successes: number
  total_cost_usd: number
  cost_per_success_usd?: number
}

/** Router events, as the core emits them (never prompt or completion content). */
export type RouterEvent =
  | { type: 'request_started'; request_id: string; route: string; stream: boolean }
  | { type: 'attempt_started'; request_id: string; route: string; deployment: string; provider: string; model: string; attempt: number }
  | {
      type: 'attempt_finished'
      request_id: string
      route: string
      deployment: string
      provider: string
      provider_kind: string
      model: string
      /** `ok` or an ErrorKind code. */
      outcome: string
      latency_ms: number
      ttft_ms?: number
      input_tokens: number
      output_tokens: number
      cache_read_tokens: number
      cache_write_tokens: number
      reasoning_tokens: number
      cost_usd?: number
      response_model?: string
    }
  | { type: 'fallback_taken'; request_id: string; route: string; from: string; to: string; reason: string }
  | { type: 'breaker_changed'; deployment: string; from: BreakerState; to: BreakerState; reason: string }
  | {
      type: 'request_finished'
      request_id: string
      route: string
      /** `ok`, `degraded` or an ErrorKind code. */
      outcome: string
      deployment?: string
      provider?: string
      model?: string
      duration_ms: number
      attempts: number
      cost_usd?: number
      explanation: string
    }
  | { type: 'budget_threshold'; budget: string; scope: string; threshold: number; spent: number; limit: number }
  | { type: 'policy_reloaded'; ok: boolean; error?: string }
  | { type: 'guard_triggered'; request_id: string; route: string; guard: string; action: string; findings: Record<string, number> }
  | { type: 'state_store_changed'; up: boolean; on_error: string; error?: string }
  /** A route's canary did worse than the route's own deployments; it takes no more traffic until a reload. */
  | { type: 'canary_withdrawn'; route: string; deployment: string; reason: string }
  /** A shadow copy finished; comparisons are with the served answer (absent: not applicable). */
  | {
      type: 'shadow_finished'
      request_id: string
      route: string
      deployment: string
      outcome: string
      latency_ms: number
      cost_usd?: number
      same_text?: boolean
      same_tool_calls?: boolean
      schema_valid?: boolean
    }
  /** A shadow copy was not sent: `concurrency`, `budget` or `not_allowed`. */
  | { type: 'shadow_dropped'; route: string; deployment: string; reason: string }

/** Why a budget (or a client-side rate limit) refused a request. */
export interface BudgetInfo {
  /** Budget name, or `rate_limit:<deployment>:requests|tokens`. */
  budget: string
  unit: 'usd' | 'tokens' | 'requests' | (string & {})
  limit: number
  remaining: number
  /** Unix seconds when the period resets (or the oldest usage leaves a rolling window). */
  resets_at: number
  /** What the refused attempt needed. */
  needed: number
}

/** Output received before a stream was interrupted. */
export interface PartialOutput {
  text: string
  tool_calls?: ToolCall[]
  usage?: Usage
}

/** The policy, as YAML/JSON text or as an object (see the policy file reference). */
export type PolicyInput = string | Record<string, unknown>

/** Every error the router raises. `code` is the stable ErrorKind. */
export class PolyrouteError extends Error {
  readonly code: ErrorKind
  readonly kind: ErrorKind
  /** The core's message, without the kind/provider prefix of `message`. */
  readonly detail: string
  readonly provider?: string
  readonly model?: string
  /** HTTP status the provider answered with. */
  readonly status?: number
  /** The provider's own error code or type (`insufficient_quota`, ...). */
  readonly providerCode?: string
  readonly requestId?: string
  /** Seconds the provider asked us to wait. */
  readonly retryAfter?: number
  /** For `stream_interrupted`: what had been received. */
  readonly partial?: PartialOutput
  /** For `budget_exceeded` (and client-side rate limits): which ceiling refused, and when it resets. */
  readonly budget?: BudgetInfo
  /** Every attempt that led to this error. */
  readonly trace?: RouteTrace
  /** The core's serialised error (snake_case). */
  toJSON(): Record<string, unknown>
}
export class RateLimitedError extends PolyrouteError { readonly code: 'rate_limited' }
export class QuotaExhaustedError extends PolyrouteError { readonly code: 'quota_exhausted' }
export class OverloadedError extends PolyrouteError { readonly code: 'overloaded' }
export class ServerError extends PolyrouteError { readonly code: 'server_error' }
export class TimeoutError extends PolyrouteError { readonly code: 'timeout' }
export class ConnectionError extends PolyrouteError { readonly code: 'connection' }
export class AuthError extends PolyrouteError { readonly code: 'auth' }
export class PermissionDeniedError extends PolyrouteError { readonly code: 'permission_denied' }
export class ContentFilterError extends PolyrouteError { readonly code: 'content_filter' }
export class ContextLengthExceededError extends PolyrouteError { readonly code: 'context_length_exceeded' }
export class InvalidRequestError extends PolyrouteError { readonly code: 'invalid_request' }
export class NotFoundError extends PolyrouteError { readonly code: 'not_found' }
export class StreamInterruptedError extends PolyrouteError { readonly code: 'stream_interrupted'; readonly partial: PartialOutput }
export class MalformedResponseError extends PolyrouteError { readonly code: 'malformed_response' }
export class InvalidOutputError extends PolyrouteError { readonly code: 'invalid_output' }
export class BudgetExceededError extends PolyrouteError { readonly code: 'budget_exceeded' }
export class CircuitOpenError extends PolyrouteError { readonly code: 'circuit_open' }
export class NoRouteError extends PolyrouteError { readonly code: 'no_route' }
export class CancelledError extends PolyrouteError { readonly code: 'cancelled' }
export class ConfigError extends PolyrouteError { readonly code: 'config' }
export class GuardRejectedError extends PolyrouteError { readonly code: 'guard_rejected' }
export class StateUnavailableError extends PolyrouteError { readonly code: 'state_unavailable' }

/** ErrorKind code → its error class. */
export declare const errorClasses: Readonly<Record<ErrorKind, typeof PolyrouteError>>
/** Every ErrorKind code, in the core's order. */
export declare const errorKinds: readonly ErrorKind[]
/** @internal Test hook: a deliberate panic in the core; throws `ConfigError`. */
export declare function _debugPanic(): void
/** @internal Test hook: a deliberate panic in a core future; rejects with `ConfigError`. */
export declare function _debugPanicAsync(): Promise<void>

/**
 * Events of one streamed answer (or OpenAI chunks, with `chunks()`); `break` or `close()`
 * cancels the request.
 */
export class ChatStream implements AsyncIterableIterator<StreamEvent> {
  [Symbol.asyncIterator](): ChatStream
  next(): Promise<IteratorResult<StreamEvent, undefined>>
  return(): Promise<IteratorResult<StreamEvent, undefined>>
  /**
   * The answer as OpenAI `chat.completion.chunk` objects (a usage chunk before the end);
   * `break` cancels. Read a stream as events or as chunks, not both (mixing throws
   * `TypeError`). A cut after content, or a `stream_recovery: restart` reset, throws
   * `StreamInterruptedError`.
   */
  chunks(): AsyncIterableIterator<ChatCompletionChunk>
  /**
   * The whole answer as `Router.chat()` resolves it (usage, `cost_usd`, `trace`), after
   * reading what is left of the stream. Rejects with the stream's error, or `CancelledError`
   * if it was closed before its end.
   */
  finalChatCompletion(): Promise<ChatResponse>
  /** Resolves once a deployment committed to the answer; rejects with the open error. */
  ready(): Promise<void>
  /** Cancel now (idempotent); a pending `next()` rejects with `CancelledError`. */
  close(): void
  /** The route trace once the stream has ended, else `null`. */
  readonly trace: RouteTrace | null
}

/** Routes chat requests across a policy's providers with failover. Share one per process. */
export class Router {
  /**
   * A `fetch`-compatible function, already bound, that answers `POST .../chat/completions`
   * in-process through this router exactly as OpenAI would (JSON, or SSE of
   * `chat.completion.chunk` ending `data: [DONE]`), for the openai SDK:
   * `new OpenAI({ baseURL: 'http://polyroute.local/v1', apiKey: 'unused', fetch: router.fetch, maxRetries: 0 })`.
   * Answers carry `x-polyroute-route`, `-deployment`, `-cost-usd` and `-explanation` headers
   * (a stream's: route and deployment). Failures are OpenAI's status and error body (the SDK
   * raises its own class); a stream cut after content ends with an `{"error": ...}` event and
   * no `[DONE]`. Aborting `init.signal`, or cancelling the body, cancels the routed request
   * (the promise, or the body's reads, reject with the signal's reason). Any other path is a
   * 404 in OpenAI's error shape.
   */
  readonly fetch: (input: string | URL | Request, init?: RequestInit) => Promise<Response>
  /** @param policy YAML or JSON text, or the policy object. Throws `ConfigError` if invalid. */
  constructor(policy: PolicyInput)
  /** Load a YAML or JSON policy file. */
  static fromFile(path: string): Router
  /**
   * The complete answer, or a `PolyrouteError` subclass. Does not stream: a request with
   * `stream: true` rejects with `InvalidRequestError` (use `stream()` or `fetch`).
   */
  chat(request: ChatRequest, options?: RequestOptions): Promise<ChatResponse>
  /** Starts the request now; iterate the result for events. */
  stream(request: ChatRequest, options?: RequestOptions): ChatStream
  /** Where the request would go, and why, without sending it. */
  plan(request: ChatRequest): RoutePlan
  /** Swap the policy atomically; throws `ConfigError` and keeps the old one if invalid. */
  reload(policy: PolicyInput): void
  /** The serving policy (literal API keys omitted). */
  policy(): Record<string, unknown>
  /** Breaker state and health of every deployment. */
  deployments(): DeploymentStatus[]
  setBreaker(deployment: string, state: BreakerState): void
  resetBreaker(deployment: string): void
  /** Prometheus text exposition of this router's metrics. */
  metricsText(): string
  /** Spent, reserved and remaining per budget in its current period. */
  budgets(): BudgetStatus[]
  /** Per route: requests, successes and cost per success. */
  routeCosts(): RouteCost[]
  /**
   * Every router event, delivered on the event loop without ever slowing a request.
   * Returns a function that unsubscribes (true if it was still subscribed).
   */
  subscribe(callback: (event: RouterEvent) => void): () => boolean
}
