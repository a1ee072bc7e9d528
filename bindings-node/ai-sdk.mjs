// polyroute/ai-sdk: a Vercel AI SDK provider over a polyroute `Router`, so `generateText`,
// `streamText`, `generateObject` and tool calls of the `ai` package go through the router
// with its failover, and carry its route trace in `providerMetadata.polyroute`.
//
// It implements `LanguageModelV4` of `@ai-sdk/provider` 4.x (the interface of `ai` 7.x) on
// the router's own `chat()` and `stream()`. Like polyroute.js it decides nothing: this file
// converts the AI SDK's prompt, tools and options into the router's OpenAI-shaped request,
// the router's answer and stream events back into the AI SDK's content and stream parts, and
// a `PolyrouteError` into the AI SDK's `APICallError`. Routing, retries, failover, stream
// commit and parsing stay in the Rust core.
import { APICallError, NoSuchModelError, UnsupportedFunctionalityError } from '@ai-sdk/provider'
import polyroute from './polyroute.js'

const { PolyrouteError, CancelledError, StreamInterruptedError } = polyroute

/**
 * The HTTP status each error kind reaches an OpenAI client with, from the core's
 * `bridge::wire::openai_status` (the gateway's and `router.fetch`'s table), so a kind has the
 * same status in every SDK. A test checks this copy covers every kind and agrees with
 * `router.fetch`.
 */
const STATUS = Object.freeze({
  invalid_request: 400,
  context_length_exceeded: 400,
  content_filter: 400,
  guard_rejected: 400,
  no_route: 404,
  rate_limited: 429,
  quota_exhausted: 429,
  budget_exceeded: 429,
  cancelled: 499,
  config: 500,
  server_error: 502,
  connection: 502,
  auth: 502,
  permission_denied: 502,
  not_found: 502,
  stream_interrupted: 502,
  malformed_response: 502,
  invalid_output: 502,
  overloaded: 503,
  circuit_open: 503,
  state_unavailable: 503,
  timeout: 504,
})

function abortError(signal) {
  if (signal && signal.reason !== undefined) return signal.reason
  return new DOMException('This operation was aborted', 'AbortError')
}

/**
 * A router failure → `APICallError`: `statusCode` from the table above, `isRetryable: false`
 * (the router already retried and failed over; the AI SDK must not retry on top), the kind in
 * `data.kind` and the `x-polyroute-error-kind` header, the `PolyrouteError` as `cause`. An
 * abort of the caller's signal becomes the signal's reason (an `AbortError`), as `fetch` does.
 */
function toSdkError(e, url, body, signal) {
  if (e instanceof CancelledError && signal && signal.aborted) return abortError(signal)
  if (!(e instanceof PolyrouteError)) return e
  const data = e.toJSON()
  const headers = { 'x-polyroute-error-kind': e.code }
  if (e.trace) {
    headers['x-polyroute-route'] = e.trace.route
    headers['x-polyroute-explanation'] = e.trace.explanation
  }
  if (typeof e.retryAfter === 'number') headers['retry-after'] = String(Math.ceil(e.retryAfter))
  return new APICallError({
    message: e.message,
    url,
    requestBodyValues: body,
    statusCode: STATUS[e.code] ?? 500,
    responseHeaders: headers,
    responseBody: JSON.stringify(data),
    cause: e,
    isRetryable: false,
    data,
  })
}

// ---- AI SDK call options → the router's request ------------------------------------------

function base64(data) {
  return typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64')
}

/** A file part of a user message → an OpenAI content part. */
function filePart(part) {
  const { data, mediaType } = part
  if (data.type === 'text') return { type: 'text', text: data.text }
  const type = mediaType.includes('/') ? mediaType : mediaType === 'image' ? 'image/jpeg' : mediaType
  const url = data.type === 'url' ? String(data.url) : data.type === 'data' ? `data:${type};base64,${base64(data.data)}` : undefined
  if (url !== undefined && type.startsWith('image/')) return { type: 'image_url', image_url: { url } }
  if (data.type === 'data' && type === 'application/pdf') {
    return { type: 'file', file: { filename: part.filename ?? 'document.pdf', file_data: url } }
  }
  if (data.type === 'data' && (type === 'audio/wav' || type === 'audio/mpeg' || type === 'audio/mp3')) {
    return { type: 'input_audio', input_audio: { data: base64(data.data), format: type === 'audio/wav' ? 'wav' : 'mp3' } }
  }
  throw new UnsupportedFunctionalityError({ functionality: `file part of type ${data.type} with media type ${mediaType}` })
}

