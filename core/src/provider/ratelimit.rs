//! Proactive rate limiting from what providers tell us in their response headers.
//!
//! Providers announce their limits on every response: OpenAI and Groq with
//! `x-ratelimit-remaining-{requests,tokens}` and `x-ratelimit-reset-*` as Go-style durations
//! (`"6m0s"`, `"250ms"`), Anthropic with `anthropic-ratelimit-{requests,tokens,input-tokens,
//! output-tokens}-{remaining,reset}` with RFC 3339 times. When a deployment says it is
//! (nearly) exhausted, the router prefers other deployments, or waits for the reset within
//! the request's deadline, instead of collecting a 429 it was warned about.
//!
//! Reading these headers is wire format, so it lives with the adapters: each `Provider`
//! says which convention it reads (`Provider::rate_limits`), the `Endpoint` hands what it
//! read to the deployment's [`LimitSink`] after every response, and the router only ever
//! sees [`ProviderLimits`]. The client-side requests/tokens-per-minute limits from the
//! policy are held exactly by reservation in `budget/`; this module only reads headers.

use std::time::Duration;

use http::HeaderMap;

use crate::time::parse_duration_str;

/// What a provider said about the deployment's remaining allowance.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProviderLimits {
    pub requests_remaining: Option<u64>,
    pub requests_reset: Option<Duration>,
    pub tokens_remaining: Option<u64>,
    pub tokens_reset: Option<Duration>,
}

impl ProviderLimits {
    pub fn is_empty(&self) -> bool {
        self.requests_remaining.is_none() && self.tokens_remaining.is_none()
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn num(h: &HeaderMap, name: &str) -> Option<u64> {
    header(h, name)?.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0).map(|v| v as u64)
}

pub use crate::time::parse_rfc3339;

/// OpenAI's convention (also Azure, Groq and most OpenAI-compatible servers):
/// `x-ratelimit-{remaining,reset}-{requests,tokens}`, resets as Go durations.
pub fn openai_style(h: &HeaderMap) -> ProviderLimits {
    // Most responses (and every mock) carry none of these: one pass over the names is
    // cheaper than a handful of failed lookups.
    if !h.keys().any(|k| k.as_str().starts_with("x-ratelimit-")) {
        return ProviderLimits::default();
    }
    let dur = |name: &str| header(h, name).and_then(parse_duration_str);
    ProviderLimits {
        requests_remaining: num(h, "x-ratelimit-remaining-requests"),
        requests_reset: dur("x-ratelimit-reset-requests"),
        tokens_remaining: num(h, "x-ratelimit-remaining-tokens"),
        tokens_reset: dur("x-ratelimit-reset-tokens"),
    }
}

/// Anthropic's convention: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-
/// {remaining,reset}`, resets as RFC 3339 times (`now_unix` turns them into durations).
pub fn anthropic_style(h: &HeaderMap, now_unix: f64) -> ProviderLimits {
    if !h.keys().any(|k| k.as_str().starts_with("anthropic-ratelimit-")) {
        return ProviderLimits::default();
    }
    let at =
        |name: &str| header(h, name).and_then(parse_rfc3339).map(|t| Duration::try_from_secs_f64((t - now_unix).max(0.0)).unwrap_or(Duration::ZERO));
    let mut l = ProviderLimits {
        requests_remaining: num(h, "anthropic-ratelimit-requests-remaining"),
        requests_reset: at("anthropic-ratelimit-requests-reset"),
        ..Default::default()
    };
    // Total, input and output token buckets: the tightest binds.
    let candidates = [
        (num(h, "anthropic-ratelimit-tokens-remaining"), at("anthropic-ratelimit-tokens-reset")),
        (num(h, "anthropic-ratelimit-input-tokens-remaining"), at("anthropic-ratelimit-input-tokens-reset")),
        (num(h, "anthropic-ratelimit-output-tokens-remaining"), at("anthropic-ratelimit-output-tokens-reset")),
    ];
    if let Some((r, reset)) = candidates.iter().filter(|(r, _)| r.is_some()).min_by_key(|(r, _)| *r) {
        l.tokens_remaining = *r;
        l.tokens_reset = *reset;
    }
    l
}

/// Either convention (OpenAI's first), for callers that do not know the provider.
pub fn parse_limits(h: &HeaderMap, now_unix: f64) -> ProviderLimits {
    let o = openai_style(h);
    let a = anthropic_style(h, now_unix);
    ProviderLimits {
        requests_remaining: o.requests_remaining.or(a.requests_remaining),
        requests_reset: if o.requests_remaining.is_some() { o.requests_reset } else { a.requests_reset },
        tokens_remaining: o.tokens_remaining.or(a.tokens_remaining),
        tokens_reset: if o.tokens_remaining.is_some() { o.tokens_reset } else { a.tokens_reset },
    }
}

/// Receives what a deployment's responses said about its limits.
pub trait LimitSink: Send + Sync + std::fmt::Debug {
    fn observe(&self, limits: ProviderLimits);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn hm(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn openai_style() {
        let l = parse_limits(
            &hm(&[
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "1m30s"),
                ("x-ratelimit-remaining-tokens", "1500"),
                ("x-ratelimit-reset-tokens", "250ms"),
            ]),
            0.0,
        );
        assert_eq!(l.requests_remaining, Some(0));
        assert_eq!(l.requests_reset, Some(Duration::from_secs(90)));
        assert_eq!(l.tokens_remaining, Some(1500));
        assert_eq!(l.tokens_reset, Some(Duration::from_millis(250)));
    }

    #[test]
    fn anthropic_style_with_rfc3339() {
        let now = parse_rfc3339("2026-11-21T10:00:00Z").unwrap();
        assert_eq!(now, 1_795_219_200.0 + 36_000.0);
        let l = parse_limits(
            &hm(&[
                ("anthropic-ratelimit-requests-remaining", "49"),
                ("anthropic-ratelimit-requests-reset", "2026-11-21T10:00:12Z"),
                ("anthropic-ratelimit-input-tokens-remaining", "900"),
                ("anthropic-ratelimit-input-tokens-reset", "2026-11-21T11:00:30+01:00"),
                ("anthropic-ratelimit-output-tokens-remaining", "8000"),
                ("anthropic-ratelimit-output-tokens-reset", "2026-11-21T10:01:00.5Z"),
            ]),
            now,
        );
        assert_eq!(l.requests_remaining, Some(49));
        assert_eq!(l.requests_reset, Some(Duration::from_secs(12)));
        assert_eq!(l.tokens_remaining, Some(900));
        assert_eq!(l.tokens_reset, Some(Duration::from_secs(30)));
    }

    #[test]
    fn garbage_is_ignored() {
        for g in ["", "soon", "-5", "NaN", "2026-13-01T00:00:00Z", "2026-11-21T10:00:00", "2026-11-21T10:00:00+0100", "💥"] {
            let l = parse_limits(&hm(&[("x-ratelimit-remaining-requests", g), ("anthropic-ratelimit-requests-reset", g)]), 0.0);
            assert!(l.requests_reset.is_none(), "{g}");
            assert_eq!(parse_rfc3339(g), None, "{g}");
        }
    }
}
