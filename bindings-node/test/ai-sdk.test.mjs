// `polyroute/ai-sdk` under the REAL Vercel AI SDK (`ai` and `@ai-sdk/provider`, pinned in
// package.json): generateText, streamText, generateObject and a tool round go through the
// router, against the loopback mock server. The routes' primaries fail (a 503, then a stream
// cut before any content) in front of a healthy fallback; the route trace arrives in
// `providerMetadata.polyroute`; failures are the AI SDK's `APICallError`.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import path from 'node:path'
import { generateText, streamText, generateObject, streamObject, tool, stepCountIs, jsonSchema } from 'ai'
import { APICallError } from '@ai-sdk/provider'
import { z } from 'zod'
import { createPolyroute, errorStatus } from 'polyroute/ai-sdk'
import { Router, errorKinds, NoRouteError, OverloadedError, StreamInterruptedError } from '../polyroute.js'
import { startMockServer, mockPolicy, fast, repoRoot } from './harness.mjs'

const PRICING = { input_per_mtok: 1, output_per_mtok: 2 }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
let mock
let router
let polyroute

const scripts = {
  'ai-p503': { then: { status: 503 } },
  'ai-pcut': { then: { text: 'one two three four five', fault: { cut_after: { chunks: 0 } } } },
  'ai-b': { then: { text: 'from the backup' } },
  'ai-cut': { then: { text: 'one two three four five', fault: { cut_after: { chunks: 2 } } } },
  'ai-obj': { then: { text: '{"city": "Paris", "population": 2102650, "landmarks": ["Louvre", "Eiffel Tower"]}' } },
  'ai-slow-open': { then: { latency_ms: 3000 } },
  'ai-slow': { then: { text: Array.from({ length: 100 }, (_, i) => `w${i}`).join(' '), chunk_delay_ms: 50 } },
  'ai-tool': {
    steps: [{ tool_calls: [{ id: 'call_w1', name: 'weather', arguments: { city: 'Paris' } }] }],
    then: { text: 'It is sunny in Paris.' },
  },
}

async function reset() {
  await mock.reset()
  for (const [name, script] of Object.entries(scripts)) await mock.script(name, script)
}

before(async () => {
  mock = await startMockServer()
  await reset()
  const deployments = {}
  for (const name of Object.keys(scripts)) deployments[name] = { pricing: PRICING }
  router = new Router(
    mockPolicy(mock.url, {
      deployments,
      routes: [
        { name: 'chat', deployments: ['ai-p503', 'ai-pcut'], fallbacks: [{ deployments: ['ai-b'] }], ...fast },
        { name: 'obj', deployments: ['ai-p503', 'ai-pcut'], fallbacks: [{ deployments: ['ai-obj'] }], ...fast },
        { name: 'tools', deployments: ['ai-p503', 'ai-pcut'], fallbacks: [{ deployments: ['ai-tool'] }], ...fast },
        { name: 'cut', deployments: ['ai-cut'], fallbacks: [{ deployments: ['ai-b'] }], ...fast },
        { name: 'cut-restart', deployments: ['ai-cut'], fallbacks: [{ deployments: ['ai-b'] }], ...fast, stream_recovery: 'restart' },
        { name: 'dead', deployments: ['ai-p503'], ...fast },
        { name: 'slow-open', deployments: ['ai-slow-open'], ...fast },
        { name: 'slow', deployments: ['ai-slow'], ...fast },
      ],
    }),
  )
  polyroute = createPolyroute(router)
})
after(() => mock.close())

const attempts = (trace) => trace.attempts.map((a) => [a.deployment, a.outcome])

/** The failover every primary-then-fallback route shows, with the serving deployment. */
function assertServedBy(meta, route, deployment) {
  assert.ok(meta, 'providerMetadata.polyroute is set')
  assert.equal(meta.deployment, deployment)
  assert.equal(meta.route, route)
  assert.equal(meta.provider, 'mock')
  assert.ok(meta.costUsd > 0, `costUsd ${meta.costUsd}`)
  assert.ok(meta.explanation.includes(deployment), meta.explanation)
  assert.equal(meta.trace.served_by, deployment)
  const tried = attempts(meta.trace)
  assert.deepEqual(tried.map(([d]) => d), ['ai-p503', 'ai-pcut', deployment])
  assert.equal(tried[0][1], 'overloaded')
  assert.notEqual(tried[1][1], 'ok')
  assert.equal(tried[2][1], 'ok')
}

