// The examples are tests: examples/node/quickstart.mjs, the TypeScript example (type-checked
// with `tsc --noEmit`, then compiled and run) and the README's example, extracted from
// bindings-node/README.md so the documentation cannot drift from the code. They import
// `polyroute` as users do, through examples/node/node_modules (a `file:` install of this
// package, made by test.sh).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs'
import path from 'node:path'
import { repoRoot } from './harness.mjs'

const dir = path.join(repoRoot, 'examples', 'node')
const tsc = path.join(dir, 'node_modules', '.bin', 'tsc')
const run = (file) => execFileSync(process.execPath, [file], { cwd: dir, encoding: 'utf8', timeout: 60_000 })

test('examples/node is installed (npm ci in examples/node links this package)', () => {
  assert.ok(existsSync(path.join(dir, 'node_modules', 'polyroute', 'polyroute.js')), 'run bindings-node/test.sh, or npm ci in examples/node')
})

test('quickstart.mjs: failover, breaker, pii stream, typed error, operator reset', () => {
  const out = run('quickstart.mjs')
  assert.match(out, /request 1: "Paris is the capital of France\."/)
  assert.match(out, /Served by `claude-sonnet`.*after `gpt-4o` failed with permission_denied/)
  assert.match(out, /`gpt-4o` skipped \(breaker open/)
  assert.match(out, /gpt-4o\s+open/)
  assert.match(out, /breaker of gpt-4o: closed -> open/)
  assert.match(out, /data class `pii` may not reach region `us`/)
  assert.match(out, /NoRouteError code=no_route/)
  assert.match(out, /Metrics: [1-9]\d* polyroute_requests_total series/)
})

test('typed.ts type-checks with tsc --noEmit, then runs', () => {
  execFileSync(tsc, ['--noEmit', '-p', '.'], { cwd: dir, encoding: 'utf8' })
  execFileSync(tsc, ['-p', '.', '--noEmit', 'false', '--outDir', '.build'], { cwd: dir, encoding: 'utf8' })
  const out = run(path.join('.build', 'typed.js'))
  assert.match(out, /chat: Hello from steady\. \(served by backup\)/)
  assert.match(out, /error: stream_interrupted after "Hello from"/)
  assert.match(out, /attempts: primary:rate_limited, backup:ok, fragile:stream_interrupted/)
})

test('the README example runs as written', () => {
  const readme = readFileSync(path.join(repoRoot, 'bindings-node', 'README.md'), 'utf8')
  const block = /```js\n([\s\S]*?)```/.exec(readme)
  assert.ok(block, 'README has a js example')
  mkdirSync(path.join(dir, '.build'), { recursive: true })
  const file = path.join(dir, '.build', 'readme.mjs')
  writeFileSync(file, block[1])
  const out = run(file)
  assert.deepEqual(out.trim().split('\n'), [
    'Paris is the capital of France.',
    out.trim().split('\n')[1],
    'Paris is the capital of France.',
    'cancelled',
  ])
  assert.match(out.split('\n')[1], /^Served by `secondary` .*after `primary` failed with overloaded/)
})
