// JSON text <-> JSONValue without Foundation's coders (issue 18).
//
// Why not JSONDecoder/JSONEncoder: `JSONValue` can only learn a node's type from a Codable
// decoder by trying each type in turn, and every failed try throws a DecodingError built with
// its coding path and message: a completion of ~40 nodes cost ~100 µs to parse that way, and a
// call decoded its answer twice (`ChatResponse`, then `raw`) on top of encoding its request.
// This reads the text once into a `JSONValue`; typed values (`ChatResponse`, `RouteTrace`, ...)
// are decoded from that tree by `JSONTreeDecoder` (JSONTree.swift), with the same
// `DecodingError`s JSONDecoder throws.

import Foundation

enum JSONText {
    /// Nesting deeper than this is refused (a typed error, where recursion would overflow the stack).
    static let maxDepth = 512

    static func parse(_ text: String) throws -> JSONValue {
        var text = text
        return try text.withUTF8 { buf in
            var p = Parser(bytes: buf)
            p.skipSpace()
            let v = try p.value(depth: 0)
            p.skipSpace()
            guard p.i == buf.count else { throw p.error("unexpected text after the JSON value") }
            return v
        }
    }

    static func write(_ value: JSONValue) throws -> String {
        var out = [UInt8]()
        out.reserveCapacity(256)
        try write(value, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private static func write(_ value: JSONValue, into out: inout [UInt8]) throws {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .int(let i): out.append(contentsOf: String(i).utf8)
        case .double(let d):
            guard d.isFinite else {
                throw EncodingError.invalidValue(d, .init(codingPath: [], debugDescription: "JSON has no \(d)"))
            }
            // As JSONEncoder writes it: a whole double without its ".0" (so `.double(100)` is
            // accepted where the core expects an integer).
            var s = d.description
            if s.hasSuffix(".0") { s.removeLast(2) }
            out.append(contentsOf: s.utf8)
        case .string(let s): writeString(s, into: &out)
        case .array(let a):
            out.append(UInt8(ascii: "["))
            for (n, v) in a.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                try write(v, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            // Sorted, as JSONEncoder's `.sortedKeys` was: the same value always gives the same text.
            out.append(UInt8(ascii: "{"))
            for (n, k) in o.keys.sorted().enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                writeString(k, into: &out)
                out.append(UInt8(ascii: ":"))
                try write(o[k]!, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [92, 34])
            case UInt8(ascii: "\\"): out.append(contentsOf: [92, 92])
            case 0x0A: out.append(contentsOf: [92, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [92, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [92, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: out.append(b) // UTF-8 passes through as is (valid JSON text)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

private struct Parser {
    let bytes: UnsafeBufferPointer<UInt8>
    var i = 0
    /// The members of the objects being read, innermost last: each object's dictionary is made
    /// at its final size once its members are known, where growing it key by key re-hashed every
    /// key at each doubling (hashing was a sixth of a parse).
    var members: [(String, JSONValue)] = []

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func error(_ what: String) -> DecodingError {
        .dataCorrupted(.init(codingPath: [], debugDescription: "invalid JSON at byte \(i): \(what)"))
    }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    mutating func value(depth: Int) throws -> JSONValue {
        guard i < bytes.count else { throw error("the text ends where a value should start") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error("unexpected character")
        }
    }

    mutating func literal(_ word: StaticString) throws {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count, memcmp(bytes.baseAddress! + i, word.utf8Start, n) == 0 else { throw error("unknown literal") }
        i += n
    }

    mutating func object(depth: Int) throws -> JSONValue {
        guard depth <= JSONText.maxDepth else { throw error("nested deeper than \(JSONText.maxDepth)") }
        i += 1
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object([:]) }
        let base = members.count
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw error("expected a key") }
            let key = try string()
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw error("expected ':'") }
            i += 1
            skipSpace()
            members.append((key, try value(depth: depth)))
            skipSpace()
            guard i < bytes.count else { throw error("unterminated object") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "}") { i += 1; break }
            throw error("expected ',' or '}'")
        }
        var o = [String: JSONValue](minimumCapacity: members.count - base)
        for (k, v) in members[base...] { o[k] = v } // a repeated key: the last one wins
        members.removeSubrange(base...)
        return .object(o)
    }

    mutating func array(depth: Int) throws -> JSONValue {
        guard depth <= JSONText.maxDepth else { throw error("nested deeper than \(JSONText.maxDepth)") }
        i += 1
        var a = [JSONValue]()
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
        while true {
            skipSpace()
            a.append(try value(depth: depth))
            skipSpace()
            guard i < bytes.count else { throw error("unterminated array") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
            throw error("expected ',' or ']'")
        }
    }

    /// A string starting at the opening quote. Runs without escapes are copied as they are.
    mutating func string() throws -> String {
        i += 1
        let start = i
        while i < bytes.count, bytes[i] != UInt8(ascii: "\""), bytes[i] != UInt8(ascii: "\\"), bytes[i] >= 0x20 { i += 1 }
        if i < bytes.count, bytes[i] == UInt8(ascii: "\"") {
            defer { i += 1 }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        }
        var out = Array(bytes[start..<i])
        while true {
            guard i < bytes.count else { throw error("unterminated string") }
            let b = bytes[i]
            i += 1
            switch b {
            case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"): try escape(into: &out)
            case 0..<0x20: throw error("control character in a string")
            default: out.append(b)
            }
        }
    }

    mutating func escape(into out: inout [UInt8]) throws {
        guard i < bytes.count else { throw error("unterminated escape") }
        let e = bytes[i]
        i += 1
        switch e {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try hex4()
            if (0xD800..<0xDC00).contains(scalar) {
                // A high surrogate must be followed by an escaped low one.
                guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else { throw error("lone surrogate") }
                i += 2
                let low = try hex4()
                guard (0xDC00..<0xE000).contains(low) else { throw error("invalid surrogate pair") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            }
            guard let u = Unicode.Scalar(scalar) else { throw error("lone surrogate") }
            out.append(contentsOf: String(Character(u)).utf8)
        default: throw error("unknown escape")
        }
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count else { throw error("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[i]
            i += 1
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = v << 4 | UInt32(b - 48)
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = v << 4 | UInt32(b - 87)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): v = v << 4 | UInt32(b - 55)
            default: throw error("bad hex digit in \\u escape")
            }
        }
        return v
    }

    /// JSON's number grammar; integers that fit an `Int` are `.int`, everything else `.double`.
    mutating func number() throws -> JSONValue {
        let start = i
        func digits(_ p: inout Parser) -> Int {
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
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        if integral, let n = Int(text) { return .int(n) }
        guard let d = Double(text) else { throw error("unreadable number") }
        return .double(d)
    }
}
