// What a Node stream adds per chunk (issue 18's target: at most 5 µs). Run through
// `bash bench/node/run.sh --stream` (release addon and mock server).
//
// Each reader takes a 1-word and a 257-word stream from the mock (one word per chunk); the
// difference between the two, less the floor's difference, over the 256 extra chunks, is the
// per-chunk cost. Floor: undici's `request` reading the SSE body, splitting events on blank
// lines and `JSON.parse`-ing each. Then `router.stream()` for await'ed as events, and its
// `chunks()`. Burst: the whole stream in one write (p50 wall and CPU per stream); spaced: 1 ms
// between chunks, each its own read and wake-up as from a real provider (CPU only: wall time
// is the mock's pauses). CPU is the process's (`process.cpuUsage`), mock server excluded.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { performance } from 'node:perf_hooks'
import { loadavg } from 'node:os'
import { request, Agent } from 'undici'
import { Router } from 'polyroute'

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? process.argv[i + 1] : dflt
}
const N = Number(arg('n', 300))
const KEY = 'sk-test-not-a-real-key'
const EXTRA = 256

const child = spawn(arg('server'), ['--port', '0', '--log-capacity', '0'], { stdio: ['pipe', 'pipe', 'inherit'] })
const url = await new Promise((resolve, reject) => {
  child.once('error', reject)
  createInterface({ input: child.stdout }).once('line', (l) => {
    const m = /^LISTENING (\S+)$/.exec(l.trim())
    m ? resolve(m[1]) : reject(new Error(l))
  })
})
const words = (k) => Array.from({ length: k }, () => 'word').join(' ')
const scripts = { 'burst-1': [1, 0], 'burst-257': [257, 0], 'spaced-1': [1, 1], 'spaced-257': [257, 1] }
const routers = {}
for (const [name, [k, delay]] of Object.entries(scripts)) {
  const r = await fetch(`${url}/_mock/scripts/${name}`, { method: 'PUT', body: JSON.stringify({ then: { text: words(k), chunk_delay_ms: delay } }) })
  if (!r.ok) throw new Error(await r.text())
  routers[name] = new Router({
    providers: { m: { kind: 'openai', base_url: url + '/v1', api_key: KEY } },
    deployments: { d: { provider: 'm', model: name } },
    routes: [{ name: 'r', deployments: ['d'] }],
  })
}
const agent = new Agent({ connections: 1 })
const msgs = [{ role: 'user', content: 'hi' }]

async function floor(model) {
  const { body } = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    dispatcher: agent,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ model, stream: true, messages: msgs }),
  })
  let pending = ''
  let n = 0
  for await (const chunk of body) {
    pending += chunk.toString()
    const parts = pending.split('\n\n')
    pending = parts.pop()
    for (const ev of parts) {
      if (ev.startsWith('data: ') && ev.slice(6) !== '[DONE]') {
        JSON.parse(ev.slice(6))
        n++
      }
    }
  }
  return n
}
async function events(model) {
  let n = 0
  for await (const _ of routers[model].stream({ messages: msgs })) n++
  return n
}
async function chunks(model) {
  let n = 0
  for await (const _ of routers[model].stream({ messages: msgs }).chunks()) n++
  return n
}
const readers = { floor, '`router.stream()` events': events, '`router.stream().chunks()`': chunks }

const cpu = () => {
  const u = process.cpuUsage()
  return u.user + u.system
}
const median = (v) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)]

async function measure(short, long, n) {
  const out = {}
  for (const k of Object.keys(readers)) out[k] = { wall: [[], []], cpu: [0, 0] }
  for (let i = 0; i < n; i++) {
    for (const [k, read] of Object.entries(readers)) {
      for (const [j, model] of [short, long].entries()) {
        const c = cpu()
        const t = performance.now()
        await read(model)
        out[k].wall[j].push((performance.now() - t) * 1000)
        out[k].cpu[j] += cpu() - c
      }
    }
  }
  const r = {}
  for (const [k, v] of Object.entries(out)) r[k] = [median(v.wall[0]), median(v.wall[1]), v.cpu[0] / n, v.cpu[1] / n]
  return r
}

function table(title, n, r, wall) {
  const f = r.floor
  const lines = [`| ${title} (n=${n} each) | 1 chunk | 257 chunks | per extra chunk | added per chunk |`, '|---|---|---|---|---|']
  for (const [k, v] of Object.entries(r)) {
    for (const [what, i] of [...(wall ? [['p50 µs', 0]] : []), ['CPU µs', 2]]) {
      const per = (v[i + 1] - v[i]) / EXTRA
      const added = k === 'floor' ? '–' : `**${(per - (f[i + 1] - f[i]) / EXTRA).toFixed(2)}**`
      lines.push(`| ${k}, ${what} | ${v[i].toFixed(0)} | ${v[i + 1].toFixed(0)} | ${per.toFixed(2)} | ${added} |`)
    }
  }
  return lines.join('\n')
}

try {
  for (const [k, read] of Object.entries(readers)) {
    const got = await read('burst-257')
    if (got < 257) throw new Error(`${k} read ${got} events of a 257-chunk stream`)
  }
  await measure('burst-1', 'burst-257', 30)
  const before = loadavg()[0].toFixed(2)
  console.log(`Node ${process.version}, load average ${before} before`)
  console.log(table('burst: the whole stream in one write', N, await measure('burst-1', 'burst-257', N), true))
  console.log()
  const spacedN = Math.max(Math.floor(N / 50), 5)
  console.log(table('spaced: 1 ms between chunks', spacedN, await measure('spaced-1', 'spaced-257', spacedN), false))
  console.log(`load average ${loadavg()[0].toFixed(2)} after`)
} finally {
  child.stdin.end()
  child.kill()
  await agent.close()
}
