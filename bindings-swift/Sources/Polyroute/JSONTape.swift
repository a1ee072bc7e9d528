// JSON text read once into a flat list of its values (a "tape"), and the typed reads over it.
//
// Why a tape and not the `JSONValue` tree (issue 18, sixteenth round): an answer read as a tree
// paid for a `Dictionary` per object (every key hashed and copied into a `String`) and an
// enum box per node, then the response types looked their fields up in those dictionaries:
// 15.5 µs of CPU per 950-byte answer, twice that between calls (cold). Most of it bought
// nothing, since the app reads a dozen fields. The tape is one array of fixed-size entries;
// a field is found by comparing key bytes, and a string becomes a `String` only when a typed
// field reads it. `raw` (the whole object as a `JSONValue`) is built from the tape on first
// use (`Deferred`). `JSONValue.parse` goes through the tape too, so there is one grammar.
//
// Coding paths are not carried down while reading (an array per nested value): an error
// finds its path on the tape, from where the reading started (`JSONNode.path`).
import Foundation

final class JSONTape: @unchecked Sendable { // immutable once built; owns `bytes`
    enum Kind: UInt8 { case null, bool, int, double, string, escapedString, array, object }

    /// One value. Containers are followed by their members (an object: key, value, key, ...)
    /// and `next` is the index after the last of them, so a reader skips a subtree in one step.
    struct Entry {
        var kind: Kind
        /// Strings: the bytes between the quotes. Numbers: their text.
        var start: Int32
        var end: Int32
        var next: Int32
        /// Bool 0/1, an int's value, a double's bit pattern, a container's member count.
        var payload: Int64
    }

    /// Nesting deeper than this is refused (a typed error, where recursion would overflow the stack).
    static let maxDepth = 512

    let bytes: UnsafeBufferPointer<UInt8>
    /// `count` entries, the root first. Raw storage: a field lookup walks it with no array
    /// checks (the indices are the tape's own).
    let entries: UnsafeMutablePointer<Entry>
    let count: Int
    /// The coding path of the root value (a `Decodable` conformance's decoder's path).
    let basePath: [CodingKey]
    private let storage: UnsafeMutablePointer<UInt8>

