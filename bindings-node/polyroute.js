// polyroute: the public JavaScript API over the napi-rs addon (`index.js`, generated).
//
// This file owns what N-API cannot express, and nothing that decides anything:
// - error mapping: native calls reject with `POLYROUTE:{json}`; here that becomes a
//   `PolyrouteError` subclass whose `code` is the core's stable ErrorKind code;
// - JavaScript idiom: `AbortSignal` → native `CancelToken`, streams as async iterables
//   (`return()`/`break` cancels), the openai-node request shape (the core reads it, `route`
//   shortcut included) and options (`timeout` in milliseconds);
// - JSON text in and out of the addon (V8's JSON is faster than N-API object walking).
// Routing, retries, validation and parsing all live in the Rust core.
'use strict'

const native = require('./index.js')

const PREFIX = 'POLYROUTE:'

const camel = (k) => k.replace(/_([a-z])/g, (_, c) => c.toUpperCase())

/**
 * Every core error, with the core's fields in JavaScript casing: `provider_code` becomes
 * `providerCode`, and so on, mechanically, so a field the core adds later reaches JavaScript
 * without a change here.
 */
class PolyrouteError extends Error {
  #data

  constructor(data) {
    const d = data && typeof data === 'object' ? data : { kind: 'config', message: String(data) }
    super(d.display || `${d.kind}: ${d.message}`)
    this.name = new.target.name
    /** The stable ErrorKind code (`rate_limited`, `stream_interrupted`, ...). */
    this.code = d.kind
    this.kind = d.kind
    /** The core's message alone (`message` adds kind, provider/model, status and codes). */
    this.detail = d.message
    // provider, model, status, providerCode, requestId, retryAfter (seconds), partial
    // (stream_interrupted), budget (budget_exceeded), trace (every attempt).
    for (const [k, v] of Object.entries(d)) {
      if (k !== 'kind' && k !== 'message' && k !== 'display') this[camel(k)] = v
    }
    const { display, ...core } = d
    this.#data = core
  }

  /** The core's serialised shape (snake_case), e.g. for logging. */
  toJSON() {
    return { ...this.#data }
  }
}

// One class per ErrorKind. The list must equal the core's `ErrorKind::ALL` (a test checks
// it against `native.errorKinds()`), because TypeScript needs the classes declared statically.
class RateLimitedError extends PolyrouteError {}
class QuotaExhaustedError extends PolyrouteError {}
class OverloadedError extends PolyrouteError {}
class ServerError extends PolyrouteError {}
class TimeoutError extends PolyrouteError {}
class ConnectionError extends PolyrouteError {}
class AuthError extends PolyrouteError {}
class PermissionDeniedError extends PolyrouteError {}
class ContentFilterError extends PolyrouteError {}
class ContextLengthExceededError extends PolyrouteError {}
class InvalidRequestError extends PolyrouteError {}
class NotFoundError extends PolyrouteError {}
class StreamInterruptedError extends PolyrouteError {}
class MalformedResponseError extends PolyrouteError {}
class InvalidOutputError extends PolyrouteError {}
class BudgetExceededError extends PolyrouteError {}
class CircuitOpenError extends PolyrouteError {}
class NoRouteError extends PolyrouteError {}
class CancelledError extends PolyrouteError {}
class ConfigError extends PolyrouteError {}
class GuardRejectedError extends PolyrouteError {}
class StateUnavailableError extends PolyrouteError {}

const errorClasses = Object.freeze({
  rate_limited: RateLimitedError,
  quota_exhausted: QuotaExhaustedError,
  overloaded: OverloadedError,
  server_error: ServerError,
  timeout: TimeoutError,
  connection: ConnectionError,
  auth: AuthError,
  permission_denied: PermissionDeniedError,
  content_filter: ContentFilterError,
  context_length_exceeded: ContextLengthExceededError,
  invalid_request: InvalidRequestError,
  not_found: NotFoundError,
  stream_interrupted: StreamInterruptedError,
  malformed_response: MalformedResponseError,
  invalid_output: InvalidOutputError,
  budget_exceeded: BudgetExceededError,
  circuit_open: CircuitOpenError,
  no_route: NoRouteError,
  cancelled: CancelledError,
  config: ConfigError,
  guard_rejected: GuardRejectedError,
  state_unavailable: StateUnavailableError,
})

function errorFromData(data) {
  const Cls = errorClasses[data && data.kind] || PolyrouteError
  return new Cls(data)
}

/** A native rejection → typed error; anything else (a bug, a TypeError) passes through. */
function fromNative(e) {
  const msg = e && typeof e.message === 'string' ? e.message : ''
  if (!msg.startsWith(PREFIX)) return e
  let data
  try {
    data = JSON.parse(msg.slice(PREFIX.length))
  } catch {
    return e
  }
  const err = errorFromData(data)
  if (e.stack) err.stack = `${err.name}: ${err.message}\n${e.stack.split('\n').slice(1).join('\n')}`
  return err
}

function callSync(fn) {
  try {
    return fn()
  } catch (e) {
    throw fromNative(e)
  }
}

function policyText(policy) {
  return typeof policy === 'string' ? policy : JSON.stringify(policy === undefined ? null : policy)
}

function invalid(message) {
  return new InvalidRequestError({ kind: 'invalid_request', message })
}

/**
 * openai-node body → JSON text for the core (which also reads `route` as `polyroute.route`).
 * `timeout` is openai-node's per-call option, in milliseconds; the core takes the deadline in
 * seconds as `polyroute.timeout`, and the caller's object is left as it was.
 */
function requestText(request, timeout) {
  let body = request === undefined ? null : request
  if (timeout !== undefined && timeout !== null) {
    // NaN and Infinity would serialise as null, i.e. no deadline at all: refuse them here.
    if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0) {
      throw invalid(`options.timeout must be a positive number of milliseconds, got ${String(timeout)}`)
    }
    // Anything else (not an object, a `polyroute` that is not one) the core rejects as it is.
    const routing = body && typeof body === 'object' ? (body.polyroute ?? {}) : null
    if (routing && typeof routing === 'object' && !Array.isArray(routing)) {
      body = { ...body, polyroute: { ...routing, timeout: timeout / 1000 } }
    }
  }
  try {
    return JSON.stringify(body)
  } catch (e) {
    throw invalid(`request is not JSON-serialisable: ${e.message}`)
  }
}