/** A tool result → the text of an OpenAI `tool` message. */
function toolOutput(output) {
  switch (output.type) {
    case 'text':
    case 'error-text':
      return output.value
    case 'json':
    case 'error-json':
      return JSON.stringify(output.value)
    case 'execution-denied':
      return output.reason ?? 'Tool execution denied.'
    case 'content':
      return output.value.every((p) => p.type === 'text') ? output.value.map((p) => p.text).join('') : JSON.stringify(output.value)
    default:
      return JSON.stringify(output.value ?? null)
  }
}

/** `LanguageModelV4Prompt` → OpenAI chat messages. */
function messagesOf(prompt) {
  const out = []
  for (const m of prompt) {
    switch (m.role) {
      case 'system':
        out.push({ role: 'system', content: m.content })
        break
      case 'user': {
        const parts = m.content.map((p) => (p.type === 'text' ? { type: 'text', text: p.text } : filePart(p)))
        out.push({ role: 'user', content: parts.length === 1 && parts[0].type === 'text' ? parts[0].text : parts })
        break
      }
      case 'assistant': {
        // OpenAI's chat format has no place for reasoning, files or provider-executed tool
        // results in an assistant turn: text and client tool calls go back.
        let text = ''
        const calls = []
        for (const p of m.content) {
          if (p.type === 'text') text += p.text
          else if (p.type === 'tool-call' && !p.providerExecuted) {
            calls.push({ id: p.toolCallId, type: 'function', function: { name: p.toolName, arguments: JSON.stringify(p.input ?? {}) } })
          }
        }
        const msg = { role: 'assistant', content: text === '' && calls.length ? null : text }
        if (calls.length) msg.tool_calls = calls
        out.push(msg)
        break
      }
      case 'tool':
        for (const p of m.content) {
          if (p.type === 'tool-result') out.push({ role: 'tool', tool_call_id: p.toolCallId, content: toolOutput(p.output) })
        }
        break
      default:
        throw new UnsupportedFunctionalityError({ functionality: `message role ${m.role}` })
    }
  }
  return out
}

function toolChoiceOf(choice) {
  if (!choice) return undefined
  if (choice.type === 'tool') return { type: 'function', function: { name: choice.toolName } }
  return choice.type // auto, none, required
}

/**
 * The router request for one call, and the warnings for what it cannot carry. The model id
 * is the request's `model`, which the core resolves (a route, a deployment, a provider model
 * id); a route asked for in the routing metadata (`providerOptions.polyroute.route`, or the
 * provider's settings) wins, and the model id is then only a preference within it.
 */
