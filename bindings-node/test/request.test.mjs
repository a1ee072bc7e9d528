// The request as openai-node code builds it: the call's `timeout` option (milliseconds, as in
// openai-node) as the core's deadline, and a tool loop whose `messages` hold what such code
// appends: openai-node's response message (with its `refusal: null`, `annotations: []`) and
// instances of the caller's own classes.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { Router, TimeoutError, InvalidRequestError } from '../polyroute.js'
import { startMockServer, mockPolicy, fast, hello } from './harness.mjs'

let mock
let router

before(async () => {
  mock = await startMockServer()
  await mock.script('rq-hang', { then: { latency_ms: 20_000 } })
  await mock.script('rq-ok', { then: { text: 'in time' } })
  await mock.script('rq-tools', {
    steps: [
      { tool_calls: [{ id: 'call_1', name: 'weather', arguments: { city: 'Paris' } }] },
      { tool_calls: [{ id: 'call_2', name: 'weather', arguments: { city: 'Lyon' } }] },
    ],
    then: { text: 'Sunny in both.' },
  })
  router = new Router(
    mockPolicy(mock.url, {
      deployments: { 'rq-hang': {}, 'rq-ok': {}, 'rq-tools': {} },
      routes: [
        // A generous route deadline, so only the caller's timeout can end the hang early.
        { name: 'hang', deployments: ['rq-hang'], ...fast, timeouts: { first_token: '30s', idle: '30s', total: '30s' } },
        { name: 'ok', deployments: ['rq-ok'], ...fast },
        { name: 'tools', deployments: ['rq-tools'], ...fast },
      ],
    }),
  )
})
after(() => mock.close())

test('options.timeout (ms) is the whole request deadline: a hang rejects with timeout', async () => {
  const req = { ...hello, route: 'hang' }
  const t0 = Date.now()
  const err = await router.chat(req, { timeout: 500 }).catch((e) => e)
  const took = Date.now() - t0
  assert.ok(err instanceof TimeoutError, String(err))
  assert.equal(err.code, 'timeout')
  assert.ok(took >= 450 && took < 5000, `rejected after ${took} ms (route total: 30 s)`)
  assert.deepEqual(req, { ...hello, route: 'hang' }, "the caller's request is left as it was")

  // a stream's open obeys it too
  const t1 = Date.now()
  await assert.rejects(router.stream(req, { timeout: 300 }).ready(), TimeoutError)
  assert.ok(Date.now() - t1 < 5000)

  // polyroute's other fields survive the merge; a deadline that holds changes nothing
  const ok = await router.chat({ ...hello, polyroute: { route: 'ok' } }, { timeout: 5000 })
  assert.equal(ok.choices[0].message.content, 'in time')
})

test('options.timeout must be a positive number of milliseconds', async () => {
  for (const bad of [0, -1, NaN, Infinity, '500']) {
    await assert.rejects(router.chat({ ...hello, route: 'ok' }, { timeout: bad }), InvalidRequestError, String(bad))
  }
  assert.throws(() => router.stream({ ...hello, route: 'ok' }, { timeout: -5 }), InvalidRequestError)
})

const tools = [{ type: 'function', function: { name: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]

/** Callers' own message classes: own enumerable fields are the message; the rest is not. */
class ToolResult {
  #raw
  constructor(call, result) {
    this.role = 'tool'
    this.tool_call_id = call.id
    this.content = JSON.stringify(result)
    this.name = undefined
    this.#raw = result
  }
  get raw() {
    return this.#raw
  }
}
class AssistantTurn {
  constructor(message) {
    // Shaped like openai-node's ChatCompletionMessage from OpenAI itself.
    Object.assign(this, { refusal: null, annotations: [], audio: undefined, function_call: undefined }, message)
  }
}

const runTool = (call) => {
  const { city } = JSON.parse(call.function.arguments)
  return { city, forecast: 'sunny' }
}

test('a tool loop appends openai-node response messages and class instances to messages', async () => {
  const client = new OpenAI({ baseURL: 'http://polyroute.local/v1', apiKey: 'unused', fetch: router.fetch, maxRetries: 0 })
  const messages = [{ role: 'user', content: 'weather in Paris and Lyon?' }]

  // Round 1 through openai-node: its response message goes back into `messages` as it is.
  const completion = await client.chat.completions.create({ model: 'tools', messages, tools })
  const m1 = completion.choices[0].message
  assert.equal(completion.choices[0].finish_reason, 'tool_calls')
  messages.push(m1, ...m1.tool_calls.map((c) => new ToolResult(c, runTool(c))))

  // Round 2 through router.chat(): the answer's message, wrapped in the caller's class.
  const r2 = await router.chat({ route: 'tools', messages, tools })
  const m2 = r2.choices[0].message
  assert.deepEqual(m2.tool_calls.map((c) => c.id), ['call_2'])
  messages.push(new AssistantTurn(m2), ...m2.tool_calls.map((c) => new ToolResult(c, runTool(c))))

  const r3 = await router.chat({ route: 'tools', messages, tools })
  assert.equal(r3.choices[0].message.content, 'Sunny in both.')
  assert.equal(r3.choices[0].finish_reason, 'stop')

  const sent = (await mock.log('rq-tools')).at(-1).body.messages
  assert.deepEqual(sent.map((m) => m.role), ['user', 'assistant', 'tool', 'assistant', 'tool'])
  assert.deepEqual(sent.filter((m) => m.role === 'assistant').map((m) => m.tool_calls[0].id), ['call_1', 'call_2'])
  assert.deepEqual(sent.filter((m) => m.role === 'tool').map((m) => [m.tool_call_id, JSON.parse(m.content).city]), [
    ['call_1', 'Paris'],
    ['call_2', 'Lyon'],
  ])
  assert.equal(sent[3].tool_calls[0].function.arguments, m2.tool_calls[0].function.arguments)
  for (const m of sent) {
    assert.ok(!('raw' in m) && !('name' in m), `no getters or undefined fields sent: ${JSON.stringify(m)}`)
  }
})
