//! Fuzz the one SSE decoder against itself and against an independent implementation
//! (the `eventsource-stream` crate).
//!
//! Invariants:
//! - no panic, bounded memory (with a small event limit too: an oversized event is a
//!   `malformed_response` error, not a buffer);
//! - the same events for any chunking of the input (CRLF and multi-byte characters split
//!   across chunks included);
//! - ending the stream dispatches a pending event exactly as a final blank line would;
//! - the same events as `eventsource-stream` on the same chunks, modulo its documented
//!   differences: it never dispatches an unterminated last event (we compare with a blank
//!   line appended), it stops at invalid UTF-8 where we decode lossily (such inputs are
//!   compared only with ourselves), and Rust's `u64` parse lets it accept `retry: +5` where
//!   the spec (and we) accept ASCII digits only (such inputs are not compared on `retry`).
//!   It also panics on a leading byte-order mark (it slices `&s[1..]` through the 3-byte
//!   U+FEFF: eventsource-stream 0.2.3, event_stream.rs:271), so the oracle gets the input
//!   without its BOM; both strip it, so the events must still agree. Input that starts with
//!   two BOMs is not compared with it: the spec strips one, and the second would reach the
//!   same panic (a fuzz run found `EF BB BF EF BB BF 64 64`, now a regression input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use polyroute::ErrorKind;
use polyroute_fuzz::{chunkings, normalise_ours, oracle_decode, split, sse_decode};

fuzz_target!(|data: &[u8]| {
    let whole = sse_decode(&[data], None).expect("no event limit is reachable with fuzz-sized inputs");
    for cuts in chunkings(data) {
        let chunked = sse_decode(&split(data, &cuts), None).expect("as above");
        assert_eq!(whole, chunked, "events depend on chunking (cuts {cuts:?})");
    }

    let mut terminated = data.to_vec();
    terminated.extend_from_slice(b"\n\n");
    let with_blank = sse_decode(&[&terminated], None).expect("as above");
    assert_eq!(whole, with_blank, "finish() differs from a final blank line");

    // A tiny limit: errors are typed, never panics.
    for limit in [1usize, 16, 300] {
        if let Err(e) = sse_decode(&[data], Some(limit)) {
            assert_eq!(e.kind, ErrorKind::MalformedResponse);
        }
    }

    if std::str::from_utf8(data).is_err() {
        return;
    }
    let ours = normalise_ours(&with_blank);
    let plus_retry = data.windows(6).any(|w| w == b"retry:") && data.contains(&b'+');
    let for_oracle = terminated.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&terminated);
    if for_oracle.starts_with(b"\xEF\xBB\xBF") {
        return;
    }
    let mut cut_sets = chunkings(for_oracle);
    cut_sets.insert(0, Vec::new());
    for cuts in cut_sets {
        let Some(theirs) = oracle_decode(&split(for_oracle, &cuts)) else {
            panic!("eventsource-stream rejected valid UTF-8 (cuts {cuts:?})");
        };
        if plus_retry {
            let strip = |v: &[polyroute_fuzz::Norm]| v.iter().map(|(t, d, i, _)| (t.clone(), d.clone(), i.clone())).collect::<Vec<_>>();
            assert_eq!(strip(&ours), strip(&theirs), "differs from eventsource-stream (cuts {cuts:?})");
        } else {
            assert_eq!(ours, theirs, "differs from eventsource-stream (cuts {cuts:?})");
        }
    }
});
