// Routing behaviour seen from JavaScript over real HTTP: failover, retries (attempt counts and
// gaps from the mock server's log), breakers and their reset, plan, reload, policy files,
// routing metadata (`polyroute`) and `model` resolution, budgets, metrics, event callbacks and concurrent use.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Router, ConfigError, ServerError } from '../polyroute.js'
import { startMockServer, mockPolicy, fast, hello } from './harness.mjs'

let mock
before(async () => {
  mock = await startMockServer()
})
after(() => mock.close())

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
/** Events are delivered asynchronously (a core thread, then the event loop): poll. */
async function waitFor(cond, what, ms = 3000) {
  for (const t0 = Date.now(); Date.now() - t0 < ms; await sleep(10)) if (cond()) return
  assert.fail(`timed out waiting for ${what}`)
}

test('failover: a failing primary falls over to the next tier', async () => {
  await mock.script('fo-primary', { then: { status: 503 } })
  await mock.script('fo-backup', { then: { text: 'from the backup' } })
  const router = new Router(
    mockPolicy(mock.url, {
      deployments: { 'fo-primary': {}, 'fo-backup': {} },
      routes: [{ name: 'chat', deployments: ['fo-primary'], fallbacks: [{ name: 'backup', deployments: ['fo-backup'] }], ...fast, retry: { ...fast.retry, attempts_per_deployment: 2 } }],
    }),
  )
  const r = await router.chat(hello)
  assert.equal(r.choices[0].message.content, 'from the backup')
  assert.equal(r.object, 'chat.completion')
  assert.equal(r.provider, 'mock')
  assert.equal(r.model, 'fo-backup')
  assert.equal(r.trace.served_by, 'fo-backup')
  assert.deepEqual(r.trace.attempts.map((a) => [a.deployment, a.outcome]), [
    ['fo-primary', 'overloaded'],
    ['fo-primary', 'overloaded'],
    ['fo-backup', 'ok'],
  ])
  assert.match(r.trace.explanation, /fo-backup/)
  assert.equal((await mock.log('fo-primary')).length, 2, 'two attempts on the primary (retry), then failover')
  assert.equal((await mock.log('fo-backup')).length, 1)
})

test('retries honour Retry-After and stop at the first success', async () => {
  await mock.script('retry-me', { steps: [{ status: 429, error_code: 'rate_limit_exceeded', retry_after: '0.3' }, { status: 500 }], then: { text: 'third time lucky' } })
  const router = new Router(
    mockPolicy(mock.url, {
      deployments: { 'retry-me': {} },
      routes: [{ name: 'r', deployments: ['retry-me'], ...fast, retry: { ...fast.retry, attempts_per_deployment: 3 } }],
    }),
  )
  const r = await router.chat(hello)
  assert.equal(r.choices[0].message.content, 'third time lucky')
  const log = await mock.log('retry-me')
  assert.deepEqual(log.map((e) => e.outcome), ['status:429', 'status:500', 'ok'])
  const gap = log[1].received_ms - log[0].received_ms
  assert.ok(gap >= 290, `second attempt waited for Retry-After (gap ${gap} ms)`)
  assert.ok(gap < 2000, `but not much longer (gap ${gap} ms)`)
  assert.deepEqual(r.trace.attempts.map((a) => a.outcome), ['rate_limited', 'server_error', 'ok'])
})

