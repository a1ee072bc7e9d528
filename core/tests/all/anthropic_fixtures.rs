//! The Anthropic adapter against real recorded traffic, offline.
//!
//! - Every stream in `fixtures/anthropic-sse` (from anthropic-sdk-python) decodes to the
//!   values written out by hand below, identically for any chunking of its bytes.
//! - Every `/v1/messages` interaction in `fixtures/anthropic` (pydantic-ai cassettes),
//!   streamed or not, parses to what `expected.json` says; that file is written by an
//!   independent Python oracle (`make_expected.py`) from Anthropic's documented formats.
//!   Non-streamed tool arguments are compared as JSON values (Anthropic sends an object; we
//!   serialise it), streamed ones as the exact concatenated text.

use crate::common::support;

use polyroute::provider::anthropic::AnthropicProvider;
use polyroute::provider::{Provider, ProviderConfig, ProviderKind};
use polyroute::{ErrorKind, FinishReason, Usage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use support::{cassette, decode, facts, fixtures};

fn provider() -> AnthropicProvider {
    AnthropicProvider::new(ProviderConfig::new("anthropic", ProviderKind::Anthropic, "http://127.0.0.1:9").with_api_key("sk-test-not-a-real-key"))
}

struct Want {
    file: &'static str,
    id: &'static str,
    model: &'static str,
    text: &'static str,
    reasoning: &'static str,
    signature: Option<&'static str>,
    calls: &'static [(&'static str, &'static str, &'static str)],
    usage: Usage,
    finish: FinishReason,
    native: &'static str,
}

fn u(input: u64, output: u64, reasoning: u64) -> Usage {
    Usage { input_tokens: input, output_tokens: output, reasoning_tokens: reasoning, ..Default::default() }
}

const ECLIPSE: &str = " there! Happy to explain.\n\n**Solar eclipses** happen when the Moon passes between the Sun and the Earth, casting a shadow that blocks some or all of the Sun's light for viewers inside it. They're one of the most dramatic sights in the sky.\n\nSome key points:\n\n**The three main types:**\n- Total (the Moon completely covers the Sun's disk)\n- Partial (only part of the Sun is covered)\n- Annular (the famous *ring of fire*)\n\n**Why they're so striking:**\n- Totality can turn day into twilight (for a few minutes), and the Sun's corona becomes visible to the naked eye\n- Temperatures can drop noticeably while the shadow passes over\n- Animals sometimes behave as if night has fallen\n\n**Viewing safely:**\n- **Certified eclipse glasses** are a must for looking at the Sun directly. Ordinary sunglasses are not safe, even very dark ones.\n- A pinhole projector is an easy, safe alternative.\n\n**Why they're rare:**\nThe Moon's shadow traces a (narrow) path across the Earth, so any given spot sees a total eclipse only about once every few centuries. That rarity is a big part of the excitement.\n\nIs there a particular angle you're curious about? For example, I'd be happy to go deeper on the history, the science of totality, safe viewing, or how they're portrayed in fiction. Just let me know what's sparking your interest!";

