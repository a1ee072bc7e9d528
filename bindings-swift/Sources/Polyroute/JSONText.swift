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