test('breaker opens after consecutive failures, skips the deployment, and resets', async () => {
  await mock.script('brk-primary', { then: { status: 500 } })
  await mock.script('brk-backup', {})
  const router = new Router(
    mockPolicy(mock.url, {
      deployments: { 'brk-primary': {}, 'brk-backup': {} },
      routes: [{ name: 'r', deployments: ['brk-primary'], fallbacks: [{ deployments: ['brk-backup'] }], ...fast }],
      breaker: { consecutive_failures: 2, open_for: '60s', max_open_for: '120s' },
    }),
  )
  const events = []
  const unsubscribe = router.subscribe((ev) => events.push(ev))
  for (let i = 0; i < 2; i++) assert.equal((await router.chat(hello)).model, 'brk-backup')
  const st = router.deployments().find((d) => d.deployment === 'brk-primary')
  assert.equal(st.breaker.state, 'open')
  assert.equal(st.breaker.trips, 1)
  assert.equal(st.breaker.last_error, 'server_error')
  assert.ok(st.breaker.retry_in_ms > 50_000)
  const before = (await mock.log('brk-primary')).length
  const r = await router.chat(hello)
  assert.equal(r.model, 'brk-backup')
  assert.equal((await mock.log('brk-primary')).length, before, 'an open breaker costs no round trip')
  assert.match(r.trace.candidates.find((c) => c.deployment === 'brk-primary').skipped, /breaker/)
  router.resetBreaker('brk-primary')
  assert.equal(router.deployments().find((d) => d.deployment === 'brk-primary').breaker.state, 'closed')
  const last = await router.chat(hello)
  assert.equal((await mock.log('brk-primary')).length, before + 1, 'after reset the primary is tried again')
  const finished = (id) => events.some((e) => e.type === 'request_finished' && e.request_id === id)
  await waitFor(() => finished(last.trace.request_id), 'the last request_finished event')
  const changes = events.filter((e) => e.type === 'breaker_changed' && e.deployment === 'brk-primary')
  assert.deepEqual(changes.map((e) => [e.from, e.to]).slice(0, 2), [
    ['closed', 'open'],
    ['open', 'closed'],
  ])
  assert.ok(events.some((e) => e.type === 'fallback_taken' && e.from === 'brk-primary' && e.to === 'brk-backup'))
  assert.equal(unsubscribe(), true)
  assert.equal(unsubscribe(), false)
  const n = events.length
  const after = await router.chat(hello)
  await sleep(200)
  assert.equal(events.length, n, 'no events after unsubscribe')
  assert.ok(!finished(after.trace.request_id))
})

test('event callbacks: one request, in order; a throwing callback only warns', async () => {
  await mock.script('ev-dep', {})
  const router = new Router(mockPolicy(mock.url, { deployments: { 'ev-dep': {} }, routes: [{ name: 'ev', deployments: ['ev-dep'], ...fast }] }))
  const events = []
  router.subscribe((ev) => events.push(ev))
  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  const stop = router.subscribe(() => {
    throw new Error('callback bug')
  })
  const r = await router.chat(hello)
  // Each subscriber has its own delivery thread: wait for both to drain (4 events each).
  for (let i = 0; i < 200 && (events.length < 4 || warnings.length < 4); i++) await sleep(10)
  await sleep(50)
  process.off('warning', onWarning)
  stop()
  assert.deepEqual(events.map((e) => e.type), ['request_started', 'attempt_started', 'attempt_finished', 'request_finished'])
  assert.ok(events.every((e) => e.request_id === r.trace.request_id))
  assert.equal(events[3].outcome, 'ok')
  assert.equal(warnings.filter((w) => /callback bug/.test(w.message)).length, 4, 'each throw was reported, none was fatal')
})

test('plan: where a request would go, without sending it', async () => {
  await mock.script('plan-a', {})
  const router = new Router(
    mockPolicy(mock.url, {
      deployments: { 'plan-a': {}, 'plan-b': {} },
      routes: [
        { name: 'support', match: { feature: ['support'] }, deployments: ['plan-b'], ...fast },
        { name: 'general', deployments: ['plan-a', 'plan-b'], ...fast },
      ],
    }),
  )
  const p = router.plan({ ...hello, route: 'general' })
  assert.equal(p.route, 'general')
  assert.deepEqual(p.order, ['plan-a', 'plan-b'])
  assert.equal(typeof p.explanation, 'string')
  const q = router.plan({ ...hello, polyroute: { feature: 'support' } })
  assert.equal(q.route, 'support')
  assert.match(q.matched, /feature=support/)
  assert.equal((await mock.log('plan-a')).length, 0)
})

test('reload: swaps atomically; an invalid policy is rejected and the old one keeps serving', async () => {
  await mock.script('rl-one', { then: { text: 'one' } })
  await mock.script('rl-two', { then: { text: 'two' } })
  const mk = (dep) => mockPolicy(mock.url, { deployments: { [dep]: {} }, routes: [{ name: 'r', deployments: [dep], ...fast }] })
  const router = new Router(mk('rl-one'))
  assert.equal((await router.chat(hello)).choices[0].message.content, 'one')
  const events = []
  router.subscribe((e) => events.push(e))
  assert.throws(() => router.reload({ routes: [{ name: 'r', deployments: ['ghost'] }] }), ConfigError)
  assert.equal((await router.chat(hello)).choices[0].message.content, 'one')
  router.reload(mk('rl-two'))
  assert.equal((await router.chat(hello)).choices[0].message.content, 'two')
  const pol = router.policy()
  assert.deepEqual(Object.keys(pol.deployments), ['rl-two'])
  assert.ok(!JSON.stringify(pol).includes('sk-test-not-a-real-key'), 'literal keys are never returned')
  const reloads = () => events.filter((e) => e.type === 'policy_reloaded').map((e) => e.ok)
  await waitFor(() => reloads().length === 2, 'two policy_reloaded events')
  assert.deepEqual(reloads(), [false, true])
})

