// Node runner for the language-neutral scenarios in tests/scenarios/*.json.
//
// The Rust, Python, Node and Swift runners replay the same files; a difference between
// languages is a bug in a binding. This runner drives the public API (`Router`, `chat`,
// `stream`, `deployments`, `setBreaker`), keeps every result as the JSON the binding hands
// out (responses and stream events are plain objects, errors go through `toJSON()`) and
// checks it with the rules of tests/scenarios/README.md, the same rules as the Rust runner
// (core/tests/all/scenarios.rs, `cargo test -p polyroute --test all scenarios::`) and the Python one.
//
// Its own mock server (scenarios reset it); one test per scenario, run one after another.
// POLYROUTE_SCENARIO=<substring> selects scenarios, POLYROUTE_SCENARIO_DIR another folder.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { Router, PolyrouteError } from '../polyroute.js'
import { startMockServer, repoRoot } from './harness.mjs'

const dir = process.env.POLYROUTE_SCENARIO_DIR || path.join(repoRoot, 'tests', 'scenarios')
const filter = process.env.POLYROUTE_SCENARIO || ''
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.json') && !f.endsWith('.schema.json') && f.includes(filter))
  .sort()

const STEP_KEYS = new Set(['chat', 'stream', 'sleep_ms', 'set_breaker', 'scripts', 'repeat', 'expect', 'note'])
const EXPECT_KEYS = new Set([
  'outcome', 'content', 'content_prefix', 'model', 'served_by', 'served_by_one_of', 'attempts', 'attempt_count',
  'status', 'provider_code', 'partial_text', 'partial_text_prefix', 'finished', 'resets', 'elapsed_ms', 'cost_usd',
  'usage', 'tool_calls', 'budget', 'retry_after_s', 'trace', 'served_by_counts', 'server_hits', 'gaps_ms',
  'server_outcomes', 'server_saw', 'server_never_saw', 'breakers',
])
const TRACE_KEYS = new Set(['route', 'matched_contains', 'strategy', 'degraded', 'notes_contain', 'explanation_contains', 'skipped', 'backoff_ms', 'hedge'])

let mock
before(async () => {
  mock = await startMockServer()
})
after(() => mock && mock.close())

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k)
const show = (v) => JSON.stringify(v)

function errorJson(e) {
  if (e instanceof PolyrouteError) return JSON.parse(JSON.stringify(e))
  throw e
}

// ------------------------------------------------------------------------ running requests

async function runChat(router, body) {
  const t0 = performance.now()
  try {
    const resp = await router.chat(body)
    return { response: resp, error: null, events: null, trace: resp.trace || {}, elapsed: performance.now() - t0 }
  } catch (e) {
    const err = errorJson(e)
    return { response: null, error: err, events: null, trace: err.trace || {}, elapsed: performance.now() - t0 }
  }
}

async function runStream(router, body) {
  const t0 = performance.now()
  const s = router.stream(body)
  const events = []
  let error = null
  try {
    for await (const ev of s) events.push(ev)
  } catch (e) {
    error = errorJson(e)
  }
  const elapsed = performance.now() - t0
  const trace = (error && error.trace) || s.trace || {}
  return { response: null, error, events, trace, elapsed }
}

function kindOf(o) {
  return o.error ? o.error.kind : 'ok'
}

function contentOf(o) {
  if (o.events) {
    let start = 0
    o.events.forEach((e, i) => {
      if (e.type === 'reset') start = i + 1
    })
    return o.events.slice(start).filter((e) => e.type === 'content_delta').map((e) => e.text).join('')
  }
  const c = o.response && o.response.choices && o.response.choices[0] && o.response.choices[0].message.content
  return typeof c === 'string' ? c : null
}

function modelOf(o) {
  if (o.events) {
    const starts = o.events.filter((e) => e.type === 'start')
    return starts.length ? starts[starts.length - 1].model : null
  }
  return o.response ? o.response.model : null
}

function usageOf(o) {
  if (o.events) {
    const us = o.events.filter((e) => e.type === 'usage')
    return us.length ? us[us.length - 1].usage : null
  }
  return o.response ? o.response.usage : null
}

