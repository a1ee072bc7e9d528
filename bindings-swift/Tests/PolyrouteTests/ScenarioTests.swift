// Swift runner for the language-neutral scenarios in tests/scenarios/*.json.
//
// The Rust, Python, Node and Swift runners replay the same files; a difference between
// languages is a bug in a binding. This runner drives the public `Router` through its JSON
// surface (`chatJson`, `streamJson` + `next`/`traceJson`, `deploymentsJson`, `setBreaker`,
// and `PolyrouteError.details.json`), so it compares exactly the JSON every binding hands
// out, with the rules of tests/scenarios/README.md (the same as the Rust, Python and Node
// runners).
//
// It uses the mock server test.sh starts (POLYROUTE_MOCK_URL) and resets it before each
// scenario; XCTest runs tests one after another, so no other test is disturbed.
// POLYROUTE_SCENARIO=<substring> selects scenarios.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import Polyroute

private let stepKeys: Set<String> = ["chat", "stream", "sleep_ms", "set_breaker", "scripts", "repeat", "expect", "note"]
private let expectKeys: Set<String> = [
    "outcome", "content", "content_prefix", "model", "served_by", "served_by_one_of", "attempts", "attempt_count",
    "status", "provider_code", "partial_text", "partial_text_prefix", "finished", "resets", "elapsed_ms", "cost_usd",
    "usage", "tool_calls", "budget", "retry_after_s", "trace", "served_by_counts", "server_hits", "gaps_ms",
    "server_outcomes", "server_saw", "server_never_saw", "breakers",
]
private let traceKeys: Set<String> = ["route", "matched_contains", "strategy", "degraded", "notes_contain", "explanation_contains", "skipped", "backoff_ms", "hedge"]

private extension JSONValue {
    var obj: [String: JSONValue]? { if case .object(let o) = self { return o }; return nil }
    var arr: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    var isNull: Bool { if case .null = self { return true }; return false }
    /// Compact text for messages.
    var text: String { (try? jsonString()) ?? "?" }
}

/// `{"min", "max"}`, inclusive, either optional.
private func inRange(_ r: JSONValue, _ v: Double) -> Bool {
    if let lo = r["min"]?.doubleValue, v < lo { return false }
    if let hi = r["max"]?.doubleValue, v > hi { return false }
    return true
}

/// `n` or `[min, max]`.
private func countOk(_ c: JSONValue, _ n: Int) -> Bool {
    if let a = c.arr, a.count == 2, let lo = a[0].intValue, let hi = a[1].intValue { return lo <= n && n <= hi }
    return c.intValue == n
}

private enum ScenarioMock {
    static func call(_ method: String, _ path: String, body: String? = nil) async throws -> JSONValue {
        var req = URLRequest(url: URL(string: try Mock.baseURL() + path)!)
        req.httpMethod = method
        if let body {
            req.httpBody = Data(body.utf8)
            req.setValue("application/json", forHTTPHeaderField: "content-type")
        }
        let (data, status): (Data, Int) = try await withCheckedThrowingContinuation { cont in
            URLSession.shared.dataTask(with: req) { data, response, error in
                if let error { return cont.resume(throwing: error) }
                cont.resume(returning: (data ?? Data(), (response as? HTTPURLResponse)?.statusCode ?? 0))
            }.resume()
        }
        let text = String(decoding: data, as: UTF8.self)
        guard status == 200 else { throw MockControlError(description: "\(method) \(path) -> \(status): \(text)") }
        return text.isEmpty ? .null : try JSONValue.parse(text)
    }

    static func encoded(_ name: String) -> String {
        name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? name
    }

    static func install(_ scripts: JSONValue?) async throws {
        for (name, script) in scripts?.obj ?? [:] {
            _ = try await call("PUT", "/_mock/scripts/\(encoded(name))", body: try script.jsonString())
        }
    }

    static func log(_ script: String) async throws -> [JSONValue] {
        try await call("GET", "/_mock/log?script=\(encoded(script))").arr ?? []
    }
}

/// One request's result as the JSON the binding hands out.
private struct Outcome {
    var response: JSONValue?
    var error: JSONValue?
    var events: [JSONValue]?
    var trace: JSONValue
    var elapsedMs: Double

    var kind: String { error.map { $0["kind"]?.stringValue ?? "?" } ?? "ok" }