function requestOf(options, modelId, baseRouting, stream) {
  const warnings = []
  const req = { messages: messagesOf(options.prompt) }
  if (modelId !== undefined) req.model = modelId
  const po = (options.providerOptions && options.providerOptions.polyroute) || {}
  const routing = { ...baseRouting, ...po }
  if (Object.keys(routing).length) req.polyroute = routing
  if (options.tools && options.tools.length) {
    const tools = []
    for (const t of options.tools) {
      if (t.type === 'function') {
        const fn = { name: t.name, parameters: t.inputSchema }
        if (t.description !== undefined) fn.description = t.description
        if (t.strict !== undefined) fn.strict = t.strict
        tools.push({ type: 'function', function: fn })
      } else {
        warnings.push({ type: 'unsupported', feature: `provider-defined tool ${t.id}` })
      }
    }
    if (tools.length) {
      req.tools = tools
      const choice = toolChoiceOf(options.toolChoice)
      if (choice !== undefined) req.tool_choice = choice
    }
  }
  const rf = options.responseFormat
  if (rf && rf.type === 'json') {
    if (rf.schema) {
      const js = { name: rf.name ?? 'response', schema: rf.schema }
      if (rf.description !== undefined) js.description = rf.description
      req.response_format = { type: 'json_schema', json_schema: js }
    } else {
      req.response_format = { type: 'json_object' }
    }
  }
  if (options.maxOutputTokens !== undefined) req.max_tokens = options.maxOutputTokens
  if (options.temperature !== undefined) req.temperature = options.temperature
  if (options.topP !== undefined) req.top_p = options.topP
  if (options.stopSequences && options.stopSequences.length) req.stop = options.stopSequences
  if (options.seed !== undefined) req.seed = options.seed
  // Not modelled by the core: forwarded verbatim to OpenAI-shaped providers.
  if (options.presencePenalty !== undefined) req.presence_penalty = options.presencePenalty
  if (options.frequencyPenalty !== undefined) req.frequency_penalty = options.frequencyPenalty
  if (options.reasoning !== undefined && options.reasoning !== 'provider-default') req.reasoning_effort = options.reasoning
  if (options.topK !== undefined) warnings.push({ type: 'unsupported', feature: 'topK' })
  if (stream) req.stream_options = { include_usage: true }
  return { req, warnings }
}

// ---- the router's answer → AI SDK results --------------------------------------------------

const FINISH = { stop: 'stop', length: 'length', tool_calls: 'tool-calls', content_filter: 'content-filter' }

function finishOf(reason, native) {
  if (reason == null) return { unified: 'other', raw: native ?? undefined }
  return { unified: FINISH[reason] ?? 'other', raw: native ?? reason }
}

function usageOf(u) {
  if (!u) {
    return {
      inputTokens: { total: undefined, noCache: undefined, cacheRead: undefined, cacheWrite: undefined },
      outputTokens: { total: undefined, text: undefined, reasoning: undefined },
    }
  }
  const read = (u.prompt_tokens_details && u.prompt_tokens_details.cached_tokens) || 0
  const write = (u.prompt_tokens_details && u.prompt_tokens_details.cache_write_tokens) || 0
  const reasoning = (u.completion_tokens_details && u.completion_tokens_details.reasoning_tokens) || 0
  return {
    inputTokens: { total: u.prompt_tokens, noCache: Math.max(0, u.prompt_tokens - read - write), cacheRead: read, cacheWrite: write },
    outputTokens: { total: u.completion_tokens, text: Math.max(0, u.completion_tokens - reasoning), reasoning },
    raw: u,
  }
}

/**
 * `providerMetadata.polyroute`: where the answer came from and why (`deployment`, `route`,
 * `costUsd`, `explanation`), and the core's whole route trace (`trace`, snake_case).
 */
function metadataOf(trace, costUsd, provider) {
  if (!trace) return undefined
  const m = {
    deployment: trace.served_by ?? null,
    route: trace.route,
    provider: provider ?? null,
    costUsd: costUsd ?? trace.total_cost_usd ?? null,
    explanation: trace.explanation,
    requestId: trace.request_id,
    trace,
  }
  return { polyroute: JSON.parse(JSON.stringify(m)) }
}

/** The deployment's provider, from the trace's served attempt. */
function providerOf(trace) {
  if (!trace || !trace.served_by) return undefined
  const a = trace.attempts && trace.attempts.find((x) => x.deployment === trace.served_by && x.outcome === 'ok')
  return a ? a.provider : undefined
}

function contentOf(message) {
  const content = []
  if (message.reasoning_content) content.push({ type: 'reasoning', text: message.reasoning_content })
  if (typeof message.content === 'string' && message.content !== '') content.push({ type: 'text', text: message.content })
  if (message.refusal) content.push({ type: 'text', text: message.refusal })
  for (const tc of message.tool_calls || []) {
    content.push({ type: 'tool-call', toolCallId: tc.id, toolName: tc.function.name, input: tc.function.arguments || '{}' })
  }
  return content
}

