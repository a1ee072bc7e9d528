// `router.fetch` under the REAL openai Node SDK (pinned in package.json): every
// `chat.completions.create` answered in-process by the router, as OpenAI would answer it,
// against the loopback mock server. The route's primaries fail (a 503, then a stream cut
// before any content) in front of a healthy fallback.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { Router, InvalidRequestError } from '../polyroute.js'
import { startMockServer, mockPolicy, fast, hello } from './harness.mjs'

const PRICING = { input_per_mtok: 1, output_per_mtok: 2 }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
let mock
let router

const scripts = {
  'f-p503': { then: { status: 503 } },
  'f-pcut': { then: { text: 'one two three four five', fault: { cut_after: { chunks: 0 } } } },
  'f-b': { then: { text: 'from the backup' } },
  'f-cut': { then: { text: 'one two three four five', fault: { cut_after: { chunks: 2 } } } },
  'f-429': { then: { status: 429, error_code: 'rate_limit_exceeded', retry_after: '1' } },
  'f-slow': { then: { text: Array.from({ length: 100 }, (_, i) => `w${i}`).join(' '), chunk_delay_ms: 50 } },
  'f-slow-open': { then: { latency_ms: 3000 } },
}

/** Clear the mock's log (and scripts), then script every model again. */
async function reset() {
  await mock.reset()
  for (const [name, script] of Object.entries(scripts)) await mock.script(name, script)
}

before(async () => {
  mock = await startMockServer()
  await reset()
  const deployments = {}
  for (const name of ['f-p503', 'f-pcut', 'f-b', 'f-cut', 'f-429', 'f-slow', 'f-slow-open']) deployments[name] = { pricing: PRICING }
  router = new Router(
    mockPolicy(mock.url, {
      deployments,
      routes: [
        { name: 'chat', deployments: ['f-p503', 'f-pcut'], fallbacks: [{ deployments: ['f-b'] }], ...fast },
        { name: 'cut', deployments: ['f-cut'], fallbacks: [{ deployments: ['f-b'] }], ...fast },
        { name: 'limited', deployments: ['f-429'], ...fast },
        { name: 'dead', deployments: ['f-p503'], ...fast },
        { name: 'slow', deployments: ['f-slow'], ...fast },
        { name: 'slow-open', deployments: ['f-slow-open'], ...fast },
      ],
    }),
  )
})
after(() => mock.close())

const client = () => new OpenAI({ baseURL: 'http://polyroute.local/v1', apiKey: 'unused', fetch: router.fetch, maxRetries: 0 })
const messages = hello.messages

async function waitDisconnected(name) {
  for (let i = 0; i < 100; i++) {
    const log = await mock.log(name)
    if (log.length >= 1 && log.every((e) => e.client_disconnected)) return log
    await sleep(20)
  }
  assert.fail(`the mock server never saw ${name} disconnect`)
}

test('create (non-streamed) fails over invisibly; the headers name the deployment', async () => {
  await reset()
  const { data, response } = await client().chat.completions.create({ model: 'chat', messages }).withResponse()
  assert.equal(data.object, 'chat.completion')
  assert.equal(data.choices[0].message.content, 'from the backup')
  assert.equal(data.model, 'f-b')
  assert.equal(response.status, 200)
  assert.equal(response.headers.get('x-polyroute-deployment'), 'f-b')
  assert.equal(response.headers.get('x-polyroute-route'), 'chat')
  assert.ok(Number(response.headers.get('x-polyroute-cost-usd')) > 0)
  const explanation = response.headers.get('x-polyroute-explanation')
  assert.ok(explanation.includes('f-b') && /^[\x20-\x7e]*$/.test(explanation), explanation)
  assert.deepEqual([(await mock.log('f-p503')).length, (await mock.log('f-pcut')).length], [1, 1])
})

test('a stream with include_usage fails over before content: chunks, usage, the deployment header', async () => {
  const { data: stream, response } = await client()
    .chat.completions.create({ model: 'chat', messages, stream: true, stream_options: { include_usage: true } })
    .withResponse()
  assert.equal(response.headers.get('content-type'), 'text/event-stream')
  assert.equal(response.headers.get('x-polyroute-deployment'), 'f-b')
  assert.equal(response.headers.get('x-polyroute-route'), 'chat')
  const chunks = []
  for await (const ch of stream) chunks.push(ch)
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'f-b'))
  assert.equal(chunks.map((c) => (c.choices[0] && c.choices[0].delta.content) || '').join(''), 'from the backup')
  const last = chunks[chunks.length - 1]
  assert.deepEqual(last.choices, [])
  assert.ok(last.usage && last.usage.total_tokens > 0)
  assert.ok(chunks.some((c) => c.choices[0] && c.choices[0].finish_reason === 'stop'))
})

test('a stream cut after content throws the SDK error, never a truncated success', async () => {
  await reset()
  const stream = await client().chat.completions.create({ model: 'cut', messages, stream: true })
  let text = ''
  const err = await (async () => {
    for await (const ch of stream) text += (ch.choices[0] && ch.choices[0].delta.content) || ''
  })().then(
    () => assert.fail(`the stream ended as a success: ${JSON.stringify(text)}`),
    (e) => e,
  )
  assert.ok(err instanceof OpenAI.APIError, String(err))
  assert.equal(err.status, undefined, 'not an HTTP status error: the stream had started')
  assert.ok(text.length > 0 && 'one two three four five'.startsWith(text), text)
  assert.equal(err.code, 'stream_interrupted')
  assert.equal((await mock.log('f-b')).length, 0, 'the fallback never finishes a cut sentence')
})

