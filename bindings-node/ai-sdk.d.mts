// Types of `polyroute/ai-sdk` (ai-sdk.mjs): a Vercel AI SDK provider over a polyroute Router.
import type { LanguageModelV4, ProviderV4 } from '@ai-sdk/provider'
import type { ErrorKind, RoutingMetadata, RouteTrace, Router } from './polyroute.js'

export interface PolyrouteProviderSettings {
  /**
   * Routing metadata sent with every call as the body's `polyroute` object (`tenant`,
   * `feature`, `tier`, `tags`, `data_class`, `route`); a call's `providerOptions.polyroute`
   * adds to it and wins.
   */
  polyroute?: RoutingMetadata
  /**
   * @deprecated The older name of `polyroute` (routing metadata, not OpenAI's `metadata`);
   * `polyroute` wins where both set a field.
   */
  metadata?: RoutingMetadata
}

/** `providerMetadata.polyroute` of every result and stream `finish`. */
export interface PolyrouteProviderMetadata {
  /** The deployment that served the answer (null for a cache hit). */
  deployment: string | null
  route: string
  /** The provider (policy name) of that deployment. */
  provider: string | null
  /** What the request cost, in USD (null when the deployment has no pricing). */
  costUsd: number | null
  /** One sentence: why there. */
  explanation: string
  requestId: string
  /** The core's whole route trace (every candidate and attempt). */
  trace: RouteTrace
}

/** Routing metadata a call can pass as `providerOptions: { polyroute: {...} }`. */
export type PolyrouteProviderOptions = RoutingMetadata

export interface PolyrouteProvider extends ProviderV4 {
  /**
   * A language model whose id is the request's `model`: a route name, else a deployment name
   * (tried first, the route's others as fallbacks), else a provider model id the policy's
   * deployments serve; unknown is `no_route` unless a route is asked for in the routing
   * metadata. Without an id, the policy's rules choose.
   */
  (model?: string): LanguageModelV4
  languageModel(model?: string): LanguageModelV4
  chat(model?: string): LanguageModelV4
}

/**
 * A Vercel AI SDK provider (LanguageModelV4, `ai` 7.x) whose models send every call through
 * `router`, with its failover. Failures are `APICallError`s (`isRetryable: false`; the
 * Polyroute kind in `data.kind`, the `PolyrouteError` as `cause`).
 */
export declare function createPolyroute(router: Router, settings?: PolyrouteProviderSettings): PolyrouteProvider

/** Error kind → the `statusCode` of its `APICallError` (the OpenAI surface's status). */
export declare const errorStatus: Readonly<Record<ErrorKind, number>>
