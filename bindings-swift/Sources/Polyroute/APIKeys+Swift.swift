// API keys from the app: iOS apps have no environment variables, so a policy's providers may
// leave out `api_key`/`api_key_env` and the router asks the app instead, at every request
// (a rotated Keychain item is used by the next one). The generated protocol is `ApiKeyProvider`
// (uniffi's casing); `APIKeyProvider` is the Swift spelling, and `APIKeys` wraps a closure.
import Foundation

public typealias APIKeyProvider = ApiKeyProvider

/// An `APIKeyProvider` from a closure: `APIKeys { provider in try keychain.read(account: provider) }`.
/// Return `nil` when there is no key (the request fails with `PolyrouteError.Auth`, nothing is
/// sent); a thrown error fails it the same way, its description in the message. It is called
/// on a router thread, so it must be thread-safe.
public final class APIKeys: APIKeyProvider, Sendable {
    private let body: @Sendable (String) throws -> String?

    public init(_ body: @escaping @Sendable (_ provider: String) throws -> String?) {
        self.body = body
    }

    public func apiKey(provider: String) throws -> String? {
        try body(provider)
    }
}

extension Router {
    /// Build from a policy given as a Swift value, with keys from the app.
    public convenience init(policyObject: JSONValue, apiKeys: APIKeyProvider?) throws {
        try self.init(policy: policyObject.jsonString(), apiKeys: apiKeys)
    }
}