    var content: String? {
        if let events {
            let start = (events.lastIndex { $0["type"]?.stringValue == "reset" }).map { $0 + 1 } ?? 0
            return events[start...].filter { $0["type"]?.stringValue == "content_delta" }.compactMap { $0["text"]?.stringValue }.joined()
        }
        return response?["choices"]?[0]?["message"]?["content"]?.stringValue
    }

    var model: String? {
        if let events { return events.last { $0["type"]?.stringValue == "start" }?["model"]?.stringValue }
        return response?["model"]?.stringValue
    }

    var usage: JSONValue? {
        if let events { return events.last { $0["type"]?.stringValue == "usage" }?["usage"] }
        return response?["usage"]
    }

    var toolCallNames: [String] {
        if let events {
            return events.filter { $0["type"]?.stringValue == "tool_call_delta" }.compactMap { $0["name"]?.stringValue }
        }
        return (response?["choices"]?[0]?["message"]?["tool_calls"]?.arr ?? []).compactMap { $0["function"]?["name"]?.stringValue }
    }
}

private func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
private func msSince(_ t0: UInt64) -> Double { Double(now() - t0) / 1_000_000 }

private func errorJSON(_ e: Error) throws -> JSONValue {
    guard let pe = e as? PolyrouteError else { throw e }
    return try JSONValue.parse(pe.details.json)
}

private func runChat(_ router: Router, _ body: JSONValue) async throws -> Outcome {
    let t0 = now()
    do {
        let text = try await router.chatJson(requestJson: try body.jsonString(), cancel: nil)
        let resp = try JSONValue.parse(text)
        return Outcome(response: resp, error: nil, events: nil, trace: resp["trace"] ?? .null, elapsedMs: msSince(t0))
    } catch {
        let err = try errorJSON(error)
        return Outcome(response: nil, error: err, events: nil, trace: err["trace"] ?? .null, elapsedMs: msSince(t0))
    }
}

private func runStream(_ router: Router, _ body: JSONValue) async throws -> Outcome {
    let t0 = now()
    var events: [JSONValue] = []
    var err: JSONValue?
    var traceText: String?
    do {
        let handle = try await router.streamJson(requestJson: try body.jsonString(), cancel: nil)
        do {
            while let ev = try await handle.next() { events.append(try JSONValue.parse(ev)) }
        } catch {
            err = try errorJSON(error)
        }
        traceText = try handle.traceJson()
    } catch {
        err = try errorJSON(error)
    }
    let elapsed = msSince(t0)
    var trace: JSONValue = .null
    if let t = err?["trace"], !t.isNull {
        trace = t
    } else if let t = traceText {
        trace = try JSONValue.parse(t)
    }
    return Outcome(response: nil, error: err, events: events, trace: trace, elapsedMs: elapsed)
}

