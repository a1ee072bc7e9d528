// Streaming from JavaScript over real HTTP: events as an async iterable, invisible failover
// before the first content, stream_interrupted (with partial output) after it, restart mode,
// cancellation by `break`, `close()` and AbortSignal, many streams at once, and the openai-node
// forms: OpenAI chunks (`chunks()`) and the assembled answer (`finalChatCompletion()`).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Router, ChatStream, CancelledError, OverloadedError, StreamInterruptedError } from '../polyroute.js'
import { startMockServer, mockPolicy, fast, hello } from './harness.mjs'
import { createRequire } from 'node:module'

const native = createRequire(import.meta.url)('../index.js')

let mock
let router
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const scripts = {
  's-ok': { then: { text: 'alpha beta gamma delta' } },
  's-fail-early': { then: { status: 503 } },
  's-cut': { then: { text: 'one two three four five six', fault: { cut_after: { chunks: 3 } } } },
  's-slow': { then: { text: Array.from({ length: 100 }, (_, i) => `w${i}`).join(' '), chunk_delay_ms: 50 } },
  's-stall-first': { then: { fault: { stall_after: { chunks: 0 } } } },
  's-burst': { then: { text: Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ') } },
}
/** Clear the mock's log (and scripts: some tests replace them), then script every model again. */
async function rescript() {
  await mock.reset()
  for (const [name, script] of Object.entries(scripts)) await mock.script(name, script)
}

before(async () => {
  mock = await startMockServer()
  await rescript()
  // Priced, so the assembled answer of a stream has a cost to compare.
  const dep = (...names) => Object.fromEntries(names.map((n) => [n, { pricing: { input_per_mtok: 1, output_per_mtok: 2 } }]))
  router = new Router(
    mockPolicy(mock.url, {
      deployments: dep('s-ok', 's-fail-early', 's-cut', 's-slow', 's-stall-first', 's-burst'),
      routes: [
        { name: 'ok', deployments: ['s-ok'], ...fast },
        { name: 'failover', deployments: ['s-fail-early'], fallbacks: [{ deployments: ['s-ok'] }], ...fast },
        { name: 'stall-failover', deployments: ['s-stall-first'], fallbacks: [{ deployments: ['s-ok'] }], ...fast, timeouts: { first_token: '200ms', idle: '1s', total: '10s' } },
        { name: 'cut', deployments: ['s-cut'], fallbacks: [{ deployments: ['s-ok'] }], ...fast },
        { name: 'restart', deployments: ['s-cut'], fallbacks: [{ deployments: ['s-ok'] }], ...fast, stream_recovery: 'restart' },
        { name: 'slow', deployments: ['s-slow'], ...fast },
        { name: 'dead', deployments: ['s-fail-early'], ...fast },
        { name: 'burst', deployments: ['s-burst'], ...fast },
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
const chunkText = (chunks) => chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')

test('chunks(): OpenAI chunks after an invisible failover, ending like the non-streamed answer', async () => {
  await rescript()
  const s = router.stream({ ...hello, route: 'failover' })
  const [chunks, err] = await drain(s.chunks())
  assert.equal(err, null)
  const answer = await router.chat({ ...hello, route: 'failover' })
  assert.equal(chunkText(chunks), answer.choices[0].message.content)
  for (const c of chunks) {
    assert.equal(c.object, 'chat.completion.chunk')
    assert.equal(c.model, 's-ok')
    assert.equal(typeof c.id, 'string')
  }
  assert.equal(chunks[0].choices[0].delta.role, 'assistant')
  const last = chunks.at(-1)
  assert.deepEqual(last.choices, [], 'a usage chunk ends the stream, as with include_usage')
  assert.ok(last.usage.completion_tokens > 0)
  assert.equal(chunks.at(-2).choices[0].finish_reason, 'stop')
  assert.ok(chunks.slice(0, -2).every((c) => c.choices[0].index === 0 && c.choices[0].finish_reason === null))

  const final = await s.finalChatCompletion()
  assert.equal(final.object, 'chat.completion')
  assert.equal(final.choices[0].message.content, answer.choices[0].message.content)
  assert.equal(final.choices[0].finish_reason, 'stop')
  assert.equal(final.trace.served_by, 's-ok')
  assert.deepEqual(final.trace.attempts.map((a) => [a.deployment, a.outcome]), [
    ['s-fail-early', 'overloaded'],
    ['s-ok', 'ok'],
  ])
  assert.deepEqual(final.usage, last.usage)
  assert.equal(final.provider, 'mock')
  assert.ok(final.cost_usd > 0 && Math.abs(final.cost_usd - answer.cost_usd) < 1e-12, `${final.cost_usd} vs ${answer.cost_usd}`)
})

test('finalChatCompletion() alone reads the whole stream; an unservable one rejects with its error', async () => {
  await rescript()
  const final = await router.stream({ ...hello, route: 'failover' }).finalChatCompletion()
  assert.equal(final.choices[0].message.content, 'alpha beta gamma delta')
  assert.ok(final.usage.total_tokens > 0)
  await assert.rejects(router.stream({ ...hello, route: 'dead' }).finalChatCompletion(), OverloadedError)
})

test('a cut after content rejects chunks() and finalChatCompletion() with stream_interrupted', async () => {
  await rescript()
  const s = router.stream({ ...hello, route: 'cut' })
  const [chunks, err] = await drain(s.chunks())
  assert.ok(err instanceof StreamInterruptedError, String(err))
  assert.equal(chunkText(chunks), 'one two three')
  assert.equal(err.partial.text, 'one two three')
  const fin = await s.finalChatCompletion().catch((e) => e)
  assert.ok(fin instanceof StreamInterruptedError, String(fin))
  assert.equal(fin.code, 'stream_interrupted')

  // a restart cannot take back chunks already handed out: the iteration throws at the reset
  const [restarted, err2] = await drain(router.stream({ ...hello, route: 'restart' }).chunks())
  assert.equal(err2 && err2.code, 'stream_interrupted', String(err2))
  assert.equal(chunkText(restarted), 'one two three')
})

test('closing a stream early: finalChatCompletion() rejects with cancelled', async () => {
  await rescript()
  const s = router.stream({ ...hello, route: 'slow' })
  let n = 0
  for await (const c of s.chunks()) if (c.choices[0]?.delta.content && ++n === 2) break
  await assert.rejects(s.finalChatCompletion(), (e) => e instanceof CancelledError && e.code === 'cancelled')
  await waitDisconnected('s-slow', 1)
})

test('a stream is read as events or as chunks, not both', async () => {
  await rescript()
  const s = router.stream({ ...hello, route: 'ok' })
  await s.next()
  assert.throws(() => s.chunks(), TypeError)
  s.close()
  const t = router.stream({ ...hello, route: 'ok' })
  const it = t.chunks()
  await it.next()
  await assert.rejects(t.next(), TypeError)
  t.close()
})

test('a burst crosses from the core in few reads, in order; close() drops what had arrived', async () => {
  const words = Array.from({ length: 200 }, (_, i) => `w${i}`)
  const reads = { nextBatch: 0, nextChunkBatch: 0 }
  const originals = {}
  for (const name of Object.keys(reads)) {
    originals[name] = native.NativeStream.prototype[name]
    native.NativeStream.prototype[name] = function (...args) {
      reads[name] += 1
      return originals[name].apply(this, args)
    }
  }
  try {
    assert.equal(textOf(await collect(router.stream({ ...hello, route: 'burst' }))), words.join(' '))
    assert.ok(reads.nextBatch < 40, `${reads.nextBatch} reads for a 200-chunk burst`)
    let text = ''
    for await (const c of router.stream({ ...hello, route: 'burst' }).chunks()) text += c.choices[0]?.delta?.content ?? ''
    assert.equal(text, words.join(' '))
    assert.ok(reads.nextChunkBatch < 40, `${reads.nextChunkBatch} chunk reads for a 200-chunk burst`)
  } finally {
    Object.assign(native.NativeStream.prototype, originals)
  }
  const s = router.stream({ ...hello, route: 'burst' })
  let first
  for (;;) {
    const { value } = await s.next()
    if (value.type === 'content_delta') {
      first = value
      break
    }
  }
  assert.equal(first.text, 'w0')
  s.close()
  assert.deepEqual(await s.next(), { done: true, value: undefined })
})