test('generateText fails over to the fallback; providerMetadata.polyroute names it', async () => {
  await reset()
  const r = await generateText({ model: polyroute('chat'), prompt: 'hello there' })
  assert.equal(r.text, 'from the backup')
  assert.equal(r.finishReason, 'stop')
  assert.ok(r.usage.inputTokens > 0 && r.usage.outputTokens === 3, JSON.stringify(r.usage))
  assertServedBy(r.providerMetadata.polyroute, 'chat', 'ai-b')
  assert.equal(r.response.modelId, 'ai-b')
  // one attempt each: the AI SDK did not retry on top of the router
  assert.deepEqual([(await mock.log('ai-p503')).length, (await mock.log('ai-pcut')).length, (await mock.log('ai-b')).length], [1, 1, 1])
  const body = (await mock.log('ai-b'))[0].body
  assert.deepEqual(body.messages, [{ role: 'user', content: 'hello there' }])
  assert.equal(body.polyroute, undefined, 'routing metadata never reaches a provider')
  assert.equal(body.model, 'ai-b', "the deployment's model, not the model id")
})

test('the model id may name a deployment (tried first) or a provider model the policy serves', async () => {
  await reset()
  // `ai-b` is no route: the deployment of that name, in the first route that has it (`chat`,
  // as its fallback), goes first; the route's primaries stay behind it as fallbacks.
  const r = await generateText({ model: polyroute('ai-b'), prompt: 'hello there' })
  assert.equal(r.text, 'from the backup')
  const meta = r.providerMetadata.polyroute
  assert.deepEqual([meta.route, meta.deployment], ['chat', 'ai-b'])
  assert.deepEqual(attempts(meta.trace), [['ai-b', 'ok']])
  assert.equal((await mock.log('ai-p503')).length, 0, 'the primary was not tried first')

  // A provider model id: the deployment serving it (named otherwise) answers, streamed too.
  const aliased = new Router(
    mockPolicy(mock.url, { deployments: { backup: { model: 'ai-b' } }, routes: [{ name: 'only', deployments: ['backup'], ...fast }] }),
  )
  const s = streamText({ model: createPolyroute(aliased)('ai-b'), prompt: 'hello there' })
  assert.equal(await s.text, 'from the backup')
  assert.equal((await s.providerMetadata).polyroute.deployment, 'backup')
})

test('settings.polyroute is routing metadata for every call; providerOptions.polyroute wins', async () => {
  await reset()
  const tenants = new Router(
    mockPolicy(mock.url, {
      deployments: { 'ai-b': {}, 'ai-obj': {} },
      routes: [
        { name: 'general', deployments: ['ai-b'], ...fast },
        { name: 'acme', match: { tenant: ['acme'] }, deployments: ['ai-obj'], ...fast },
      ],
    }),
  )
  const acme = createPolyroute(tenants, { polyroute: { tenant: 'acme' } })
  const r = await generateText({ model: acme(), prompt: 'hi' })
  assert.equal(r.providerMetadata.polyroute.route, 'acme')
  const other = await generateText({ model: acme(), prompt: 'hi', providerOptions: { polyroute: { tenant: 'other' } } })
  assert.equal(other.providerMetadata.polyroute.route, 'general')
  // the older name of the setting routes the same
  const legacy = await generateText({ model: createPolyroute(tenants, { metadata: { tenant: 'acme' } })(), prompt: 'hi' })
  assert.equal(legacy.providerMetadata.polyroute.route, 'acme')
  const sent = (await mock.log('ai-obj'))[0].body
  assert.equal(sent.polyroute, undefined)
  assert.equal(sent.metadata, undefined)
})

test('streamText fails over before content, streams the fallback, and carries the trace', async () => {
  await reset()
  const r = streamText({ model: polyroute('chat'), system: 'be brief', prompt: 'hello there' })
  let text = ''
  for await (const delta of r.textStream) text += delta
  assert.equal(text, 'from the backup')
  assert.equal(await r.finishReason, 'stop')
  const usage = await r.usage
  assert.ok(usage.inputTokens === 4 && usage.outputTokens === 3, JSON.stringify(usage))
  assertServedBy((await r.providerMetadata).polyroute, 'chat', 'ai-b')
  const [entry] = await mock.log('ai-b')
  assert.equal(entry.stream, true)
  assert.equal(entry.body.messages[0].role, 'system')
  assert.equal((await mock.log('ai-pcut')).length, 1, 'the primary cut before content was tried')
})

