//! Time parsing shared by the layers above: provider retry hints (`Retry-After`, ms headers,
//! HTTP dates), protobuf-JSON / Go-style durations (Gemini's `retryDelay`, OpenAI's
//! `x-ratelimit-reset-*`), the policy file's durations (`"1h30m"`, exact and bounded, with an
//! error naming the value), RFC 3339 timestamps (Anthropic's rate-limit resets) and the
//! civil-calendar arithmetic budgets use for monthly periods.
//!
//! It sits at the bottom of the import graph and imports nothing from the crate, so the error
//! type, the policy schema, budgets and rate limits can all use it without importing each
//! other (see `scripts/import-graph.py`). Functions take `now` as an argument where it
//! matters; only [`unix_now`] reads the clock.

use std::time::{Duration, SystemTime};

/// Longest hint we accept. A provider asking for more than a day is broken or hostile;
/// clamping keeps `Duration` arithmetic from overflowing downstream.
pub const MAX_RETRY_HINT: Duration = Duration::from_secs(86_400);

fn secs_f64(v: f64) -> Option<Duration> {
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(v).unwrap_or(MAX_RETRY_HINT).min(MAX_RETRY_HINT))
}

/// Parse the retry hint a provider sent in headers: `retry-after-ms` (OpenAI, float ms),
/// `x-ms-retry-after-ms` (Azure), then `retry-after` (seconds, possibly fractional, or an
/// HTTP date relative to `now`). Garbage yields `None`, never a panic; a date in the past
/// yields zero.
pub fn retry_hint_from_headers(headers: &http::HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(v) = get(name) {
            if let Some(d) = v.parse::<f64>().ok().and_then(|ms| secs_f64(ms / 1000.0)) {
                return Some(d);
            }
        }
    }
    let v = get("retry-after")?;
    parse_retry_after_value(v, now)
}

/// `Retry-After` value: delta-seconds (we also accept fractions, as some providers send them)
/// or an IMF-fixdate.
pub fn parse_retry_after_value(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    if let Ok(secs) = v.parse::<f64>() {
        return secs_f64(secs);
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_RETRY_HINT))
}

/// Parse a protobuf-JSON duration such as `"13s"` or `"0.5s"` (Gemini's `RetryInfo.retryDelay`)
/// and Go-style durations such as `"1m30s"`, `"250ms"`, `"6m0s"` (OpenAI's
/// `x-ratelimit-reset-*`).
pub fn parse_duration_str(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    let mut any = false;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let mult = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += n * mult;
        any = true;
    }
    if !any {
        return None;
    }
    secs_f64(total)
}

/// The longest duration a policy may hold. Past it a value is a config error, not a silent
/// clamp: deadlines are added to the clock, and a year is longer than any sane setting.
pub const MAX_POLICY_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// A policy duration: `"1h30m"`, `"250ms"`, `"1.5s"` (units h, m, s, ms, us, ns). Honoured
/// exactly up to [`MAX_POLICY_DURATION`]; anything else is an error naming the value.
pub fn parse_policy_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration `{s}` (use e.g. \"250ms\", \"30s\", \"5m\")");
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let secs_per_unit = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_end..];
        let part = Duration::try_from_secs_f64(n * secs_per_unit).map_err(|_| policy_duration_too_long(s))?;
        total = total.checked_add(part).ok_or_else(|| policy_duration_too_long(s))?;
    }
    within_policy_max(total, s)
}

/// The error for a policy duration past [`MAX_POLICY_DURATION`].
pub fn policy_duration_too_long(v: impl std::fmt::Display) -> String {
    format!("duration {v} is too long (at most {} days)", MAX_POLICY_DURATION.as_secs() / 86_400)
}

/// `d` if it is at most [`MAX_POLICY_DURATION`], else the error naming `shown`.
pub fn within_policy_max(d: Duration, shown: impl std::fmt::Display) -> Result<Duration, String> {
    if d > MAX_POLICY_DURATION {
        Err(policy_duration_too_long(shown))
    } else {
        Ok(d)
    }
}

/// Wall-clock Unix seconds: budget periods and provider reset times are calendar facts,
/// not monotonic durations.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// (year, month) of a Unix day number (Howard Hinnant's civil-from-days).
pub fn civil(days: i64) -> (i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m)
}

/// Unix day number of the first day of (year, month).
pub fn days_from_civil(y: i64, m: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parse `2026-11-21T10:15:30Z` / `...30.123+01:00` to Unix seconds. Garbage is `None`.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d, hh, mm, ss) = (n(0..4)?, n(5..7)?, n(8..10)?, n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        if end == 0 {
            return None;
        }
        frac = format!("0.{}", &r[..end]).parse().ok()?;
        rest = &r[end..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o[1..3].parse::<i64>().ok()? * 3600 + o[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo) + (d - 1);
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss - offset) as f64 + frac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn hm(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_hint_variants() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_hint_from_headers(&hm(&[("retry-after", "2")]), now), Some(Duration::from_secs(2)));
        assert_eq!(retry_hint_from_headers(&hm(&[("retry-after", "1.5")]), now), Some(Duration::from_millis(1500)));
        assert_eq!(retry_hint_from_headers(&hm(&[("retry-after-ms", "250"), ("retry-after", "9")]), now), Some(Duration::from_millis(250)));
        assert_eq!(retry_hint_from_headers(&hm(&[("x-ms-retry-after-ms", "1200")]), now), Some(Duration::from_millis(1200)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(retry_hint_from_headers(&hm(&[("retry-after", &date)]), now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(retry_hint_from_headers(&hm(&[("retry-after", &past)]), now), Some(Duration::ZERO));
    }

    #[test]
    fn retry_hint_garbage_never_panics() {
        let now = SystemTime::now();
        for g in ["", "  ", "-1", "NaN", "inf", "1e400", "abc", "Wed, 99 Foo", "1e30", "0x10", "💥"] {
            let h = hm(&[("retry-after", g), ("retry-after-ms", g)]);
            let d = retry_hint_from_headers(&h, now);
            assert!(d.is_none_or(|d| d <= MAX_RETRY_HINT), "{g:?} -> {d:?}");
        }
        // a bad ms header falls through to a good retry-after
        assert_eq!(retry_hint_from_headers(&hm(&[("retry-after-ms", "soon"), ("retry-after", "3")]), now), Some(Duration::from_secs(3)));
        // non-UTF-8 bytes
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        assert_eq!(retry_hint_from_headers(&h, now), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_str("13s"), Some(Duration::from_secs(13)));
        assert_eq!(parse_duration_str("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration_str("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration_str("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_duration_str("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration_str("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "s", "10", "10x", "1..2s", "m5"] {
            assert_eq!(parse_duration_str(bad), None, "{bad}");
        }
    }
}
