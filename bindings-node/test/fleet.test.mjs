// A fleet: two Node processes (child_process.fork), each with its own Router on the same
// policy, share one dollar budget through a real redis-server, by policy alone
// (`state.redis`). Each request reserves its worst case ($0.020: 20 output tokens at
// $1000/Mtok) and settles what the mock reports ($0.015: 15 output tokens), so a $0.50 budget
// admits about 33 requests for the whole fleet, not 33 per process. Afterwards: spend within
// the limit and at least 90 % used, every process's budgets() shows the fleet's figure, and
// the provider saw exactly the requests that succeeded.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startMockServer, startRedis, mockPolicy, fast } from './harness.mjs'

const LIMIT_USD = 0.5
const SETTLED_USD = 0.015
const WORKERS = 2
const CONCURRENCY = 8
const SYNC_MS = 100

let mock
let redis
before(async () => {
  mock = await startMockServer()
  redis = await startRedis()
})
after(() => {
  mock.close()
  redis.close()
})

function nextMessage(child, type) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker ${child.pid}: no ${type} message within 180 s`)), 180_000)
    const onMessage = (m) => {
      if (m.type !== type) return
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
      resolve(m)
    }
    const onExit = (code) => {
      clearTimeout(timer)
      reject(new Error(`worker ${child.pid} exited (${code}) before its ${type} message`))
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

test('two processes share one $ budget through Redis: never above the limit, refused requests never sent', async () => {
  const model = `fleet-${process.pid}-${Date.now()}`
  await mock.script(model, { then: { usage: { input_tokens: 10, output_tokens: 15 }, latency_ms: 50 } })
  const policy = mockPolicy(mock.url, {
    deployments: { [model]: { pricing: { input_per_mtok: 0, output_per_mtok: 1000 } } },
    routes: [{ name: 'chat', deployments: [model], ...fast }],
  })
  policy.budgets = [{ name: 'fleet', limit_usd: LIMIT_USD, period: 'day' }]
  // fail_closed and a generous timeout: on a loaded test machine a slow store must show up as
  // an error here, not as a process quietly holding the budget locally (on_error: local).
  policy.state = {
    redis: { url: redis.url, key_prefix: `polyroute-test:${model}:`, timeout: '2s', on_error: 'fail_closed', sync_interval: `${SYNC_MS}ms` },
  }

  const worker = fileURLToPath(new URL('./fleet-worker.mjs', import.meta.url))
  const children = Array.from({ length: WORKERS }, () => fork(worker, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  try {
    const ready = children.map((c) => nextMessage(c, 'ready'))
    for (const c of children) c.send({ policy, concurrency: CONCURRENCY, maxTokens: 20 })
    await Promise.all(ready)
    const done = children.map((c) => nextMessage(c, 'done'))
    for (const c of children) c.send({ go: true })
    const results = await Promise.all(done)
    const reported = children.map((c) => nextMessage(c, 'budgets'))
    for (const c of children) c.send({ waitMs: SYNC_MS * 5 })
    const views = await Promise.all(reported)

    for (const r of results) {
      assert.deepEqual(r.errors, [], JSON.stringify(r))
      // Both took part, and both were refused once the fleet's budget was gone.
      assert.ok(r.ok > 0 && r.refused >= 3 * CONCURRENCY, JSON.stringify(r))
    }
    const successes = results.reduce((n, r) => n + r.ok, 0)
    const spent = results.reduce((n, r) => n + r.cost, 0)
    assert.ok(Math.abs(spent - successes * SETTLED_USD) < 1e-9, `${spent} vs ${successes} x ${SETTLED_USD}`)
    // Never above the limit (one process alone would have been allowed all of it), and at
    // least 90 % of it used.
    assert.ok(spent <= LIMIT_USD + 1e-9, `overspent: ${spent} > ${LIMIT_USD} (${JSON.stringify(results)})`)
    assert.ok(spent >= 0.9 * LIMIT_USD, `underused: ${spent} of ${LIMIT_USD} (${JSON.stringify(results)})`)
    // Every router's budgets() shows the fleet's settled spend, with nothing left held.
    for (const v of views) {
      assert.deepEqual(v.errors, [])
      assert.equal(v.budgets.length, 1, JSON.stringify(v.budgets))
      const [b] = v.budgets
      assert.equal(b.budget, 'fleet')
      assert.equal(b.limit, LIMIT_USD)
      assert.ok(Math.abs(b.spent - spent) < 1e-6, `${JSON.stringify(b)} vs ${spent}`)
      assert.ok(Math.abs(b.reserved) < 1e-9, JSON.stringify(b))
    }
    // Refused requests never reached the provider.
    assert.equal((await mock.log(model)).length, successes)
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
  }
})
