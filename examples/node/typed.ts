// TypeScript usage of polyroute: typed requests, responses, stream events, errors and events.
// Type-checked by `tsc --noEmit` and compiled + run by bindings-node/test/examples.test.mjs.
// Uses the in-process `kind: mock` provider, so it needs no server and no key.
import {
  Router,
  PolyrouteError,
  RateLimitedError,
  StreamInterruptedError,
  type ChatRequest,
  type ChatResponse,
  type ErrorKind,
  type RouterEvent,
  type StreamEvent,
} from 'polyroute'

const router = new Router({
  providers: {
    flaky: { kind: 'mock', script: { steps: [{ status: 429, error_code: 'rate_limit_exceeded', retry_after: '0.05' }], then: { text: 'Hello from flaky.' } } },
    steady: { kind: 'mock', script: { then: { text: 'Hello from steady.' } } },
    broken: { kind: 'mock', script: { then: { text: 'Hello from a stream that breaks', fault: { cut_after: { chunks: 2 } } } } },
  },
  deployments: {
    primary: { provider: 'flaky', model: 'gpt-4o-mini' },
    backup: { provider: 'steady', model: 'llama-3.1-8b' },
    fragile: { provider: 'broken', model: 'gpt-4o-mini' },
  },
  routes: [
    { name: 'chat', deployments: ['primary'], fallbacks: [{ deployments: ['backup'] }], retry: { attempts_per_deployment: 1 } },
    { name: 'fragile', deployments: ['fragile'] },
  ],
  default_route: 'chat',
})

const outcomes: string[] = []
const stop = router.subscribe((e: RouterEvent) => {
  if (e.type === 'attempt_finished') outcomes.push(`${e.deployment}:${e.outcome}`)
})

async function main(): Promise<void> {
  const request: ChatRequest = {
    model: 'gpt-4o-mini',
    messages: [
      { role: 'system', content: 'Answer briefly.' },
      { role: 'user', content: 'Say hello.' },
    ],
    max_tokens: 50,
    polyroute: { tenant: 'acme', feature: 'greeting' },
  }
  const resp: ChatResponse = await router.chat(request)
  console.log(`chat: ${resp.choices[0].message.content} (served by ${resp.trace?.served_by})`)

  let text = ''
  for await (const ev of router.stream({ ...request, route: 'fragile' })) {
    const e: StreamEvent = ev
    if (e.type === 'content_delta') text += e.text
  }
  console.log('unreachable: the fragile stream always breaks', text)
}

function describe(e: unknown): string {
  if (e instanceof StreamInterruptedError) return `stream_interrupted after ${JSON.stringify(e.partial.text)}`
  if (e instanceof RateLimitedError) return `rate limited, retry after ${e.retryAfter ?? '?'} s`
  if (e instanceof PolyrouteError) {
    const code: ErrorKind = e.code
    return `${code} from ${e.provider ?? '?'}`
  }
  throw e
}

main()
  .catch((e: unknown) => console.log(`error: ${describe(e)}`))
  .finally(() => {
    setTimeout(() => {
      console.log(`attempts: ${outcomes.join(', ')}`)
      stop()
    }, 50)
  })
