// Calls and streams driven by Node's own event loop (src/driver.rs): a request is sent and
// its answer read on the JS thread, libuv's epoll waits for the socket, and an answer or a
// chunk wakes nothing else. Every other async test runs this path too; these check that it
// is the path taken, and what only it has: timers and cancels waking a call through the
// driver's eventfd, a pending call keeping the process alive (and nothing else doing so),
// worker threads with their own driver, and the runtime path it replaces when turned off.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import { Router, CancelledError } from '../polyroute.js'
import { startMockServer, mockPolicy, fast, hello } from './harness.mjs'

const native = createRequire(import.meta.url)('../index.js')
const linux = process.platform === 'linux'
const polyroute = fileURLToPath(new URL('../polyroute.js', import.meta.url))

let mock
let router
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const words = (n) => Array.from({ length: n }, (_, i) => `w${i}`).join(' ')
const scripts = {
  'd-spaced': { then: { text: words(6), chunk_delay_ms: 15 } },
  'd-retry': { steps: [{ status: 503 }], then: { text: 'after the backoff' } },
  'd-slow': { then: { text: words(40), chunk_delay_ms: 100 } },
}

before(async () => {
  mock = await startMockServer()
  for (const [name, script] of Object.entries(scripts)) await mock.script(name, script)
  router = new Router(
    mockPolicy(mock.url, {
      deployments: { 'd-spaced': {}, 'd-retry': {}, 'd-slow': {} },
      routes: [
        { name: 'spaced', deployments: ['d-spaced'], ...fast },
        // A backoff of 40 ms: a tokio timer, which nothing the loop watches reports.
        { name: 'retry', deployments: ['d-retry'], ...fast, retry: { ...fast.retry, attempts_per_deployment: 2, base_delay: '40ms', max_delay: '40ms' } },
        { name: 'slow', deployments: ['d-slow'], ...fast },
      ],
    }),
  )
})
after(() => mock.close())

/** Requests sent since `before` by the core's blocking, runtime and loop-driven clients. */
function sentSince(before) {
  const now = native._requestsByPath()
  return { blocking: now[0] - before[0], runtime: now[1] - before[1], driven: now[2] - before[2] }
}

async function text(stream) {
  let out = ''
  for await (const ev of stream) if (ev.type === 'content_delta') out += ev.text
  return out
}

test('streams are opened and read by the loop, one after another on one pooled connection', { skip: !linux }, async () => {
  assert.equal(native._requestsByPath()[3], true, 'this thread has a driver')
  const before = native._requestsByPath()
  const texts = []
  for (let i = 0; i < 3; i++) {
    const stream = router.stream({ ...hello, route: 'spaced' })
    // The deltas arrive as the server spaced them, each read a wait on the driven socket.
    const seen = []
    for await (const ev of stream) if (ev.type === 'content_delta') seen.push(ev.text)
    assert.ok(seen.length >= 6, `one read per spaced delta (got ${seen.length})`)
    texts.push(seen.join(''))
  }
  const chunks = []
  for await (const ch of router.stream({ ...hello, route: 'spaced' }).chunks()) chunks.push(ch)
  assert.deepEqual(texts, [words(6), words(6), words(6)])
  assert.equal(chunks.map((c) => (c.choices[0] && c.choices[0].delta.content) || '').join(''), words(6))
  assert.deepEqual(sentSince(before), { blocking: 0, runtime: 0, driven: 4 })
  const conns = (await mock.log('d-spaced')).map((e) => e.connection)
  assert.equal(new Set(conns.slice(-4)).size, 1, 'the four streams took one kept-alive connection')
})

test('a retry after a backoff timer wakes the driven stream through the eventfd', { skip: !linux }, async () => {
  const before = native._requestsByPath()
  assert.equal(await text(router.stream({ ...hello, route: 'retry' })), 'after the backoff')
  assert.deepEqual(sentSince(before), { blocking: 0, runtime: 0, driven: 2 })
  assert.deepEqual((await mock.log('d-retry')).map((e) => e.step_index), [0, null])
})