function toolNames(o) {
  if (o.events) return o.events.filter((e) => e.type === 'tool_call_delta' && typeof e.name === 'string').map((e) => e.name)
  const m = o.response && o.response.choices && o.response.choices[0] && o.response.choices[0].message
  return ((m && m.tool_calls) || []).map((t) => t.function.name)
}

// ------------------------------------------------------------------------ comparison

const inRange = (r, v) => (!has(r, 'min') || v >= r.min) && (!has(r, 'max') || v <= r.max)
const countOk = (c, n) => (Array.isArray(c) ? c[0] <= n && n <= c[1] : n === c)
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)

function checkResult(exp, o, errs) {
  const bad = (what, want, got) => errs.push(`${what}: expected ${show(want)}, got ${show(got)}`)
  if (has(exp, 'outcome') && kindOf(o) !== exp.outcome) bad('outcome', exp.outcome, `${kindOf(o)} (${o.error ? o.error.message : ''})`)
  if (has(exp, 'content') && contentOf(o) !== exp.content) bad('content', exp.content, contentOf(o))
  if (has(exp, 'content_prefix') && !(contentOf(o) || '').startsWith(exp.content_prefix)) bad('content_prefix', exp.content_prefix, contentOf(o))
  if (has(exp, 'model') && modelOf(o) !== exp.model) bad('model', exp.model, modelOf(o))
  const served = o.trace.served_by === undefined ? null : o.trace.served_by
  if (has(exp, 'served_by') && served !== exp.served_by) bad('served_by', exp.served_by, served)
  if (has(exp, 'served_by_one_of') && !exp.served_by_one_of.includes(served)) bad('served_by_one_of', exp.served_by_one_of, served)
  const attempts = (o.trace.attempts || []).map((a) => [a.deployment, a.outcome])
  if (has(exp, 'attempts') && !same(attempts, exp.attempts)) bad('attempts', exp.attempts, attempts)
  if (has(exp, 'attempt_count') && !countOk(exp.attempt_count, attempts.length)) bad('attempt_count', exp.attempt_count, attempts.length)
  const e = o.error || {}
  if (has(exp, 'status') && e.status !== exp.status) bad('status', exp.status, e.status)
  if (has(exp, 'provider_code') && e.provider_code !== exp.provider_code) bad('provider_code', exp.provider_code, e.provider_code)
  const partial = e.partial ? e.partial.text : undefined
  if (has(exp, 'partial_text') && partial !== exp.partial_text) bad('partial_text', exp.partial_text, partial)
  if (has(exp, 'partial_text_prefix') && !(typeof partial === 'string' && partial.startsWith(exp.partial_text_prefix))) {
    bad('partial_text_prefix', exp.partial_text_prefix, partial)
  }
  if (has(exp, 'finished')) {
    const got = (o.events || []).some((ev) => ev.type === 'finish')
    if (got !== exp.finished) bad('finished', exp.finished, got)
  }
  if (has(exp, 'resets')) {
    const got = (o.events || []).filter((ev) => ev.type === 'reset').length
    if (got !== exp.resets) bad('resets', exp.resets, got)
  }
  if (has(exp, 'elapsed_ms') && !inRange(exp.elapsed_ms, o.elapsed)) bad('elapsed_ms', exp.elapsed_ms, Math.round(o.elapsed * 10) / 10)
  if (has(exp, 'cost_usd')) {
    const got = o.trace.total_cost_usd === undefined ? null : o.trace.total_cost_usd
    const want = exp.cost_usd
    if (want === null) {
      if (got !== null) bad('cost_usd', null, got)
    } else if (!(typeof got === 'number' && Math.abs(got - want.approx) <= (has(want, 'tol') ? want.tol : 1e-9))) {
      bad('cost_usd', want, got)
    }
  }
  if (has(exp, 'usage')) {
    const u = usageOf(o) || {}
    for (const [k, v] of Object.entries(exp.usage)) if (u[k] !== v) bad(`usage.${k}`, v, u[k])
  }
  if (has(exp, 'tool_calls') && !same(toolNames(o), exp.tool_calls)) bad('tool_calls', exp.tool_calls, toolNames(o))
  if (has(exp, 'budget') && !(e.budget && e.budget.budget === exp.budget)) bad('budget', exp.budget, e.budget)
  if (has(exp, 'retry_after_s') && !(typeof e.retry_after === 'number' && inRange(exp.retry_after_s, e.retry_after))) {
    bad('retry_after_s', exp.retry_after_s, e.retry_after)
  }
  if (has(exp, 'trace')) checkTrace(exp.trace, o.trace, errs)
}

