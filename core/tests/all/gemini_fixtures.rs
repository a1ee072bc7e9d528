//! The Gemini adapter against real recorded traffic, offline.
//!
//! Every `:generateContent` / `:streamGenerateContent` interaction in `fixtures/google`
//! (pydantic-ai cassettes, Gemini Developer API and Vertex AI) parses to what
//! `expected.json` says; that file is written by an independent Python oracle
//! (`make_expected.py`) from Google's documented formats. Tool-call ids are Polyroute's own
//! (Gemini sends none), so they are checked separately: well-formed, unique within an
//! answer, identical on a re-parse and for any chunking of a stream.

use crate::common::support;

use polyroute::provider::gemini::GeminiProvider;
use polyroute::provider::{Provider, ProviderConfig, ProviderKind};
use polyroute::ChatResponse;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use support::{cassette, decode, facts, fixtures};

fn provider() -> GeminiProvider {
    GeminiProvider::new(ProviderConfig::new("gemini", ProviderKind::Gemini, "http://127.0.0.1:9").with_api_key("sk-test-not-a-real-key"))
}

/// Ours (`call_` + 16 hex) unless the provider sent one (Vertex sometimes does), then theirs.
fn check_ids(r: &ChatResponse, raw: &str, ctx: &str) {
    let ids: Vec<&str> = r.tool_calls().iter().map(|c| c.id.as_str()).collect();
    for id in &ids {
        let ours = id.len() == 21 && id.starts_with("call_") && id[5..].bytes().all(|b| b.is_ascii_hexdigit());
        let theirs = raw.contains(&format!("\"id\":\"{id}\"")) || raw.contains(&format!("\\\"id\\\": \\\"{id}\\\""));
        assert!(ours || theirs, "{ctx}: id {id}");
    }
    let mut dedup = ids.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), ids.len(), "{ctx}: ids unique");
}

/// The oracle has no ids; compare everything else.
fn without_ids(mut v: Value) -> Value {
    if let Some(calls) = v["tool_calls"].as_array_mut() {
        for c in calls {
            c.as_object_mut().unwrap().remove("id");
        }
    }
    v
}

#[test]
fn every_recorded_generate_interaction_parses_as_the_oracle_says() {
    let p = provider();
    let mut rng = StdRng::seed_from_u64(11);
    let expected: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(fixtures().join("google/expected.json")).unwrap()).unwrap();
    let (mut streams, mut errors, mut with_calls) = (0, 0, 0);
    for case in &expected {
        let file = case["file"].as_str().unwrap();
        let it = &cassette("google", file)[case["interaction"].as_u64().unwrap() as usize];
        let status = case["status"].as_u64().unwrap() as u16;
        let want = &case["expect"];
        let ctx = format!("{file}#{}", case["interaction"]);
        let stream = case["stream"].as_bool().unwrap();
        let result: Result<ChatResponse, polyroute::Error> = if stream {
            streams += 1;
            let body = it["response"]["body"]["string"].as_str().unwrap().as_bytes();
            let d = decode(&p, "m", body, &[]);
            for _ in 0..20 {
                let cuts: Vec<usize> = (0..rng.random_range(1..10)).map(|_| rng.random_range(0..=body.len())).collect();
                assert_eq!(decode(&p, "m", body, &cuts), d, "{ctx} cut at {cuts:?}");
            }
            match d.error {
                Some(e) => Err(e),
                None => Ok(d.fold()),
            }
        } else {
            let body = match it["response"].get("parsed_body") {
                Some(b) => serde_json::to_vec(b).unwrap(),
                None => it["response"]["body"]["string"].as_str().unwrap().as_bytes().to_vec(),
            };
            let r = p.parse_response("m", status, &http::HeaderMap::new(), &body);
            if let Ok(r) = &r {
                assert_eq!(p.parse_response("m", status, &http::HeaderMap::new(), &body).unwrap(), *r, "{ctx}: deterministic ids");
            }
            r
        };
        if let Some(kind) = want.get("error_kind").and_then(Value::as_str) {
            errors += 1;
            assert_eq!(result.unwrap_err().code(), kind, "{ctx}");
            continue;
        }
        let r = result.unwrap_or_else(|e| panic!("{ctx}: {e}"));
        check_ids(&r, &it["response"].to_string(), &ctx);
        if !r.tool_calls().is_empty() {
            with_calls += 1;
        }
        let mut want = want.clone();
        for c in want["tool_calls"].as_array_mut().unwrap() {
            c["arguments"] = serde_json::from_str(c["arguments"].as_str().unwrap()).unwrap();
        }
        assert_eq!(without_ids(facts(&r, true)), want, "{ctx}");
    }
    // 108 recorded interactions, less two dropped on copy (see fixtures/google/README.md).
    assert_eq!(expected.len(), 106);
    assert_eq!((streams, errors), (13, 1));
    assert!(with_calls >= 15, "{with_calls} answers with calls");
}

#[test]
fn thought_signature_is_kept_tagged_for_replay() {
    let p = provider();
    let it = &cassette("google", "test_google_model_retry.yaml")[0];
    let body = serde_json::to_vec(&it["response"]["parsed_body"]).unwrap();
    let r = p.parse_response("m", 200, &http::HeaderMap::new(), &body).unwrap();
    let sig = r.choices[0].message.reasoning_signature.clone().unwrap();
    assert!(sig.starts_with("gemini:CpYEAXLI2nx"), "{sig}");
    // Replaying the answer sends the signature back on the call it came with.
    let mut req = polyroute::ChatRequest::new(vec![polyroute::Message::user("capital of France?"), r.choices[0].message.clone()]);
    req.messages.push(polyroute::Message::tool_result(r.tool_calls()[0].id.clone(), "Paris"));
    let b = p.request_json(&req).unwrap();
    assert_eq!(b["contents"][1]["parts"][0]["thoughtSignature"], Value::String(sig["gemini:".len()..].to_string()));
    assert_eq!(b["contents"][2]["parts"][0]["functionResponse"]["name"], "get_capital");
}