test('close() from JS wakes a read waiting on its socket: it rejects as cancelled and the connection closes', { skip: !linux }, async () => {
  const stream = router.stream({ ...hello, route: 'slow' })
  await stream.ready()
  // One read for the rest of the stream, pending on the socket between the spaced deltas.
  const rest = stream.finalChatCompletion()
  await sleep(150)
  stream.close()
  await assert.rejects(rest, (e) => e instanceof CancelledError && e.code === 'cancelled')
  for (let i = 0; ; i++) {
    const log = await mock.log('d-slow')
    if (log.at(-1).client_disconnected) break
    assert.ok(i < 100, 'the server saw the client leave')
    await sleep(20)
  }
})

/** Run `code` (an ES module importing polyroute as `P`) in a fresh node; its exit and output. */
function child(code, env = {}) {
  const src = `import * as P from ${JSON.stringify(polyroute)}\nimport { createRequire } from 'node:module'\nconst N = createRequire(${JSON.stringify(polyroute)})('./index.js')\nconst mockUrl = ${JSON.stringify(mock.url)}\n${code}`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', src], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  })
  return { status: r.status, signal: r.signal, stdout: r.stdout.trim(), stderr: r.stderr }
}

const childPolicy = `{
  version: 1,
  providers: { mock: { kind: 'openai', base_url: mockUrl + '/v1', api_key: 'sk-test-not-a-real-key' } },
  deployments: { s: { provider: 'mock', model: 'd-spaced' } },
  routes: [{ name: 'r', deployments: ['s'] }],
}`

test('a pending read keeps the process alive, and nothing is left to hold it once the stream ends', async () => {
  // Top-level awaits only: were the loop not kept alive while the socket is watched, node
  // would exit with "unsettled top-level await" (code 13) before the first delta; were it
  // kept alive after, the child would time out.
  const r = child(`
const router = new P.Router(${childPolicy})
let out = ''
for await (const ev of router.stream({ messages: [{ role: 'user', content: 'hi' }] })) if (ev.type === 'content_delta') out += ev.text
const [, , driven, active] = N._requestsByPath()
console.log(JSON.stringify({ out, driven, active }))
`)
  assert.equal(r.signal, null, `the child exited by itself: ${r.stderr}`)
  assert.equal(r.status, 0, r.stderr)
  assert.deepEqual(JSON.parse(r.stdout), { out: words(6), driven: linux ? 1 : 0, active: linux })
})

test('turned off with POLYROUTE_ASYNC_DRIVEN=0, streams are read on the runtime as before', async () => {
  const r = child(
    `
const router = new P.Router(${childPolicy})
let out = ''
for await (const ev of router.stream({ messages: [{ role: 'user', content: 'hi' }] })) if (ev.type === 'content_delta') out += ev.text
const [blocking, runtime, driven, active] = N._requestsByPath()
const chat = (await router.chat({ messages: [{ role: 'user', content: 'hi' }] })).choices[0].message.content
// A panic while napi's runtime polls a future rejects with ConfigError there too.
const panic = await P._debugPanicAsync().then(() => 'resolved', (e) => e.constructor.name)
console.log(JSON.stringify({ out, blocking, runtime, driven, active, chat, panic, after: N._requestsByPath()[1] }))
`,
    { POLYROUTE_ASYNC_DRIVEN: '0' },
  )
  assert.equal(r.status, 0, r.stderr)
  assert.deepEqual(JSON.parse(r.stdout), { out: words(6), blocking: 0, runtime: 1, driven: 0, active: false, chat: words(6), panic: 'ConfigError', after: 2 })
})