test('generateObject (zod schema) returns the parsed object from the fallback', async () => {
  await reset()
  const schema = z.object({ city: z.string(), population: z.number(), landmarks: z.array(z.string()) })
  const r = await generateObject({ model: polyroute('obj'), schema, schemaName: 'city', prompt: 'describe Paris' })
  assert.deepEqual(r.object, { city: 'Paris', population: 2102650, landmarks: ['Louvre', 'Eiffel Tower'] })
  assertServedBy(r.providerMetadata.polyroute, 'obj', 'ai-obj')
  const rf = (await mock.log('ai-obj'))[0].body.response_format
  assert.equal(rf.type, 'json_schema')
  assert.equal(rf.json_schema.name, 'city')
  assert.deepEqual(Object.keys(rf.json_schema.schema.properties).sort(), ['city', 'landmarks', 'population'])
  assert.deepEqual(rf.json_schema.schema.required, ['city', 'population', 'landmarks'])
})

test('streamObject with a jsonSchema() schema streams the object from the fallback', async () => {
  await reset()
  const schema = jsonSchema({
    type: 'object',
    properties: { city: { type: 'string' }, population: { type: 'number' }, landmarks: { type: 'array', items: { type: 'string' } } },
    required: ['city', 'population', 'landmarks'],
    additionalProperties: false,
  })
  const r = streamObject({ model: polyroute('obj'), schema, prompt: 'describe Paris' })
  const partials = []
  for await (const p of r.partialObjectStream) partials.push(p)
  assert.ok(partials.length > 1, 'partial objects arrived as the JSON streamed')
  assert.deepEqual(await r.object, { city: 'Paris', population: 2102650, landmarks: ['Louvre', 'Eiffel Tower'] })
  assertServedBy((await r.providerMetadata).polyroute, 'obj', 'ai-obj')
  const [entry] = await mock.log('ai-obj')
  assert.equal(entry.stream, true)
  assert.equal(entry.body.response_format.type, 'json_schema')
})

const weatherCalls = []
const tools = {
  weather: tool({
    description: 'The weather in a city',
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => {
      weatherCalls.push(city)
      return { city, forecast: 'sunny', celsius: 24 }
    },
  }),
}