function checkTrace(t, tr, errs) {
  const bad = (what, want, got) => errs.push(`trace.${what}: expected ${show(want)}, got ${show(got)}`)
  const unknown = Object.keys(t).filter((k) => !TRACE_KEYS.has(k))
  if (unknown.length) errs.push(`unknown trace expectation keys ${show(unknown)}`)
  for (const k of ['route', 'strategy']) if (has(t, k) && tr[k] !== t[k]) bad(k, t[k], tr[k])
  if (has(t, 'matched_contains') && !(tr.matched || '').includes(t.matched_contains)) bad('matched_contains', t.matched_contains, tr.matched)
  if (has(t, 'degraded') && Boolean(tr.degraded) !== t.degraded) bad('degraded', t.degraded, Boolean(tr.degraded))
  const notes = tr.notes || []
  for (const n of t.notes_contain || []) if (!notes.some((x) => x.includes(n))) bad('notes_contain', n, notes)
  for (const n of t.explanation_contains || []) if (!(tr.explanation || '').includes(n)) bad('explanation_contains', n, tr.explanation)
  const cands = new Map((tr.candidates || []).map((c) => [c.deployment, c]))
  for (const [dep, want] of Object.entries(t.skipped || {})) {
    if (!cands.has(dep)) {
      bad('skipped', `candidate ${dep}`, 'no such candidate')
      continue
    }
    const got = cands.get(dep).skipped === undefined ? null : cands.get(dep).skipped
    const ok = (want === null && got === null) || (want !== null && got !== null && got.includes(want))
    if (!ok) bad(`skipped.${dep}`, want, got)
  }
  const attempts = tr.attempts || []
  ;(t.backoff_ms || []).forEach((r, i) => {
    if (r === null) return
    const got = attempts[i] ? attempts[i].backoff_ms : undefined
    if (!(typeof got === 'number' && inRange(r, got))) bad(`backoff_ms[${i}]`, r, got)
  })
  ;(t.hedge || []).forEach((w, i) => {
    const got = attempts[i] ? Boolean(attempts[i].hedge) : undefined
    if (got !== w) bad(`hedge[${i}]`, w, got)
  })
}

// Every string in a request body (compared as text, whatever the JSON writer escaped).
function bodyStrings(v, out) {
  if (typeof v === 'string') out.push(v)
  else if (Array.isArray(v)) v.forEach((x) => bodyStrings(x, out))
  else if (v && typeof v === 'object') Object.values(v).forEach((x) => bodyStrings(x, out))
}

async function checkState(exp, router, errs) {
  for (const [script, c] of Object.entries(exp.server_hits || {})) {
    const n = (await mock.log(script)).length
    if (!countOk(c, n)) errs.push(`server_hits.${script}: expected ${show(c)}, got ${n}`)
  }
  for (const [script, ranges] of Object.entries(exp.gaps_ms || {})) {
    const log = await mock.log(script)
    const gaps = log.slice(1).map((b, i) => b.received_ms - log[i].received_ms)
    if (gaps.length !== ranges.length || !ranges.every((r, i) => inRange(r, gaps[i]))) {
      errs.push(`gaps_ms.${script}: expected ${show(ranges)}, got ${show(gaps)}`)
    }
  }
  for (const [script, want] of Object.entries(exp.server_outcomes || {})) {
    const got = (await mock.log(script)).map((l) => l.outcome)
    if (!same(got, want)) errs.push(`server_outcomes.${script}: expected ${show(want)}, got ${show(got)}`)
  }
  for (const [key, want] of [['server_saw', true], ['server_never_saw', false]]) {
    for (const [script, needles] of Object.entries(exp[key] || {})) {
      const strings = []
      for (const e of await mock.log(script)) bodyStrings(e.body, strings)
      for (const n of needles) {
        if (strings.some((s) => s.includes(n)) !== want) errs.push(`${key}.${script}: ${show(n)} ${want ? 'is not in' : 'is in'} the request bodies`)
      }
    }
  }
  if (exp.breakers) {
    const states = Object.fromEntries(router.deployments().map((d) => [d.deployment, d.breaker.state]))
    for (const [dep, want] of Object.entries(exp.breakers)) {
      if (states[dep] !== want) errs.push(`breakers.${dep}: expected ${want}, got ${states[dep]}`)
    }
  }
}

