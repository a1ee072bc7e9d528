//! `keys:` in the policy: virtual API keys for the gateway (`polyroute serve`).
//!
//! A key is given as the name of an environment variable holding it (`key_env`) or as the
//! SHA-256 of it (`key_sha256`), never in clear in the file. Either way only its digest is
//! kept once the policy is loaded: the clear key is read from the environment, hashed and
//! dropped, and presented keys are hashed and compared digest to digest in constant time.
//! Serialising a policy (`router.policy()`) shows that a digest is set, never the digest.
//!
//! Each key is bound to a tenant (what routing, budgets and data rules see, whatever the
//! caller says), the routes it may use and an optional request rate. The HTTP side (headers,
//! status codes) lives in the server crate; this module has no HTTP.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The SHA-256 of a key: what is stored and compared. Invisible to `Debug` and to
/// serialisation (an unsalted digest of a weak key could be brute-forced offline).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    pub fn of(key: &str) -> KeyDigest {
        KeyDigest(Sha256::digest(key.as_bytes()).into())
    }

    /// From 64 hexadecimal digits (either case).
    pub fn from_hex(hex: &str) -> Option<KeyDigest> {
        let hex = hex.trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(KeyDigest(out))
    }

    /// Equality that takes the same time whatever the bytes: xor-fold over all 32 bytes.
    pub fn ct_eq(&self, other: &KeyDigest) -> bool {
        let mut diff = 0u8;
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            diff |= a ^ b;
        }
        std::hint::black_box(diff) == 0
    }
}

/// `key_sha256` as written: readable by validation, `[redacted]` to `Debug` and serialisation
/// (like the core's `SecretText`; its own type so this module does not import the schema).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DigestText(String);

impl DigestText {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DigestText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for DigestText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A key's own request rate, held by the gateway process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRateLimit {
    pub requests_per_minute: u64,
}

/// One virtual key (`keys[i]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Shown in logs, errors and metrics instead of the key.
    pub name: String,
    /// Environment variable holding the key (read once per load or reload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_env: Option<String>,
    /// The key's SHA-256 in hex (`printf %s "$KEY" | sha256sum`); serialised as `[redacted]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_sha256: Option<DigestText>,
    /// The tenant every request with this key is made for.
    pub tenant: String,
    /// Routes the key may use (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<KeyRateLimit>,
    /// Resolved by validation from `key_env` or `key_sha256`; never serialised.
    #[serde(skip)]
    pub digest: KeyDigest,
}

impl KeySpec {
    /// May this key use `route`?
    pub fn allows(&self, route: &str) -> bool {
        self.routes.is_empty() || self.routes.iter().any(|r| r == route)
    }
}

/// The key whose digest is the presented key's. Every key is compared (no early exit), so the
/// time taken does not tell which key, or how much of one, matched.
pub fn find_key<'a>(keys: &'a [KeySpec], presented: &str) -> Option<&'a KeySpec> {
    let d = KeyDigest::of(presented);
    let mut found = None;
    for k in keys {
        if k.digest.ct_eq(&d) && found.is_none() {
            found = Some(k);
        }
    }
    found
}

