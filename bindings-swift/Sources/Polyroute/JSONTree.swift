// Reading Decodable values from a `JSONValue` tree (JSONText.swift says why not JSONDecoder):
// the `Decoder` for plans, health and budgets (answers and stream events are read from the
// tape by `JSONFields`, JSONTape.swift). It throws the DecodingErrors JSONDecoder throws for
// the same mismatches, with the same coding paths. A `JSONValue` asked
// for anywhere in the tree is handed over as it is, without re-decoding it node by node.

struct JSONTreeDecoder: Decoder {
    let value: JSONValue
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(_ value: JSONValue, codingPath: [CodingKey] = []) {
        self.value = value
        self.codingPath = codingPath
    }

    static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try JSONTreeDecoder(value).decodeValue(type)
    }

    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        if type == JSONValue.self { return value as! T }
        return try T(from: self)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let o) = value else { throw mismatch([String: JSONValue].self, value, codingPath) }
        return KeyedDecodingContainer(Keyed<Key>(object: o, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard case .array(let a) = value else { throw mismatch([JSONValue].self, value, codingPath) }
        return Unkeyed(array: a, codingPath: codingPath)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { Single(value: value, codingPath: codingPath) }
}

func mismatch(_ type: Any.Type, _ value: JSONValue, _ path: [CodingKey]) -> DecodingError {
    if value == .null {
        return .valueNotFound(type, .init(codingPath: path, debugDescription: "Expected \(type) value but found null instead."))
    }
    return .typeMismatch(type, .init(codingPath: path, debugDescription: "Expected to decode \(type) but found \(value) instead."))
}

func missing(_ key: CodingKey, _ path: [CodingKey]) -> DecodingError {
    .keyNotFound(key, .init(codingPath: path, debugDescription: "No value associated with key \(key.stringValue)."))
}

struct IndexKey: CodingKey {
    let intValue: Int?
    var stringValue: String { "Index \(intValue!)" }
    init(_ i: Int) { intValue = i }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.intValue = intValue }
}

// The primitive reads all containers share. Not generic (no dynamic casts), and the coding
// path, only needed for an error, is built only then: a completion has ~60 fields.
func treeBool(_ value: JSONValue, _ path: @autoclosure () -> [CodingKey]) throws -> Bool {
    if case .bool(let b) = value { return b }
    throw mismatch(Bool.self, value, path())
}

func treeString(_ value: JSONValue, _ path: @autoclosure () -> [CodingKey]) throws -> String {
    if case .string(let s) = value { return s }
    throw mismatch(String.self, value, path())
}

func treeDouble(_ value: JSONValue, _ path: @autoclosure () -> [CodingKey]) throws -> Double {
    switch value {
    case .double(let d): return d
    case .int(let i): return Double(i)
    default: throw mismatch(Double.self, value, path())
    }
}

func treeInteger<T: FixedWidthInteger>(_ value: JSONValue, _ path: @autoclosure () -> [CodingKey], as type: T.Type) throws -> T {
    switch value {
    case .int(let i):
        if let v = T(exactly: i) { return v }
        throw DecodingError.dataCorrupted(.init(codingPath: path(), debugDescription: "Number \(i) does not fit in \(type)."))
    case .double(let d):
        if let v = T(exactly: d) { return v } // JSONDecoder too accepts 5.0 for an integer
    default: break
    }
    throw mismatch(type, value, path())
}

private struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let object: [String: JSONValue]
    let codingPath: [CodingKey]

    var allKeys: [Key] { object.keys.compactMap { Key(stringValue: $0) } }
    func contains(_ key: Key) -> Bool { object[key.stringValue] != nil }

    private func get(_ key: Key) throws -> JSONValue {
        guard let v = object[key.stringValue] else { throw missing(key, codingPath) }
        return v
    }

    func decodeNil(forKey key: Key) throws -> Bool { try get(key) == .null }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try treeBool(get(key), codingPath + [key]) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try treeString(get(key), codingPath + [key]) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try treeDouble(get(key), codingPath + [key]) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { Float(try treeDouble(get(key), codingPath + [key])) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try treeInteger(get(key), codingPath + [key], as: type) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try treeInteger(get(key), codingPath + [key], as: type) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try treeInteger(get(key), codingPath + [key], as: type) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try treeInteger(get(key), codingPath + [key], as: type) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try treeInteger(get(key), codingPath + [key], as: type) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try treeInteger(get(key), codingPath + [key], as: type) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try treeInteger(get(key), codingPath + [key], as: type) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try treeInteger(get(key), codingPath + [key], as: type) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try treeInteger(get(key), codingPath + [key], as: type) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try treeInteger(get(key), codingPath + [key], as: type) }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try JSONTreeDecoder(get(key), codingPath: codingPath + [key]).decodeValue(type)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try JSONTreeDecoder(get(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try JSONTreeDecoder(get(key), codingPath: codingPath + [key]).unkeyedContainer()
    }
    func superDecoder() throws -> Decoder { JSONTreeDecoder(object["super"] ?? .null, codingPath: codingPath) }
    func superDecoder(forKey key: Key) throws -> Decoder { JSONTreeDecoder(object[key.stringValue] ?? .null, codingPath: codingPath + [key]) }
}

