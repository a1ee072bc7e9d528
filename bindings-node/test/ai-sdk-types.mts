// Type-checked by ai-sdk.test.mjs (tsc --noEmit): the provider's typings fit the `ai` package.
import { generateText, streamText, type LanguageModel } from 'ai'
import { Router } from 'polyroute'
import { createPolyroute, errorStatus, type PolyrouteProviderMetadata } from 'polyroute/ai-sdk'

const router = new Router({ providers: {}, deployments: {}, routes: [] })
const polyroute = createPolyroute(router, { polyroute: { tenant: 'acme', timeout: 30 } })
const model: LanguageModel = polyroute('chat')
const byRules: LanguageModel = polyroute()

export async function run(): Promise<string> {
  const r = await generateText({ model, prompt: 'hi', providerOptions: { polyroute: { feature: 'search' } } })
  const meta = r.providerMetadata?.polyroute as unknown as PolyrouteProviderMetadata | undefined
  const s = streamText({ model: byRules, prompt: 'hi' })
  const status: number = errorStatus.no_route
  return `${r.text} ${meta?.deployment} ${await s.text} ${status}`
}