private func checkResult(_ exp: [String: JSONValue], _ o: Outcome, _ errs: inout [String]) {
    func bad(_ what: String, _ want: Any, _ got: Any) { errs.append("\(what): expected \(want), got \(got)") }
    if let w = exp["outcome"]?.stringValue, o.kind != w { bad("outcome", w, "\(o.kind) (\(o.error?["message"]?.stringValue ?? ""))") }
    if let w = exp["content"]?.stringValue, o.content != w { bad("content", w.debugDescription, String(describing: o.content)) }
    if let w = exp["content_prefix"]?.stringValue, !(o.content ?? "").hasPrefix(w) { bad("content_prefix", w, String(describing: o.content)) }
    if let w = exp["model"]?.stringValue, o.model != w { bad("model", w, String(describing: o.model)) }
    let served = o.trace["served_by"]?.stringValue
    if let w = exp["served_by"] {
        if w.stringValue != served { bad("served_by", w.text, String(describing: served)) }
    }
    if let set = exp["served_by_one_of"]?.arr, !set.contains(where: { $0.stringValue == served && served != nil }) {
        bad("served_by_one_of", set.map(\.text), String(describing: served))
    }
    let attempts: [[String]] = (o.trace["attempts"]?.arr ?? []).map { [$0["deployment"]?.stringValue ?? "?", $0["outcome"]?.stringValue ?? "?"] }
    if let w = exp["attempts"]?.arr {
        let want = w.map { ($0.arr ?? []).map { $0.stringValue ?? "?" } }
        if want != attempts { bad("attempts", want, attempts) }
    }
    if let c = exp["attempt_count"], !countOk(c, attempts.count) { bad("attempt_count", c.text, attempts.count) }
    let e = o.error ?? .null
    if let w = exp["status"]?.intValue, e["status"]?.intValue != w { bad("status", w, e["status"]?.text ?? "nil") }
    if let w = exp["provider_code"]?.stringValue, e["provider_code"]?.stringValue != w { bad("provider_code", w, e["provider_code"]?.text ?? "nil") }
    let partial = e["partial"]?["text"]?.stringValue
    if let w = exp["partial_text"]?.stringValue, partial != w { bad("partial_text", w.debugDescription, String(describing: partial)) }
    if let w = exp["partial_text_prefix"]?.stringValue, !(partial?.hasPrefix(w) ?? false) { bad("partial_text_prefix", w, String(describing: partial)) }
    if let w = exp["finished"]?.boolValue {
        let got = (o.events ?? []).contains { $0["type"]?.stringValue == "finish" }
        if got != w { bad("finished", w, got) }
    }
    if let w = exp["resets"]?.intValue {
        let got = (o.events ?? []).filter { $0["type"]?.stringValue == "reset" }.count
        if got != w { bad("resets", w, got) }
    }
    if let r = exp["elapsed_ms"], !inRange(r, o.elapsedMs) { bad("elapsed_ms", r.text, (o.elapsedMs * 10).rounded() / 10) }
    if let w = exp["cost_usd"] {
        let got = o.trace["total_cost_usd"]?.doubleValue
        if w.isNull {
            if got != nil { bad("cost_usd", "null", got!) }
        } else {
            let approx = w["approx"]?.doubleValue ?? .nan
            let tol = w["tol"]?.doubleValue ?? 1e-9
            if !(got.map { abs($0 - approx) <= tol } ?? false) { bad("cost_usd", w.text, String(describing: got)) }
        }
    }
    if let w = exp["usage"]?.obj {
        let u = o.usage ?? .null
        for (k, v) in w where u[k]?.intValue != v.intValue { bad("usage.\(k)", v.text, u[k]?.text ?? "nil") }
    }
    if let w = exp["tool_calls"]?.arr {
        let want = w.compactMap(\.stringValue)
        if want != o.toolCallNames { bad("tool_calls", want, o.toolCallNames) }
    }
    if let w = exp["budget"]?.stringValue, e["budget"]?["budget"]?.stringValue != w { bad("budget", w, e["budget"]?.text ?? "nil") }
    if let r = exp["retry_after_s"] {
        if !(e["retry_after"]?.doubleValue.map { inRange(r, $0) } ?? false) { bad("retry_after_s", r.text, e["retry_after"]?.text ?? "nil") }
    }
    if let t = exp["trace"]?.obj { checkTrace(t, o.trace, &errs) }
}

private func checkTrace(_ t: [String: JSONValue], _ tr: JSONValue, _ errs: inout [String]) {
    func bad(_ what: String, _ want: Any, _ got: Any) { errs.append("trace.\(what): expected \(want), got \(got)") }
    let unknown = Set(t.keys).subtracting(traceKeys)
    if !unknown.isEmpty { errs.append("unknown trace expectation keys \(unknown.sorted())") }
    for k in ["route", "strategy"] {
        if let w = t[k]?.stringValue, tr[k]?.stringValue != w { bad(k, w, tr[k]?.text ?? "nil") }
    }
    if let w = t["matched_contains"]?.stringValue, !(tr["matched"]?.stringValue ?? "").contains(w) { bad("matched_contains", w, tr["matched"]?.text ?? "nil") }
    if let w = t["degraded"]?.boolValue, (tr["degraded"]?.boolValue ?? false) != w { bad("degraded", w, tr["degraded"]?.boolValue ?? false) }
    let notes = (tr["notes"]?.arr ?? []).compactMap(\.stringValue)
    for n in (t["notes_contain"]?.arr ?? []).compactMap(\.stringValue) where !notes.contains(where: { $0.contains(n) }) {
        bad("notes_contain", n, notes)
    }
    let expl = tr["explanation"]?.stringValue ?? ""
    for n in (t["explanation_contains"]?.arr ?? []).compactMap(\.stringValue) where !expl.contains(n) {
        bad("explanation_contains", n, expl)
    }
    let cands = tr["candidates"]?.arr ?? []
    for (dep, want) in t["skipped"]?.obj ?? [:] {
        guard let c = cands.first(where: { $0["deployment"]?.stringValue == dep }) else {
            bad("skipped", "candidate \(dep)", "no such candidate")
            continue
        }
        let got = c["skipped"]?.stringValue
        let ok = (want.isNull && got == nil) || (want.stringValue.map { w in got?.contains(w) ?? false } ?? false)
        if !ok { bad("skipped.\(dep)", want.text, String(describing: got)) }
    }
    let attempts = tr["attempts"]?.arr ?? []
    for (i, r) in (t["backoff_ms"]?.arr ?? []).enumerated() where !r.isNull {
        let got = i < attempts.count ? attempts[i]["backoff_ms"]?.doubleValue : nil
        if !(got.map { inRange(r, $0) } ?? false) { bad("backoff_ms[\(i)]", r.text, String(describing: got)) }
    }
    for (i, w) in (t["hedge"]?.arr ?? []).enumerated() {
        let got = i < attempts.count ? (attempts[i]["hedge"]?.boolValue ?? false) : nil
        if got != w.boolValue { bad("hedge[\(i)]", w.text, String(describing: got)) }
    }
}

