// Non-streamed chat over real HTTP: answers, failover, retries, concurrency, plans, reloads.
import Foundation
import XCTest
@testable import Polyroute

final class ChatTests: XCTestCase {
    func testChatReturnsTheAnswerWithUsageCostAndTrace() async throws {
        let m = uniqueModel("chat")
        try await Mock.script(m, ["then": ["text": "Paris is the capital of France."]])
        let router = try Router(policyObject: try mockPolicy(primary: [m], priced: true))

        let r = try await router.chat(.user("What is the capital of France?"))

        XCTAssertEqual(r.content, "Paris is the capital of France.")
        XCTAssertEqual(r.finishReason, "stop")
        XCTAssertEqual(r.provider, "mock")
        XCTAssertEqual(r.model, m)
        let usage = try XCTUnwrap(r.usage)
        XCTAssertGreaterThan(usage.inputTokens, 0)
        XCTAssertEqual(usage.outputTokens, 6) // the mock counts words
        XCTAssertEqual(usage.totalTokens, usage.inputTokens + usage.outputTokens)
        // 1 $/Mtok in, 2 $/Mtok out.
        let expected = (Double(usage.inputTokens) * 1.0 + Double(usage.outputTokens) * 2.0) / 1_000_000
        XCTAssertEqual(try XCTUnwrap(r.costUsd), expected, accuracy: 1e-12)
        let trace = try XCTUnwrap(r.trace)
        XCTAssertEqual(trace.route, "main")
        XCTAssertEqual(trace.servedBy, m)
        XCTAssertEqual(trace.attempts.map(\.outcome), ["ok"])
        XCTAssertFalse(trace.explanation.isEmpty)
        XCTAssertEqual(r.raw["object"]?.stringValue, "chat.completion")
        let log = try await Mock.log(m)
        XCTAssertEqual(log.count, 1)
        XCTAssertEqual(log.first?["auth_present"]?.boolValue, true)
    }

    func testRequestBuilderSendsTheOpenAIBody() async throws {
        let m = uniqueModel("body")
        try await Mock.script(m, ["then": [:]]) // the default echo reply, logged under this name
        let router = try Router(policyObject: try mockPolicy(primary: [m]))
        var req = ChatRequest(messages: [.system("Be brief."), .user("Weather in Paris?")])
        req.tools = [Tool(name: "get_weather", description: "Current weather",
                          parameters: ["type": "object", "properties": ["city": ["type": "string"]], "required": ["city"]])]
        req.toolChoice = .auto
        req.maxTokens = 50
        req.temperature = 0.5
        req.stop = ["\n\n"]
        req.seed = 7
        req.routing = RequestMetadata(tenant: "acme-tenant-id", feature: "support", tags: ["beta"])
        req.metadata = ["run": "run-42"]

        let r = try await router.chat(req)

        XCTAssertEqual(r.content, "echo: Weather in Paris?")
        let log = try await Mock.log(m)
        let sent = try XCTUnwrap(log.first?["body"])
        XCTAssertEqual(sent["messages"]?[0]?["role"]?.stringValue, "system")
        XCTAssertEqual(sent["tools"]?[0]?["function"]?["name"]?.stringValue, "get_weather")
        XCTAssertEqual(sent["tools"]?[0]?["function"]?["parameters"]?["required"], ["city"])
        XCTAssertEqual(sent["max_completion_tokens"]?.intValue, 50) // OpenAI's current name for it
        XCTAssertEqual(sent["seed"]?.intValue, 7)
        XCTAssertEqual(sent["stop"], ["\n\n"])
        XCTAssertEqual(sent["model"]?.stringValue, m) // the router picks the deployment's model
        XCTAssertEqual(sent["metadata"], ["run": "run-42"]) // OpenAI's own metadata is forwarded
        XCTAssertNil(sent["polyroute"]) // routing metadata never is
        XCTAssertFalse(String(describing: sent).contains("acme-tenant-id"))
    }

    func testToolCallsComeBackTyped() async throws {
        let m = uniqueModel("tools")
        try await Mock.script(m, ["then": ["tool_calls": [["name": "get_weather", "arguments": ["city": "Paris"]]]]])
        let router = try Router(policyObject: try mockPolicy(primary: [m]))
        var req = ChatRequest.user("Weather in Paris?")
        req.tools = [Tool(name: "get_weather", parameters: ["type": "object", "properties": ["city": ["type": "string"]]])]

        let r = try await router.chat(req)

        XCTAssertEqual(r.finishReason, "tool_calls")
        XCTAssertEqual(r.toolCalls.map(\.name), ["get_weather"])
        let args = try JSONValue.parse(try XCTUnwrap(r.toolCalls.first).arguments)
        XCTAssertEqual(args["city"]?.stringValue, "Paris")
    }

    func testFailoverToTheBackupTierWhenThePrimaryIsDown() async throws {
        let primary = uniqueModel("down"), backup = uniqueModel("backup")
        try await Mock.script(primary, ["then": ["status": 503]])
        try await Mock.script(backup, ["then": ["text": "from backup"]])
        let router = try Router(policyObject: try mockPolicy(primary: [primary], fallback: [backup]))

        let r = try await router.chat(.user("hi"))

        XCTAssertEqual(r.content, "from backup")
        let trace = try XCTUnwrap(r.trace)
        XCTAssertEqual(trace.servedBy, backup)
        XCTAssertEqual(trace.attempts.map(\.outcome), ["overloaded", "ok"])
        XCTAssertEqual(trace.attempts.map(\.deployment), [primary, backup])
        let primaryLog = try await Mock.log(primary)
        let backupLog = try await Mock.log(backup)
        XCTAssertEqual(primaryLog.count, 1)
        XCTAssertEqual(backupLog.count, 1)
    }