/** A CancelToken tripped by `signal`, and a disposer that detaches the listener. */
function cancelFor(signal, always) {
  if (!signal && !always) return { token: undefined, dispose() {} }
  const token = new native.CancelToken()
  if (!signal) return { token, dispose() {} }
  if (signal.aborted) {
    token.cancel()
    return { token, dispose() {} }
  }
  const onAbort = () => token.cancel()
  signal.addEventListener('abort', onAbort, { once: true })
  return { token, dispose: () => signal.removeEventListener('abort', onAbort) }
}

const FROM_NATIVE = Symbol('polyroute.fromNative')

// ---- router.fetch: the drop-in under the openai SDK ----------------------------------------
//
// A `fetch` that answers `POST .../chat/completions` in-process through the router. The answer
// (status, headers, JSON or SSE bytes) is the core's (`polyroute::bridge::openai_http`, the
// same code as the `polyroute serve` gateway and the Python httpx transport); this only moves
// bytes between the web `Request`/`Response` and the addon.

let warnedRetry = false

/** The openai SDK sends `x-stainless-retry-count`; above 0 it is retrying on top of the router. */
function warnIfSdkRetries(headers) {
  if (warnedRetry) return
  const n = headers.get('x-stainless-retry-count')
  if (n !== null && n.trim() !== '' && n.trim() !== '0') {
    warnedRetry = true
    process.emitWarning(
      'the openai client is retrying a request polyroute already retried and failed over (its maxRetries > 0): create it with maxRetries: 0',
      { type: 'PolyrouteWarning', code: 'POLYROUTE_RETRY_ON_TOP' },
    )
  }
}

function abortError(signal) {
  if (signal && signal.reason !== undefined) return signal.reason
  return new DOMException('This operation was aborted', 'AbortError')
}

