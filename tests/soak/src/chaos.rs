//! The faults: seeded random mock scripts, one per faulty provider, plus the answer text
//! that lets the soak recognise a truncated success.
//!
//! Every successful step answers `"<p>1 <p>2 … <p>N end:N"`. The mock streams it one word per
//! chunk, so an answer that lost any tail chunk no longer ends in `end:N` with N words
//! before it: [`is_complete`] tells a whole answer from a truncated one without knowing
//! which step produced it.
//!
//! Fault kinds and weights cover everything the issue names (429 with and without
//! Retry-After, hints over the router's cap, 500/503/529, resets, drops, never-answering,
//! slow headers, slow first token, cuts, stalls, malformed chunks, in-band errors, missing
//! terminators and finish reasons, garbage headers). Each step lasts 1 to 3 attempts, so
//! faults come in short bursts, which is what trips breakers.

use polyroute::provider::mock::{Fault, MockScript, MockStep};
use rand::rngs::StdRng;
use rand::Rng;

/// `<p>1 … <p>n end:n`
pub fn answer(prefix: char, n: usize) -> String {
    let mut words: Vec<String> = (1..=n).map(|k| format!("{prefix}{k}")).collect();
    words.push(format!("end:{n}"));
    words.join(" ")
}

/// Whether `text` is a whole answer as produced by [`answer`] (any prefix letter).
pub fn is_complete(text: &str) -> bool {
    let words: Vec<&str> = text.split(' ').collect();
    let Some((last, body)) = words.split_last() else { return false };
    let Some(n) = last.strip_prefix("end:").and_then(|n| n.parse::<usize>().ok()) else { return false };
    if body.len() != n || n == 0 {
        return false;
    }
    let Some(prefix) = body[0].chars().next() else { return false };
    body.iter().enumerate().all(|(k, w)| w.strip_prefix(prefix).and_then(|d| d.parse::<usize>().ok()) == Some(k + 1))
}

/// The weighted fault table: (weight, name), drawn whenever a step is not a plain answer.
pub const FAULTS: &[(u32, &str)] = &[
    (6, "429_retry_after"),
    (2, "429_hint_over_cap"),
    (5, "429_no_hint"),
    (6, "500"),
    (5, "503"),
    (4, "529"),
    (3, "drop"),
    (3, "reset"),
    (2, "hang"),
    (3, "slow_headers"),
    (4, "slow_first_token"),
    (5, "cut"),
    (3, "stall"),
    (4, "malformed"),
    (4, "inband_error"),
    (2, "no_done"),
    (3, "no_finish"),
    (1, "garbage_headers"),
];

/// Faults come in weather: calm spells (mostly answers) and storms (mostly faults), as real
/// outages do. Storms trip breakers; calms let half-open probes close them again, so the
/// faulty providers keep carrying traffic instead of sitting behind open breakers. Spells
/// are wall-clock time (the soak swaps scripts from a weather thread): counted in attempts,
/// a storm would outlast any open breaker, which admits only a probe now and then.
pub const CALM_OK_SHARE: f64 = 0.9;
pub const STORM_OK_SHARE: f64 = 0.15;
/// Spell lengths in milliseconds.
pub const CALM_MS: std::ops::RangeInclusive<u64> = 400..=1500;
pub const STORM_MS: std::ops::RangeInclusive<u64> = 150..=600;
/// Steps per installed script: more than a spell can consume (each serves 1-3 attempts).
pub const SPELL_STEPS: usize = 1500;

fn pick(rng: &mut StdRng, ok_share: f64) -> &'static str {
    if rng.random_bool(ok_share) {
        return "ok";
    }
    let total: u32 = FAULTS.iter().map(|f| f.0).sum();
    let mut x = rng.random_range(0..total);
    for (w, name) in FAULTS {
        if x < *w {
            return name;
        }
        x -= w;
    }
    "ok"
}

/// Which wire format a faulty provider speaks: it decides the in-band error codes, which
/// must be that format's transient ones (the mock's default for a non-streamed Anthropic
/// in-band error is `invalid_request_error`, a caller error that rightly stops a request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenAi,
    Anthropic,
    Gemini,
}

impl Format {
    fn inband_codes(self) -> &'static [&'static str] {
        match self {
            Format::OpenAi => &["server_error", "rate_limit_exceeded"],
            Format::Anthropic => &["overloaded_error", "api_error"],
            Format::Gemini => &["UNAVAILABLE", "INTERNAL"],
        }
    }
}