private struct Unkeyed: UnkeyedDecodingContainer {
    let array: [JSONValue]
    let codingPath: [CodingKey]
    var currentIndex = 0
    var count: Int? { array.count }
    var isAtEnd: Bool { currentIndex >= array.count }

    init(array: [JSONValue], codingPath: [CodingKey]) {
        self.array = array
        self.codingPath = codingPath
    }

    /// The next element and (built only if asked) its path; advances only when `read`
    /// succeeds, as JSONDecoder does.
    private mutating func next<T>(_ type: Any.Type, _ read: (JSONValue, () -> [CodingKey]) throws -> T) throws -> T {
        let (base, index) = (codingPath, currentIndex)
        let path = { base + [IndexKey(index)] }
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(codingPath: path(), debugDescription: "Unkeyed container is at end."))
        }
        let v = try read(array[currentIndex], path)
        currentIndex += 1
        return v
    }

    mutating func decodeNil() throws -> Bool {
        if !isAtEnd, array[currentIndex] == .null {
            currentIndex += 1
            return true
        }
        return false
    }
    mutating func decode(_ type: Bool.Type) throws -> Bool { try next(type) { try treeBool($0, $1()) } }
    mutating func decode(_ type: String.Type) throws -> String { try next(type) { try treeString($0, $1()) } }
    mutating func decode(_ type: Double.Type) throws -> Double { try next(type) { try treeDouble($0, $1()) } }
    mutating func decode(_ type: Float.Type) throws -> Float { try next(type) { Float(try treeDouble($0, $1())) } }
    mutating func decode(_ type: Int.Type) throws -> Int { try next(type) { try treeInteger($0, $1(), as: type) } }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try next(type) { try treeInteger($0, $1(), as: type) } }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try next(type) { try treeInteger($0, $1(), as: type) } }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try next(type) { try treeInteger($0, $1(), as: type) } }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try next(type) { try treeInteger($0, $1(), as: type) } }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try next(type) { try treeInteger($0, $1(), as: type) } }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try next(type) { try treeInteger($0, $1(), as: type) } }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try next(type) { try treeInteger($0, $1(), as: type) } }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try next(type) { try treeInteger($0, $1(), as: type) } }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try next(type) { try treeInteger($0, $1(), as: type) } }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try next(type) { try JSONTreeDecoder($0, codingPath: $1()).decodeValue(type) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next(type) { try JSONTreeDecoder($0, codingPath: $1()).container(keyedBy: type) }
    }
    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer {
        try next([JSONValue].self) { try JSONTreeDecoder($0, codingPath: $1()).unkeyedContainer() }
    }
    mutating func superDecoder() throws -> Decoder {
        try next(JSONValue.self) { JSONTreeDecoder($0, codingPath: $1()) }
    }
}

private struct Single: SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [CodingKey]

    func decodeNil() -> Bool { value == .null }
    func decode(_ type: Bool.Type) throws -> Bool { try treeBool(value, codingPath) }
    func decode(_ type: String.Type) throws -> String { try treeString(value, codingPath) }
    func decode(_ type: Double.Type) throws -> Double { try treeDouble(value, codingPath) }
    func decode(_ type: Float.Type) throws -> Float { Float(try treeDouble(value, codingPath)) }
    func decode(_ type: Int.Type) throws -> Int { try treeInteger(value, codingPath, as: type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try treeInteger(value, codingPath, as: type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try treeInteger(value, codingPath, as: type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try treeInteger(value, codingPath, as: type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try treeInteger(value, codingPath, as: type) }
    func decode(_ type: UInt.Type) throws -> UInt { try treeInteger(value, codingPath, as: type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try treeInteger(value, codingPath, as: type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try treeInteger(value, codingPath, as: type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try treeInteger(value, codingPath, as: type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try treeInteger(value, codingPath, as: type) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try JSONTreeDecoder(value, codingPath: codingPath).decodeValue(type) }
}

struct NameKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