/** A worker thread that streams from the mock with its own router (and so its own driver). */
function streamingWorker(route) {
  return new Worker(
    `
const { parentPort, workerData } = require('node:worker_threads')
const P = require(workerData.polyroute)
const N = require(require('node:path').join(require('node:path').dirname(workerData.polyroute), 'index.js'))
const router = new P.Router(workerData.policy)
;(async () => {
  let out = ''
  for await (const ev of router.stream({ messages: [{ role: 'user', content: 'hi' }], route: workerData.route })) {
    if (ev.type === 'content_delta') { out += ev.text; parentPort.postMessage({ delta: ev.text }) }
  }
  parentPort.postMessage({ out, driven: N._requestsByPath()[3] })
})()
`,
    {
      eval: true,
      workerData: {
        polyroute,
        route,
        policy: mockPolicy(mock.url, { deployments: { 'd-spaced': {}, 'd-slow': {} }, routes: [{ name: 'spaced', deployments: ['d-spaced'] }, { name: 'slow', deployments: ['d-slow'] }] }),
      },
    },
  )
}

test('worker threads drive their own streams; terminating one mid-stream leaves the others working', async () => {
  const done = await new Promise((resolve, reject) => {
    const w = streamingWorker('spaced')
    w.on('message', (m) => m.out !== undefined && resolve(m))
    w.on('error', reject)
  })
  assert.deepEqual(done, { out: words(6), driven: linux })

  const w = streamingWorker('slow')
  await new Promise((resolve, reject) => {
    w.once('message', resolve)
    w.on('error', reject)
  })
  // Its read is pending on a watched socket: the environment's cleanup drops it.
  assert.equal(await w.terminate(), 1)
  for (let i = 0; ; i++) {
    const log = await mock.log('d-slow')
    if (log.at(-1).client_disconnected) break
    assert.ok(i < 100, 'the terminated worker\'s request was closed')
    await sleep(20)
  }
  assert.equal(await text(router.stream({ ...hello, route: 'spaced' })), words(6))
})

test('an openai SDK stream (router.fetch) is opened and read by the loop', { skip: !linux }, async () => {
  const before = native._requestsByPath()
  const r = await router.fetch('http://polyroute.local/v1/chat/completions', {
    method: 'POST',
    body: JSON.stringify({ model: 'spaced', messages: hello.messages, stream: true }),
  })
  const body = await r.text()
  assert.match(body, /data: \[DONE\]/)
  const whole = await router.fetch('http://polyroute.local/v1/chat/completions', {
    method: 'POST',
    body: JSON.stringify({ model: 'spaced', messages: hello.messages }),
  })
  assert.equal(whole.status, 200)
  assert.deepEqual(sentSince(before), { blocking: 0, runtime: 0, driven: 2 })
})

test('calls are driven too: one after another on one connection, many at once each on its own', { skip: !linux }, async () => {
  await mock.script('d-spaced', { then: { text: 'whole' } })
  try {
    const before = native._requestsByPath()
    const one = []
    for (let i = 0; i < 3; i++) one.push((await router.chat({ ...hello, route: 'spaced' })).choices[0].message.content)
    // Answered after 100 ms each: all eight in flight together, each on a connection.
    await mock.script('d-spaced', { then: { text: 'whole', latency_ms: 100 } })
    const many = await Promise.all(Array.from({ length: 8 }, () => router.chat({ ...hello, route: 'spaced' })))
    assert.deepEqual([...one, ...many.map((r) => r.choices[0].message.content)], Array(11).fill('whole'))
    assert.deepEqual(sentSince(before), { blocking: 0, runtime: 0, driven: 11 })
    const conns = (await mock.log('d-spaced')).slice(-11).map((e) => e.connection)
    assert.equal(new Set(conns.slice(0, 3)).size, 1, 'one after another reused one connection')
    assert.equal(new Set(conns.slice(3)).size, 8, `the eight at once were in flight together: ${JSON.stringify(conns)}`)
  } finally {
    await mock.script('d-spaced', scripts['d-spaced'])
  }
})
