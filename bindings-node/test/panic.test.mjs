// The last line of defence: a panic inside the core (a bug) reaches JavaScript as a
// `ConfigError` ("internal error: ...; please report it"), from synchronous calls and from
// promises alike, and the process keeps working. The panic is real: `_debugPanic*` panic
// inside the core on purpose, under the same guard every native entry point runs under.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import * as pr from '../polyroute.js'
import { startMockServer, mockPolicy, hello } from './harness.mjs'

let mock
before(async () => {
  mock = await startMockServer()
})
after(() => mock.close())

async function routerFor(name) {
  await mock.script(name, { then: { text: 'still here' } })
  return new pr.Router(mockPolicy(mock.url, { deployments: { [name]: {} }, routes: [{ name: 'r', deployments: [name] }] }))
}

function checkInternal(e, site) {
  assert.ok(e instanceof pr.ConfigError, `expected ConfigError, got ${e && e.constructor && e.constructor.name}: ${e}`)
  assert.equal(e.code, 'config')
  assert.equal(e.detail, `internal error: deliberate panic for testing (${site}); please report it`)
  return true
}

test('a panic in a synchronous call throws ConfigError and the router keeps working', async () => {
  const router = await routerFor('panic-sync')
  for (let i = 0; i < 2; i++) assert.throws(() => pr._debugPanic(), (e) => checkInternal(e, 'node sync call'))
  const resp = await router.chat(hello)
  assert.equal(resp.choices[0].message.content, 'still here')
})

test('a panic in a native future rejects with ConfigError and the router keeps working', async () => {
  const router = await routerFor('panic-async')
  for (let i = 0; i < 2; i++) await assert.rejects(pr._debugPanicAsync(), (e) => checkInternal(e, 'node async call'))
  const resp = await router.chat(hello)
  assert.equal(resp.choices[0].message.content, 'still here')
})