    /// Throws `DecodingError.dataCorrupted` naming the byte offset for text that is not JSON.
    init(_ text: String, at basePath: [CodingKey] = []) throws {
        self.basePath = basePath
        var text = text
        let (storage, count) = text.withUTF8 { src -> (UnsafeMutablePointer<UInt8>, Int) in
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: Swift.max(src.count, 1))
            if let s = src.baseAddress { p.initialize(from: s, count: src.count) }
            return (p, src.count)
        }
        let copy = UnsafeBufferPointer(start: storage, count: count)
        var b = Builder(bytes: copy)
        do {
            guard copy.count < Int(Int32.max) else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "invalid JSON at byte 0: text longer than 2 GiB"))
            }
            b.skipSpace()
            try b.value(depth: 0)
            b.skipSpace()
            guard b.i == copy.count else { throw b.error("unexpected text after the JSON value") }
        } catch {
            storage.deallocate()
            b.entries.deallocate()
            throw error
        }
        (bytes, self.storage, entries, self.count) = (copy, storage, b.entries, b.count)
    }

    deinit {
        storage.deallocate()
        entries.deallocate()
    }

    var root: JSONNode { JSONNode(tape: self, index: 0) }

    /// The text of entry `i` (a string's inside, a number's digits).
    func slice(_ i: Int) -> UnsafeBufferPointer<UInt8> {
        let e = entries[i]
        return UnsafeBufferPointer(rebasing: bytes[Int(e.start)..<Int(e.end)])
    }

    /// The string at `i` (a string entry).
    func string(_ i: Int) -> String {
        if entries[i].kind == .string { return String(decoding: slice(i), as: UTF8.self) }
        // Checked while building, so this cannot fail.
        let out = (try? Unescape.run(slice(i))) ?? []
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether the string at `i` is `key` (field names are literals: no `String` is made).
    func string(_ i: Int, equals key: StaticString) -> Bool {
        let e = entries[i]
        guard e.kind == .string else { return string(i) == key.description }
        // `withUTF8Buffer`, not `utf8Start`: a one-character literal may be stored as a scalar.
        return key.withUTF8Buffer { k in
            guard Int(e.end - e.start) == k.count else { return false }
            let a = bytes.baseAddress! + Int(e.start)
            for x in 0..<k.count where a[x] != k[x] { return false }
            return true
        }
    }

    /// The value at `i` as a `JSONValue` tree.
    func value(at i: Int) -> JSONValue {
        let e = entries[i]
        switch e.kind {
        case .null: return .null
        case .bool: return .bool(e.payload != 0)
        case .int: return .int(Int(e.payload))
        case .double: return .double(Double(bitPattern: UInt64(bitPattern: e.payload)))
        case .string, .escapedString: return .string(string(i))
        case .array:
            var a = [JSONValue]()
            a.reserveCapacity(Int(e.payload))
            var j = i + 1
            while j < Int(e.next) {
                a.append(value(at: j))
                j = Int(entries[j].next)
            }
            return .array(a)
        case .object:
            var o = [String: JSONValue](minimumCapacity: Int(e.payload))
            var j = i + 1
            while j < Int(e.next) {
                o[string(j)] = value(at: j + 1) // a repeated key: the last one wins
                j = Int(entries[j + 1].next)
            }
            return .object(o)
        }
    }

    /// The coding path of the value at `target` (for an error).
    func path(to target: Int) -> [CodingKey] {
        var out = basePath
        var at = 0
        outer: while at != target {
            let e = entries[at]
            var j = at + 1
            var n = 0
            while j < Int(e.next) {
                let v = e.kind == .object ? j + 1 : j
                if target >= v && target < Int(entries[v].next) {
                    if e.kind == .object { out.append(NameKey(string(j))) } else { out.append(IndexKey(n)) }
                    at = v
                    continue outer
                }
                j = Int(entries[v].next)
                n += 1
            }
            break
        }
        return out
    }
}

/// A value on a tape.
struct JSONNode {
    let tape: JSONTape
    let index: Int

    /// `value` as text on a tape of its own: how the `Decodable` conformances reach the readers.
    init(_ value: JSONValue, at path: [CodingKey]) throws {
        self.init(tape: try JSONTape(JSONText.write(value), at: path), index: 0)
    }

    init(tape: JSONTape, index: Int) {
        self.tape = tape
        self.index = index
    }

    var kind: JSONTape.Kind { tape.entries[index].kind }
    var value: JSONValue { tape.value(at: index) }
    var path: [CodingKey] { tape.path(to: index) }

    /// An array's elements, each given to `make` (nil for anything but an array).
    func elements<T>(_ make: (JSONNode) throws -> T) rethrows -> [T]? {
        let e = tape.entries[index]
        guard e.kind == .array else { return nil }
        var out = [T]()
        out.reserveCapacity(Int(e.payload))
        var j = index + 1
        while j < Int(e.next) {
            out.append(try make(JSONNode(tape: tape, index: j)))
            j = Int(tape.entries[j].next)
        }
        return out
    }

    // The reads JSONDecoder does for these types, with its errors.
    func string() throws -> String {
        switch kind {
        case .string, .escapedString: return tape.string(index)
        default: throw mismatch(String.self, value, path)
        }
    }

    func bool() throws -> Bool {
        if kind == .bool { return tape.entries[index].payload != 0 }
        throw mismatch(Bool.self, value, path)
    }

    func double() throws -> Double {
        let e = tape.entries[index]
        switch e.kind {
        case .double: return Double(bitPattern: UInt64(bitPattern: e.payload))
        case .int: return Double(e.payload)
        default: throw mismatch(Double.self, value, path)
        }
    }

    func int() throws -> Int {
        let e = tape.entries[index]
        switch e.kind {
        case .int: return Int(e.payload)
        case .double:
            // JSONDecoder too accepts 5.0 for an integer.
            if let v = Int(exactly: Double(bitPattern: UInt64(bitPattern: e.payload))) { return v }
        default: break
        }
        throw mismatch(Int.self, value, path)
    }
}

