// JSON text <-> JSONValue without Foundation's coders (issue 18). Reading is JSONTape.swift's.
//
// Why not JSONDecoder/JSONEncoder: `JSONValue` can only learn a node's type from a Codable
// decoder by trying each type in turn, and every failed try throws a DecodingError built with
// its coding path and message: a completion of ~40 nodes cost ~100 µs to parse that way, and a
// call decoded its answer twice (`ChatResponse`, then `raw`) on top of encoding its request.
// The text is read once into a tape (JSONTape.swift); answers and stream events are read from
// the tape, `JSONValue`s built from it, and the other typed values (plans, health) decoded
// from such a `JSONValue` by `JSONTreeDecoder` (JSONTree.swift), with the `DecodingError`s
// JSONDecoder throws.

import Foundation

enum JSONText {
    /// Read through the tape (JSONTape.swift: one grammar for every reader).
    static func parse(_ text: String) throws -> JSONValue {
        try JSONTape(text).root.value
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
            // The members are sorted with their values (sorting the keys, then looking each up,
            // hashed every key again), and a one-member object is not sorted at all.
            out.append(UInt8(ascii: "{"))
            func member(_ k: String, _ v: JSONValue) throws {
                writeString(k, into: &out)
                out.append(UInt8(ascii: ":"))
                try write(v, into: &out)
            }
            if o.count == 1, let (k, v) = o.first {
                try member(k, v)
            } else {
                for (n, m) in o.sorted(by: { $0.key < $1.key }).enumerated() {
                    if n > 0 { out.append(UInt8(ascii: ",")) }
                    try member(m.key, m.value)
                }
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Runs with nothing to escape (nearly every string) are appended in one piece.
    private static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { b in
            var start = 0
            for i in 0..<b.count {
                let c = b[i]
                guard c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: b[start..<i]))
                escape(c, into: &out)
                start = i + 1
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: b[start...]))
        }
        out.append(UInt8(ascii: "\""))
    }

    /// One byte JSON must escape (UTF-8 passes through as is: valid JSON text).
    private static func escape(_ c: UInt8, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\\"))
        switch c {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(c)
        case 0x0A: out.append(UInt8(ascii: "n"))
        case 0x0D: out.append(UInt8(ascii: "r"))
        case 0x09: out.append(UInt8(ascii: "t"))
        default: // another control character: \u00XX, lowercase hex as serde_json writes it
            let hex = { (d: UInt8) -> UInt8 in d < 10 ? 48 + d : 87 + d }
            out.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex(c >> 4), hex(c & 15)])
        }
    }
}