/** The second request carried the assistant's tool call and the tool's result back. */
async function assertToolRound() {
  const log = await mock.log('ai-tool')
  assert.equal(log.length, 2, 'one request per step, each after the primaries failed')
  assert.deepEqual(log[0].body.tools.map((t) => t.function.name), ['weather'])
  assert.equal(log[0].body.tools[0].function.parameters.properties.city.type, 'string')
  const msgs = log[1].body.messages
  const assistant = msgs.find((m) => m.role === 'assistant')
  assert.deepEqual(assistant.tool_calls, [{ id: 'call_w1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } }])
  const toolMsg = msgs.find((m) => m.role === 'tool')
  assert.equal(toolMsg.tool_call_id, 'call_w1')
  assert.deepEqual(JSON.parse(toolMsg.content), { city: 'Paris', forecast: 'sunny', celsius: 24 })
}

test('a tool round with generateText (execute + stopWhen) goes through the router at each step', async () => {
  await reset()
  weatherCalls.length = 0
  const r = await generateText({ model: polyroute('tools'), tools, stopWhen: stepCountIs(3), prompt: 'weather in Paris?' })
  assert.equal(r.text, 'It is sunny in Paris.')
  assert.equal(r.steps.length, 2)
  assert.equal(r.steps[0].finishReason, 'tool-calls')
  assert.deepEqual(r.steps[0].toolCalls.map((c) => [c.toolName, c.input]), [['weather', { city: 'Paris' }]])
  assert.deepEqual(r.steps[0].toolResults[0].output, { city: 'Paris', forecast: 'sunny', celsius: 24 })
  assert.deepEqual(weatherCalls, ['Paris'])
  for (const step of r.steps) assertServedBy(step.providerMetadata.polyroute, 'tools', 'ai-tool')
  await assertToolRound()
})

test('a tool round with streamText: streamed tool-call deltas, then the answer', async () => {
  await reset()
  weatherCalls.length = 0
  const r = streamText({ model: polyroute('tools'), tools, stopWhen: stepCountIs(3), prompt: 'weather in Paris?' })
  const types = []
  for await (const part of r.fullStream) types.push(part.type)
  assert.equal(await r.text, 'It is sunny in Paris.')
  assert.ok(types.includes('tool-input-start') && types.includes('tool-call') && types.includes('tool-result'), types.join(' '))
  assert.ok(!types.includes('error'), types.join(' '))
  assert.deepEqual(weatherCalls, ['Paris'])
  const steps = await r.steps
  assert.equal(steps.length, 2)
  assert.deepEqual(steps[0].toolCalls.map((c) => [c.toolCallId, c.toolName, c.input]), [['call_w1', 'weather', { city: 'Paris' }]])
  assertServedBy((await r.providerMetadata).polyroute, 'tools', 'ai-tool')
  await assertToolRound()
})

/** Iterates `iterable`; resolves to [collected items, the error thrown or null]. */
async function drain(iterable) {
  const items = []
  try {
    for await (const x of iterable) items.push(x)
    return [items, null]
  } catch (e) {
    return [items, e]
  }
}

function assertCutError(err, partial) {
  assert.ok(APICallError.isInstance(err), String(err))
  assert.equal(err.statusCode, 502)
  assert.equal(err.isRetryable, false)
  assert.equal(err.data.kind, 'stream_interrupted')
  assert.equal(err.responseHeaders['x-polyroute-error-kind'], 'stream_interrupted')
  assert.ok(err.cause instanceof StreamInterruptedError)
  if (partial !== undefined) assert.equal(err.cause.partial.text, partial)
}

test('a stream cut after content is an error in streamText, never a truncated success', async () => {
  await reset()
  // fullStream: the text that arrived, an `error` part (onError sees it), then the stream throws
  const errors = []
  const r = streamText({ model: polyroute('cut'), prompt: 'count', onError: ({ error }) => errors.push(error) })
  const [parts, thrown] = await drain(r.fullStream)
  assert.equal(parts.filter((p) => p.type === 'text-delta').map((p) => p.text).join(''), 'one two', 'what arrived before the cut')
  const errorParts = parts.filter((p) => p.type === 'error')
  assert.equal(errorParts.length, 1, parts.map((p) => p.type).join(' '))
  assertCutError(errorParts[0].error, 'one two')
  assert.ok(!parts.some((p) => p.type === 'finish'), 'no finish part: the answer did not finish')
  assert.equal(thrown, errorParts[0].error, 'then the iteration throws it')
  assert.deepEqual(errors, [thrown], 'onError saw it once')
  assert.equal((await mock.log('ai-b')).length, 0, 'the fallback never finishes a cut sentence')

  // textStream, the simplest consumer, throws; `text` rejects rather than resolving the partial
  const r2 = streamText({ model: polyroute('cut'), prompt: 'count', onError: () => {} })
  const [deltas, thrown2] = await drain(r2.textStream)
  assert.equal(deltas.join(''), 'one two')
  assertCutError(thrown2, 'one two')
  await assert.rejects(r2.text, (e) => APICallError.isInstance(e) && e.data.kind === 'stream_interrupted')

  // stream_recovery: restart would take back what was sent, which an AI SDK stream cannot:
  // it ends the same way
  const r3 = streamText({ model: polyroute('cut-restart'), prompt: 'count', onError: () => {} })
  const [deltas3, thrown3] = await drain(r3.textStream)
  assert.equal(deltas3.join(''), 'one two')
  assertCutError(thrown3)
  assert.match(thrown3.message, /restarted on another deployment/)
})

test('every deployment failing is an APICallError (503, overloaded), not retried by the AI SDK', async () => {
  await reset()
  const err = await generateText({ model: polyroute('dead'), prompt: 'hi' }).then(
    () => assert.fail('expected an APICallError'),
    (e) => e,
  )
  assert.ok(APICallError.isInstance(err), String(err))
  assert.equal(err.statusCode, 503)
  assert.equal(err.isRetryable, false)
  assert.equal(err.data.kind, 'overloaded')
  assert.equal(err.responseHeaders['x-polyroute-error-kind'], 'overloaded')
  assert.match(err.message, /overloaded/)
  assert.ok(err.cause instanceof OverloadedError)
  assert.deepEqual(attempts(err.cause.trace), [['ai-p503', 'overloaded']])
  assert.equal((await mock.log('ai-p503')).length, 1, 'the AI SDK (maxRetries 2 by default) did not retry')
  assert.deepEqual(JSON.parse(err.responseBody).kind, 'overloaded')

  // streamText: the same error before any content, as an error part
  const errors = []
  const r = streamText({ model: polyroute('dead'), prompt: 'hi', onError: ({ error }) => errors.push(error) })
  const parts = []
  for await (const part of r.fullStream) parts.push(part)
  const e2 = parts.find((p) => p.type === 'error')
  assert.ok(e2 && APICallError.isInstance(e2.error), parts.map((p) => p.type).join(' '))
  assert.equal(e2.error.data.kind, 'overloaded')
  assert.ok(!parts.some((p) => p.type === 'text-delta'))
})

test('a route that does not exist is an APICallError (404, no_route)', async () => {
  const err = await generateText({ model: polyroute('nope'), prompt: 'hi' }).catch((e) => e)
  assert.ok(APICallError.isInstance(err), String(err))
  assert.equal(err.statusCode, 404)
  assert.equal(err.isRetryable, false)
  assert.equal(err.data.kind, 'no_route')
  assert.ok(err.cause instanceof NoRouteError)
  assert.equal(err.cause.code, 'no_route')
  // providerOptions.polyroute carries routing metadata and wins over the model id
  const r = await generateText({ model: polyroute('nope'), prompt: 'hi', providerOptions: { polyroute: { route: 'chat' } } })
  assert.equal(r.providerMetadata.polyroute.route, 'chat')
  assert.equal(r.text, 'from the backup')
})

async function waitDisconnected(name) {
  for (let i = 0; i < 100; i++) {
    const log = await mock.log(name)
    if (log.length >= 1 && log.every((e) => e.client_disconnected)) return
    await sleep(20)
  }
  assert.fail(`the mock server never saw ${name} disconnect`)
}

test('abortSignal cancels the routed request (generateText and streamText)', async () => {
  await reset()
  const ac = new AbortController()
  const t0 = Date.now()
  const p = generateText({ model: polyroute('slow-open'), prompt: 'hi', abortSignal: ac.signal })
  await sleep(100)
  ac.abort()
  const err = await p.catch((e) => e)
  assert.equal(err.name, 'AbortError', String(err))
  assert.ok(!APICallError.isInstance(err))
  assert.ok(Date.now() - t0 < 2000)
  await waitDisconnected('ai-slow-open')

  const ac2 = new AbortController()
  const r = streamText({ model: polyroute('slow'), prompt: 'hi', abortSignal: ac2.signal, onError: () => {} })
  let n = 0
  const [, thrown] = await drain(
    (async function* () {
      for await (const d of r.textStream) if (++n === 2) ac2.abort()
      yield n
    })(),
  )
  assert.ok(n >= 2 && n < 10, `deltas after the abort: ${n}`)
  assert.ok(!thrown || !APICallError.isInstance(thrown), String(thrown))
  await waitDisconnected('ai-slow')
})

test('APICallError statuses equal router.fetch (the OpenAI surface) for every kind', async () => {
  assert.deepEqual(Object.keys(errorStatus).sort(), [...errorKinds].sort(), 'a status for every error kind')
  for (const [route, kind] of [
    ['dead', 'overloaded'],
    ['nope', 'no_route'],
  ]) {
    const res = await router.fetch('http://polyroute.local/v1/chat/completions', {
      method: 'POST',
      body: JSON.stringify({ model: route, messages: [{ role: 'user', content: 'hi' }], polyroute: { route } }),
    })
    assert.equal(res.headers.get('x-polyroute-error-kind'), kind)
    assert.equal(errorStatus[kind], res.status, kind)
  }
})

test('the typings: a polyroute model is an AI SDK LanguageModel; chunks and timeout type-check (tsc --noEmit)', () => {
  const dir = path.join(repoRoot, 'bindings-node')
  const tsc = path.join(dir, 'node_modules', '.bin', 'tsc')
  const args = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext']
  const files = ['ai-sdk-types.mts', 'types.mts'].map((f) => path.join('test', f))
  execFileSync(tsc, [...args, '--skipLibCheck', '--types', 'node', ...files], { cwd: dir, encoding: 'utf8' })
})
