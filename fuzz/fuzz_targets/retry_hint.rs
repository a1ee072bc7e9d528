//! Fuzz the retry-hint parsers: `Retry-After` (seconds, fractions, HTTP dates), OpenAI's
//! `retry-after-ms`, Azure's `x-ms-retry-after-ms`, and Go/protobuf duration strings
//! (Gemini's `retryDelay`, OpenAI's `x-ratelimit-reset-*`).
//!
//! Invariants: no panic on any bytes, every hint within `MAX_RETRY_HINT` (a hostile value
//! cannot overflow the router's time arithmetic), and the header reader agrees with the
//! value parser it is built on.
#![no_main]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use polyroute::error::{parse_duration_str, parse_retry_after_value, retry_hint_from_headers, MAX_RETRY_HINT};

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let text = String::from_utf8_lossy(data);
    for d in [parse_retry_after_value(&text, now), parse_duration_str(&text)].into_iter().flatten() {
        assert!(d <= MAX_RETRY_HINT, "{text:?} -> {d:?}");
    }
    // Three header values separated by NUL: retry-after, retry-after-ms, x-ms-retry-after-ms.
    let mut parts = data.split(|b| *b == 0);
    let names = ["retry-after", "retry-after-ms", "x-ms-retry-after-ms"];
    let mut h = HeaderMap::new();
    let mut retry_after = None;
    for name in names {
        if let Some(Ok(v)) = parts.next().map(HeaderValue::from_bytes) {
            if name == "retry-after" {
                retry_after = Some(v.clone());
            }
            h.insert(name, v);
        }
    }
    let hint = retry_hint_from_headers(&h, now);
    assert!(hint.is_none_or(|d| d <= MAX_RETRY_HINT), "{h:?} -> {hint:?}");
    // With only Retry-After present, the header reader is exactly the value parser.
    if let Some(v) = retry_after {
        let mut only = HeaderMap::new();
        only.insert("retry-after", v.clone());
        let expect = v.to_str().ok().and_then(|s| parse_retry_after_value(s.trim(), now));
        assert_eq!(retry_hint_from_headers(&only, now), expect);
    }
});
