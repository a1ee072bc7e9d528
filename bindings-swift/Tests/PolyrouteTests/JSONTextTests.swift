// The binding's own JSON reader, writer and tree readers (JSONText.swift, JSONTree.swift, the
// response types' tree initialisers): what JSONDecoder/JSONEncoder did for the binding, with
// the same values and errors, at a fraction of the cost. Malformed text is a typed
// `DecodingError`, never a crash. JSONDecoder still decodes every type (their Decodable
// conformances read a JSONValue first), so it is the reference the fast path is checked against.
import Foundation
import XCTest
@testable import Polyroute

final class JSONTextTests: XCTestCase {
    func testParsesWhatJSONDecoderParses() throws {
        let docs = [
            #"{"a": [true, false, null, "x"], "b": {"c": {}}, "d": [], "e": ""}"#,
            #"  [ "tab\tnew\nline", "q\"b\\s/", "\u00e9\u4e2d", "😀", "\ud83d\ude00", "\/" ]  "#,
            #"{"nested": [[[["deep"]]]], "unicode key ü": "ok"}"#,
        ]
        for doc in docs {
            let old = try JSONDecoder().decode(JSONValue.self, from: Data(doc.utf8))
            XCTAssertEqual(try JSONValue.parse(doc), old, doc)
        }
    }

    func testNumbers() throws {
        XCTAssertEqual(try JSONValue.parse("[0, -0, 7, -12, 9223372036854775807]"), [0, 0, 7, -12, .int(Int.max)])
        XCTAssertEqual(try JSONValue.parse("[1.5, -0.25, 1e3, 2E-2, 9223372036854775808]"),
                       [1.5, -0.25, 1000.0, 0.02, .double(9223372036854775808.0)])
    }