test('Router.fromFile reads YAML; policies may be YAML text', async () => {
  await mock.script('yaml-dep', { then: { text: 'from yaml' } })
  const yaml = `
providers:
  mock: {kind: openai, base_url: "${mock.url}/v1", api_key: sk-test-not-a-real-key}
deployments:
  yaml-dep: {provider: mock, model: yaml-dep}
routes:
  - {name: chat, deployments: [yaml-dep], timeouts: {first_token: 2s, total: 10s}, retry: {max_retry_after: 1s}}
default_route: chat
`
  const dir = mkdtempSync(path.join(tmpdir(), 'polyroute-node-'))
  const file = path.join(dir, 'policy.yaml')
  writeFileSync(file, yaml)
  const a = Router.fromFile(file)
  assert.equal((await a.chat(hello)).choices[0].message.content, 'from yaml')
  const b = new Router(yaml)
  assert.equal((await b.chat(hello)).choices[0].message.content, 'from yaml')
})

test('request shape: openai-node body, route shortcut, polyroute routes, metadata is forwarded', async () => {
  await mock.script('shape-a', { then: { text: 'A' } })
  await mock.script('shape-b', { then: { text: 'B' } })
  const router = new Router(
    mockPolicy(mock.url, {
      deployments: { 'shape-a': {}, 'shape-b': {} },
      routes: [
        { name: 'a', deployments: ['shape-a'], ...fast },
        { name: 'b', match: { tenant: ['acme'] }, deployments: ['shape-b'], ...fast },
      ],
    }),
  )
  const body = {
    messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }],
    max_tokens: 50,
    temperature: 0.2,
    stop: ['\n\n'],
    seed: 7,
  }
  const answer = async (req) => (await router.chat(req)).choices[0].message.content
  // An explicit route makes an unknown `model` a mere preference (SDKs insist on one).
  assert.equal(await answer({ ...body, model: 'gpt-4o', route: 'b' }), 'B')
  assert.equal(await answer({ ...body, polyroute: { tenant: 'acme' } }), 'B')
  // OpenAI's own `metadata` is the provider's business: forwarded, never read for routing.
  assert.equal(await answer({ ...body, metadata: { tenant: 'acme' } }), 'A')
  assert.equal(await answer(body), 'A')
  const [sent, forwarded] = (await mock.log('shape-b')).map((e) => e.body)
  assert.equal(sent.max_completion_tokens, 50, 'max_tokens, as current OpenAI models want it')
  assert.equal(sent.seed, 7)
  assert.deepEqual(sent.stop, ['\n\n'])
  assert.equal(sent.messages.length, 2)
  assert.equal(sent.polyroute, undefined, 'routing metadata is not forwarded')
  assert.equal(sent.route, undefined)
  assert.equal(sent.model, 'shape-b', "the deployment's model, not the caller's")
  assert.equal(forwarded.polyroute, undefined)
  assert.equal((await mock.log('shape-a'))[0].body.metadata.tenant, 'acme')
})

test('model names a route, else a deployment (tried first), else a served model; unknown is no_route', async () => {
  for (const n of ['mdl-a', 'mdl-b', 'mdl-served']) await mock.script(n, { then: { text: n } })
  const router = new Router(
    mockPolicy(mock.url, {
      deployments: { 'mdl-a': {}, 'mdl-b': {}, 'mdl-x': { model: 'mdl-served' } },
      routes: [
        { name: 'main', deployments: ['mdl-a'], fallbacks: [{ deployments: ['mdl-b'] }], ...fast },
        { name: 'other', deployments: ['mdl-x'], ...fast },
      ],
    }),
  )
  const traceFor = async (model) => (await router.chat({ ...hello, model })).trace
  assert.equal((await traceFor('other')).served_by, 'mdl-x')
  const dep = await traceFor('mdl-b')
  assert.equal(dep.route, 'main')
  assert.deepEqual(dep.attempts.map((a) => a.deployment), ['mdl-b'], 'the named deployment first')
  assert.deepEqual(router.plan({ ...hello, model: 'mdl-b' }).order, ['mdl-b', 'mdl-a'], "the route's others stay fallbacks")
  const byModel = await traceFor('mdl-served')
  assert.deepEqual([byModel.route, byModel.served_by], ['other', 'mdl-x'])
  const e = await router.chat({ ...hello, model: 'gpt-4o' }).catch((e) => e)
  assert.equal(e.code, 'no_route')
  assert.match(e.message, /gpt-4o/)
})

