// The README example in Node: routing and failover against the built-in mock providers of
// examples/policies/demo.yaml (no API keys, no network). It prints who served each request and
// why, shows a typed error, streams an answer, and watches router events.
//
//   node quickstart.mjs
import { fileURLToPath } from 'node:url'
import { Router, PolyrouteError, NoRouteError } from 'polyroute'

const policyFile = fileURLToPath(new URL('../policies/demo.yaml', import.meta.url))
const router = Router.fromFile(policyFile)
const ask = (q, extra = {}) => ({ messages: [{ role: 'user', content: q }], ...extra })

// Events (fallbacks, breaker changes...) arrive on the event loop and never slow a request.
const unsubscribe = router.subscribe((event) => {
  if (event.type === 'breaker_changed') console.log(`  [event] breaker of ${event.deployment}: ${event.from} -> ${event.to}`)
})

console.log(`Plan before sending anything:\n  ${router.plan(ask('hi')).explanation}\n`)

for (let i = 1; i <= 5; i++) {
  const resp = await router.chat(ask('What is the capital of France?', { max_tokens: 100 }))
  console.log(`request ${i}: ${JSON.stringify(resp.choices[0].message.content)}`)
  console.log(`  model ${resp.model} via ${resp.trace.served_by}, cost $${(resp.cost_usd ?? 0).toFixed(6)}`)
  console.log(`  why: ${resp.trace.explanation}`)
}

console.log('\nBreakers:')
for (const d of router.deployments()) console.log(`  ${d.deployment.padEnd(14)} ${d.breaker.state}`)

console.log('\nA streamed request tagged `pii` (only EU regions may see it):')
const stream = router.stream(ask('Summarise my medical record.', { polyroute: { data_class: 'pii' } }))
let text = ''
for await (const event of stream) {
  if (event.type === 'content_delta') text += event.text
}
console.log(`  ${text}\n  why: ${stream.trace.explanation}`)

console.log('\nErrors are typed, with a stable code:')
try {
  await router.chat(ask('hello', { route: 'no-such-route' }))
} catch (e) {
  if (!(e instanceof NoRouteError) || !(e instanceof PolyrouteError)) throw e
  console.log(`  ${e.name} code=${e.code}: ${e.detail}`)
}

console.log('\nAn operator resets the banned deployment\'s breaker; the next request probes it:')
router.resetBreaker('gpt-4o')
try {
  const r = await router.chat(ask('Still banned?'))
  console.log(`  served: ${r.trace.explanation}`)
} catch (e) {
  console.log(`  error: ${e.message}`)
}

const requests = router.metricsText().split('\n').filter((l) => l.startsWith('polyroute_requests_total')).length
console.log(`\nMetrics: ${requests} polyroute_requests_total series`)
unsubscribe()
