// The official openai Node SDK (from the npm registry) as a client of `polyroute serve`.
//
// Run by server/test.sh, which installs the pinned SDK under $CARGO_TARGET_DIR/sdk-node,
// copies this file there (so `import 'openai'` resolves as in a user's project), starts the
// loopback mock server and the gateway with the policy in server/test.sh, and passes the
// gateway's base URL as POLYROUTE_BASE_URL. The same checks as openai_python.py: failover is
// invisible (create, and streaming with usage), a stream cut after content throws the SDK's
// error instead of ending as a truncated success, and each failure is the SDK's typed error.

import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { VERSION } from 'openai/version'

const baseURL = process.env.POLYROUTE_BASE_URL
assert.ok(baseURL, 'set POLYROUTE_BASE_URL to the gateway (http://HOST:PORT/v1)')
// The router retries and fails over; the SDK must not retry on top.
const client = new OpenAI({ baseURL, apiKey: 'unused-by-the-gateway', maxRetries: 0 })
const hello = [{ role: 'user', content: 'hello mock' }]
const x = [{ role: 'user', content: 'x' }]

async function expectError(promise, cls, what) {
  try {
    await promise
  } catch (e) {
    assert.ok(e instanceof cls, `${what}: expected ${cls.name}, got ${e?.constructor?.name}: ${e}`)
    return e
  }
  assert.fail(`${what}: expected ${cls.name}, got a success`)
}

// create: the primary's 503 is invisible; Polyroute's deployment is in the headers
{
  const { data, response } = await client.chat.completions.create({ model: 'main', messages: hello }).withResponse()
  assert.equal(response.headers.get('x-polyroute-deployment'), 'b')
  assert.equal(data.choices[0].message.content, 'echo: hello mock')
  const raw = await client.chat.completions.create({ model: 'main', messages: hello }).asResponse()
  assert.equal(raw.status, 200)
  assert.equal(raw.headers.get('x-polyroute-deployment'), 'b')
}

// stream: a cut before content on the first deployment is invisible; usage at the end
{
  const stream = await client.chat.completions.create({
    model: 'streaming',
    messages: hello,
    stream: true,
    stream_options: { include_usage: true },
  })
  let text = ''
  let usage = null
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? ''
    if (chunk.usage) usage = chunk.usage
  }
  assert.equal(text, 'echo: hello mock')
  assert.ok(usage, 'no usage chunk with stream_options.include_usage')
  assert.equal(usage.completion_tokens, 3)
}

// a cut after content: the SDK's own error, not a truncated success
{
  let text = ''
  const e = await expectError(
    (async () => {
      const stream = await client.chat.completions.create({ model: 'cutting', messages: x, stream: true })
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
    })(),
    OpenAI.APIError,
    'a stream cut after content',
  )
  assert.match(e.message, /stream/i)
  assert.ok(text.length > 0, 'the cut was meant to come after some content')
}

// typed errors, with Polyroute's kind as the code
{
  const e = await expectError(client.chat.completions.create({ model: 'busy', messages: x }), OpenAI.RateLimitError, 'busy route')
  assert.equal(e.status, 429)
  assert.equal(e.code, 'rate_limited')
  assert.equal(e.headers.get('retry-after'), '3')
}
{
  const e = await expectError(
    client.chat.completions.create({ model: 'gpt-4o', messages: x }, { headers: { 'x-polyroute-route': 'nowhere' } }),
    OpenAI.NotFoundError,
    'x-polyroute-route: nowhere',
  )
  assert.equal(e.code, 'no_route')
}
// routing through a body field: the SDK sends the params object as the body, unknown keys
// included (in TypeScript, `polyroute` needs a `// @ts-expect-error` or a cast)
await expectError(
  client.chat.completions.create({ model: 'gpt-4o', messages: x, polyroute: { route: 'busy' } }),
  OpenAI.RateLimitError,
  'routing through the body field polyroute',
)

console.log(`openai-node ${VERSION} against polyroute serve: all checks passed`)