async function runScenario(sc) {
  const errs = []
  await mock.reset()
  for (const [name, script] of Object.entries(sc.scripts || {})) await mock.script(name, script)
  const text = JSON.stringify(sc.policy).replaceAll('$MOCK_ROOT', mock.url).replaceAll('$MOCK', `${mock.url}/v1`)
  let router
  try {
    router = new Router(text)
  } catch (e) {
    return [`policy rejected: ${e.message}`]
  }
  for (const [i, step] of sc.steps.entries()) {
    const stepErrs = []
    const exp = step.expect || {}
    const unknown = [...Object.keys(step).filter((k) => !STEP_KEYS.has(k)), ...Object.keys(exp).filter((k) => !EXPECT_KEYS.has(k))]
    if (unknown.length) {
      errs.push(`step ${i}: unknown keys ${show(unknown)}`)
      continue
    }
    if (has(step, 'sleep_ms')) await sleep(step.sleep_ms)
    if (step.set_breaker) router.setBreaker(step.set_breaker.deployment, step.set_breaker.state)
    if (step.scripts) for (const [name, script] of Object.entries(step.scripts)) await mock.script(name, script)
    const body = step.chat || step.stream
    if (body) {
      const served = {}
      for (let rep = 0; rep < (step.repeat || 1); rep++) {
        const o = step.stream ? await runStream(router, body) : await runChat(router, body)
        const key = o.trace.served_by || 'null'
        served[key] = (served[key] || 0) + 1
        const e = []
        checkResult(exp, o, e)
        if (e.length) {
          stepErrs.push(...e.map((m) => `repetition ${rep}: ${m}`), `repetition ${rep}: trace was ${show(o.trace)}`)
          break
        }
      }
      for (const [dep, c] of Object.entries(exp.served_by_counts || {})) {
        if (!countOk(c, served[dep] || 0)) stepErrs.push(`served_by_counts.${dep}: expected ${show(c)}, got ${served[dep] || 0} (all: ${show(served)})`)
      }
    }
    await checkState(exp, router, stepErrs)
    errs.push(...stepErrs.map((m) => `step ${i}: ${m}`))
  }
  return errs
}

// Binding gaps found by these scenarios, detected rather than assumed: while the gap exists
// the affected scenarios report as TODO (visible in the test output) instead of failing the
// binding's suite; once the binding closes it they are enforced like every other check.
const budgetMissing = !('budget' in new PolyrouteError({ kind: 'budget_exceeded', message: 'probe', budget: { budget: 'probe' } }).toJSON())
function knownGap(sc) {
  const checksBudget = sc.steps.some((s) => s.expect && has(s.expect, 'budget'))
  if (budgetMissing && checksBudget) return "PolyrouteError does not carry the core Error's `budget` field (which budget refused, what is left, when it resets)"
  return undefined
}

test('scenario files were found', () => {
  assert.ok(filter || process.env.POLYROUTE_SCENARIO_DIR || files.length >= 40, `found ${files.length} scenarios in ${dir}`)
})

for (const f of files) {
  const name = f.slice(0, -'.json'.length)
  const sc = JSON.parse(readFileSync(path.join(dir, f), 'utf8'))
  test(name, { todo: knownGap(sc) }, async () => {
    assert.equal(sc.name, name, '`name` must equal the file name')
    const errs = await runScenario(sc)
    assert.deepEqual(errs, [], `${name}:\n  ${errs.join('\n  ')}`)
  })
}