// ---- the language model --------------------------------------------------------------------

const CHAT_URL = 'polyroute:router.chat'
const STREAM_URL = 'polyroute:router.stream'

class PolyrouteLanguageModel {
  specificationVersion = 'v4'
  provider = 'polyroute'
  /** Image URLs go to the provider as they are (the router forwards them). */
  supportedUrls = { 'image/*': [/^https?:\/\/.*$/] }
  #router
  #model
  #routing

  constructor(router, model, routing) {
    this.#router = router
    this.#model = model
    this.#routing = routing
    /** The route, deployment or provider model asked for; `polyroute` when the rules choose. */
    this.modelId = model ?? 'polyroute'
  }

  async doGenerate(options) {
    const { req, warnings } = requestOf(options, this.#model, this.#routing, false)
    const signal = options.abortSignal
    let resp
    try {
      resp = await this.#router.chat(req, { signal })
    } catch (e) {
      throw toSdkError(e, CHAT_URL, req, signal)
    }
    const choice = resp.choices[0]
    return {
      content: contentOf(choice.message),
      finishReason: finishOf(choice.finish_reason),
      usage: usageOf(resp.usage),
      providerMetadata: metadataOf(resp.trace, resp.cost_usd, resp.provider),
      request: { url: CHAT_URL, body: req },
      response: { id: resp.id, modelId: resp.model, timestamp: new Date(resp.created * 1000), body: resp },
      warnings,
    }
  }

  async doStream(options) {
    const { req, warnings } = requestOf(options, this.#model, this.#routing, true)
    const signal = options.abortSignal
    const raw = options.includeRawChunks === true
    const s = this.#router.stream(req, { signal })
    // A failure before any content (every deployment failed, no route, ...) rejects the call,
    // as an HTTP provider's error status would.
    try {
      await s.ready()
    } catch (e) {
      throw toSdkError(e, STREAM_URL, req, signal)
    }

    let text = null // the open text block's id
    let reasoning = null
    const tools = new Map() // index → { id, name, args }
    let finish = finishOf(null)
    let usage
    let ended = false

    const closeBlocks = (out) => {
      if (text) out.push({ type: 'text-end', id: text })
      if (reasoning) out.push({ type: 'reasoning-end', id: reasoning })
      text = reasoning = null
    }
    let failed = null // the error that ends the stream, once its `error` part is out
    const fail = (e, out) => {
      // After content: an `error` part (streamText's `onError` and `fullStream` see it), then
      // the stream itself errors on the next read, so `textStream` throws and `text` rejects:
      // never a clean end, never a truncated success. (An errored stream drops parts still
      // queued, hence the error one read after its part.)
      failed = toSdkError(e, STREAM_URL, req, signal)
      ended = true
      out.push({ type: 'error', error: failed })
    }
    const parts = (ev) => {
      const out = []
      if (raw) out.push({ type: 'raw', rawValue: ev })
      switch (ev.type) {
        case 'start':
          out.push({ type: 'response-metadata', id: ev.id, modelId: ev.model })
          break
        case 'content_delta':
        case 'refusal_delta':
          if (!text) out.push({ type: 'text-start', id: (text = 'text-0') })
          out.push({ type: 'text-delta', id: text, delta: ev.text })
          break
        case 'reasoning_delta':
          if (!reasoning) out.push({ type: 'reasoning-start', id: (reasoning = 'reasoning-0') })
          out.push({ type: 'reasoning-delta', id: reasoning, delta: ev.text })
          break
        case 'tool_call_delta': {
          let t = tools.get(ev.index)
          if (!t) {
            t = { id: ev.id ?? `call_${ev.index}`, name: ev.name ?? '', args: '' }
            tools.set(ev.index, t)
            out.push({ type: 'tool-input-start', id: t.id, toolName: t.name })
          }
          if (ev.arguments) {
            t.args += ev.arguments
            out.push({ type: 'tool-input-delta', id: t.id, delta: ev.arguments })
          }
          break
        }
        case 'usage':
          usage = ev.usage
          break
        case 'finish':
          finish = finishOf(ev.reason, ev.native)
          break
        case 'reset':
          // `stream_recovery: restart` takes back what was sent; an AI SDK stream cannot, so
          // (as in the OpenAI stream format) the stream ends with an error instead.
          s.close()
          fail(
            new StreamInterruptedError({
              kind: 'stream_interrupted',
              message: `the answer restarted on another deployment, which an AI SDK stream cannot express: ${ev.reason}`,
            }),
            out,
          )
          break
      }
      return out
    }
    const end = () => {
      const out = []
      closeBlocks(out)
      for (const t of [...tools.keys()].sort((a, b) => a - b).map((k) => tools.get(k))) {
        out.push({ type: 'tool-input-end', id: t.id })
        out.push({ type: 'tool-call', toolCallId: t.id, toolName: t.name, input: t.args || '{}' })
      }
      const trace = s.trace
      out.push({ type: 'finish', finishReason: finish, usage: usageOf(usage), providerMetadata: metadataOf(trace, undefined, providerOf(trace)) })
      return out
    }

    const stream = new ReadableStream(
      {
        start(controller) {
          controller.enqueue({ type: 'stream-start', warnings })
        },
        // Reads router events until at least one part is ready (some events have none).
        async pull(controller) {
          for (;;) {
            if (failed) {
              controller.error(failed)
              return
            }
            if (ended) return
            let out
            try {
              const r = await s.next()
              if (r.done) {
                out = end()
                ended = true
              } else {
                out = parts(r.value)
              }
            } catch (e) {
              if (e instanceof CancelledError && signal && signal.aborted) {
                ended = true
                controller.error(abortError(signal))
                return
              }
              out = []
              fail(e, out)
            }
            for (const p of out) controller.enqueue(p)
            if (failed) return
            if (ended) {
              controller.close()
              return
            }
            if (out.length) return
          }
        },
        cancel() {
          ended = true
          s.close()
        },
      },
      { highWaterMark: 0 },
    )
    return { stream, request: { url: STREAM_URL, body: req } }
  }
}

/**
 * A Vercel AI SDK provider over `router`: `polyroute('chat')` is a language model whose id is
 * the request's `model`, which the core resolves as a route name, else a deployment name
 * (tried first, the route's others as fallbacks), else a provider model id its deployments
 * serve (unknown: `no_route`); `polyroute()` leaves the choice to the policy's rules
 * (`default_route`, match rules on the routing metadata). `settings.polyroute` is routing
 * metadata sent with every call (`tenant`, `feature`, `tier`, `tags`, `data_class`, `route`)
 * as the body's `polyroute` object; a call's `providerOptions.polyroute` adds to it and wins.
 * `settings.metadata` is the older name of `settings.polyroute` (routing metadata as well,
 * never OpenAI's forwarded `metadata`), kept so existing code keeps routing the same.
 */
export function createPolyroute(router, settings = {}) {
  if (!router || typeof router.chat !== 'function' || typeof router.stream !== 'function') {
    throw new TypeError('createPolyroute(router): router must be a polyroute Router')
  }
  const routing = { ...(settings.metadata || {}), ...(settings.polyroute || {}) }
  const languageModel = (model) => {
    if (model !== undefined && (typeof model !== 'string' || model === '')) {
      throw new TypeError('polyroute(model): the model id must be a non-empty string (a route, deployment or provider model), or omitted to let the policy choose')
    }
    return new PolyrouteLanguageModel(router, model, routing)
  }
  const provider = (route) => languageModel(route)
  provider.specificationVersion = 'v4'
  provider.languageModel = languageModel
  provider.chat = languageModel
  const none = (modelType) => (modelId) => {
    throw new NoSuchModelError({ modelId, modelType, message: `polyroute routes chat requests only (no ${modelType})` })
  }
  provider.embeddingModel = none('embeddingModel')
  provider.imageModel = none('imageModel')
  return provider
}

/** Error kind → the `statusCode` of its `APICallError` (the OpenAI surface's status). */
export const errorStatus = STATUS