test('429 raises OpenAI.RateLimitError with the Polyroute kind', async () => {
  const err = await client().chat.completions.create({ model: 'limited', messages }).then(
    () => assert.fail('expected RateLimitError'),
    (e) => e,
  )
  assert.ok(err instanceof OpenAI.RateLimitError, String(err))
  assert.equal(err.status, 429)
  assert.equal(err.code, 'rate_limited')
  assert.equal(err.headers.get('x-polyroute-error-kind'), 'rate_limited')
  assert.equal(err.headers.get('retry-after'), '1')
  const streamed = await client()
    .chat.completions.create({ model: 'limited', messages, stream: true })
    .catch((e) => e)
  assert.ok(streamed instanceof OpenAI.RateLimitError, String(streamed))
})

test('model naming no route is a NotFoundError (no_route)', async () => {
  const err = await client()
    .chat.completions.create({ model: 'chat', messages, polyroute: { route: 'nope' } })
    .catch((e) => e)
  assert.ok(err instanceof OpenAI.NotFoundError, String(err))
  assert.equal(err.code, 'no_route')
})

test('any other path is a 404 in OpenAI error shape', async () => {
  const err = await client()
    .embeddings.create({ model: 'x', input: 'hi' })
    .catch((e) => e)
  assert.ok(err instanceof OpenAI.NotFoundError, String(err))
  assert.equal(err.status, 404)
  assert.equal(err.code, 'not_found')
  const r = await router.fetch('http://polyroute.local/v1/models')
  assert.equal(r.status, 404)
  const body = await r.json()
  assert.match(body.error.message, /GET \/v1\/models/)
  assert.equal(body.error.type, 'invalid_request_error')
  assert.equal(r.headers.get('x-polyroute-error-kind'), 'not_found')
})

test('fetch is bound and takes a Request; malformed JSON is the caller 400', async () => {
  const { fetch } = router
  const r = await fetch(
    new Request('http://polyroute.local/v1/chat/completions', { method: 'POST', body: JSON.stringify({ model: 'chat', messages }) }),
  )
  assert.equal(r.status, 200)
  assert.equal((await r.json()).choices[0].message.content, 'from the backup')
  const bad = await fetch('http://polyroute.local/v1/chat/completions', { method: 'POST', body: '{not json' })
  assert.equal(bad.status, 400)
  assert.equal((await bad.json()).error.code, 'invalid_request')
})

test('aborting the signal before the answer cancels the routed request', async () => {
  await reset()
  const ac = new AbortController()
  const t0 = Date.now()
  const p = client().chat.completions.create({ model: 'slow-open', messages }, { signal: ac.signal })
  await sleep(100)
  ac.abort()
  const err = await p.catch((e) => e)
  assert.ok(err instanceof OpenAI.APIUserAbortError, String(err))
  assert.ok(Date.now() - t0 < 2000)
  await waitDisconnected('f-slow-open')
})

test('aborting the signal mid-stream cancels the routed request', async () => {
  await reset()
  const ac = new AbortController()
  const stream = await client().chat.completions.create({ model: 'slow', messages, stream: true }, { signal: ac.signal })
  let n = 0
  const t0 = Date.now()
  // The SDK ends an aborted stream's iteration quietly (its own choice for user aborts).
  for await (const ch of stream) if (ch.choices[0] && ch.choices[0].delta.content && ++n === 2) ac.abort()
  assert.equal(n, 2, 'nothing after the abort')
  assert.ok(Date.now() - t0 < 2000)
  await waitDisconnected('f-slow')
})

test('cancelling the body (reader.cancel()) cancels the routed request', async () => {
  await reset()
  const r = await router.fetch('http://polyroute.local/v1/chat/completions', {
    method: 'POST',
    body: JSON.stringify({ model: 'slow', messages, stream: true }),
  })
  const reader = r.body.getReader()
  const first = await reader.read()
  assert.match(new TextDecoder().decode(first.value), /^data: \{/)
  await reader.cancel()
  await waitDisconnected('f-slow')
})

test('chat({stream: true}) rejects clearly instead of answering unstreamed', async () => {
  await assert.rejects(router.chat({ ...hello, route: 'chat', stream: true }), (e) => {
    assert.ok(e instanceof InvalidRequestError)
    assert.equal(e.code, 'invalid_request')
    assert.match(e.message, /router\.stream\(\)/)
    return true
  })
})

test('an SDK retrying on top of the router (maxRetries > 0) gets one process warning', async () => {
  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  try {
    const c = new OpenAI({ baseURL: 'http://polyroute.local/v1', apiKey: 'unused', fetch: router.fetch, maxRetries: 1 })
    for (let i = 0; i < 2; i++) {
      const err = await c.chat.completions.create({ model: 'dead', messages }).catch((e) => e)
      assert.ok(err instanceof OpenAI.InternalServerError, String(err))
    }
    await sleep(10)
  } finally {
    process.off('warning', onWarning)
  }
  const ours = warnings.filter((w) => w.code === 'POLYROUTE_RETRY_ON_TOP')
  assert.equal(ours.length, 1, 'warned once per process')
  assert.match(ours[0].message, /maxRetries: 0/)
})