test('budgets, route costs and Prometheus metrics', async () => {
  await mock.script('cost-dep', { then: { text: 'one two three', usage: { input_tokens: 1000, output_tokens: 500 } } })
  const policy = mockPolicy(mock.url, {
    deployments: { 'cost-dep': { pricing: { input_per_mtok: 1, output_per_mtok: 2 } } },
    routes: [{ name: 'paid', deployments: ['cost-dep'], ...fast }],
  })
  policy.budgets = [{ name: 'daily', limit_usd: 0.003, period: 'day' }]
  const router = new Router(policy)
  // max_tokens keeps the pre-send reservation (worst-case output) small.
  const req = { ...hello, max_tokens: 100 }
  const r = await router.chat(req)
  assert.ok(Math.abs(r.cost_usd - 0.002) < 1e-9, `cost ${r.cost_usd}`)
  const [b] = router.budgets()
  assert.equal(b.budget, 'daily')
  assert.equal(b.unit, 'usd')
  assert.ok(Math.abs(b.spent - 0.002) < 1e-9, `spent ${b.spent}`)
  assert.ok(Math.abs(b.remaining - 0.001) < 1e-9, `remaining ${b.remaining}`)
  const [rc] = router.routeCosts()
  assert.equal(rc.route, 'paid')
  assert.equal(rc.successes, 1)
  await router.chat(req)
  // $0.004 spent of $0.003: the ceiling is reached, the next request is refused unsent.
  const e = await router.chat(req).catch((e) => e)
  assert.equal(e.code, 'budget_exceeded')
  assert.equal(e.budget.budget, 'daily')
  assert.equal(e.budget.unit, 'usd')
  assert.equal(e.budget.limit, 0.003)
  assert.ok(e.budget.remaining <= 0 && e.budget.needed > 0 && e.budget.resets_at > Date.now() / 1000)
  assert.deepEqual(e.toJSON().budget, e.budget)
  assert.equal((await mock.log('cost-dep')).length, 2)
  const text = router.metricsText()
  assert.match(text, /# TYPE polyroute_requests_total counter/)
  assert.match(text, /polyroute_requests_total\{[^}]*route="paid"[^}]*outcome="ok"[^}]*\} 2/)
})

test('concurrent use: 200 requests in parallel on one router, each gets its own answer', async () => {
  await mock.script('conc-flaky', { then: { status: 500 } })
  await mock.script('conc-ok', { then: { latency_ms: 20 } })
  const router = new Router(
    mockPolicy(mock.url, {
      deployments: { 'conc-flaky': {}, 'conc-ok': {} },
      routes: [{ name: 'r', deployments: ['conc-flaky'], fallbacks: [{ deployments: ['conc-ok'] }], ...fast }],
    }),
  )
  const t0 = Date.now()
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) => router.chat({ messages: [{ role: 'user', content: `question ${i}` }] })),
  )
  results.forEach((r, i) => {
    assert.equal(r.choices[0].message.content, `echo: question ${i}`)
    assert.equal(r.trace.served_by, 'conc-ok')
  })
  assert.ok(Date.now() - t0 < 10_000, 'requests overlap instead of queueing')
  assert.equal((await mock.log('conc-ok')).length, 200)
})

test('a router can be garbage-collected while requests are in flight', async () => {
  await mock.script('gc-dep', { then: { latency_ms: 50, text: 'still here' } })
  const p = new Router(mockPolicy(mock.url, { deployments: { 'gc-dep': {} }, routes: [{ name: 'r', deployments: ['gc-dep'], ...fast }] })).chat(hello)
  if (global.gc) global.gc()
  assert.equal((await p).choices[0].message.content, 'still here')
})

test('errors thrown for exhausted routes carry the whole trace', async () => {
  await mock.script('all-bad-1', { then: { status: 500 } })
  await mock.script('all-bad-2', { then: { status: 500 } })
  const router = new Router(
    mockPolicy(mock.url, {
      deployments: { 'all-bad-1': {}, 'all-bad-2': {} },
      routes: [{ name: 'r', deployments: ['all-bad-1'], fallbacks: [{ deployments: ['all-bad-2'] }], ...fast }],
    }),
  )
  const e = await router.chat(hello).catch((e) => e)
  assert.ok(e instanceof ServerError)
  assert.deepEqual(e.trace.attempts.map((a) => a.deployment), ['all-bad-1', 'all-bad-2'])
  assert.equal(e.model, 'all-bad-2')
})
