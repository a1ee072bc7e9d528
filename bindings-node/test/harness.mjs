// Test harness: runs the real loopback mock server (tests/mock-server) and builds policies
// that point the router at it over HTTP; for the fleet tests, a real redis-server (Debian
// package `redis-server`) on a random loopback port with no persistence. One server per test file (node --test runs files in
// parallel processes); scripts are keyed by model name, so each test uses its own names.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import net from 'node:net'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

function mockServerBinary() {
  if (process.env.POLYROUTE_MOCK_SERVER) return process.env.POLYROUTE_MOCK_SERVER
  const target = process.env.CARGO_TARGET_DIR || path.join(repoRoot, 'target')
  return path.join(target, 'debug', 'polyroute-mock-server')
}

/** Start the mock server; resolves once it printed `LISTENING http://127.0.0.1:PORT`. */
export async function startMockServer() {
  // stdin stays a pipe: the server exits when it closes, so a crashed test leaves nothing behind.
  const child = spawn(mockServerBinary(), ['--port', '0'], { stdio: ['pipe', 'pipe', 'inherit'] })
  const url = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout })
    const timer = setTimeout(() => reject(new Error('mock server did not start within 10 s')), 10_000)
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`mock server exited early (${code})`)))
    lines.once('line', (line) => {
      clearTimeout(timer)
      const m = /^LISTENING (http:\/\/127\.0\.0\.1:\d+)$/.exec(line.trim())
      if (m) resolve(m[1])
      else reject(new Error(`unexpected first line from mock server: ${line}`))
    })
  })
  const control = async (method, p, body) => {
    const r = await fetch(url + p, { method, body: body === undefined ? undefined : JSON.stringify(body) })
    const json = await r.json()
    if (!r.ok) throw new Error(`mock server ${method} ${p}: ${r.status} ${JSON.stringify(json)}`)
    return json
  }
  return {
    url,
    /** Install the MockScript served to requests for model `name`. */
    script: (name, script) => control('PUT', `/_mock/scripts/${encodeURIComponent(name)}`, script),
    /** Attempts the server saw (optionally only those for `name`). */
    log: (name) => control('GET', name ? `/_mock/log?script=${encodeURIComponent(name)}` : '/_mock/log'),
    reset: () => control('POST', '/_mock/reset'),
    close() {
      child.stdin.end()
      child.kill()
    },
  }
}

/**
 * A policy whose deployments are models on the mock server (deployment name = model name =
 * script name). `routes` default to one route per deployment list given.
 */
export function mockPolicy(url, { deployments, routes, provider = {}, breaker, retryBudget }) {
  const deps = {}
  for (const [name, extra] of Object.entries(deployments)) {
    deps[name] = { provider: 'mock', model: name, ...extra }
  }
  const policy = {
    version: 1,
    providers: { mock: { kind: 'openai', base_url: `${url}/v1`, api_key: 'sk-test-not-a-real-key', ...provider } },
    deployments: deps,
    routes,
    default_route: routes[0].name,
    // Tests count attempts: keep breakers from tripping unless a test asks for it.
    breaker: breaker || { consecutive_failures: 1000, min_calls: 1000 },
  }
  if (retryBudget) policy.retry_budget = retryBudget
  return policy
}

/** Fast retries and timeouts so failure tests finish in milliseconds. */
export const fast = {
  retry: { attempts_per_deployment: 1, max_attempts: 5, base_delay: '1ms', max_delay: '5ms', max_retry_after: '1s' },
  timeouts: { first_token: '2s', idle: '2s', total: '10s' },
}

export const hello = { messages: [{ role: 'user', content: 'hello there' }] }

/** A loopback TCP port nothing listens on (the kernel's pick, released again). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

function redisPing(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port })
    const done = (ok) => {
      sock.destroy()
      resolve(ok)
    }
    sock.setTimeout(1000, () => done(false))
    sock.once('error', () => done(false))
    sock.once('connect', () => sock.write('PING\r\n'))
    sock.once('data', (d) => done(d.toString().startsWith('+PONG')))
  })
}

/**
 * Start a throwaway redis-server on 127.0.0.1 (random free port, no RDB, no AOF); resolves
 * once it answers PING. `close()` kills it.
 */
export async function startRedis() {
  const binary = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((b) => existsSync(b)) || 'redis-server'
  let last = ''
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    const child = spawn(binary, ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let exited = false
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.once('exit', () => (exited = true))
    child.once('error', (e) => {
      exited = true
      out += String(e)
    })
    const deadline = Date.now() + 10_000
    while (!exited && Date.now() < deadline) {
      if (await redisPing(port)) {
        return {
          port,
          url: `redis://127.0.0.1:${port}`,
          close: () => child.kill('SIGKILL'),
        }
      }
      await new Promise((r) => setTimeout(r, 50))
    }
    child.kill('SIGKILL')
    last = out.slice(-500)
  }
  throw new Error(`redis-server did not start (install the Debian package redis-server): ${last}`)
}
