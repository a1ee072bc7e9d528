// Every ErrorKind reaches JavaScript as its own PolyrouteError subclass with `code === kind`
// and the core's fields, each produced by a real exchange with the loopback mock server
// where the mock can produce it (the rest: policy, breaker, route and budget decisions).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import * as pr from '../polyroute.js'
import { startMockServer, mockPolicy, fast, hello, freePort } from './harness.mjs'

const { Router, PolyrouteError } = pr
let mock
let router

// name → [script, deployment extra, route extra]
const cases = {
  rate_limited: [{ then: { status: 429, error_code: 'rate_limit_exceeded', retry_after: '1', error_message: 'Rate limit reached' } }],
  quota_exhausted: [{ then: { status: 429, error_code: 'insufficient_quota', error_type: 'insufficient_quota' } }],
  overloaded: [{ then: { status: 503 } }],
  server_error: [{ then: { status: 500 } }],
  timeout: [{ then: { fault: 'hang' } }, {}, { timeouts: { first_token: '150ms', idle: '150ms', total: '5s' } }],
  connection: [{ then: { fault: 'drop' } }],
  auth: [{ then: { status: 401, error_code: 'invalid_api_key' } }],
  permission_denied: [{ then: { status: 403, error_code: 'unsupported_country_region_territory' } }],
  content_filter: [{ then: { status: 400, error_code: 'content_filter' } }],
  context_length_exceeded: [{ then: { status: 400, error_code: 'context_length_exceeded' } }],
  invalid_request: [{ then: { status: 400, error_message: 'bad parameter' } }],
  not_found: [{ then: { status: 404, error_code: 'model_not_found' } }],
  malformed_response: [{ then: { fault: { malformed_after: { chunks: 0 } } } }],
  invalid_output: [{ then: { text: 'certainly not json' } }],
  budget_exceeded: [{}, { pricing: { input_per_mtok: 1, output_per_mtok: 1 } }, { retry: { ...fast.retry, max_request_cost_usd: 0 } }],
  circuit_open: [{}],
  stream_interrupted: [{ then: { text: 'one two three four five six', fault: { cut_after: { chunks: 2 } } } }],
}

before(async () => {
  mock = await startMockServer()
  const deployments = {}
  const routes = []
  for (const [name, [script, dep, route]] of Object.entries(cases)) {
    await mock.script(name, script)
    deployments[name] = dep || {}
    routes.push({ name, deployments: [name], ...fast, ...(route || {}) })
  }
  router = new Router(mockPolicy(mock.url, { deployments, routes }))
})
after(() => mock.close())

async function expectKind(kind, promise) {
  const err = await promise.then(
    () => assert.fail(`expected ${kind}, got a response`),
    (e) => e,
  )
  assert.ok(err instanceof PolyrouteError, `not a PolyrouteError: ${err && err.stack}`)
  assert.ok(err instanceof Error)
  assert.equal(err.code, kind, err.message)
  assert.equal(err.kind, kind)
  assert.ok(err instanceof pr.errorClasses[kind], `${err.name} is not ${pr.errorClasses[kind].name}`)
  assert.equal(err.name, pr.errorClasses[kind].name)
  return err
}

const chat = (route, extra = {}) => router.chat({ ...hello, route, ...extra })

/** Provider errors carry who failed, the HTTP status and the trace of the one attempt. */
async function providerError(kind, status, providerCode) {
  const e = await expectKind(kind, chat(kind))
  assert.equal(e.provider, 'mock')
  assert.equal(e.model, kind)
  assert.equal(e.status, status)
  if (providerCode) assert.equal(e.providerCode, providerCode)
  assert.ok(e.trace, 'router errors carry the route trace')
  assert.equal(e.trace.route, kind)
  assert.deepEqual(e.trace.attempts.map((a) => a.outcome), [kind])
  assert.equal((await mock.log(kind)).length, 1, 'exactly one attempt reached the server')
  return e
}