/** A web `Response` for a native reply; a stream's body pulls SSE frames on demand. */
function webResponse(reply, signal) {
  const init = { status: reply.status, headers: reply.headers }
  if (!reply.isStream) return new Response(reply.body(), init)
  let done = false
  let onAbort = null
  const finish = () => {
    done = true
    if (onAbort) signal.removeEventListener('abort', onAbort)
  }
  const body = new ReadableStream(
    {
      start(controller) {
        if (!signal) return
        onAbort = () => {
          if (done) return
          finish()
          reply.close()
          controller.error(abortError(signal))
        }
        signal.addEventListener('abort', onAbort, { once: true })
      },
      async pull(controller) {
        let frame
        try {
          frame = await reply.next()
        } catch (e) {
          // Only a bug (a panic guarded into a ConfigError) gets here.
          if (!done) {
            finish()
            reply.close()
            controller.error(fromNative(e))
          }
          return
        }
        if (done) return
        if (frame === null) {
          finish()
          controller.close()
        } else {
          controller.enqueue(new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength))
        }
      },
      cancel() {
        finish()
        reply.close()
      },
    },
    { highWaterMark: 0 },
  )
  return new Response(body, init)
}

function isChatCompletions(method, url) {
  let path
  try {
    path = new URL(url).pathname
  } catch {
    return false
  }
  return method === 'POST' && path.replace(/\/+$/, '').endsWith('/chat/completions')
}

/** `router.fetch(input, init)`: see the `Router` class. */
async function routerFetch(nativeRouter, input, init) {
  // A ReadableStream body needs `duplex` to build a Request; the SDK sends strings.
  const opts = init && init.body instanceof ReadableStream && !init.duplex ? { ...init, duplex: 'half' } : init
  const request = new Request(input, opts)
  const signal = (init && init.signal) || request.signal
  if (signal && signal.aborted) throw abortError(signal)
  let reply
  if (!isChatCompletions(request.method, request.url)) {
    const { pathname } = new URL(request.url)
    reply = callSync(() =>
      native.openaiNotFound(
        `no such endpoint: ${request.method} ${pathname} (polyroute's fetch serves POST /v1/chat/completions)`,
      ),
    )
  } else {
    warnIfSdkRetries(request.headers)
    // All of them: which headers mean something (routing, the SDK's timeout) is the core's
    // call, as it is for the gateway.
    const headers = [...request.headers]
    const body = Buffer.from(await request.arrayBuffer())
    const { token, dispose } = cancelFor(signal, false)
    try {
      reply = await nativeRouter.openaiChat(body, headers, token)
    } catch (e) {
      const err = fromNative(e)
      if (err instanceof CancelledError && signal && signal.aborted) throw abortError(signal)
      throw err
    } finally {
      dispose()
    }
  }
  if (signal && signal.aborted) {
    callSync(() => reply.close())
    throw abortError(signal)
  }
  return webResponse(reply, signal)
}

/**
 * Routes chat requests across the providers of a policy, with failover. Cheap to share:
 * one per process (or per policy) is the intended use; calls may run concurrently.
 */
class Router {
  #native