/// Every string in a request body (compared as text, whatever the JSON writer escaped).
private func bodyStrings(_ v: JSONValue?, _ out: inout [String]) {
    guard let v else { return }
    if let s = v.stringValue { out.append(s) }
    for x in v.arr ?? [] { bodyStrings(x, &out) }
    for x in (v.obj ?? [:]).values { bodyStrings(x, &out) }
}

private func checkState(_ exp: [String: JSONValue], _ router: Router, _ errs: inout [String]) async throws {
    for (script, c) in exp["server_hits"]?.obj ?? [:] {
        let n = try await ScenarioMock.log(script).count
        if !countOk(c, n) { errs.append("server_hits.\(script): expected \(c.text), got \(n)") }
    }
    for (script, ranges) in exp["gaps_ms"]?.obj ?? [:] {
        let log = try await ScenarioMock.log(script)
        let t = log.compactMap { $0["received_ms"]?.doubleValue }
        let gaps = zip(t.dropFirst(), t).map { $0 - $1 }
        let rs = ranges.arr ?? []
        if gaps.count != rs.count || !zip(rs, gaps).allSatisfy({ inRange($0, $1) }) {
            errs.append("gaps_ms.\(script): expected \(ranges.text), got \(gaps)")
        }
    }
    for (script, want) in exp["server_outcomes"]?.obj ?? [:] {
        let got = try await ScenarioMock.log(script).map { $0["outcome"]?.stringValue ?? "?" }
        let w = (want.arr ?? []).compactMap(\.stringValue)
        if got != w { errs.append("server_outcomes.\(script): expected \(w), got \(got)") }
    }
    for (key, want) in [("server_saw", true), ("server_never_saw", false)] {
        for (script, needles) in exp[key]?.obj ?? [:] {
            var strings: [String] = []
            for e in try await ScenarioMock.log(script) { bodyStrings(e["body"], &strings) }
            for n in (needles.arr ?? []).compactMap(\.stringValue) where strings.contains(where: { $0.contains(n) }) != want {
                errs.append("\(key).\(script): `\(n)` \(want ? "is not in" : "is in") the request bodies")
            }
        }
    }
    if let b = exp["breakers"]?.obj {
        let deps = try JSONValue.parse(try router.deploymentsJson()).arr ?? []
        for (dep, want) in b {
            let got = deps.first { $0["deployment"]?.stringValue == dep }?["breaker"]?["state"]?.stringValue
            if got != want.stringValue { errs.append("breakers.\(dep): expected \(want.text), got \(String(describing: got))") }
        }
    }
}

private func breakerState(_ s: String) -> BreakerState? {
    switch s {
    case "closed": return .closed
    case "open": return .open
    case "half_open": return .halfOpen
    case "forced_open": return .forcedOpen
    case "disabled": return .disabled
    default: return nil
    }
}

