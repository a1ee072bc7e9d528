//! Response-cache settings: the process-wide store (`cache:` at the top of the policy) and
//! the mode of each route's opt-in (`routes[].cache`, `RouteCacheSpec` in `schema.rs`, next
//! to the other route settings). What they mean is in `crate::cache`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Default bound of the in-process store.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Largest accepted `cache.max_bytes` (the store lives in this process's memory).
pub const MAX_CACHE_MAX_BYTES: u64 = 64 * 1024 * 1024 * 1024;

/// The process-wide response store (top-level `cache:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    /// Bound of the in-process store, in bytes of serialised answers: an integer or a
    /// string such as `"64MiB"`, `"512KiB"`, `"1GB"`.
    #[serde(default = "d_max_bytes")]
    pub max_bytes: ByteSize,
}

fn d_max_bytes() -> ByteSize {
    ByteSize(DEFAULT_CACHE_MAX_BYTES)
}

impl Default for CacheSpec {
    fn default() -> Self {
        CacheSpec { max_bytes: d_max_bytes() }
    }
}

/// When a route's cache is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CacheMode {
    /// Look up before routing; a hit is served without calling any provider.
    #[default]
    ReadWrite,
    /// Never read first: a cached answer is served only as the degraded tier, when the
    /// request failed on every deployment.
    FallbackOnly,
}

/// A size in bytes, written as an integer or with a unit (`KB`, `MB`, `GB` are powers of
/// 1000; `KiB`, `MiB`, `GiB` powers of 1024; `B` or none: bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| format!("invalid size `{s}` (expected e.g. 67108864, \"64MiB\" or \"500MB\")"))?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" => 1000,
            "MB" => 1000 * 1000,
            "GB" => 1000 * 1000 * 1000,
            "KiB" => 1024,
            "MiB" => 1024 * 1024,
            "GiB" => 1024 * 1024 * 1024,
            u => return Err(format!("unknown size unit `{u}` in `{s}` (use B, KB, MB, GB, KiB, MiB or GiB)")),
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(|| format!("size `{s}` is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| serde::de::Error::custom("expected a size in bytes: an integer or a string like \"64MiB\""))? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::Text(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(ByteSize::parse("1024").unwrap(), ByteSize(1024));
        assert_eq!(ByteSize::parse("64MiB").unwrap(), ByteSize(64 << 20));
        assert_eq!(ByteSize::parse("2 KB").unwrap(), ByteSize(2000));
        assert_eq!(ByteSize::parse("1GiB").unwrap(), ByteSize(1 << 30));
        assert!(ByteSize::parse("12 parsecs").unwrap_err().contains("unknown size unit"));
        assert!(ByteSize::parse("MiB").unwrap_err().contains("invalid size"));
        assert!(ByteSize::parse("99999999999999999999GiB").is_err());
        assert!(ByteSize::parse("18446744073709551615GiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn store_defaults_and_unknown_keys() {
        assert_eq!(serde_json::from_str::<CacheSpec>("{}").unwrap().max_bytes, ByteSize(DEFAULT_CACHE_MAX_BYTES));
        assert_eq!(serde_json::from_str::<CacheMode>(r#""fallback_only""#).unwrap(), CacheMode::FallbackOnly);
        assert!(serde_json::from_str::<CacheSpec>(r#"{"max_bytes": "lots"}"#).is_err());
        assert!(serde_json::from_str::<CacheSpec>(r#"{"max_byte": 1}"#).is_err());
    }
}