test('rate_limited carries status, provider code, retryAfter and request id', async () => {
  const e = await providerError('rate_limited', 429, 'rate_limit_exceeded')
  assert.equal(e.retryAfter, 1)
  assert.match(e.requestId, /^req_mock/)
  assert.match(e.message, /rate_limited from mock\/rate_limited \(HTTP 429, rate_limit_exceeded\)/)
  assert.equal(e.detail.includes('Rate limit reached'), true)
  assert.equal(e.toJSON().kind, 'rate_limited')
  assert.equal(e.toJSON().retry_after, 1)
})
test('quota_exhausted', () => providerError('quota_exhausted', 429, 'insufficient_quota'))
test('overloaded', () => providerError('overloaded', 503))
test('server_error', () => providerError('server_error', 500))
test('auth', () => providerError('auth', 401, 'invalid_api_key'))
test('permission_denied', () => providerError('permission_denied', 403, 'unsupported_country_region_territory'))
test('content_filter', () => providerError('content_filter', 400, 'content_filter'))
test('context_length_exceeded', () => providerError('context_length_exceeded', 400, 'context_length_exceeded'))
test('invalid_request from the provider', () => providerError('invalid_request', 400))
test('not_found', () => providerError('not_found', 404, 'model_not_found'))

test('timeout: a hanging provider and a small first-token timeout', async () => {
  const t0 = Date.now()
  const e = await expectKind('timeout', chat('timeout'))
  assert.ok(Date.now() - t0 < 3000)
  assert.equal(e.provider, 'mock')
  assert.deepEqual(e.trace.attempts.map((a) => a.outcome), ['timeout'])
})

test('connection: the server drops the connection', async () => {
  const e = await expectKind('connection', chat('connection'))
  assert.equal(e.model, 'connection')
  assert.equal((await mock.log('connection'))[0].outcome, 'drop')
})

test('malformed_response: a body that is not JSON', async () => {
  const e = await expectKind('malformed_response', chat('malformed_response'))
  assert.equal(e.provider, 'mock')
})

test('invalid_output: json_schema request answered with prose', async () => {
  const response_format = {
    type: 'json_schema',
    json_schema: { name: 'answer', schema: { type: 'object', properties: { a: { type: 'string' } }, required: ['a'] } },
  }
  const e = await expectKind('invalid_output', chat('invalid_output', { response_format }))
  assert.equal(e.provider, 'mock')
  assert.equal(e.model, 'invalid_output')
  assert.equal(e.providerCode, 'json_parse')
  assert.deepEqual(e.trace.attempts.map((a) => [a.deployment, a.outcome]), [['invalid_output', 'invalid_output']])
})

test('budget_exceeded: per-request spend limit of $0 on a priced deployment', async () => {
  const e = await expectKind('budget_exceeded', chat('budget_exceeded'))
  assert.ok(e.trace)
  assert.equal((await mock.log('budget_exceeded')).length, 0, 'nothing was sent')
})

test('circuit_open: a forced-open breaker, then reset', async () => {
  router.setBreaker('circuit_open', 'forced_open')
  const st = router.deployments().find((d) => d.deployment === 'circuit_open')
  assert.equal(st.breaker.state, 'forced_open')
  const e = await expectKind('circuit_open', chat('circuit_open'))
  assert.equal(e.provider, 'mock')
  assert.equal((await mock.log('circuit_open')).length, 0)
  router.resetBreaker('circuit_open')
  const ok = await chat('circuit_open')
  assert.equal(ok.choices[0].message.content, 'echo: hello there')
})

test('no_route: an unknown route name', async () => {
  const e = await expectKind('no_route', chat('no-such-route'))
  assert.match(e.message, /no-such-route/)
})

test('cancelled: AbortSignal during a slow request', async () => {
  await mock.script('slow-cancel', { then: { latency_ms: 5000 } })
  const r = new Router(mockPolicy(mock.url, { deployments: { 'slow-cancel': {} }, routes: [{ name: 'c', deployments: ['slow-cancel'], ...fast }] }))
  const ac = new AbortController()
  const t0 = Date.now()
  setTimeout(() => ac.abort(), 100)
  await expectKind('cancelled', r.chat(hello, { signal: ac.signal }))
  assert.ok(Date.now() - t0 < 2000, 'cancellation is prompt')
  // An already-aborted signal never sends.
  await mock.script('never-sent', {})
  await expectKind('cancelled', r.chat({ ...hello, model: 'x' }, { signal: AbortSignal.abort() }))
})

test('stream_interrupted: cut after content, with the partial text', async () => {
  const events = []
  const e = await expectKind(
    'stream_interrupted',
    (async () => {
      for await (const ev of router.stream({ ...hello, route: 'stream_interrupted' })) events.push(ev)
    })(),
  )
  const text = events.filter((ev) => ev.type === 'content_delta').map((ev) => ev.text).join('')
  assert.ok(text.startsWith('one'), `content before the cut: ${text}`)
  assert.ok(e.partial, 'partial output attached')
  assert.equal(e.partial.text, text)
  assert.equal(e.provider, 'mock')
  assert.equal(e.model, 'stream_interrupted')
  assert.ok(e.trace)
})

