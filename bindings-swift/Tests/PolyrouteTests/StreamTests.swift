// Streaming over real HTTP: events, failover before the first content, interruption after it,
// and cancellation (consumer task cancelled, loop left early, handle cancelled).
import Foundation
import XCTest
@testable import Polyroute

final class StreamTests: XCTestCase {
    func testStreamDeliversDeltasThenFinishAndUsage() async throws {
        let m = uniqueModel("stream")
        try await Mock.script(m, ["then": ["text": "one two three four", "chunk_delay_ms": 5]])
        let router = try Router(policyObject: try mockPolicy(primary: [m]))

        let (events, error) = await collect(router.stream(.user("count")))

        XCTAssertNil(error)
        XCTAssertEqual(text(of: events), "one two three four")
        XCTAssertGreaterThanOrEqual(events.filter { $0.text != nil }.count, 4, "word-sized chunks arrive separately")
        XCTAssertTrue(events.contains { if case .finish(reason: "stop", _) = $0 { return true }; return false }, "\(events)")
        XCTAssertTrue(events.contains { if case .usage(let u) = $0 { return u.outputTokens == 4 }; return false }, "\(events)")
        let log = try await Mock.log(m)
        XCTAssertEqual(log.first?["stream"]?.boolValue, true)
    }

    func testOpenStreamGivesTheTraceAfterTheEnd() async throws {
        let m = uniqueModel("traced")
        try await Mock.script(m, ["then": ["text": "traced answer"]])
        let router = try Router(policyObject: try mockPolicy(primary: [m]))

        let stream = try await router.openStream(.user("hi"))
        var got = ""
        for try await ev in stream.events { got += ev.text ?? "" }

        XCTAssertEqual(got, "traced answer")
        let trace = try XCTUnwrap(stream.trace)
        XCTAssertEqual(trace.servedBy, m)
        XCTAssertFalse(trace.explanation.isEmpty)
    }

    func testFailoverBeforeTheFirstContentIsInvisible() async throws {
        let primary = uniqueModel("cut-early"), backup = uniqueModel("stream-backup")
        // The primary drops the connection, then (if retried) breaks before any content.
        try await Mock.script(primary, ["steps": [["fault": "drop"]], "then": ["fault": ["cut_after": ["chunks": 0]]]])
        try await Mock.script(backup, ["then": ["text": "clean answer"]])
        let router = try Router(policyObject: try mockPolicy(primary: [primary], fallback: [backup]))

        let stream = try await router.openStream(.user("hi"))
        var events: [StreamEvent] = []
        for try await ev in stream.events { events.append(ev) }

        XCTAssertEqual(text(of: events), "clean answer")
        XCTAssertFalse(events.contains { if case .reset = $0 { return true }; return false })
        XCTAssertEqual(stream.trace?.attempts.map(\.deployment), [primary, backup])
        let primaryLog = try await Mock.log(primary)
        XCTAssertEqual(primaryLog.count, 1)
    }

    func testInterruptionAfterContentEndsWithTypedErrorAndPartialText() async throws {
        let m = uniqueModel("cut-late")
        try await Mock.script(m, ["then": ["text": "alpha beta gamma delta", "fault": ["cut_after": ["chunks": 2]]]])
        let router = try Router(policyObject: try mockPolicy(primary: [m]))

        let (events, error) = await collect(router.stream(.user("hi")))

        XCTAssertEqual(text(of: events), "alpha beta")
        guard case .StreamInterrupted(let d)? = error as? PolyrouteError else {
            return XCTFail("expected StreamInterrupted, got \(String(describing: error))")
        }
        XCTAssertEqual(d.code, "stream_interrupted")
        XCTAssertEqual(d.partialText, "alpha beta")
        XCTAssertEqual(d.model, m)
    }

    func testCancellingTheConsumingTaskCancelsTheRequest() async throws {
        let m = uniqueModel("slow-stream")
        let words = (1...200).map { "w\($0)" }.joined(separator: " ")
        try await Mock.script(m, ["then": ["text": .string(words), "chunk_delay_ms": 50]])
        let router = try Router(policyObject: try mockPolicy(primary: [m]))
        let firstDelta = expectation(description: "first delta")

        let consumer = Task { () -> (Int, Error?) in
            var n = 0
            do {
                for try await ev in router.stream(.user("hi")) where ev.text != nil {
                    n += 1
                    if n == 1 { firstDelta.fulfill() }
                }
                return (n, nil)
            } catch {
                return (n, error)
            }
        }
        await fulfillment(of: [firstDelta], timeout: 5)
        let cancelledAt = Date()
        consumer.cancel()
        let (deltas, _) = await consumer.value

        XCTAssertLessThan(Date().timeIntervalSince(cancelledAt), 1.0, "cancel must stop the iteration promptly")
        XCTAssertLessThan(deltas, 200)
        try await assertServerSawDisconnect(m)
    }

    func testLeavingTheLoopEarlyCancelsTheRequest() async throws {
        let m = uniqueModel("break-stream")
        let words = (1...200).map { "w\($0)" }.joined(separator: " ")
        try await Mock.script(m, ["then": ["text": .string(words), "chunk_delay_ms": 50]])
        let router = try Router(policyObject: try mockPolicy(primary: [m]))

        var seen = 0
        for try await ev in router.stream(.user("hi")) where ev.text != nil {
            seen += 1
            if seen == 2 { break }
        }

        XCTAssertEqual(seen, 2)
        try await assertServerSawDisconnect(m)
    }

    func testHandleCancelFailsPendingReadsWithCancelled() async throws {
        let m = uniqueModel("handle-cancel")
        try await Mock.script(m, ["then": ["text": "a b c d e f g h", "chunk_delay_ms": 300]])
        let router = try Router(policyObject: try mockPolicy(primary: [m]))
        let stream = try await router.openStream(.user("hi"))
        _ = try await stream.next()

        stream.cancel()

        let e = await expectPolyrouteError { try await stream.next() }
        XCTAssertEqual(e?.kind, .cancelled)
        try await assertServerSawDisconnect(m)
    }

    /// The mock records when the client went away before the answer was complete.
    private func assertServerSawDisconnect(_ model: String, file: StaticString = #filePath, line: UInt = #line) async throws {
        for _ in 0..<40 {
            if let entry = try await Mock.log(model).first, entry["client_disconnected"]?.boolValue == true { return }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        let log = try await Mock.log(model)
        XCTFail("the mock server never saw the client disconnect: \(log)", file: file, line: line)
    }
}