/// One random step, an answer with probability `ok_share`. `prefix` marks the provider's answers.
pub fn step(rng: &mut StdRng, format: Format, prefix: char, ok_share: f64) -> MockStep {
    let n = rng.random_range(3..=10);
    let ok = MockStep::text(answer(prefix, n)).with_chunk_delay_ms(rng.random_range(0..=3));
    let chunks = rng.random_range(0..=n.min(4));
    let s = match pick(rng, ok_share) {
        "ok" => ok,
        "429_retry_after" => MockStep::error(429).with_retry_after(format!("{:.2}", rng.random_range(0.05..0.3))),
        "429_hint_over_cap" => MockStep::error(429).with_retry_after("5"),
        "429_no_hint" => MockStep::error(429),
        "500" => MockStep::error(500),
        "503" => MockStep::error(503),
        "529" => MockStep::error(529),
        "drop" => MockStep::faulty(Fault::Drop),
        "reset" => ok.with_fault(Fault::ResetAfter { chunks }),
        "hang" => MockStep::faulty(Fault::Hang),
        "slow_headers" => ok.with_latency_ms(rng.random_range(100..=700)),
        "slow_first_token" => ok.with_ttft_ms(rng.random_range(200..=900)),
        "cut" => ok.with_fault(Fault::CutAfter { chunks }),
        "stall" => ok.with_fault(Fault::StallAfter { chunks }),
        "malformed" => ok.with_fault(Fault::MalformedAfter { chunks }),
        "inband_error" => ok.with_fault(Fault::InbandError {
            after_chunks: chunks,
            code: Some(format.inband_codes()[rng.random_range(0..format.inband_codes().len())].to_string()),
            error_type: None,
            message: Some("injected by the soak".into()),
        }),
        "no_done" => ok.with_fault(Fault::NoDone),
        "no_finish" => ok.with_fault(Fault::NoFinish),
        _ => MockStep::faulty(Fault::GarbageHeaders),
    };
    s.repeat(rng.random_range(1..=3))
}

/// One spell's script: `steps` random steps, then more of the same weather (answers when
/// calm, 503s in a storm) should the spell outlast them.
pub fn spell_script(rng: &mut StdRng, steps: usize, format: Format, prefix: char, storm: bool) -> MockScript {
    let share = if storm { STORM_OK_SHARE } else { CALM_OK_SHARE };
    let then = if storm { MockStep::error(503) } else { MockStep::text(answer(prefix, 4)) };
    MockScript::new((0..steps).map(|_| step(rng, format, prefix, share)).collect()).then(then)
}

/// The provider that stays healthy.
pub fn healthy_script() -> MockScript {
    MockScript::always(MockStep::text(answer('h', 6)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn complete_answers_are_recognised_and_truncations_are_not() {
        let a = answer('x', 5);
        assert_eq!(a, "x1 x2 x3 x4 x5 end:5");
        assert!(is_complete(&a));
        for cut in 0..a.len() {
            assert!(!is_complete(&a[..cut]), "{:?}", &a[..cut]);
        }
        for bad in ["", "end:0", "x1 x3 end:2", "x1 y2 end:2", "x1 x2 end:3", "x1 x2 end:x", "x1 x2 end:2 x3"] {
            assert!(!is_complete(bad), "{bad:?}");
        }
    }

    #[test]
    fn scripts_are_valid_deterministic_and_varied() {
        let s1 = spell_script(&mut StdRng::seed_from_u64(7), 500, Format::Anthropic, 'a', true);
        let s2 = spell_script(&mut StdRng::seed_from_u64(7), 500, Format::Anthropic, 'a', true);
        assert_eq!(s1, s2, "same seed, same faults");
        s1.validate().unwrap();
        healthy_script().validate().unwrap();
        let faults: std::collections::BTreeSet<String> = s1
            .steps
            .iter()
            .filter_map(|s| s.fault.as_ref().map(|f| format!("{f:?}").split([' ', '{', '(']).next().unwrap_or("").to_string()))
            .collect();
        assert!(faults.len() >= 9, "{faults:?}");
        assert!(s1.steps.iter().any(|s| s.status == Some(429) && s.retry_after.is_some()));
        assert!(s1.steps.iter().any(|s| s.status == Some(429) && s.retry_after.is_none()));
        assert!(s1.steps.iter().any(|s| s.status == Some(529)));
        let calm = spell_script(&mut StdRng::seed_from_u64(7), 500, Format::OpenAi, 'o', false);
        calm.validate().unwrap();
        let answers = |s: &MockScript| s.steps.iter().filter(|s| s.fault.is_none() && s.status.is_none()).count();
        assert!(answers(&calm) > 400 && answers(&s1) < 150, "calm {} storm {}", answers(&calm), answers(&s1));
    }
}