/// Checks each key and resolves its digest; returns (path, message) for every problem.
pub(super) fn check(keys: &mut [KeySpec], route_names: &BTreeSet<String>) -> Vec<(String, String)> {
    let mut issues = Vec::new();
    let mut names = BTreeSet::new();
    let mut digests: Vec<(KeyDigest, usize)> = Vec::new();
    for (i, k) in keys.iter_mut().enumerate() {
        let at = format!("keys[{i}]");
        let mut push = |path: String, msg: String| issues.push((path, msg));
        if k.name.trim().is_empty() {
            push(format!("{at}.name"), "must not be empty".into());
        } else if !names.insert(k.name.clone()) {
            push(format!("{at}.name"), format!("duplicate key name `{}`", k.name));
        }
        if k.tenant.trim().is_empty() {
            push(format!("{at}.tenant"), "must not be empty".into());
        }
        let digest = match (&k.key_env, &k.key_sha256) {
            (Some(_), Some(_)) => {
                push(at.clone(), "set either `key_env` or `key_sha256`, not both".into());
                None
            }
            (None, None) => {
                push(at.clone(), "set `key_env` (an environment variable holding the key) or `key_sha256`".into());
                None
            }
            (Some(env), None) => match std::env::var(env) {
                Ok(v) if !v.is_empty() => Some(KeyDigest::of(&v)),
                _ => {
                    push(format!("{at}.key_env"), format!("environment variable `{env}` is not set (or empty, or not UTF-8)"));
                    None
                }
            },
            (None, Some(h)) => {
                let d = KeyDigest::from_hex(h.expose());
                if d.is_none() {
                    // The value itself is not echoed: someone may have pasted the key here.
                    push(format!("{at}.key_sha256"), "must be 64 hexadecimal digits (the SHA-256 of the key, not the key)".into());
                }
                d
            }
        };
        if let Some(d) = digest {
            if let Some((_, j)) = digests.iter().find(|(o, _)| o.ct_eq(&d)) {
                push(at.clone(), format!("the same key as keys[{j}]"));
            }
            digests.push((d, i));
            k.digest = d;
        }
        for (j, r) in k.routes.iter().enumerate() {
            if !route_names.contains(r) {
                push(format!("{at}.routes[{j}]"), format!("unknown route `{r}`"));
            }
        }
        if k.rate_limit.is_some_and(|r| r.requests_per_minute == 0) {
            push(format!("{at}.rate_limit.requests_per_minute"), "must be positive (remove `rate_limit` for no limit)".into());
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    const CANARY: &str = "pr-test-canary-key-0001";

    fn policy(keys: &str) -> Result<Policy, String> {
        let text = format!(
            "providers: {{m: {{kind: mock}}}}\ndeployments: {{a: {{provider: m, model: x}}}}\nroutes: [{{name: chat, deployments: [a]}}, {{name: batch, deployments: [a]}}]\nkeys: {keys}\n"
        );
        Policy::from_str(&text).map_err(|e| e.message)
    }

    #[test]
    fn digest_hex_and_constant_time_match() {
        let d = KeyDigest::of("abc");
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(KeyDigest::from_hex(hex), Some(d));
        assert_eq!(KeyDigest::from_hex(&hex.to_uppercase()), Some(d));
        assert!(d.ct_eq(&KeyDigest::of("abc")) && !d.ct_eq(&KeyDigest::of("abd")));
        assert_eq!(KeyDigest::from_hex("abc"), None);
        assert_eq!(KeyDigest::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn keys_resolve_and_match_by_env_or_hash() {
        std::env::set_var("POLYROUTE_UNIT_KEY_A", CANARY);
        let sha = format!("{:x}", Sha256::digest(b"pr-test-canary-key-0002"));
        let p = policy(&format!(
            "[{{name: a, key_env: POLYROUTE_UNIT_KEY_A, tenant: acme, routes: [chat], rate_limit: {{requests_per_minute: 5}}}}, {{name: b, key_sha256: \"{sha}\", tenant: beta}}]"
        ))
        .unwrap();
        let keys = &p.spec.keys;
        assert_eq!(find_key(keys, CANARY).map(|k| k.name.as_str()), Some("a"));
        assert_eq!(find_key(keys, "pr-test-canary-key-0002").map(|k| k.tenant.as_str()), Some("beta"));
        assert!(find_key(keys, "pr-test-canary-key-0003").is_none() && find_key(keys, "").is_none());
        assert!(keys[0].allows("chat") && !keys[0].allows("batch") && keys[1].allows("batch"));
        // neither the clear key nor the digest survives serialisation or Debug
        // (`router.policy()` is checked in router/tests.rs: this layer does not import the router)
        let shown = [serde_json::to_string(&p.spec).unwrap(), format!("{:?}", p.spec), serde_yaml_ng::to_string(&p.spec).unwrap()];
        for s in &shown {
            assert!(!s.contains(CANARY) && !s.contains(&sha) && !s.contains("canary-key"), "key material in: {s}");
            assert!(s.contains("POLYROUTE_UNIT_KEY_A"), "{s}");
        }
        assert!(shown[0].contains(r#""key_sha256":"[redacted]""#), "{}", shown[0]);
    }

    #[test]
    fn bad_keys_are_reported_with_paths() {
        std::env::remove_var("POLYROUTE_UNIT_KEY_UNSET");
        std::env::set_var("POLYROUTE_UNIT_KEY_DUP", "pr-test-canary-key-dup");
        let dup = format!("{:x}", Sha256::digest(b"pr-test-canary-key-dup"));
        let e = policy(&format!(
            "[{{name: a, key_env: POLYROUTE_UNIT_KEY_UNSET, tenant: t}}, \
              {{name: a, key_sha256: \"pr-test-canary-pasted-key\", tenant: t}}, \
              {{name: c, tenant: t}}, \
              {{name: d, key_env: X, key_sha256: \"{dup}\", tenant: t}}, \
              {{name: e, key_env: POLYROUTE_UNIT_KEY_DUP, tenant: \"\", routes: [chat, nowhere], rate_limit: {{requests_per_minute: 0}}}}, \
              {{name: f, key_sha256: \"{dup}\", tenant: t}}, \
              {{name: g, key_sha256: \"{dup}\", tenant: t, budget: 3}}]"
        ))
        .unwrap_err();
        for want in [
            "keys[0].key_env: environment variable `POLYROUTE_UNIT_KEY_UNSET` is not set",
            "keys[1].name: duplicate key name `a`",
            "keys[1].key_sha256: must be 64 hexadecimal digits",
            "keys[2]: set `key_env`",
            "keys[3]: set either `key_env` or `key_sha256`, not both",
            "keys[4].tenant: must not be empty",
            "keys[4].routes[1]: unknown route `nowhere`",
            "keys[4].rate_limit.requests_per_minute: must be positive",
            "keys[5]: the same key as keys[4]",
            "keys[6].budget: unknown field `budget`",
        ] {
            assert!(e.contains(want), "missing `{want}` in:\n{e}");
        }
        assert!(!e.contains("pr-test-canary"), "a pasted key is echoed: {e}");
        let e = policy("{name: a}").unwrap_err();
        assert!(e.contains("keys: must be a list of keys"), "{e}");
    }
}