private func runScenario(_ sc: JSONValue) async throws -> [String] {
    var errs: [String] = []
    _ = try await ScenarioMock.call("POST", "/_mock/reset")
    try await ScenarioMock.install(sc["scripts"])
    let base = try Mock.baseURL()
    let text = try (sc["policy"] ?? .null).jsonString()
        .replacingOccurrences(of: "$MOCK_ROOT", with: base)
        .replacingOccurrences(of: "$MOCK", with: base + "/v1")
    let router: Router
    do {
        router = try Router(policy: text)
    } catch {
        return ["policy rejected: \(error)"]
    }
    for (i, step) in (sc["steps"]?.arr ?? []).enumerated() {
        var stepErrs: [String] = []
        let s = step.obj ?? [:]
        let exp = s["expect"]?.obj ?? [:]
        let unknown = Set(s.keys).subtracting(stepKeys).union(Set(exp.keys).subtracting(expectKeys))
        if !unknown.isEmpty {
            errs.append("step \(i): unknown keys \(unknown.sorted())")
            continue
        }
        if let ms = s["sleep_ms"]?.intValue { try await Task.sleep(nanoseconds: UInt64(ms) * 1_000_000) }
        if let sb = s["set_breaker"] {
            let dep = sb["deployment"]?.stringValue ?? "", name = sb["state"]?.stringValue ?? ""
            if let st = breakerState(name) { try router.setBreaker(deployment: dep, state: st) } else { stepErrs.append("set_breaker: unknown state \(name)") }
        }
        if let scripts = s["scripts"] { try await ScenarioMock.install(scripts) }
        let isStream = s["stream"] != nil
        if let body = s["chat"] ?? s["stream"] {
            var served: [String: Int] = [:]
            for rep in 0..<(s["repeat"]?.intValue ?? 1) {
                let o = isStream ? try await runStream(router, body) : try await runChat(router, body)
                served[o.trace["served_by"]?.stringValue ?? "null", default: 0] += 1
                var e: [String] = []
                checkResult(exp, o, &e)
                if !e.isEmpty {
                    stepErrs += e.map { "repetition \(rep): \($0)" } + ["repetition \(rep): trace was \(o.trace.text)"]
                    break
                }
            }
            for (dep, c) in exp["served_by_counts"]?.obj ?? [:] where !countOk(c, served[dep] ?? 0) {
                stepErrs.append("served_by_counts.\(dep): expected \(c.text), got \(served[dep] ?? 0) (all: \(served))")
            }
        }
        try await checkState(exp, router, &stepErrs)
        errs += stepErrs.map { "step \(i): \($0)" }
    }
    return errs
}

final class ScenarioTests: XCTestCase {
    private var scenarioDir: URL {
        if let d = ProcessInfo.processInfo.environment["POLYROUTE_SCENARIO_DIR"], !d.isEmpty { return URL(fileURLWithPath: d) }
        // Tests/PolyrouteTests/ScenarioTests.swift → the repository root → tests/scenarios
        var u = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { u.deleteLastPathComponent() }
        return u.appendingPathComponent("tests").appendingPathComponent("scenarios")
    }

    func testEveryScenarioBehavesAsInEveryOtherLanguage() async throws {
        let filter = ProcessInfo.processInfo.environment["POLYROUTE_SCENARIO"] ?? ""
        let files = try FileManager.default.contentsOfDirectory(atPath: scenarioDir.path)
            .filter { $0.hasSuffix(".json") && !$0.hasSuffix(".schema.json") && (filter.isEmpty || $0.contains(filter)) }
            .sorted()
        if filter.isEmpty && ProcessInfo.processInfo.environment["POLYROUTE_SCENARIO_DIR"] == nil {
            XCTAssertGreaterThanOrEqual(files.count, 40, "scenarios in \(scenarioDir.path)")
        }
        var failed: [String] = []
        for f in files {
            let name = String(f.dropLast(".json".count))
            let sc = try JSONValue.parse(String(contentsOf: scenarioDir.appendingPathComponent(f), encoding: .utf8))
            var errs = sc["name"]?.stringValue == name ? [] : ["`name` must equal the file name"]
            if errs.isEmpty { errs = try await runScenario(sc) }
            if !errs.isEmpty {
                failed.append(name)
                XCTFail("\(name):\n  " + errs.joined(separator: "\n  "))
            }
        }
        print("scenarios: \(files.count) run, \(failed.count) failed \(failed)")
    }
}
