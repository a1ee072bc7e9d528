// Type-checked by ai-sdk.test.mjs (tsc --noEmit): the public API's typings as openai-node-style
// code uses them (routing metadata, the timeout option, OpenAI chunks, the final answer).
import { Router, type ChatCompletionChunk, type ChatRequest, type ChatResponse, type RoutingMetadata } from 'polyroute'

const router = new Router({ providers: {}, deployments: {}, routes: [] })
const routing: RoutingMetadata = { tenant: 'acme', order: ['a'], timeout: 2.5 }
const request: ChatRequest = { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], metadata: { user_ref: 'u1' }, polyroute: routing }

export async function run(): Promise<string> {
  const r: ChatResponse = await router.chat(request, { timeout: 30_000, signal: AbortSignal.timeout(60_000) })
  const s = router.stream(request, { timeout: 30_000 })
  let text = ''
  for await (const c of s.chunks()) {
    const chunk: ChatCompletionChunk = c
    text += chunk.choices[0]?.delta.content ?? ''
    if (chunk.usage) text += ` (${chunk.usage.total_tokens} tokens)`
  }
  const final: ChatResponse = await s.finalChatCompletion()
  return `${r.choices[0].message.content} ${text} ${final.cost_usd ?? 0} ${final.trace?.served_by}`
}