    func testWritesTextThatReadsBackTheSame() throws {
        let v: JSONValue = [
            "z": "quote \" backslash \\ slash / nl \n cr \r tab \t bell \u{07} nul \u{00} emoji 😀",
            "a": [1, -2, 0.5, 1e-7, .double(100), true, false, nil, [:], []],
            "m": ["k2": "v", "k1": ["x": 1]],
        ]
        let text = try v.jsonString()
        XCTAssertEqual(try JSONValue.parse(text), v.replacing(.double(100), with: .int(100)))
        XCTAssertEqual(try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)).jsonString(), text)
        XCTAssertTrue(text.hasPrefix(#"{"a":[1,-2,0.5,"#), text) // keys sorted, compact
        XCTAssertTrue(text.contains(#"bell \u0007 nul \u0000 emoji 😀""#), text)
        XCTAssertTrue(text.contains(",100,"), "a whole double is written without .0, as JSONEncoder did: \(text)")
    }

    func testNonFiniteDoublesAreAnEncodingError() {
        for d in [Double.nan, .infinity, -.infinity] {
            XCTAssertThrowsError(try JSONValue.array([.double(d)]).jsonString()) { e in
                guard case EncodingError.invalidValue = e else { return XCTFail("\(e)") }
            }
        }
    }

    func testMalformedTextIsADataCorruptedError() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let bad = ["", " ", "{", "[1,", "[1,]", #"{"a" 1}"#, #"{"a":1,}"#, "{a:1}", "tru", "nul", "01", "1.", "-", "1e", "+1",
                   #""\x""#, #""\u12""#, #""\ud800""#, #""\ud800\u0041""#, #""abc"#, "[1]x", "\"a\u{01}b\"", deep]
        for text in bad {
            XCTAssertThrowsError(try JSONValue.parse(text), String(text.prefix(20))) { e in
                guard case DecodingError.dataCorrupted(let ctx) = e else { return XCTFail("\(e)") }
                XCTAssertTrue(ctx.debugDescription.hasPrefix("invalid JSON at byte"), ctx.debugDescription)
            }
        }
    }

    func testTypedValuesDecodeAsWithJSONDecoder() async throws {
        let scripts: [JSONValue] = [
            ["then": ["text": "Tree \"decoded\" \\ ✓ 😀"]],
            ["then": ["tool_calls": [["name": "f", "arguments": ["x": 1, "s": "a\nb"]]]]],
        ]
        for script in scripts {
            let m = uniqueModel("json")
            try await Mock.script(m, script)
            let router = try Router(policyObject: try mockPolicy(primary: [m], priced: true))
            let text = try await router.chatJson(requestJson: try JSONValue.object(["messages": [["role": "user", "content": "hi"]]]).jsonString())

            var old = try JSONDecoder().decode(ChatResponse.self, from: Data(text.utf8))
            old.raw = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
            var new = try CoreJSON.response(text)
            // JSONDecoder read a whole double such as `"backoff_ms": 0.0` into `.int(0)`, the
            // tree keeps it a `.double`; both are the same number.
            XCTAssertEqual(new.raw.wholeDoublesAsInts, old.raw.wholeDoublesAsInts)
            XCTAssertNotEqual(new.raw, .null)
            (new.raw, old.raw) = (.null, .null)
            XCTAssertEqual(new, old)
            XCTAssertEqual(new.trace?.attempts.first?.outcome, "ok")
            XCTAssertNotNil(new.costUsd)
            XCTAssertTrue(new.content == "Tree \"decoded\" \\ ✓ 😀" || new.toolCalls.first?.name == "f", "\(new)")
        }

        let event = #"{"type": "future_kind", "n": [1, {"k": null}]}"#
        XCTAssertEqual(try CoreJSON.decode(StreamEvent.self, event), try JSONDecoder().decode(StreamEvent.self, from: Data(event.utf8)))
    }

    func testUsageDetailsAndStreamEvents() throws {
        let u = try CoreJSON.decode(Usage.self, #"{"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 2}, "completion_tokens_details": {"reasoning_tokens": 3}}"#)
        XCTAssertEqual([u.inputTokens, u.outputTokens, u.totalTokens, u.cacheReadTokens, u.cacheWriteTokens, u.reasoningTokens], [10, 5, 15, 4, 2, 3])
        // Provider-shaped details that are not what we expect count as absent.
        let odd = try CoreJSON.decode(Usage.self, #"{"prompt_tokens": 1, "prompt_tokens_details": "n/a", "completion_tokens_details": {"reasoning_tokens": "x"}}"#)
        XCTAssertEqual([odd.cacheReadTokens, odd.reasoningTokens, odd.totalTokens], [0, 0, 1])
        XCTAssertEqual(try CoreJSON.event(#"{"type": "tool_call_delta", "index": 1, "name": "f"}"#), .toolCallDelta(index: 1, id: nil, name: "f", arguments: ""))
        XCTAssertEqual(try CoreJSON.event(#"{"type": "usage", "usage": {"prompt_tokens": 2, "completion_tokens": 1}}"#),
                       .usage(try JSONDecoder().decode(Usage.self, from: Data(#"{"prompt_tokens": 2, "completion_tokens": 1}"#.utf8))))
        XCTAssertEqual(try CoreJSON.event(#"{"type": "finish", "reason": "stop", "native": null}"#), .finish(reason: "stop", native: nil))
        XCTAssertThrowsError(try CoreJSON.event(#"{"type": "content_delta"}"#)) { e in
            guard case DecodingError.keyNotFound(let key, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(key.stringValue, "text")
        }
    }

    func testTypeMismatchesAreTheDecodingErrorsJSONDecoderThrows() {
        XCTAssertThrowsError(try CoreJSON.decode(CandidateTrace.self, #"{"deployment": "d", "provider": "p", "model": "m", "tier": "one"}"#)) { e in
            guard case DecodingError.typeMismatch(_, let ctx) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(ctx.codingPath.map(\.stringValue), ["tier"])
        }
        XCTAssertThrowsError(try CoreJSON.decode(CandidateTrace.self, #"{"deployment": "d", "provider": "p", "model": "m"}"#)) { e in
            guard case DecodingError.keyNotFound(let key, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(key.stringValue, "tier")
        }
        XCTAssertThrowsError(try CoreJSON.decode([CandidateTrace].self, #"[{"deployment": null, "provider": "p", "model": "m", "tier": 1}]"#)) { e in
            guard case DecodingError.valueNotFound(_, let ctx) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(ctx.codingPath.map(\.stringValue), ["Index 0", "deployment"])
        }
        XCTAssertThrowsError(try CoreJSON.decode(Choice.self, #"{"index": 1.5, "message": {}}"#)) { e in
            guard case DecodingError.typeMismatch = e else { return XCTFail("\(e)") }
        }
        // An optional field: absent or null is nil, present with the wrong type is an error.
        let candidate = #"{"deployment": "d", "provider": "p", "model": "m", "tier": 1"#
        XCTAssertNil(try CoreJSON.decode(CandidateTrace.self, candidate + "}").skipped)
        XCTAssertNil(try CoreJSON.decode(CandidateTrace.self, candidate + #", "skipped": null}"#).skipped)
        XCTAssertEqual(try CoreJSON.decode(CandidateTrace.self, candidate + #", "skipped": "open"}"#).skipped, "open")
        XCTAssertThrowsError(try CoreJSON.decode(CandidateTrace.self, candidate + #", "skipped": 5}"#)) { e in
            guard case DecodingError.typeMismatch(_, let ctx) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(ctx.codingPath.map(\.stringValue), ["skipped"])
        }
        XCTAssertEqual(try CoreJSON.decode(Usage.self, #"{"prompt_tokens": 3.0, "completion_tokens": 4}"#).totalTokens, 7)
    }

    // The tape (JSONTape.swift): answers are read without a tree, `raw` is built on first use.

    func testAnswerReadFromTheTapeNamesThePathOfANestedError() {
        let answer = #"{"id": "c1", "model": "m", "choices": [], "trace": {"request_id": "r", "route": "main", "matched": "default", "strategy": "ordered", "explanation": "e", "attempts": [{"deployment": "a", "provider": "p", "model": "m", "tier": 0, "outcome": "ok", "latency_ms": 1}, {"deployment": "b", "provider": "p", "model": "m", "tier": "x", "outcome": "ok", "latency_ms": 1}]}}"#
        XCTAssertThrowsError(try CoreJSON.response(answer)) { e in
            guard case DecodingError.typeMismatch(_, let ctx) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(ctx.codingPath.map(\.stringValue), ["trace", "attempts", "Index 1", "tier"])
        }
        // The same through JSONDecoder (its decoder's path in front of the tape's).
        XCTAssertThrowsError(try JSONDecoder().decode([ChatResponse].self, from: Data("[\(answer)]".utf8))) { e in
            guard case DecodingError.typeMismatch(_, let ctx) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(ctx.codingPath.map(\.stringValue), ["Index 0", "trace", "attempts", "Index 1", "tier"])
        }
        XCTAssertThrowsError(try CoreJSON.response(#"{"id": "c1", "choices": []}"#)) { e in
            guard case DecodingError.keyNotFound(let key, let ctx) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(key.stringValue, "model")
            XCTAssertEqual(ctx.codingPath.count, 0)
        }
        XCTAssertThrowsError(try CoreJSON.response(#"{"id": "c1", "model": "m", "choices": {}}"#)) { e in
            guard case DecodingError.typeMismatch(_, let ctx) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(ctx.codingPath.map(\.stringValue), ["choices"])
        }
    }

    func testEscapedKeysRepeatedKeysAndContentParts() throws {
        // An escaped key is the key it spells; a repeated key reads as its last value, in the
        // typed fields and in `raw` alike (as a dictionary keeps it).
        let r = try CoreJSON.response(#"{"i\u0064": "c1", "model": "first", "model": "last", "choices": [{"index": 0, "message": {"role": "assistant", "content": [{"type": "text", "text": "a\nb"}, {"type": "image"}, 5, {"type": "text", "text": "c"}]}}]}"#)
        XCTAssertEqual(r.id, "c1")
        XCTAssertEqual(r.model, "last")
        XCTAssertEqual(r.raw["model"], "last")
        XCTAssertEqual(r.content, "a\nbc")
        XCTAssertEqual(try JSONValue.parse("[-999999999999999999, 999999999999999999, -0, 12345678901234567890]"),
                       [.int(-999_999_999_999_999_999), .int(999_999_999_999_999_999), 0, .double(12345678901234567890.0)])
    }

    func testRawIsBuiltOnceAndEqualFromManyThreads() throws {
        let text = #"{"id": "c1", "model": "m", "choices": [], "extra": {"k": [1, 2.5, "s", null, true]}}"#
        let r = try CoreJSON.response(text)
        let expected = try JSONValue.parse(text)
        let seen = Collected()
        DispatchQueue.concurrentPerform(iterations: 16) { _ in seen.add(r.raw) }
        XCTAssertEqual(seen.all.count, 16)
        XCTAssertTrue(seen.all.allSatisfy { $0 == expected })
        // Equality compares `raw` too; a copy whose `raw` was replaced differs.
        var copy = r
        XCTAssertEqual(copy, r)
        copy.raw = ["id": "other"]
        XCTAssertNotEqual(copy, r)
        XCTAssertEqual(try CoreJSON.response(text), r)
    }

    func testACallsTraceIsReadWhenAskedForAndEqualsTheOneReadAtOnce() throws {
        let good = #"{"id": "c1", "model": "m", "choices": [], "trace": {"request_id": "r", "route": "main", "matched": "default", "strategy": "priority", "explanation": "e", "candidates": [{"deployment": "a", "provider": "p", "model": "m", "tier": 0}], "attempts": [{"deployment": "a", "provider": "p", "model": "m", "tier": 0, "outcome": "ok", "latency_ms": 1.5}]}}"#
        let atOnce = try CoreJSON.response(good)
        let onRead = try CoreJSON.answer(good)
        XCTAssertEqual(onRead, atOnce)
        let seen = Collected()
        DispatchQueue.concurrentPerform(iterations: 16) { _ in seen.add(onRead.trace.map { .string($0.attempts[0].deployment) } ?? .null) }
        XCTAssertEqual(seen.all, Array(repeating: "a", count: 16))
        XCTAssertEqual(onRead.trace, atOnce.trace)
        XCTAssertEqual(onRead.trace?.attempts.first?.latencyMs, 1.5)
        // Replaced, it reads as set, and equality sees it.
        var copy = onRead
        copy.trace?.route = "other"
        XCTAssertEqual(copy.trace?.route, "other")
        XCTAssertEqual(onRead.trace?.route, "main")
        XCTAssertNotEqual(copy, onRead)
        copy.trace = nil
        XCTAssertNil(copy.trace)
        // No trace at all: nil either way.
        XCTAssertNil(try CoreJSON.answer(#"{"id": "c1", "model": "m", "choices": [], "trace": null}"#).trace)
        // A malformed trace fails the answer when read at once (`init(coreJSON:)`); read on
        // demand it is nil, and the rest of the answer is there.
        let bad = #"{"id": "c1", "model": "m", "choices": [], "trace": {"route": 5}}"#
        XCTAssertThrowsError(try ChatResponse(coreJSON: bad))
        let lenient = try ChatResponse(coreJSON: bad, traceOnRead: true)
        XCTAssertEqual(lenient.id, "c1")
        XCTAssertNil(lenient.trace)
    }
}

final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var values = [JSONValue]()
    func add(_ v: JSONValue) { lock.lock(); values.append(v); lock.unlock() }
    var all: [JSONValue] { lock.lock(); defer { lock.unlock() }; return values }
}

private extension JSONValue {
    var wholeDoublesAsInts: JSONValue {
        switch self {
        case .double(let d): return Int(exactly: d).map(JSONValue.int) ?? self
        case .array(let a): return .array(a.map(\.wholeDoublesAsInts))
        case .object(let o): return .object(o.mapValues(\.wholeDoublesAsInts))
        default: return self
        }
    }

    func replacing(_ old: JSONValue, with new: JSONValue) -> JSONValue {
        switch self {
        case old: return new
        case .array(let a): return .array(a.map { $0.replacing(old, with: new) })
        case .object(let o): return .object(o.mapValues { $0.replacing(old, with: new) })
        default: return self
        }
    }
}