/// An object's fields, read by the response types' initialisers (Types.swift): every answer
/// and stream event, with the errors JSONDecoder throws.
struct JSONFields {
    let node: JSONNode

    init(_ node: JSONNode) throws {
        guard node.kind == .object else { throw mismatch([String: JSONValue].self, node.value, node.path) }
        self.node = node
    }

    /// The member named `key` (the last one, as a dictionary keeps it).
    func find(_ key: StaticString) -> JSONNode? {
        let tape = node.tape
        let end = Int(tape.entries[node.index].next)
        var (j, found) = (node.index + 1, -1)
        while j < end {
            if tape.string(j, equals: key) { found = j + 1 }
            j = Int(tape.entries[j + 1].next)
        }
        return found < 0 ? nil : JSONNode(tape: tape, index: found)
    }

    func required(_ key: StaticString) throws -> JSONNode {
        guard let v = find(key) else { throw missing(NameKey(key.description), node.path) }
        return v
    }

    /// nil when absent or null.
    func optional(_ key: StaticString) -> JSONNode? {
        guard let v = find(key), v.kind != .null else { return nil }
        return v
    }

    func string(_ key: StaticString) throws -> String { try required(key).string() }
    func string(ifPresent key: StaticString) throws -> String? { try optional(key)?.string() }
    func int(_ key: StaticString) throws -> Int { try required(key).int() }
    func int(ifPresent key: StaticString) throws -> Int? { try optional(key)?.int() }
    func double(_ key: StaticString) throws -> Double { try required(key).double() }
    func double(ifPresent key: StaticString) throws -> Double? { try optional(key)?.double() }
    func bool(ifPresent key: StaticString) throws -> Bool? { try optional(key)?.bool() }

    /// A nested value built by `make`, nil when absent or null.
    func value<T>(ifPresent key: StaticString, _ make: (JSONNode) throws -> T) throws -> T? {
        try optional(key).map(make)
    }

    /// An array's elements built by `make`, nil when absent or null.
    func array<T>(ifPresent key: StaticString, _ make: (JSONNode) throws -> T) throws -> [T]? {
        guard let v = optional(key) else { return nil }
        guard let elements = try v.elements(make) else { throw mismatch([JSONValue].self, v.value, v.path) }
        return elements
    }
}

/// A value read from a tape the first time it is asked for (or given as a value): an answer's
/// `raw`, and the `trace` of an answer a call returned. Locked: a response is `Sendable`, so two
/// threads may ask at once. The reader is a plain function (no captures), so a box is one
/// object: the locks are shared, a few for the process, picked by the box's address (a lock of
/// its own per box was two more allocations and a mutex set up and torn down per answer; a
/// box holds one only while a first read builds its value, and no reader takes another).
final class Deferred<Value: Equatable & Sendable>: @unchecked Sendable, Equatable {
    private enum State {
        case pending(JSONNode, (JSONNode) -> Value)
        /// Read from an answer's trace, which the core keeps until asked (`Answer`), and
        /// for `raw` the answer's node beside it.
        case held(Answer, JSONNode?, (Answer, JSONNode?) -> Value)
        case built(Value)
    }
    private var state: State

    init(_ value: Value) { state = .built(value) }
    init(node: JSONNode, read: @escaping (JSONNode) -> Value) { state = .pending(node, read) }
    init(answer: Answer, node: JSONNode? = nil, read: @escaping (Answer, JSONNode?) -> Value) {
        state = .held(answer, node, read)
    }

    var value: Value {
        let lock = deferredLocks[Int((UInt(bitPattern: ObjectIdentifier(self)) >> 4) & UInt(deferredLocks.count - 1))]
        lock.lock()
        defer { lock.unlock() }
        switch state {
        case .built(let v): return v
        case .pending(let node, let read):
            let v = read(node)
            state = .built(v)
            return v
        case .held(let answer, let node, let read):
            let v = read(answer, node)
            state = .built(v)
            return v
        }
    }

