// polyroute (Node binding) vs the official `openai` package vs raw `fetch` and undici's
// `request` (the fastest HTTP client Node has; issue 18's reference), against the same
// loopback mock server (tests/mock-server, release build). Run through run.sh.
//
// What is measured, for each client, doing the same work (send an OpenAI chat request,
// get the parsed answer). `socket` is HTTP/1.1 by hand on one kept-alive `net` socket, the
// floor issue 18's "adds at most 50 µs" is measured over (latency samples only):
// - added latency: per sequential request, client-observed time minus the time the server
//   spent on it (its log's received → finished), i.e. everything the client stack and the
//   loopback add. p50 and p99.
// - throughput: completed requests per second with 1, 64 and 512 requests in flight
//   (median of 3 runs of 2 s per client, the clients alternating), with the process's CPU
//   time per request beside it (`process.cpuUsage`: the JS thread and the addon's threads).
// - streaming TTFT: call → first content delta of a streamed answer, p50 and p99.
// Latency and TTFT samples are interleaved call by call across the clients.
// Every loop is bounded in count and time; the server listens on 127.0.0.1 only.
import { spawn } from 'node:child_process'
import net from 'node:net'
import { createInterface } from 'node:readline'
import { writeFileSync, mkdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { loadavg } from 'node:os'
import OpenAI from 'openai'
import { request as undiciRequest, Agent } from 'undici'
import { Router } from 'polyroute'

const here = path.dirname(fileURLToPath(import.meta.url))
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? process.argv[i + 1] : dflt
}
const SERVER = arg('server', path.resolve(here, '../../target/release/polyroute-mock-server'))
const LAT_N = Number(arg('latency-requests', 2000))
const TTFT_N = Number(arg('ttft-requests', 1000))
const DURATION_MS = Number(arg('duration-ms', 2000))
// `--concurrency none`: latency and TTFT only.
const CONCURRENCY = arg('concurrency', '1,64,512').split(',').filter((x) => x !== '' && x !== 'none').map(Number)
const ROUNDS = Number(arg('rounds', 3))
// `interleaved`: latency/TTFT samples alternate client by client (each call finds the stack
// idle since the other clients' calls); `sequential`: each client's calls back to back (hot);
// `gap`: interleaved with a 1 ms idle pause before each call, so every thread parks and each
// call pays its wake-ups (the difference to `sequential` is the hand-off cost).
const ORDER = arg('order', 'interleaved')
const ONLY = arg('clients', 'socket,fetch,undici,openai,polyroute').split(',')
// The raw socket is the floor of the latency samples only: one connection, one call at a time.
const POOLED = ONLY.filter((n) => n !== 'socket')
const KEY = 'sk-test-not-a-real-key'

