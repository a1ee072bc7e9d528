// One process of the fleet test (fleet.test.mjs forks two): its own Router on the policy the
// parent sends; on the parent's go, concurrent rounds of requests until refused three rounds
// in a row; then, when the parent says every worker is done, the budget as this process sees
// it after a fleet sync.
import { Router, BudgetExceededError } from '../polyroute.js'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const nextMessage = () => new Promise((resolve) => process.once('message', resolve))

process.once('message', async ({ policy, concurrency, maxTokens }) => {
  const res = { ok: 0, cost: 0, refused: 0, errors: [], rounds: 0 }
  let router
  try {
    router = new Router(policy)
    // Processes start at different speeds: every worker builds its router, then all race.
    const go = nextMessage()
    process.send({ type: 'ready' })
    await go
    let refusedRounds = 0
    while (refusedRounds < 3 && res.rounds < 300 && res.errors.length === 0) {
      const before = res.ok
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          try {
            const resp = await router.chat({ messages: [{ role: 'user', content: 'hello there' }], max_tokens: maxTokens })
            res.ok++
            res.cost += resp.cost_usd ?? 0
          } catch (e) {
            if (e instanceof BudgetExceededError) res.refused++
            else res.errors.push(`${e.code}: ${e.message}`)
          }
        }),
      )
      res.rounds++
      refusedRounds = res.ok === before ? refusedRounds + 1 : 0
    }
  } catch (e) {
    res.errors.push(`worker failed: ${e && e.stack}`)
  }
  process.once('message', async ({ waitMs }) => {
    await sleep(waitMs) // the fleet sync refreshes what budgets() shows
    let budgets = []
    try {
      budgets = router ? router.budgets() : []
    } catch (e) {
      res.errors.push(`budgets(): ${e && e.message}`)
    }
    process.send({ type: 'budgets', budgets, errors: res.errors }, () => process.exit(0))
  })
  process.send({ type: 'done', ...res })
})