    static func == (a: Deferred, b: Deferred) -> Bool { a === b || a.value == b.value }
}

/// `Deferred`'s locks (a power of two of them).
private let deferredLocks: [NSLock] = (0..<16).map { _ in NSLock() }

/// Reading JSON's grammar into entries. Errors name the byte offset.
private struct Builder {
    let bytes: UnsafeBufferPointer<UInt8>
    var i = 0
    /// Grown by doubling, like an array's storage, without an array's checks per append.
    var entries: UnsafeMutablePointer<JSONTape.Entry>
    var count = 0
    var capacity: Int

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
        capacity = bytes.count / 6 + 8 // about what an answer needs
        entries = .allocate(capacity: capacity)
    }

    func error(_ what: String) -> DecodingError {
        .dataCorrupted(.init(codingPath: [], debugDescription: "invalid JSON at byte \(i): \(what)"))
    }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    mutating func push(_ kind: JSONTape.Kind, _ start: Int, _ end: Int, payload: Int64 = 0) {
        if count == capacity {
            let grown = UnsafeMutablePointer<JSONTape.Entry>.allocate(capacity: capacity * 2)
            grown.moveInitialize(from: entries, count: count)
            entries.deallocate()
            (entries, capacity) = (grown, capacity * 2)
        }
        (entries + count).initialize(to: .init(kind: kind, start: Int32(start), end: Int32(end), next: Int32(count + 1), payload: payload))
        count += 1
    }

    mutating func value(depth: Int) throws {
        guard i < bytes.count else { throw error("the text ends where a value should start") }
        switch bytes[i] {
        case UInt8(ascii: "{"): try container(object: true, depth: depth + 1)
        case UInt8(ascii: "["): try container(object: false, depth: depth + 1)
        case UInt8(ascii: "\""): try string()
        case UInt8(ascii: "t"): try literal("true"); push(.bool, i - 4, i, payload: 1)
        case UInt8(ascii: "f"): try literal("false"); push(.bool, i - 5, i, payload: 0)
        case UInt8(ascii: "n"): try literal("null"); push(.null, i - 4, i)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
        default: throw error("unexpected character")
        }
    }

    mutating func literal(_ word: StaticString) throws {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count, memcmp(bytes.baseAddress! + i, word.utf8Start, n) == 0 else { throw error("unknown literal") }
        i += n
    }

    /// An object (members: a key entry, then the value's) or an array.
    mutating func container(object: Bool, depth: Int) throws {
        guard depth <= JSONTape.maxDepth else { throw error("nested deeper than \(JSONTape.maxDepth)") }
        let at = count
        push(object ? .object : .array, i, i)
        i += 1
        var members: Int64 = 0
        let close = object ? UInt8(ascii: "}") : UInt8(ascii: "]")
        skipSpace()
        if i < bytes.count, bytes[i] == close {
            i += 1
        } else {
            while true {
                skipSpace()
                if object {
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw error("expected a key") }
                    try string()
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw error("expected ':'") }
                    i += 1
                    skipSpace()
                }
                try value(depth: depth)
                members += 1
                skipSpace()
                guard i < bytes.count else { throw error(object ? "unterminated object" : "unterminated array") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == close { i += 1; break }
                throw error(object ? "expected ',' or '}'" : "expected ',' or ']'")
            }
        }
        entries[at].next = Int32(count)
        entries[at].end = Int32(i)
        entries[at].payload = members
    }

    /// A string starting at its opening quote; escapes are checked here, decoded when read.
    mutating func string() throws {
        i += 1
        let start = i
        var escaped = false
        while true {
            // The plain run, in locals: most of an answer's bytes are inside strings.
            let (p, n) = (bytes.baseAddress!, bytes.count)
            var j = i
            while j < n, p[j] != UInt8(ascii: "\""), p[j] != UInt8(ascii: "\\"), p[j] >= 0x20 { j += 1 }
            i = j
            guard i < bytes.count else { throw error("unterminated string") }
            let b = bytes[i]
            if b == UInt8(ascii: "\"") { break }
            if b < 0x20 { throw error("control character in a string") }
            if b == UInt8(ascii: "\\") {
                escaped = true
                i += 1
                do {
                    _ = try Unescape.one(bytes, &i)
                } catch let e as Unescape.Failure {
                    throw error(e.what)
                }
            } else {
                i += 1
            }
        }
        push(escaped ? .escapedString : .string, start, i)
        i += 1
    }

    /// JSON's number grammar; integers that fit an `Int` are `.int`, everything else `.double`.
    mutating func number() throws {
        let start = i
        func digits(_ p: inout Builder) -> Int {
            let s = p.i
            while p.i < p.bytes.count, (48...57).contains(p.bytes[p.i]) { p.i += 1 }
            return p.i - s
        }
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < bytes.count, (48...57).contains(bytes[i]) else { throw error("a number needs digits") }
        if bytes[i] == UInt8(ascii: "0") { i += 1 } else { _ = digits(&self) }
        var integral = true
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            integral = false
            guard digits(&self) > 0 else { throw error("a fraction needs digits") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            integral = false
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits(&self) > 0 else { throw error("an exponent needs digits") }
        }
        // Up to 18 digits always fit an Int64: summed here, without making a String.
        let negative = bytes[start] == UInt8(ascii: "-")
        let first = negative ? start + 1 : start
        if integral, i - first <= 18 {
            var n: Int64 = 0
            for k in first..<i { n = n &* 10 &+ Int64(bytes[k] &- 48) }
            return push(.int, start, i, payload: negative ? -n : n)
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        if integral, let n = Int(text) { return push(.int, start, i, payload: Int64(n)) }
        guard let d = Double(text) else { throw error("unreadable number") }
        push(.double, start, i, payload: Int64(bitPattern: d.bitPattern))
    }
}