  /**
   * A `fetch`-compatible function (bound: pass it around as is) that answers
   * `POST .../chat/completions` in-process through this router, as OpenAI would answer:
   * `new OpenAI({ baseURL: 'http://polyroute.local/v1', apiKey: 'unused', fetch: router.fetch,
   * maxRetries: 0 })`. Any other path is a 404 in OpenAI's error shape.
   */
  fetch = (input, init) => routerFetch(this.#native, input, init)

  /** @param policy YAML or JSON policy text, or the policy as an object. */
  constructor(policy, nativeRouter) {
    this.#native = policy === FROM_NATIVE ? nativeRouter : callSync(() => new native.NativeRouter(policyText(policy)))
  }

  /** Load a policy file (YAML or JSON). */
  static fromFile(path) {
    return new Router(FROM_NATIVE, callSync(() => native.NativeRouter.fromFile(String(path))))
  }

  /** Send a request and return the complete answer (OpenAI chat.completion shape + trace). */
  async chat(request, options) {
    if (request && typeof request === 'object' && request.stream === true) {
      throw invalid(
        'router.chat() returns the complete answer and does not stream: use router.stream() (events, or OpenAI chunks with .chunks()), or router.fetch under the openai SDK',
      )
    }
    const text = requestText(request, options && options.timeout)
    const { token, dispose } = cancelFor(options && options.signal, false)
    try {
      return JSON.parse(await this.#native.chat(text, token))
    } catch (e) {
      throw fromNative(e)
    } finally {
      dispose()
    }
  }

  /**
   * Send a request and stream the answer as an async iterable of events. The request starts
   * now; a failure before the first content fails over invisibly, and one that no deployment
   * could serve is thrown by the first iteration (or by `ready()`).
   */
  stream(request, options) {
    const text = requestText(request, options && options.timeout)
    const cancel = cancelFor(options && options.signal, true)
    let open
    try {
      open = callSync(() => this.#native.stream(text, cancel.token))
    } catch (e) {
      cancel.dispose()
      throw e
    }
    return new ChatStream(open, cancel)
  }

  /** Where this request would go, and why, without sending anything. */
  plan(request) {
    return JSON.parse(callSync(() => this.#native.plan(requestText(request))))
  }

  /** Swap in a new policy atomically; an invalid one throws ConfigError and the old one stays. */
  reload(policy) {
    callSync(() => this.#native.reload(policyText(policy)))
  }

  /** The policy currently serving (literal API keys are never included). */
  policy() {
    return JSON.parse(callSync(() => this.#native.policy()))
  }

  /** Breaker state and health of every deployment. */
  deployments() {
    return JSON.parse(callSync(() => this.#native.deployments()))
  }

  /** Force a deployment's breaker (`forced_open`, `disabled`, `closed`, ...). */
  setBreaker(deployment, state) {
    callSync(() => this.#native.setBreaker(String(deployment), String(state)))
  }

  /** Close a deployment's breaker. */
  resetBreaker(deployment) {
    callSync(() => this.#native.resetBreaker(String(deployment)))
  }

  /** Prometheus text exposition of this router's metrics. */
  metricsText() {
    return callSync(() => this.#native.metricsText())
  }

  /** Spent, reserved and remaining per budget in its current period. */
  budgets() {
    return JSON.parse(callSync(() => this.#native.budgets()))
  }

  /** Per route: requests, successes and cost per success. */
  routeCosts() {
    return JSON.parse(callSync(() => this.#native.routeCosts()))
  }

  /**
   * Call `callback(event)` with every router event (request/attempt started and finished,
   * fallbacks, breaker changes, budget thresholds, reloads). Events are queued to the event
   * loop and never slow a request (a callback that falls far behind loses events); a callback
   * that throws is reported as a process warning. Returns a function that unsubscribes.
   */
  subscribe(callback) {
    if (typeof callback !== 'function') throw new TypeError('subscribe(callback): callback must be a function')
    const id = callSync(() =>
      this.#native.subscribe((text) => {
        try {
          callback(JSON.parse(text))
        } catch (e) {
          process.emitWarning(`polyroute event callback threw: ${e && e.stack ? e.stack : e}`, 'PolyrouteWarning')
        }
      }),
    )
    return () => callSync(() => this.#native.unsubscribe(id))
  }
}

/**
 * Events of one streamed answer. `for await` over it (or over `chunks()` for OpenAI chunks);
 * `break` or `close()` cancels it.
 */
class ChatStream {
  #open
  #native = null
  #cancel
  #done = false
  #trace = null
  /** `events` or `chunks` once read: the core hands out one form per stream. */
  #form = null
  /** The error a read threw: the stream's end, for `finalChatCompletion()` too. */
  #failed = null
  /**
   * What one read brought beyond the item it waited for (items that had already arrived),
   * last first: a burst of chunks costs one promise from the core, not one per chunk. The
   * core keeps an end or a failure for the read after them.
   */
  #ahead = []

  constructor(open, cancel) {
    // Opening starts immediately; until someone iterates, a rejection is held, not reported
    // as unhandled.
    this.#open = open.then(
      (s) => {
        this.#native = s
        // Closed while opening: the token is tripped; drop the stream now, not at GC.
        if (this.#done) s.close()
        return s
      },
      (e) => {
        throw fromNative(e)
      },
    )
    this.#open.catch(() => {})
    this.#cancel = cancel
  }

  [Symbol.asyncIterator]() {
    return this
  }

  /** Resolves once a deployment has committed to the answer; rejects like the first `next()`. */
  async ready() {
    await this.#open
  }

  async next() {
    this.#claim('events')
    return this.#read((s) => s.nextBatch())
  }

  /**
   * The answer as OpenAI `chat.completion.chunk` objects (what openai-node streams, with a
   * usage chunk before the end), as an async iterable; `break` cancels the request like the
   * events' does. A stream is read either as events or as chunks. A `reset`
   * (`stream_recovery: restart`) cannot be a chunk: the iteration throws
   * StreamInterruptedError there.
   */
  chunks() {
    this.#claim('chunks')
    const iter = {
      [Symbol.asyncIterator]: () => iter,
      next: () => this.#read((s) => s.nextChunkBatch()),
      return: async () => this.return(),
    }
    return iter
  }

  /**
   * The whole answer as `router.chat()` would have resolved it (usage, `cost_usd`, `trace`),
   * after reading whatever is left of the stream (openai-node's `finalChatCompletion()`).
   * Rejects with the stream's error, or CancelledError if it was closed before its end.
   */
  async finalChatCompletion() {
    const s = await this.#open
    if (this.#failed) throw this.#failed
    try {
      return JSON.parse(await s.finalResponse())
    } catch (e) {
      throw fromNative(e)
    } finally {
      this.#finish()
    }
  }

  #claim(form) {
    if (this.#form === null) this.#form = form
    else if (this.#form !== form) {
      throw new TypeError(`this stream is already read as ${this.#form}; read one stream either as events or with chunks(), not both`)
    }
  }

  async #read(pull) {
    if (this.#done) return { done: true, value: undefined }
    if (this.#ahead.length > 0) return { done: false, value: this.#ahead.pop() }
    let s
    try {
      s = await this.#open
    } catch (e) {
      this.#finish()
      throw e
    }
    try {
      const text = await pull(s)
      if (text === null) {
        this.#finish()
        return { done: true, value: undefined }
      }
      const batch = JSON.parse(text).reverse()
      const value = batch.pop()
      // Behind what another pending read may have kept meanwhile (popped last first).
      this.#ahead = batch.concat(this.#ahead)
      return { done: false, value }
    } catch (e) {
      this.#failed = fromNative(e)
      this.#finish()
      // A chunk reader's `reset` fails the read while the core stream restarts elsewhere:
      // stop that request too (a no-op for every stream that already ended).
      try {
        s.close()
      } catch {
        // Only a guarded panic lands here; the read's own error is the one to report.
      }
      throw this.#failed
    }
  }

  /** Called by `break`/`return` inside `for await`: cancels the request. */
  async return() {
    this.close()
    return { done: true, value: undefined }
  }

  /** Cancel the request (idempotent). A pending `next()` rejects with CancelledError. */
  close() {
    // Reads after close end, including those of items that had already arrived.
    this.#ahead = []
    if (this.#cancel.token) this.#cancel.token.cancel()
    try {
      if (this.#native) callSync(() => this.#native.close())
    } finally {
      this.#finish()
    }
  }

  /** The route trace once the stream has ended, else `null`. */
  get trace() {
    if (this.#trace === null && this.#native) {
      const t = callSync(() => this.#native.trace())
      if (t !== null) this.#trace = JSON.parse(t)
    }
    return this.#trace
  }

  #finish() {
    this.#done = true
    this.#cancel.dispose()
  }
}

/** Every ErrorKind code, in the core's order. */
const errorKinds = Object.freeze(native.errorKinds())

exports.Router = Router
exports.ChatStream = ChatStream
exports.PolyrouteError = PolyrouteError
exports.RateLimitedError = RateLimitedError
exports.QuotaExhaustedError = QuotaExhaustedError
exports.OverloadedError = OverloadedError
exports.ServerError = ServerError
exports.TimeoutError = TimeoutError
exports.ConnectionError = ConnectionError
exports.AuthError = AuthError
exports.PermissionDeniedError = PermissionDeniedError
exports.ContentFilterError = ContentFilterError
exports.ContextLengthExceededError = ContextLengthExceededError
exports.InvalidRequestError = InvalidRequestError
exports.NotFoundError = NotFoundError
exports.StreamInterruptedError = StreamInterruptedError
exports.MalformedResponseError = MalformedResponseError
exports.InvalidOutputError = InvalidOutputError
exports.BudgetExceededError = BudgetExceededError
exports.CircuitOpenError = CircuitOpenError
exports.NoRouteError = NoRouteError
exports.CancelledError = CancelledError
exports.ConfigError = ConfigError
exports.GuardRejectedError = GuardRejectedError
exports.StateUnavailableError = StateUnavailableError
exports.errorClasses = errorClasses
exports.errorKinds = errorKinds

// Test hooks (not part of the API): a deliberate panic inside the core, which must arrive as
// a `ConfigError` ("internal error: ...; please report it") like any panic in any call.
exports._debugPanic = () => callSync(() => native._debugPanic())
exports._debugPanicAsync = async () => {
  try {
    await native._debugPanicAsync()
  } catch (e) {
    throw fromNative(e)
  }
}