test('guard_rejected: a reject guard finds a card number; nothing is sent', async () => {
  await mock.script('guarded', {})
  const policy = mockPolicy(mock.url, { deployments: { guarded: {} }, routes: [{ name: 'guarded', deployments: ['guarded'], ...fast }] })
  policy.guards = [{ name: 'no-cards', detect: ['credit_card'], action: 'reject' }]
  const r = new Router(policy)
  const e = await expectKind('guard_rejected', r.chat({ messages: [{ role: 'user', content: 'pay with 4111 1111 1111 1111' }] }))
  assert.ok(e instanceof pr.GuardRejectedError)
  assert.match(e.detail, /no-cards/)
  assert.match(e.detail, /credit_card/)
  assert.ok(!e.message.includes('4111'), e.message)
  assert.ok(!JSON.stringify(e.toJSON()).includes('4111'), 'the matched text is never in the error')
  assert.equal((await mock.log('guarded')).length, 0, 'nothing was sent')
})

test('state_unavailable: a budget held in a Redis where nothing listens, on_error: fail_closed; nothing is sent', async () => {
  await mock.script('state_unavailable', {})
  const policy = mockPolicy(mock.url, {
    deployments: { state_unavailable: { pricing: { input_per_mtok: 1, output_per_mtok: 2 } } },
    routes: [{ name: 'state_unavailable', deployments: ['state_unavailable'], ...fast }],
  })
  policy.budgets = [{ name: 'b', limit_usd: 10, period: 'day' }]
  policy.state = { redis: { url: `redis://127.0.0.1:${await freePort()}`, on_error: 'fail_closed', timeout: '50ms' } }
  const r = new Router(policy)
  // The first call finds the store down; the second already knows.
  for (let i = 0; i < 2; i++) {
    const t0 = Date.now()
    const e = await expectKind('state_unavailable', r.chat(hello))
    assert.ok(Date.now() - t0 < 2000, `refused promptly, not after ${Date.now() - t0} ms`)
    assert.ok(e instanceof pr.StateUnavailableError)
    assert.match(e.detail, /fail_closed/)
  }
  assert.equal((await mock.log('state_unavailable')).length, 0, 'nothing was sent')
})

test('config: invalid policies throw ConfigError listing every problem', () => {
  assert.throws(() => new Router('providers: [unclosed'), pr.ConfigError)
  let err
  try {
    new Router({ providers: {}, deployments: { d: { provider: 'nope', model: 'm' } }, routes: [{ name: 'r', deployments: ['d', 'ghost'] }] })
  } catch (e) {
    err = e
  }
  assert.ok(err instanceof pr.ConfigError)
  assert.equal(err.code, 'config')
  assert.match(err.message, /nope/)
  assert.match(err.message, /ghost/)
  assert.throws(() => Router.fromFile('/definitely/not/here.yaml'), (e) => e.code === 'config' && /cannot read/.test(e.message))
  assert.throws(() => router.setBreaker('circuit_open', 'sideways'), pr.ConfigError)
  assert.throws(() => router.setBreaker('ghost', 'open'), pr.ConfigError)
})

test('invalid_request: the core validates the request before sending', async () => {
  await expectKind('invalid_request', router.chat({ messages: [] }))
  await expectKind('invalid_request', router.chat({ messages: [{ role: 'user', content: 'x' }], temperature: 9 }))
  await expectKind('invalid_request', router.chat(undefined))
  const cyclic = { messages: [] }
  cyclic.self = cyclic
  await expectKind('invalid_request', router.chat(cyclic))
  assert.throws(() => router.plan({ messages: 'nope' }), pr.InvalidRequestError)
})

test('the error classes match the core ErrorKind list exactly', () => {
  assert.deepEqual(Object.keys(pr.errorClasses), [...pr.errorKinds])
  for (const [kind, Cls] of Object.entries(pr.errorClasses)) {
    assert.equal(Object.getPrototypeOf(Cls), PolyrouteError, kind)
    assert.equal(pr[Cls.name], Cls, `${Cls.name} is exported`)
  }
  // every kind is exercised by a test in this file
  const covered = new Set([...Object.keys(cases), 'no_route', 'cancelled', 'config', 'invalid_request', 'guard_rejected', 'state_unavailable'])
  assert.deepEqual([...pr.errorKinds].filter((k) => !covered.has(k)), [])
})
