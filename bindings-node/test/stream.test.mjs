// Streaming from JavaScript over real HTTP: events as an async iterable, invisible failover
// before the first content, stream_interrupted (with partial output) after it, restart mode,
// cancellation by `break`, `close()` and AbortSignal, and many streams at once.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Router, ChatStream, CancelledError, OverloadedError, StreamInterruptedError } from '../polyroute.js'
import { startMockServer, mockPolicy, fast, hello } from './harness.mjs'

let mock
let router
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

before(async () => {
  mock = await startMockServer()
  await mock.script('s-ok', { then: { text: 'alpha beta gamma delta' } })
  await mock.script('s-fail-early', { then: { status: 503 } })
  await mock.script('s-cut', { then: { text: 'one two three four five six', fault: { cut_after: { chunks: 3 } } } })
  await mock.script('s-slow', { then: { text: Array.from({ length: 100 }, (_, i) => `w${i}`).join(' '), chunk_delay_ms: 50 } })
  await mock.script('s-stall-first', { then: { fault: { stall_after: { chunks: 0 } } } })
  const dep = (...names) => Object.fromEntries(names.map((n) => [n, {}]))
  router = new Router(
    mockPolicy(mock.url, {
      deployments: dep('s-ok', 's-fail-early', 's-cut', 's-slow', 's-stall-first'),
      routes: [
        { name: 'ok', deployments: ['s-ok'], ...fast },
        { name: 'failover', deployments: ['s-fail-early'], fallbacks: [{ deployments: ['s-ok'] }], ...fast },
        { name: 'stall-failover', deployments: ['s-stall-first'], fallbacks: [{ deployments: ['s-ok'] }], ...fast, timeouts: { first_token: '200ms', idle: '1s', total: '10s' } },
        { name: 'cut', deployments: ['s-cut'], fallbacks: [{ deployments: ['s-ok'] }], ...fast },
        { name: 'restart', deployments: ['s-cut'], fallbacks: [{ deployments: ['s-ok'] }], ...fast, stream_recovery: 'restart' },
        { name: 'slow', deployments: ['s-slow'], ...fast },
        { name: 'dead', deployments: ['s-fail-early'], ...fast },
      ],
    }),
  )
})
after(() => mock.close())

async function collect(stream) {
  const events = []
  for await (const ev of stream) events.push(ev)
  return events
}
const textOf = (events) => events.filter((e) => e.type === 'content_delta').map((e) => e.text).join('')

test('events arrive as an async iterable, in order, with a trace at the end', async () => {
  const s = router.stream({ ...hello, route: 'ok', stream_options: { include_usage: true } })
  assert.ok(s instanceof ChatStream)
  assert.equal(s.trace, null, 'no trace before the end')
  const events = await collect(s)
  assert.equal(events[0].type, 'start')
  assert.equal(textOf(events), 'alpha beta gamma delta')
  const finish = events.find((e) => e.type === 'finish')
  assert.equal(finish.reason, 'stop')
  assert.ok(events.findIndex((e) => e.type === 'finish') > events.findIndex((e) => e.type === 'content_delta'))
  const usage = events.find((e) => e.type === 'usage')
  assert.ok(usage && usage.usage.completion_tokens > 0, 'usage event')
  assert.equal(s.trace.served_by, 's-ok')
  assert.equal((await mock.log('s-ok')).at(-1).stream, true)
  // a finished stream stays finished
  assert.deepEqual(await s.next(), { done: true, value: undefined })
})

test('failover before the first content is invisible', async () => {
  const s = router.stream({ ...hello, route: 'failover' })
  await s.ready()
  const events = await collect(s)
  assert.equal(textOf(events), 'alpha beta gamma delta')
  assert.ok(!events.some((e) => e.type === 'reset'))
  assert.deepEqual(s.trace.attempts.map((a) => [a.deployment, a.outcome]), [
    ['s-fail-early', 'overloaded'],
    ['s-ok', 'ok'],
  ])
})

test('a stalled first token fails over too', async () => {
  const events = await collect(router.stream({ ...hello, route: 'stall-failover' }))
  assert.equal(textOf(events), 'alpha beta gamma delta')
})

