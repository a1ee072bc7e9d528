// Failover through the built-in mock provider (no network, no keys): the primary answers
// 503 every time, the router retries it once and falls over to the backup, which answers.
import Polyroute

let policy = """
version: 1
providers:
  main:   {kind: mock, script: {then: {status: 503}}}
  backup: {kind: mock, script: {then: {text: "Paris is the capital of France."}}}
deployments:
  primary: {provider: main, model: gpt-4o}
  secondary: {provider: backup, model: claude-sonnet-4-5}
routes:
  - name: chat
    deployments: [primary]
    fallbacks: [{deployments: [secondary]}]
    retry: {attempts_per_deployment: 2, base_delay: 10ms}
default_route: chat
"""

let router = try Router(policy: policy)
let reply = try await router.chat(.user("What is the capital of France?"))
print("answer: \(reply.content)")
print("served by: \(reply.provider ?? "?")")
let attempts = reply.trace?.attempts ?? []
print("attempts: " + attempts.map { "\($0.deployment)=\($0.outcome)" }.joined(separator: " "))
print("why: \(reply.trace?.explanation ?? "")")