fn wants() -> Vec<Want> {
    let hello = |file, id, model, input| Want {
        file,
        id,
        model,
        text: "Hello there!",
        reasoning: "",
        signature: None,
        calls: &[],
        usage: u(input, 8, 0),
        finish: FinishReason::Stop,
        native: "end_turn",
    };
    vec![
        Want { usage: u(11, 6, 0), ..hello("basic_response.txt", "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK", "claude-3-opus-latest", 11) },
        hello("compaction_response.txt", "msg_01CompactionEncryptedContent01", "claude-opus-4-7", 30),
        hello("fallback_credit_response.txt", "msg_01FallbackCreditUsage0000001", "claude-sonnet-4-5", 25),
        hello("fallback_response.txt", "msg_01FallbackModelRelabel000001", "claude-opus-4-7", 25),
        Want {
            file: "tool_use_response.txt",
            id: "msg_019Q1hrJbZG26Fb9BQhrkHEr",
            model: "claude-sonnet-4-20250514",
            text: "I'll check the current weather in Paris for you.",
            reasoning: "",
            signature: None,
            calls: &[("toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather", "{\"location\": \"Paris\"}")],
            usage: u(377, 65, 0),
            finish: FinishReason::ToolCalls,
            native: "tool_use",
        },
        Want {
            file: "incomplete_partial_json_response.txt",
            id: "msg_01UdjYBBipA9omjYhicnevgq",
            model: "claude-3-7-sonnet-20250219",
            text: "I'll create a comprehensive tax guide for someone with multiple W2s and save it in a file called taxes.txt. Let me do that for you now.",
            reasoning: "",
            signature: None,
            // Cut by max_tokens mid-JSON: the raw fragments are kept, never "repaired".
            calls: &[(
                "toolu_01EKqbqmZrGRXy18eN7m9kvY",
                "make_file",
                "{\"filename\": \"taxes.txt\", \"lines_of_text\": [\n\"# COMPREHENSIVE TAX GUIDE FOR INDIVIDUALS WITH MULTIPLE W-2s\",\n\"\",\n\"## INTRODUCTION\",\n\"\",\n\"Filing taxes",
            )],
            usage: u(450, 124, 0),
            finish: FinishReason::Length,
            native: "max_tokens",
        },
        Want {
            file: "refusal_response.txt",
            id: "msg_01RefusalTestMessage123456789",
            model: "claude-opus-4-7",
            text: "",
            reasoning: "",
            signature: None,
            calls: &[],
            usage: u(20, 0, 0),
            finish: FinishReason::ContentFilter,
            native: "refusal",
        },
        Want {
            file: "stream-a-refusal.sse",
            id: "msg_fixture_a_0001",
            model: "claude-fable-5",
            text: "Hi",
            reasoning: "Simple educational question about what a solar eclipse is. This is benign general knowledge \u{2014} definitions are fine. Also the user called me \"claudius\" \u{2014} I'm Claude. Minor correction or just roll with it politely.",
            signature: Some("c3ludGhldGljLXNpZ25hdHVyZS1maXh0dXJlLWEtbm90LWEtcmVhbC1zaWduYXR1cmU="),
            calls: &[],
            usage: u(28, 106, 67),
            finish: FinishReason::ContentFilter,
            native: "refusal",
        },
        Want {
            // A server-side web search runs first: it is not a tool call for the caller.
            file: "stream-a-toolrefusal.sse",
            id: "msg_fixture_atool_0001",
            model: "claude-fable-5",
            text: "Here's a summary of this year's solar eclipses and how",
            reasoning: "",
            signature: None,
            calls: &[],
            // message_delta's cumulative usage replaces message_start's (612 → 28 input).
            usage: u(28, 106, 67),
            finish: FinishReason::ContentFilter,
            native: "refusal",
        },
        Want {
            file: "stream-b-fallback.sse",
            id: "msg_fixture_b_0001",
            model: "claude-opus-4-8",
            text: ECLIPSE,
            reasoning: "",
            signature: None,
            calls: &[],
            usage: u(31, 547, 0),
            finish: FinishReason::Stop,
            native: "end_turn",
        },
    ]
}

#[test]
fn recorded_sse_streams_decode_to_hand_written_values() {
    let p = provider();
    let mut rng = StdRng::seed_from_u64(7);
    let ws = wants();
    assert_eq!(ws.len(), std::fs::read_dir(fixtures().join("anthropic-sse")).unwrap().count() - 2, "every stream is checked");
    for w in ws {
        let bytes = std::fs::read(fixtures().join("anthropic-sse").join(w.file)).unwrap();
        let whole = decode(&p, "m", &bytes, &[]);
        assert_eq!(whole.error, None, "{}", w.file);
        assert!(matches!(whole.events.last(), Some(polyroute::StreamEvent::Usage { .. })), "{}: usage comes last", w.file);
        let r = whole.fold();
        assert_eq!((r.id.as_str(), r.model.as_str()), (w.id, w.model), "{}", w.file);
        assert_eq!(r.content(), w.text, "{}", w.file);
        let m = &r.choices[0].message;
        assert_eq!(m.reasoning_content.as_deref().unwrap_or(""), w.reasoning, "{}", w.file);
        assert_eq!(m.reasoning_signature.as_deref(), w.signature, "{}", w.file);
        let calls: Vec<_> = r.tool_calls().iter().map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str())).collect();
        assert_eq!(calls, w.calls, "{}", w.file);
        assert_eq!(r.usage, Some(w.usage), "{}", w.file);
        assert_eq!(r.finish_reason(), Some(w.finish), "{}", w.file);
        assert_eq!(r.choices[0].native_finish_reason.as_deref(), Some(w.native), "{}", w.file);
        for _ in 0..50 {
            let cuts: Vec<usize> = (0..rng.random_range(1..12)).map(|_| rng.random_range(0..=bytes.len())).collect();
            assert_eq!(decode(&p, "m", &bytes, &cuts), whole, "{} cut at {cuts:?}", w.file);
        }
    }
}