test('after content, a cut ends the stream with stream_interrupted and the partial text', async () => {
  const s = router.stream({ ...hello, route: 'cut' })
  const events = []
  const err = await (async () => {
    for await (const ev of s) events.push(ev)
  })().catch((e) => e)
  assert.ok(err instanceof StreamInterruptedError, String(err))
  assert.equal(err.code, 'stream_interrupted')
  assert.equal(textOf(events), 'one two three')
  assert.equal(err.partial.text, 'one two three')
  assert.deepEqual(err.trace.attempts.map((a) => [a.deployment, a.outcome]), [['s-cut', 'stream_interrupted']])
  assert.equal(s.trace.attempts.length, 1, 'the stream keeps the trace too')
  assert.deepEqual(await s.next(), { done: true, value: undefined })
})

test('stream_recovery: restart sends a reset event and the whole answer again', async () => {
  const events = await collect(router.stream({ ...hello, route: 'restart' }))
  const reset = events.findIndex((e) => e.type === 'reset')
  assert.ok(reset > 0, 'reset event')
  assert.equal(textOf(events.slice(0, reset)), 'one two three')
  assert.equal(textOf(events.slice(reset)), 'alpha beta gamma delta')
})

test('no deployment can serve: the first iteration (and ready()) throws the typed error', async () => {
  const s = router.stream({ ...hello, route: 'dead' })
  await assert.rejects(s.ready(), OverloadedError)
  await assert.rejects(s.next(), OverloadedError)
  assert.deepEqual(await s.next(), { done: true, value: undefined })
  // never iterated: no unhandled rejection either
  router.stream({ ...hello, route: 'dead' })
  await sleep(100)
})

async function waitDisconnected(name, n) {
  for (let i = 0; i < 100; i++) {
    const log = await mock.log(name)
    if (log.length >= n && log.slice(0, n).every((e) => e.client_disconnected)) return log
    await sleep(20)
  }
  assert.fail(`the mock server never saw ${name} disconnect`)
}

test('break inside for-await cancels the request', async () => {
  await mock.reset()
  await mock.script('s-slow', { then: { text: Array.from({ length: 100 }, (_, i) => `w${i}`).join(' '), chunk_delay_ms: 50 } })
  const t0 = Date.now()
  let seen = 0
  for await (const ev of router.stream({ ...hello, route: 'slow' })) {
    if (ev.type === 'content_delta' && ++seen === 2) break
  }
  assert.ok(Date.now() - t0 < 2000)
  const log = await waitDisconnected('s-slow', 1)
  assert.equal(log[0].finished_ms === null || log[0].finished_ms - log[0].received_ms < 2000, true)
})

test('AbortSignal cancels a stream mid-way: the pending next() rejects with CancelledError', async () => {
  await mock.reset()
  await mock.script('s-slow', { then: { text: Array.from({ length: 100 }, (_, i) => `w${i}`).join(' '), chunk_delay_ms: 50 } })
  const ac = new AbortController()
  const s = router.stream({ ...hello, route: 'slow' }, { signal: ac.signal })
  const events = []
  const err = await (async () => {
    for await (const ev of s) {
      events.push(ev)
      if (ev.type === 'content_delta' && events.filter((e) => e.type === 'content_delta').length === 3) ac.abort()
    }
  })().catch((e) => e)
  assert.ok(err instanceof CancelledError, String(err))
  assert.ok(textOf(events).startsWith('w0 w1 w2'))
  await waitDisconnected('s-slow', 1)
})

test('close() before the first iteration cancels the open', async () => {
  await mock.reset()
  await mock.script('s-slow-open', { then: { latency_ms: 3000 } })
  const r = new Router(mockPolicy(mock.url, { deployments: { 's-slow-open': {} }, routes: [{ name: 'x', deployments: ['s-slow-open'], ...fast }] }))
  const s = r.stream(hello)
  await sleep(100)
  s.close()
  s.close()
  assert.deepEqual(await s.next(), { done: true, value: undefined })
  await assert.rejects(s.ready(), CancelledError)
  await waitDisconnected('s-slow-open', 1)
})

test('an aborted signal never opens a stream', async () => {
  const s = router.stream({ ...hello, route: 'ok' }, { signal: AbortSignal.abort() })
  await assert.rejects(s.next(), CancelledError)
})

test('50 concurrent streams on one router each get their own answer', async () => {
  await mock.script('s-conc', { then: { chunk_delay_ms: 5 } })
  const r = new Router(mockPolicy(mock.url, { deployments: { 's-conc': {} }, routes: [{ name: 'x', deployments: ['s-conc'], ...fast }] }))
  const texts = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => textOf(await collect(r.stream({ messages: [{ role: 'user', content: `stream number ${i}` }] })))),
  )
  texts.forEach((t, i) => assert.equal(t, `echo: stream number ${i}`))
})