    func testRetriesOnTheSameDeploymentAreCountedByTheServer() async throws {
        let m = uniqueModel("flaky")
        try await Mock.script(m, ["steps": [["status": 500], ["status": 500]], "then": ["text": "third time lucky"]])
        let router = try Router(policyObject: try mockPolicy(primary: [m], retry: ["attempts_per_deployment": 3]))

        let r = try await router.chat(.user("hi"))

        XCTAssertEqual(r.content, "third time lucky")
        XCTAssertEqual(r.trace?.attempts.map(\.outcome), ["server_error", "server_error", "ok"])
        let log = try await Mock.log(m)
        XCTAssertEqual(log.map { $0["outcome"]?.stringValue ?? "" }, ["status:500", "status:500", "ok"])
    }

    func testRetryAfterIsHonouredBetweenAttempts() async throws {
        let m = uniqueModel("throttled")
        try await Mock.script(m, ["steps": [["status": 429, "error_code": "rate_limit_exceeded", "retry_after": "0.4"]], "then": ["text": "ok"]])
        let router = try Router(policyObject: try mockPolicy(primary: [m], retry: ["attempts_per_deployment": 2]))

        _ = try await router.chat(.user("hi"))

        let log = try await Mock.log(m)
        XCTAssertEqual(log.count, 2)
        let gap = (log[1]["received_ms"]?.doubleValue ?? 0) - (log[0]["received_ms"]?.doubleValue ?? 0)
        XCTAssertGreaterThanOrEqual(gap, 390, "the second attempt must wait for Retry-After")
    }

    func testConcurrentChatsShareOneRouter() async throws {
        let m = uniqueModel("busy")
        try await Mock.script(m, ["then": ["latency_ms": 300]])
        let router = try Router(policyObject: try mockPolicy(primary: [m]))
        let n = 16
        let start = Date()

        let answers = try await withThrowingTaskGroup(of: String.self) { group in
            for i in 0..<n {
                group.addTask { try await router.chat(.user("question \(i)")).content }
            }
            var all: [String] = []
            for try await a in group { all.append(a) }
            return all
        }

        XCTAssertEqual(Set(answers), Set((0..<n).map { "echo: question \($0)" }))
        XCTAssertLessThan(Date().timeIntervalSince(start), 2.5, "requests must run concurrently, not one after another")
        let log = try await Mock.log(m)
        XCTAssertEqual(log.count, n)
    }

    func testPlanExplainsWithoutSending() async throws {
        let a = uniqueModel("plan-a"), b = uniqueModel("plan-b")
        let router = try Router(policyObject: try mockPolicy(primary: [a], fallback: [b]))

        let plan = try router.plan(.user("hi"))

        XCTAssertEqual(plan.route, "main")
        XCTAssertEqual(plan.order, [a, b])
        XCTAssertFalse(plan.explanation.isEmpty)
        let sent = try await Mock.log(a)
        XCTAssertEqual(sent.count, 0)
    }

    func testReloadSwapsThePolicyAndAnInvalidOneKeepsTheOld() async throws {
        let a = uniqueModel("old"), b = uniqueModel("new")
        try await Mock.script(a, ["then": ["text": "old policy"]])
        try await Mock.script(b, ["then": ["text": "new policy"]])
        let router = try Router(policyObject: try mockPolicy(primary: [a]))
        let before = try await router.chat(.user("hi")).content
        XCTAssertEqual(before, "old policy")

        try router.reload(policyObject: try mockPolicy(primary: [b]))
        let after = try await router.chat(.user("hi")).content
        XCTAssertEqual(after, "new policy")

        XCTAssertThrowsError(try router.reload(policy: "routes: [{name: broken, deployments: [nowhere]}]")) { e in
            XCTAssertEqual((e as? PolyrouteError)?.kind, .config, "\(e)")
        }
        let still = try await router.chat(.user("hi")).content
        XCTAssertEqual(still, "new policy")
        let policy = try router.policy()
        XCTAssertEqual(policy["routes"]?[0]?["deployments"], [.string(b)])
        // A literal key reads back only as "[redacted]" (the core's rule since issue 15 item 8).
        XCTAssertEqual(policy["providers"]?["mock"]?["api_key"], .string("[redacted]"), "literal keys are never serialised back")
    }

    func testRouterFromAPolicyFile() async throws {
        let m = uniqueModel("file")
        try await Mock.script(m, ["then": ["text": "from a file"]])
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(m).json").path
        try Data(try mockPolicy(primary: [m]).jsonString().utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }

        let router = try Router.fromPolicyFile(path: path)
        let r = try await router.chat(.user("hi"))

        XCTAssertEqual(r.content, "from a file")
    }

    func testYamlPolicyText() async throws {
        let m = uniqueModel("yaml")
        let yaml = """
        version: 1
        providers:
          local: {kind: mock, script: {then: {text: "yaml works"}}}
        deployments:
          d: {provider: local, model: \(m)}
        routes:
          - {name: main, deployments: [d]}
        default_route: main
        """
        let router = try Router(policy: yaml)
        let r = try await router.chat(.user("hi"))
        XCTAssertEqual(r.content, "yaml works")
    }
}