/// JSON string escapes: checked while building, decoded when an escaped string is read.
enum Unescape {
    struct Failure: Error { let what: String }

    /// The inside of a string (between its quotes, already checked) without its escapes.
    static func run(_ s: UnsafeBufferPointer<UInt8>) throws -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            if s[i] == UInt8(ascii: "\\") {
                i += 1
                out.append(contentsOf: String(Character(try one(s, &i))).utf8)
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }

    /// One escape, `i` just after its backslash: the character it stands for.
    static func one(_ bytes: UnsafeBufferPointer<UInt8>, _ i: inout Int) throws -> Unicode.Scalar {
        guard i < bytes.count else { throw Failure(what: "unterminated escape") }
        let e = bytes[i]
        i += 1
        var scalar: UInt32
        switch e {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalar = UInt32(e)
        case UInt8(ascii: "b"): scalar = 0x08
        case UInt8(ascii: "f"): scalar = 0x0C
        case UInt8(ascii: "n"): scalar = 0x0A
        case UInt8(ascii: "r"): scalar = 0x0D
        case UInt8(ascii: "t"): scalar = 0x09
        case UInt8(ascii: "u"):
            scalar = try hex4(bytes, &i)
            if (0xD800..<0xDC00).contains(scalar) {
                // A high surrogate must be followed by an escaped low one.
                guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else { throw Failure(what: "lone surrogate") }
                i += 2
                let low = try hex4(bytes, &i)
                guard (0xDC00..<0xE000).contains(low) else { throw Failure(what: "invalid surrogate pair") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            }
        default: throw Failure(what: "unknown escape")
        }
        guard let u = Unicode.Scalar(scalar) else { throw Failure(what: "lone surrogate") }
        return u
    }

    static func hex4(_ bytes: UnsafeBufferPointer<UInt8>, _ i: inout Int) throws -> UInt32 {
        guard i + 4 <= bytes.count else { throw Failure(what: "short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[i]
            i += 1
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = v << 4 | UInt32(b - 48)
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = v << 4 | UInt32(b - 87)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): v = v << 4 | UInt32(b - 55)
            default: throw Failure(what: "bad hex digit in \\u escape")
            }
        }
        return v
    }
}
