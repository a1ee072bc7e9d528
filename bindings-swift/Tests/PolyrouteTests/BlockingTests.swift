// `Router.chatBlocking`: the sync call for code that is not async. Same routing and answers as
// `chat` (every provider error kind is also checked through it, in ErrorTests), run on the
// calling thread, cancellable from another one.
import Foundation
import XCTest
@testable import Polyroute

final class BlockingTests: XCTestCase {
    func testAnswersWithFailoverAndTrace() async throws {
        let (p, b) = (uniqueModel("blk-primary"), uniqueModel("blk-backup"))
        try await Mock.script(p, ["then": ["status": 503]])
        try await Mock.script(b, ["then": ["text": "from the backup"]])
        let router = try Router(policyObject: try mockPolicy(primary: [p], fallback: [b], priced: true))

        let r = try await onThread { try router.chatBlocking(.user("hi")) }.get()

        XCTAssertEqual(r.content, "from the backup")
        XCTAssertEqual(r.trace?.servedBy, b)
        XCTAssertEqual(r.trace?.attempts.map(\.outcome), ["overloaded", "ok"])
        XCTAssertNotNil(r.costUsd)
        XCTAssertEqual(r.raw["object"]?.stringValue, "chat.completion")
        let (sentP, sentB) = (try await Mock.log(p), try await Mock.log(b))
        XCTAssertEqual(sentP.count, 1)
        XCTAssertEqual(sentB.count, 1)
    }

    // Typed calls leave the trace in the core until it is read (`chatAnswer`); what they
    // return must equal what the JSON call's whole text reads as, `raw` (trace included) too.
    func testATypedAnswersTraceHeldInTheCoreReadsAsTheJSONCallsDoes() async throws {
        let (p, b) = (uniqueModel("blk-held-primary"), uniqueModel("blk-held-backup"))
        try await Mock.script(p, ["then": ["status": 503]])
        try await Mock.script(b, ["then": ["text": "from the backup"]])
        let router = try Router(policyObject: try mockPolicy(primary: [p], fallback: [b], priced: true))

        let held = try await onThread { try router.chatAnswerBlocking(requestJson: ChatRequest.user("hi").body.jsonString()) }.get()
        XCTAssertNil(try JSONValue.parse(held.json())["trace"], "the answer's text leaves the trace out")
        let typed = try CoreJSON.answer(held)
        let text = try await onThread { try router.chatJsonBlocking(requestJson: ChatRequest.user("hi").body.jsonString()) }.get()
        let whole = try ChatResponse(coreJSON: text)

        XCTAssertEqual(typed.content, "from the backup")
        XCTAssertEqual(typed.trace?.servedBy, b)
        XCTAssertEqual(typed.trace?.attempts.map(\.outcome), whole.trace?.attempts.map(\.outcome))
        XCTAssertEqual(typed.trace?.explanation, whole.trace?.explanation)
        XCTAssertEqual(typed.raw["trace"]?["served_by"]?.stringValue, b)
        func keys(_ v: JSONValue) -> Set<String> { if case .object(let o) = v { return Set(o.keys) } else { return [] } }
        XCTAssertEqual(keys(typed.raw), keys(whole.raw))
        XCTAssertTrue(keys(typed.raw).contains("trace"))
        // Read from several threads at once, the trace is written once and the same for all.
        let seen = Collected()
        let again = try CoreJSON.answer(try await onThread { try router.chatAnswerBlocking(requestJson: ChatRequest.user("hi").body.jsonString()) }.get())
        DispatchQueue.concurrentPerform(iterations: 8) { _ in seen.add(.string(again.trace?.servedBy ?? "none")) }
        XCTAssertEqual(Set(seen.all), [.string(b)])
    }

    func testATokenFiredFromAnotherThreadEndsTheCall() async throws {
        let m = uniqueModel("blk-slow")
        try await Mock.script(m, ["then": ["latency_ms": 5000]])
        let router = try Router(policyObject: try mockPolicy(primary: [m], timeouts: ["first_token": "10s", "total": "20s"]))
        let token = CancelToken()
        let call = Task { await onThread { try router.chatBlocking(.user("hi"), cancel: token) } }
        // Wait until the request is on the wire (the call is then waiting on its socket).
        try await waitUntilSent(m)
        let start = Date()
        token.cancel()

        let r = await call.value

        guard case .failure(PolyrouteError.Cancelled(let d)) = r else { return XCTFail("\(r)") }
        XCTAssertEqual(d.code, "cancelled")
        XCTAssertLessThan(Date().timeIntervalSince(start), 1.0)
        // Dropping the request closed the connection before the 5 s answer.
        let disconnected = try await mockSawDisconnect(m)
        XCTAssertTrue(disconnected)
    }

    func testManyThreadsAtOnce() async throws {
        let m = uniqueModel("blk-many")
        try await Mock.script(m, ["then": [:]]) // echo
        let router = try Router(policyObject: try mockPolicy(primary: [m]))
        let answers = await withTaskGroup(of: [String].self) { group in
            for t in 0..<6 {
                group.addTask {
                    (try? await onThread { try (0..<5).map { try router.chatBlocking(.user("q\(t)-\($0)")).content } }.get()) ?? []
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        XCTAssertEqual(Set(answers), Set((0..<6).flatMap { t in (0..<5).map { "echo: q\(t)-\($0)" } }))
    }

    func testAnInvalidRequestIsTypedBeforeAnythingIsSent() async throws {
        let m = uniqueModel("blk-invalid")
        let router = try Router(policyObject: try mockPolicy(primary: [m]))
        let r = await onThread { try router.chatJsonBlocking(requestJson: #"{"messages": "not a list"}"#) }
        guard case .failure(PolyrouteError.InvalidRequest) = r else { return XCTFail("\(r)") }
        let sent = try await Mock.log(m)
        XCTAssertEqual(sent.count, 0)
    }
}