async function startServer() {
  const child = spawn(SERVER, ['--port', '0'], { stdio: ['pipe', 'pipe', 'inherit'] })
  const url = await new Promise((resolve, reject) => {
    child.once('error', reject)
    createInterface({ input: child.stdout }).once('line', (l) => {
      const m = /^LISTENING (\S+)$/.exec(l.trim())
      m ? resolve(m[1]) : reject(new Error(l))
    })
  })
  const control = async (method, p, body) => {
    const r = await fetch(url + p, { method, body: body && JSON.stringify(body) })
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`)
    return r.json()
  }
  return { url, control, close: () => (child.stdin.end(), child.kill()) }
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
const summary = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return { p50: pct(s, 50), p99: pct(s, 99), mean: s.reduce((a, b) => a + b, 0) / s.length, n: s.length }
}

const server = await startServer()
const ANSWER = 'The quick brown fox jumps over the lazy dog.'
const STREAM_TEXT = Array.from({ length: 20 }, (_, i) => `token${i}`).join(' ')
await server.control('PUT', '/_mock/scripts/bench', { then: { text: ANSWER } })
await server.control('PUT', '/_mock/scripts/bench-stream', { then: { text: STREAM_TEXT } })

const body = (model) => ({ model, messages: [{ role: 'user', content: 'Say something short.' }], max_tokens: 64 })

// Enough connections for 512 in flight, as polyroute's pool has.
const undiciAgent = new Agent({ connections: 1024 })
const openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 })
const router = new Router({
  providers: { mock: { kind: 'openai', base_url: `${server.url}/v1`, api_key: KEY } },
  deployments: { bench: { provider: 'mock', model: 'bench' }, 'bench-stream': { provider: 'mock', model: 'bench-stream' } },
  routes: [
    { name: 'bench', deployments: ['bench'] },
    { name: 'bench-stream', deployments: ['bench-stream'] },
  ],
  default_route: 'bench',
})

/**
 * HTTP/1.1 by hand on one kept-alive `net` socket: the least a Node caller can do, as the
 * Rust and Python benches' blocking-socket floors (issue 18's "added over a raw socket").
 * Sequential calls only: the latency samples' floor, not a client for throughput.
 */
function rawSocket(base) {
  const u = new URL(`${base}/v1/chat/completions`)
  const sock = net.connect({ host: u.hostname, port: Number(u.port) })
  sock.setNoDelay(true)
  let buf = Buffer.alloc(0)
  let pending = null
  const settle = () => {
    if (!pending) return
    const end = buf.indexOf('\r\n\r\n')
    if (end < 0) return
    const head = buf.subarray(0, end).toString('latin1').toLowerCase()
    const len = Number(/\r\ncontent-length:\s*(\d+)/.exec(head)?.[1])
    if (!Number.isFinite(len)) return pending.reject(new Error(`raw socket: no content-length in ${head}`))
    if (buf.length < end + 4 + len) return
    const out = { status: Number(head.slice(9, 12)), body: buf.subarray(end + 4, end + 4 + len).toString('utf8') }
    buf = buf.subarray(end + 4 + len)
    const p = pending
    pending = null
    p.resolve(out)
  }
  sock.on('data', (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d
    settle()
  })
  sock.on('error', (e) => pending?.reject(e))
  const call = (payload) =>
    new Promise((resolve, reject) => {
      if (pending) return reject(new Error('raw socket: one call at a time'))
      pending = { resolve, reject }
      sock.write(
        `POST ${u.pathname} HTTP/1.1\r\nhost: ${u.host}\r\ncontent-type: application/json\r\nauthorization: Bearer ${KEY}\r\ncontent-length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`,
      )
    })
  return { call, close: () => sock.destroy() }
}
const raw = ONLY.includes('socket') ? rawSocket(server.url) : null

const clients = {
  async socket(model) {
    const r = await raw.call(JSON.stringify(body(model)))
    if (r.status !== 200) throw new Error(`HTTP ${r.status}`)
    return JSON.parse(r.body).choices[0].message.content
  },
  async fetch(model) {
    const r = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify(body(model)),
    })
    const j = await r.json()
    if (!r.ok) throw new Error(`HTTP ${r.status}`)
    return j.choices[0].message.content
  },
  async undici(model) {
    const r = await undiciRequest(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      dispatcher: undiciAgent,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify(body(model)),
    })
    const j = await r.body.json()
    if (r.statusCode !== 200) throw new Error(`HTTP ${r.statusCode}`)
    return j.choices[0].message.content
  },
  async openai(model) {
    return (await openai.chat.completions.create(body(model))).choices[0].message.content
  },
  async polyroute(model) {
    return (await router.chat({ ...body(model), route: model })).choices[0].message.content
  },
}

/** Time from `t0` to the first content delta of an SSE body, reading it to the end. */
async function firstDelta(sse, t0) {
  const decoder = new TextDecoder()
  let buf = ''
  let ttft = null
  for await (const chunk of sse) {
    if (ttft !== null) continue
    buf += decoder.decode(chunk, { stream: true })
    let nl
    while (ttft === null && (nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim()
      buf = buf.slice(nl + 1)
      if (!line.startsWith('data: ') || line === 'data: [DONE]') continue
      const delta = JSON.parse(line.slice(6)).choices?.[0]?.delta
      if (delta && delta.content) ttft = performance.now() - t0
    }
  }
  return ttft
}

/** Time to the first content delta; the rest of the stream is consumed (connection reuse). */
const streamers = {
  async fetch(t0) {
    const r = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ ...body('bench-stream'), stream: true }),
    })
    return firstDelta(r.body, t0)
  },
  async undici(t0) {
    const r = await undiciRequest(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      dispatcher: undiciAgent,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ ...body('bench-stream'), stream: true }),
    })
    return firstDelta(r.body, t0)
  },
  async openai(t0) {
    const s = await openai.chat.completions.create({ ...body('bench-stream'), stream: true })
    let ttft = null
    for await (const chunk of s) {
      if (ttft === null && chunk.choices[0]?.delta?.content) ttft = performance.now() - t0
    }
    return ttft
  },
  async polyroute(t0) {
    let ttft = null
    for await (const ev of router.stream({ ...body('bench-stream'), route: 'bench-stream' })) {
      if (ttft === null && ev.type === 'content_delta') ttft = performance.now() - t0
    }
    return ttft
  },
}

/** (round, offset) pairs; client = names[(round + offset) % n]. */
function* schedule(rounds, n) {
  if (ORDER === 'sequential') {
    for (let c = 0; c < n; c++) for (let i = 0; i < rounds; i++) yield [0, c]
  } else {
    for (let i = 0; i < rounds; i++) for (let k = 0; k < n; k++) yield [i, k]
  }
}

/**
 * By default interleaved call by call (the order rotates every round), so the load from other work on a
 * shared machine falls on every client alike. The server log maps 1:1 to the sequential calls.
 */
async function addedLatency(names) {
  for (let i = 0; i < 300; i++) for (const n of names) await clients[n]('bench') // warm-up: connections, JIT
  await server.control('POST', '/_mock/reset')
  await server.control('PUT', '/_mock/scripts/bench', { then: { text: ANSWER } })
  const order = []
  const total = Object.fromEntries(names.map((n) => [n, []]))
  for (const [i, k] of schedule(LAT_N, names.length)) {
    {
      const name = names[(i + k) % names.length]
      if (ORDER === 'gap') await new Promise((r) => setTimeout(r, 1))
      const t0 = performance.now()
      const out = await clients[name]('bench')
      total[name].push(performance.now() - t0)
      order.push(name)
      if (out !== ANSWER) throw new Error(`${name}: unexpected answer ${out}`)
    }
  }
  const log = (await server.control('GET', '/_mock/log?script=bench')).filter((e) => e.path.endsWith('/chat/completions'))
  if (log.length !== order.length) throw new Error(`server saw ${log.length} requests, expected ${order.length}`)
  const seen = Object.fromEntries(names.map((n) => [n, 0]))
  const added = Object.fromEntries(names.map((n) => [n, []]))
  log.forEach((e, i) => {
    const name = order[i]
    added[name].push(total[name][seen[name]++] - (e.finished_ms - e.received_ms))
  })
  return Object.fromEntries(names.map((n) => [n, { total: summary(total[n]), added: summary(added[n]) }]))
}

async function throughput(name, concurrency, ms) {
  const call = clients[name]
  const deadline = performance.now() + ms
  let done = 0
  let errors = 0
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        try {
          await call('bench')
          done++
        } catch {
          errors++
        }
      }
    }),
  )
  const cpu = process.cpuUsage(cpu0)
  return { rps: done / ((performance.now() - t0) / 1000), errors, cpu_us: (cpu.user + cpu.system) / Math.max(done, 1) }
}

/** Median of ROUNDS runs per client, the clients alternating run by run. */
async function throughputAt(names, concurrency) {
  for (const n of names) await throughput(n, concurrency, 300) // warm-up: open the connections
  const runs = Object.fromEntries(names.map((n) => [n, []]))
  for (let r = 0; r < ROUNDS; r++) for (const n of names) runs[n].push(await throughput(n, concurrency, DURATION_MS))
  return Object.fromEntries(
    names.map((n) => {
      const byRps = [...runs[n]].sort((a, b) => a.rps - b.rps)
      const mid = byRps[Math.floor(byRps.length / 2)]
      return [n, { rps: mid.rps, cpu_us: mid.cpu_us, runs: byRps.map((x) => x.rps), errors: runs[n].reduce((a, x) => a + x.errors, 0) }]
    }),
  )
}

async function ttft(names) {
  for (let i = 0; i < 100; i++) for (const n of names) await streamers[n](performance.now())
  const xs = Object.fromEntries(names.map((n) => [n, []]))
  for (const [i, k] of schedule(TTFT_N, names.length)) {
    {
      const name = names[(i + k) % names.length]
      if (ORDER === 'gap') await new Promise((r) => setTimeout(r, 1))
      const t = await streamers[name](performance.now())
      if (t === null) throw new Error(`${name}: a stream had no content`)
      xs[name].push(t)
    }
  }
  return Object.fromEntries(names.map((n) => [n, summary(xs[n])]))
}

const results = { order: ORDER, node: process.version, openai: JSON.parse(readFileSync(path.join(here, 'node_modules', 'openai', 'package.json'), 'utf8')).version, load_before: loadavg(), latency: {}, throughput: {}, ttft: {} }
try {
  results.latency = await addedLatency(ONLY)
  console.error(`latency: ${JSON.stringify(results.latency)}`)
  results.ttft = await ttft(POOLED)
  console.error(`ttft: ${JSON.stringify(results.ttft)}`)
  for (const c of CONCURRENCY) {
    const at = await throughputAt(POOLED, c)
    for (const n of POOLED) results.throughput[`${n}@${c}`] = at[n]
    console.error(`throughput @${c}: ${JSON.stringify(at)}`)
  }
} finally {
  raw?.close()
  server.close()
}
results.load_after = loadavg()

const f = (x) => x.toFixed(3)
const lines = [`latency and TTFT samples: ${ORDER}`, '']
lines.push('| client | added latency p50 (ms) | added p99 (ms) | total p50 (ms) | total p99 (ms) | stream TTFT p50 (ms) | TTFT p99 (ms) |')
lines.push('|---|---:|---:|---:|---:|---:|---:|')
for (const name of ONLY) {
  const l = results.latency[name]
  const t = results.ttft[name] ?? { p50: NaN, p99: NaN }
  lines.push(`| ${name} | ${f(l.added.p50)} | ${f(l.added.p99)} | ${f(l.total.p50)} | ${f(l.total.p99)} | ${f(t.p50)} | ${f(t.p99)} |`)
}
lines.push('')
lines.push(`| client | ${CONCURRENCY.map((c) => `req/s @ ${c}`).join(' | ')} |`)
lines.push(`|---|${CONCURRENCY.map(() => '---:').join('|')}|`)
for (const name of POOLED) {
  const cells = CONCURRENCY.map((c) => {
    const r = results.throughput[`${name}@${c}`]
    return `${Math.round(r.rps)} (${Math.round(r.cpu_us)} CPU-µs)${r.errors ? ` (${r.errors} errors)` : ''}`
  })
  lines.push(`| ${name} | ${cells.join(' | ')} |`)
}
if (results.latency.openai && results.latency.polyroute) {
  const ratio = results.latency.polyroute.added.p50 / results.latency.openai.added.p50
  const tp = results.throughput['polyroute@64'] && results.throughput['openai@64'] && results.throughput['polyroute@64'].rps / results.throughput['openai@64'].rps
  lines.push('')
  lines.push(`polyroute added latency p50 = ${ratio.toFixed(2)} x openai-node's (target <= 0.33); throughput @64 = ${tp ? tp.toFixed(2) : '?'} x openai-node's (target >= 2).`)
}
if (results.latency.polyroute && (results.latency.socket || results.latency.undici)) {
  // The target is time added over the raw socket's round trip (total p50 against total p50,
  // samples interleaved), as for Python and Rust; undici's is printed beside it.
  const over = (n) => (results.latency[n] ? `${f(results.latency.polyroute.total.p50 - results.latency[n].total.p50)} ms` : '?')
  const u = results.throughput['undici@64']
  const p = results.throughput['polyroute@64']
  lines.push(
    `issue 18: polyroute p50 over the raw socket = ${over('socket')} (target <= 0.050), over undici request = ${over('undici')}; throughput @64 = ${u && p ? (p.rps / u.rps).toFixed(2) : '?'} x undici request's (target >= 1).`,
  )
}
const md = lines.join('\n')
console.log(md)
mkdirSync(path.join(here, 'results'), { recursive: true })
writeFileSync(path.join(here, 'results', 'latest.json'), JSON.stringify(results, null, 2))
writeFileSync(path.join(here, 'results', 'latest.md'), md + '\n')