#[test]
fn truncated_recorded_stream_is_interrupted_with_partial_text() {
    let p = provider();
    let bytes = std::fs::read(fixtures().join("anthropic-sse/basic_response.txt")).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    // Cut before the stop reason: interrupted, with what was received.
    let cut = text.find("event: message_delta").unwrap();
    let d = decode(&p, "m", &text.as_bytes()[..cut], &[]);
    assert_eq!(d.error.as_ref().map(|e| e.kind), Some(ErrorKind::StreamInterrupted));
    assert_eq!(d.fold().content(), "Hello there!");
    // Cut after the stop reason, before `message_stop`: the answer is complete (the
    // terminator alone is missing, like an OpenAI stream without `[DONE]`).
    let cut = text.find("event: message_stop").unwrap();
    let d = decode(&p, "m", &text.as_bytes()[..cut], &[]);
    assert!(d.error.is_none(), "{:?}", d.error);
    assert_eq!(d.fold().content(), "Hello there!");
}

#[test]
fn every_recorded_messages_interaction_parses_as_the_oracle_says() {
    let p = provider();
    let expected: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(fixtures().join("anthropic/expected.json")).unwrap()).unwrap();
    let cassettes = std::fs::read_dir(fixtures().join("anthropic"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "yaml"))
        .count();
    assert_eq!(cassettes, 72);
    assert!(expected.len() >= 100, "{} cases", expected.len());
    let (mut streams, mut errors) = (0, 0);
    for case in &expected {
        let file = case["file"].as_str().unwrap();
        let it = &cassette("anthropic", file)[case["interaction"].as_u64().unwrap() as usize];
        let status = case["status"].as_u64().unwrap() as u16;
        let want = &case["expect"];
        let ctx = format!("{file}#{}", case["interaction"]);
        if let Some(kind) = want.get("error_kind").and_then(Value::as_str) {
            errors += 1;
            let body = serde_json::to_vec(&it["response"]["parsed_body"]).unwrap();
            let e = p.parse_error("m", status, &http::HeaderMap::new(), &body);
            assert_eq!(e.code(), kind, "{ctx}: {e}");
            assert!(e.request_id.is_some(), "{ctx}: the body's request_id is kept");
            continue;
        }
        let got = if case["stream"].as_bool().unwrap() {
            streams += 1;
            let body = it["response"]["body"]["string"].as_str().unwrap();
            let d = decode(&p, "m", body.as_bytes(), &[]);
            assert_eq!(d.error, None, "{ctx}");
            facts(&d.fold(), false)
        } else {
            let body = serde_json::to_vec(&it["response"]["parsed_body"]).unwrap();
            let r = p.parse_response("m", status, &http::HeaderMap::new(), &body).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            facts(&r, true)
        };
        let mut want = want.clone();
        if !case["stream"].as_bool().unwrap() {
            for c in want["tool_calls"].as_array_mut().unwrap() {
                c["arguments"] = serde_json::from_str(c["arguments"].as_str().unwrap()).unwrap();
            }
        }
        assert_eq!(got, want, "{ctx}");
    }
    assert_eq!((streams, errors), (10, 1));
}
