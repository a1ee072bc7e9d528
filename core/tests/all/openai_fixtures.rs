//! The OpenAI and OpenAI-compatible adapters against real recorded traffic.
//!
//! Owns three proofs, all offline and deterministic:
//! - every recorded OpenAI SSE stream (`fixtures/openai-sse`, from openai-python) decodes
//!   through `SseDecoder` + the OpenAI `StreamDecoder` + `StreamAccumulator` to values
//!   written out by hand below, and decodes identically however the bytes are chunked;
//! - every chat-completions interaction in the VCR cassettes (`fixtures/cassettes-openai`,
//!   from pydantic-ai: OpenAI, Groq, OpenRouter, Mistral and a few other compatible
//!   servers) parses, streamed or not, to the values in `expected.json` (written by an
//!   independent Python oracle, `make_expected.py`, with error kinds listed by hand), and
//!   its request body survives `ChatRequest` unchanged and comes out of `build_request`
//!   as the provider accepted it;
//! - `adapter_bodies_for_openapi_check` writes what `build_request` sends for a varied set
//!   of requests, for `tools/openapi-check` to validate against OpenAI's OpenAPI spec.
//!
//! The decoding loop here mirrors `Endpoint::stream` (stop at the adapter's "done", call
//! `on_end` at EOF) without a transport, because these tests are about parsing; the HTTP
//! path itself is covered in `openai_http.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderName, HeaderValue};
use polyroute::provider::openai::OpenAiProvider;
use polyroute::provider::{Provider, ProviderConfig, ProviderKind};
use polyroute::sse::SseDecoder;
use polyroute::{ChatRequest, ChatResponse, Error, ErrorKind, Message, StreamAccumulator, StreamEvent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn provider(kind: ProviderKind) -> OpenAiProvider {
    // The URL is never dialled here.
    OpenAiProvider::new(ProviderConfig::new("test", kind, "http://127.0.0.1:9/v1").with_api_key("sk-test-not-a-real-key"))
}

/// What a stream decoded to: the unified events in order, then the error that ended it.
#[derive(Debug, PartialEq)]
struct Decoded {
    events: Vec<StreamEvent>,
    error: Option<Error>,
}

impl Decoded {
    fn fold(&self) -> ChatResponse {
        let mut acc = StreamAccumulator::new();
        for ev in &self.events {
            acc.push(ev);
        }
        acc.into_response()
    }
}

/// Decode `bytes` split at `cuts` (sorted offsets), the way `Endpoint` reads a body.
fn decode(p: &OpenAiProvider, bytes: &[u8], cuts: &[usize]) -> Decoded {
    let mut sse = SseDecoder::new();
    let mut dec = p.stream_decoder("requested-model");
    let mut events = Vec::new();
    let mut prev = 0;
    let ends = cuts.iter().copied().chain(std::iter::once(bytes.len()));
    let mut pieces: Vec<&[u8]> = Vec::new();
    for c in ends {
        pieces.push(&bytes[prev..c]);
        prev = c;
    }
    let mut at_eof = false;
    let mut i = 0;
    loop {
        let mut sse_events = Vec::new();
        let fed = if i < pieces.len() {
            sse.feed(pieces[i], &mut sse_events)
        } else {
            at_eof = true;
            sse.finish(&mut sse_events)
        };
        i += 1;
        if let Err(e) = fed {
            return Decoded { events, error: Some(e) };
        }
        for ev in &sse_events {
            if dec.is_done() {
                break;
            }
            if let Err(e) = dec.on_event(ev, &mut events) {
                return Decoded { events, error: Some(e) };
            }
        }
        if dec.is_done() {
            return Decoded { events, error: None };
        }
        if at_eof {
            let error = dec.on_end(&mut events).err();
            return Decoded { events, error };
        }
    }
}

/// Random cut points: a mix of single bytes, short and long pieces, so that line ends,
/// `data:` prefixes, UTF-8 sequences and JSON all get split somewhere.
fn random_cuts(rng: &mut StdRng, len: usize) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut at = 0;
    let max = match rng.random_range(0..3) {
        0 => 4,
        1 => 64,
        _ => 1024,
    };
    loop {
        at += rng.random_range(1..=max);
        if at >= len {
            return cuts;
        }
        cuts.push(at);
    }
}

// ---------------------------------------------------------------------------------------
// openai-python's recorded streams, expected values checked by hand against each file.

struct Expect {
    file: &'static str,
    id: &'static str,
    /// `None`: the folded message has `content: null` (tool calls or refusal only).
    text: Option<&'static str>,
    refusal: Option<&'static str>,
    tool_calls: &'static [(&'static str, &'static str, &'static str)],
    finish: &'static str,
    /// (prompt, completion, cached, reasoning)
    usage: (u64, u64, u64, u64),
}

const SSE: &[Expect] = &[
    // Refusal streamed as `delta.refusal`, content null.
    Expect {
        file: "173417d553406f034f643e5db3f8d591fb691ebac56f5ae39a22cc7d455c5353.sse",
        id: "chatcmpl-ABfw4IfQfCCrcuybFm41wJyxjbkz7",
        text: None,
        refusal: Some("I'm sorry, I can't assist with that request."),
        tool_calls: &[],
        finish: "stop",
        usage: (79, 11, 0, 0),
    },
    // One tool call, arguments in 8 fragments.
    Expect {
        file: "2018feb66ae13fcf5333d61b95849decc68d3f63bd38172889367e1afb1e04f7.sse",
        id: "chatcmpl-ABfwERreu9s99xXsVuOWtIB2UOx62",
        text: None,
        refusal: None,
        tool_calls: &[("call_4XzlGBLtUe9dy3GVNV4jhq7h", "get_weather", "{\"city\":\"New York City\"}")],
        finish: "tool_calls",
        usage: (44, 16, 0, 0),
    },
    // Cut by max_tokens: finish `length` is a complete stream, not an interruption.
    Expect {
        file: "4cc50a6135d254573a502310e6af1246f55edb6ad95fa24059f160996b68866d.sse",
        id: "chatcmpl-ABfw3Oqj8RD0z6aJiiX37oTjV2HFh",
        text: Some("{\""),
        refusal: None,
        tool_calls: &[],
        finish: "length",
        usage: (79, 1, 0, 0),
    },
    // Refusal with per-token logprobs.
    Expect {
        file: "569c877e69429d4cbc1577d2cd6dd33878095c68badc6b6654a69769b391a1c1.sse",
        id: "chatcmpl-ABfw5GEVqPbLY576l46FZDQoNJ2KC",
        text: None,
        refusal: Some("I'm very sorry, but I can't assist with that."),
        tool_calls: &[],
        finish: "stop",
        usage: (79, 12, 0, 0),
    },
    // Structured output (json_schema) streamed as content.
    Expect {
        file: "7e5ea4d12e7cc064399b6631415e65923f182256b6e6b752950a3aaa2ad2320a.sse",
        id: "chatcmpl-ABfw1e5abtU8OwGr15vOreYVb2MiF",
        text: Some("{\"city\":\"San Francisco\",\"temperature\":61,\"units\":\"f\"}"),
        refusal: None,
        tool_calls: &[],
        finish: "stop",
        usage: (79, 14, 0, 0),
    },
    // Content with logprobs.
    Expect {
        file: "83b060bae42eb41c4f1edbb7c1542b954b37d9dfd1910b964ddebc9677e6ae85.sse",
        id: "chatcmpl-ABfw5EzoqmfXjnnsXY7Yd8OC6tb3c",
        text: Some("Foo!"),
        refusal: None,
        tool_calls: &[],
        finish: "stop",
        usage: (9, 2, 0, 0),
    },
    Expect {
        file: "a247c49c5fcd492bfb7a02a3306ad615ed8d8f649888ebfddfbc3ee151f44d46.sse",
        id: "chatcmpl-ABfwCgi41eStOcARjZq97ohCEGBPO",
        text: None,
        refusal: None,
        tool_calls: &[("call_CTf1nWJLqSeRgDqaCG27xZ74", "get_weather", "{\"city\":\"San Francisco\",\"state\":\"CA\"}")],
        finish: "tool_calls",
        usage: (48, 19, 0, 0),
    },
    // n=3: choices 0, 1, 2 interleave; the unified stream carries choice 0 only (65°F;
    // choices 1 and 2 say 61 and 59).
    Expect {
        file: "a491adda08c3d4fde95f5b2ee3f60f7f745f1a56d82e62f58031cc2add502380.sse",
        id: "chatcmpl-ABfw2KKFuVXmEJgVwYfBvejMAdWtq",
        text: Some("{\"city\":\"San Francisco\",\"temperature\":65,\"units\":\"f\"}"),
        refusal: None,
        tool_calls: &[],
        finish: "stop",
        usage: (79, 42, 0, 0),
    },
    // A strict function tool.
    Expect {
        file: "c6aa7e397b7123c3501f25df3a05d4daf7e8ad6d61ffa406ab5361fe36a8d5b1.sse",
        id: "chatcmpl-ABfw8AOXnoa2kzy11vVTSjuQhHCQr",
        text: None,
        refusal: None,
        tool_calls: &[("call_c91SqDXlYFuETYv8mUHzz6pp", "GetWeatherArgs", "{\"city\":\"Edinburgh\",\"country\":\"UK\",\"units\":\"c\"}")],
        finish: "tool_calls",
        usage: (76, 24, 0, 0),
    },
    // 177 tokens of JSON text with newlines and non-ASCII (°).
    Expect {
        file: "d615580118391ee13492193e3a8bb74642d23ac1ca13fe37cb6e889b66f759f6.sse",
        id: "chatcmpl-ABfwCjPMi0ubw56UyMIIeNfJzyogq",
        text: Some("\n  {\n    \"location\": \"San Francisco, CA\",\n    \"weather\": {\n      \"temperature\": \"18°C\",\n      \"condition\": \"Partly Cloudy\",\n      \"humidity\": \"72%\",\n      \"windSpeed\": \"15 km/h\",\n      \"windDirection\": \"NW\"\n    },\n    \"forecast\": [\n      {\n        \"day\": \"Monday\",\n        \"high\": \"20°C\",\n        \"low\": \"14°C\",\n        \"condition\": \"Sunny\"\n      },\n      {\n        \"day\": \"Tuesday\",\n        \"high\": \"19°C\",\n        \"low\": \"15°C\",\n        \"condition\": \"Mostly Cloudy\"\n      },\n      {\n        \"day\": \"Wednesday\",\n        \"high\": \"18°C\",\n        \"low\": \"14°C\",\n        \"condition\": \"Cloudy\"\n      }\n    ]\n  }\n"),
        refusal: None,
        tool_calls: &[],
        finish: "stop",
        usage: (19, 177, 0, 0),
    },
    // Plain text.
    Expect {
        file: "e2aad469b71d1d4894ff833ea147020a9d875eb7ce644a0ff355581690a4cbfd.sse",
        id: "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL",
        text: Some("I'm unable to provide real-time weather updates. To get the current weather in San Francisco, I recommend checking a reliable weather website or a weather app."),
        refusal: None,
        tool_calls: &[],
        finish: "stop",
        usage: (14, 30, 0, 0),
    },
    // Two parallel tool calls, fragments of call 1 start while call 0 is done.
    Expect {
        file: "f82268f2fefd5cfbc7eeb59c297688be2f6ca0849a6e4f17851b517310841d9b.sse",
        id: "chatcmpl-ABfwAwrNePHUgBBezonVC6MX3zd63",
        text: None,
        refusal: None,
        tool_calls: &[
            ("call_JMW1whyEaYG438VE1OIflxA2", "GetWeatherArgs", "{\"city\": \"Edinburgh\", \"country\": \"GB\", \"units\": \"c\"}"),
            ("call_DNYTawLBoN8fj3KN6qU9N1Ou", "get_stock_price", "{\"ticker\": \"AAPL\", \"exchange\": \"NASDAQ\"}"),
        ],
        finish: "tool_calls",
        usage: (149, 60, 0, 0),
    },
];

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_recorded_sse_file_is_listed() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures().join("openai-sse"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".sse"))
        .collect();
    on_disk.sort();
    let listed: Vec<String> = SSE.iter().map(|e| e.file.to_string()).collect();
    assert_eq!(on_disk, listed);
}

#[test]
fn recorded_openai_streams_decode_to_hand_checked_values() {
    let p = provider(ProviderKind::Openai);
    for x in SSE {
        let bytes = read(&fixtures().join("openai-sse").join(x.file));
        let d = decode(&p, &bytes, &[]);
        assert_eq!(d.error, None, "{}", x.file);
        assert!(matches!(d.events.first(), Some(StreamEvent::Start { .. })), "{}: starts with Start", x.file);
        let r = d.fold();
        let m = &r.choices[0].message;
        assert_eq!(r.id, x.id, "{}", x.file);
        assert_eq!(r.model, "gpt-4o-2024-08-06", "{}", x.file);
        assert_eq!(m.content.as_ref().map(|c| c.text()).as_deref(), x.text, "{}", x.file);
        assert_eq!(m.refusal.as_deref(), x.refusal, "{}", x.file);
        let calls: Vec<(&str, &str, &str)> = m.tool_calls.iter().map(|t| (t.id.as_str(), t.name.as_str(), t.arguments.as_str())).collect();
        assert_eq!(calls, x.tool_calls, "{}", x.file);
        assert_eq!(r.finish_reason().map(|f| f.as_str()), Some(x.finish), "{}", x.file);
        assert_eq!(r.choices[0].native_finish_reason.as_deref(), Some(x.finish), "{}", x.file);
        let u = r.usage.unwrap_or_else(|| panic!("{}: usage", x.file));
        assert_eq!((u.input_tokens, u.output_tokens, u.cache_read_tokens, u.reasoning_tokens), x.usage, "{}", x.file);
        // Exactly one finish and one usage event: nothing is double-counted.
        assert_eq!(d.events.iter().filter(|e| matches!(e, StreamEvent::Finish { .. })).count(), 1, "{}", x.file);
        assert_eq!(d.events.iter().filter(|e| matches!(e, StreamEvent::Usage { .. })).count(), 1, "{}", x.file);
    }
}

#[test]
fn recorded_openai_streams_decode_identically_under_10k_random_chunkings() {
    let p = provider(ProviderKind::Openai);
    let mut rng = StdRng::seed_from_u64(0x05EE_D0A1);
    let streams: Vec<(String, Vec<u8>, Decoded)> = SSE
        .iter()
        .map(|x| {
            let bytes = read(&fixtures().join("openai-sse").join(x.file));
            let whole = decode(&p, &bytes, &[]);
            (x.file.to_string(), bytes, whole)
        })
        .collect();
    let per_file = 10_000usize.div_ceil(streams.len());
    let mut total = 0;
    for (file, bytes, whole) in &streams {
        for _ in 0..per_file {
            let cuts = random_cuts(&mut rng, bytes.len());
            let got = decode(&p, bytes, &cuts);
            assert_eq!(&got, whole, "{file} cut at {cuts:?}");
            total += 1;
        }
        // Every split point once, too (every 7th in the 47 kB file, to bound the run time:
        // cost grows with the square of the size).
        let step = if bytes.len() > 16 * 1024 { 7 } else { 1 };
        for c in (1..bytes.len()).step_by(step) {
            assert_eq!(&decode(&p, bytes, &[c]), whole, "{file} cut at {c}");
        }
    }
    assert!(total >= 10_000);
}

#[test]
fn truncated_recorded_streams_are_interrupted_never_complete() {
    // Cut every recorded stream before its finish chunk: the adapter must say
    // stream_interrupted at EOF, never present the partial answer as complete.
    let p = provider(ProviderKind::Openai);
    for x in SSE {
        let bytes = read(&fixtures().join("openai-sse").join(x.file));
        let text = String::from_utf8(bytes).unwrap();
        let cut = text.find("\"finish_reason\":\"").expect("has a finish chunk");
        let cut = text[..cut].rfind("\n\n").unwrap() + 2;
        let d = decode(&p, &text.as_bytes()[..cut], &[]);
        assert_eq!(d.error.as_ref().map(|e| e.kind), Some(ErrorKind::StreamInterrupted), "{}", x.file);
        // And `[DONE]` straight after the cut is no better.
        let done = format!("{}data: [DONE]\n\n", &text[..cut]);
        let d = decode(&p, done.as_bytes(), &[]);
        assert_eq!(d.error.as_ref().map(|e| e.kind), Some(ErrorKind::StreamInterrupted), "{} + [DONE]", x.file);
    }
}

// ---------------------------------------------------------------------------------------
// pydantic-ai's VCR cassettes.

fn yaml_to_json(v: &serde_yaml_ng::Value) -> Value {
    serde_json::to_value(v).expect("cassette JSON parts have string keys")
}

fn load_cassette(rel: &str) -> Vec<serde_yaml_ng::Value> {
    let path = fixtures().join("cassettes-openai").join(rel);
    let text = String::from_utf8(read(&path)).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    doc["interactions"].as_sequence().cloned().unwrap_or_default()
}

struct Recorded {
    kind: ProviderKind,
    request: Value,
    status: u16,
    headers: HeaderMap,
    /// Response body bytes as sent: `parsed_body` re-serialised, or the raw `body.string`.
    body: Vec<u8>,
}

fn recorded(entry: &Value, cassettes: &mut BTreeMap<String, Vec<serde_yaml_ng::Value>>) -> Recorded {
    let file = entry["file"].as_str().unwrap();
    let index = entry["index"].as_u64().unwrap() as usize;
    let it = &cassettes.entry(file.to_string()).or_insert_with(|| load_cassette(file))[index];
    let resp = &it["response"];
    let mut headers = HeaderMap::new();
    if let Some(h) = resp["headers"].as_mapping() {
        for (k, vs) in h {
            for v in vs.as_sequence().into_iter().flatten() {
                if let (Some(k), Some(v)) = (k.as_str(), v.as_str()) {
                    headers.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
                }
            }
        }
    }
    let body = if resp.get("parsed_body").is_some() {
        serde_json::to_vec(&yaml_to_json(&resp["parsed_body"])).unwrap()
    } else {
        resp["body"]["string"].as_str().expect("text body").as_bytes().to_vec()
    };
    Recorded {
        kind: if entry["kind"] == "openai" { ProviderKind::Openai } else { ProviderKind::OpenaiCompatible },
        request: yaml_to_json(&it["request"]["parsed_body"]),
        status: resp["status"]["code"].as_u64().unwrap() as u16,
        headers,
        body,
    }
}

fn expected_entries() -> Vec<Value> {
    let text = read(&fixtures().join("cassettes-openai/expected.json"));
    serde_json::from_slice::<Value>(&text).unwrap().as_array().unwrap().clone()
}

/// Outcome of one interaction through the adapter, streamed or not.
fn run(p: &OpenAiProvider, rec: &Recorded, stream: bool) -> Result<ChatResponse, Error> {
    let model = rec.request["model"].as_str().unwrap_or("model");
    if !(200..300).contains(&rec.status) {
        return Err(p.parse_error(model, rec.status, &rec.headers, &rec.body));
    }
    if stream {
        let d = decode(p, &rec.body, &[]);
        match d.error {
            Some(e) => Err(e),
            None => Ok(d.fold()),
        }
    } else {
        p.parse_response(model, rec.status, &rec.headers, &rec.body)
    }
}

fn compare(r: &ChatResponse, x: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let mut check = |what: &str, got: Value, want: &Value| {
        if &got != want {
            bad.push(format!("{what}: got {got}, want {want}"));
        }
    };
    let m: &Message = &r.choices[0].message;
    check("id", json!(r.id), &x["id"]);
    check("model", json!(r.model), &x["model"]);
    check("text", json!(m.content.as_ref().map(|c| c.text())), &x["text"]);
    check("refusal", json!(m.refusal), &x["refusal"]);
    check("reasoning", json!(m.reasoning_content), &x["reasoning"]);
    let calls: Vec<Value> = m.tool_calls.iter().map(|t| json!({"id": t.id, "name": t.name, "arguments": t.arguments})).collect();
    check("tool_calls", json!(calls), &x["tool_calls"]);
    check("finish", json!(r.choices[0].finish_reason.map(|f| f.as_str())), &x["finish"]);
    check("native_finish", json!(r.choices[0].native_finish_reason), &x["native_finish"]);
    let usage = r.usage.map(|u| {
        json!({"input_tokens": u.input_tokens, "output_tokens": u.output_tokens, "cache_read_tokens": u.cache_read_tokens,
               "cache_write_tokens": u.cache_write_tokens, "reasoning_tokens": u.reasoning_tokens})
    });
    check("usage", json!(usage), &x["usage"]);
    bad
}

#[test]
fn cassettes_parse_to_expected_unified_values() {
    let mut cassettes = BTreeMap::new();
    let entries = expected_entries();
    assert!(entries.len() >= 120, "expected.json lists every chat interaction");
    let mut failures = Vec::new();
    let (mut oks, mut errs, mut streams) = (0, 0, 0);
    for x in &entries {
        let rec = recorded(x, &mut cassettes);
        let p = provider(rec.kind);
        let stream = x["stream"].as_bool().unwrap();
        streams += stream as usize;
        let name = format!("{}#{}", x["file"].as_str().unwrap(), x["index"]);
        match (run(&p, &rec, stream), x.get("error")) {
            (Ok(r), None) => {
                oks += 1;
                for b in compare(&r, &x["ok"]) {
                    failures.push(format!("{name}: {b}"));
                }
            }
            (Err(e), Some(want)) => {
                errs += 1;
                let got = json!({"kind": e.kind.code(), "status": e.status, "provider_code": e.provider_code});
                if &got != want {
                    failures.push(format!("{name}: error {got}, want {want} ({e})"));
                }
            }
            (Ok(_), Some(want)) => failures.push(format!("{name}: parsed, but should fail with {want}")),
            (Err(e), None) => failures.push(format!("{name}: failed: {e}")),
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    assert!(oks > 100 && errs >= 14 && streams >= 17, "{oks} ok, {errs} errors, {streams} streams");
}

#[test]
fn cassette_streams_decode_identically_under_random_chunkings() {
    let mut cassettes = BTreeMap::new();
    let mut rng = StdRng::seed_from_u64(0xCA55E77E);
    for x in expected_entries().iter().filter(|x| x["stream"] == true) {
        let rec = recorded(x, &mut cassettes);
        let p = provider(rec.kind);
        let whole = decode(&p, &rec.body, &[]);
        for _ in 0..60 {
            let cuts = random_cuts(&mut rng, rec.body.len());
            assert_eq!(decode(&p, &rec.body, &cuts), whole, "{}#{} cut at {cuts:?}", x["file"], x["index"]);
        }
    }
}

/// JSON equality with JSON's own number semantics: `1` and `1.0` are the same number.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w))),
        _ => a == b,
    }
}

/// Recorded request bodies this contract deliberately refuses, with the reason: OpenRouter's
/// server-side tools have no meaning for any other provider a route could fail over to, so
/// `ChatRequest` accepts `function` tools only. Each must be refused with a clear message.
const NOT_ROUTABLE: &[(&str, &str)] = &[
    ("openrouter/test_openrouter_advisor_tool.yaml", "openrouter:advisor"),
    ("openrouter/test_openrouter_advisor_tool_stream.yaml", "openrouter:advisor"),
    ("openrouter/test_openrouter_web_search_annotations.yaml", "openrouter:web_search"),
    ("openrouter/test_openrouter_web_search_annotations_stream.yaml", "openrouter:web_search"),
    ("openrouter/test_openrouter_web_search_tool_full_params.yaml", "openrouter:web_search"),
    ("openrouter/test_openrouter_web_search_tool_usage.yaml", "openrouter:web_search"),
    ("openrouter/test_openrouter_web_search_tool_usage_stream.yaml", "openrouter:web_search"),
];

/// The documented normalisations of the request contract, applied to a recorded body so the
/// rest can be compared exactly. Each is a spelling of "nothing" or a known gap:
/// - an assistant message without `content` gets `content: null` (one `Option` cannot keep
///   both spellings, and responses must carry the explicit null OpenAI clients read);
/// - `null` for a modelled optional field, and `tool_calls: []`, are omitted;
/// - unknown keys on a tool object (OpenRouter's `eager_input_streaming`) are dropped:
///   `Tool` has no place for them yet.
fn normalise_request(v: &Value) -> Value {
    let mut v = v.clone();
    let o = v.as_object_mut().unwrap();
    for k in [
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "stream",
        "model",
    ] {
        if o.get(k) == Some(&Value::Null) {
            o.remove(k);
        }
    }
    for m in o.get_mut("messages").and_then(Value::as_array_mut).into_iter().flatten() {
        let m = m.as_object_mut().unwrap();
        if m.get("tool_calls") == Some(&json!([])) {
            m.remove("tool_calls");
        }
        if m.get("role") == Some(&json!("assistant")) && !m.contains_key("content") {
            m.insert("content".into(), Value::Null);
        }
    }
    for t in o.get_mut("tools").and_then(Value::as_array_mut).into_iter().flatten() {
        t.as_object_mut().unwrap().retain(|k, _| k == "type" || k == "function");
    }
    v
}

#[test]
fn recorded_request_bodies_round_trip_and_build_as_sent() {
    let mut cassettes = BTreeMap::new();
    let mut failures = Vec::new();
    let mut checked = 0;
    for x in &expected_entries() {
        let rec = recorded(x, &mut cassettes);
        let name = format!("{}#{}", x["file"].as_str().unwrap(), x["index"]);
        let refused = NOT_ROUTABLE.iter().find(|(f, _)| name.starts_with(&format!("{f}#")));
        let req = match (ChatRequest::from_openai_json(rec.request.clone()), refused) {
            (Ok(r), None) => r,
            (Err(e), None) => {
                failures.push(format!("{name}: rejected: {e}"));
                continue;
            }
            (Err(e), Some((_, tool))) => {
                if e.kind != ErrorKind::InvalidRequest || !e.message.contains(tool) {
                    failures.push(format!("{name}: refused, but unclearly: {e}"));
                }
                continue;
            }
            (Ok(_), Some(_)) => {
                failures.push(format!("{name}: accepted a server-side tool"));
                continue;
            }
        };
        checked += 1;
        let original = normalise_request(&rec.request);
        let back = req.to_openai_json();
        if !same_json(&back, &original) {
            failures.push(format!("{name}: round trip changed the body:\n  in:  {original}\n  out: {back}"));
        }
        // What the adapter sends is what the provider accepted, up to the documented
        // rewrites: `stream` only when streaming (with usage requested), and the token cap
        // under the name each adapter family uses.
        let stream = rec.request["stream"] == true;
        let p = provider(rec.kind);
        let wire = p.build_request(rec.request["model"].as_str().unwrap(), &req, stream).unwrap();
        let sent: Value = serde_json::from_slice(&wire.body).unwrap();
        let mut want = original;
        let o = want.as_object_mut().unwrap();
        if !stream {
            o.remove("stream");
            o.remove("stream_options");
        } else {
            o.insert("stream_options".into(), json!({"include_usage": true}));
        }
        let (from, to) =
            if rec.kind == ProviderKind::Openai { ("max_tokens", "max_completion_tokens") } else { ("max_completion_tokens", "max_tokens") };
        if let Some(v) = o.remove(from) {
            o.insert(to.into(), v);
        }
        if !same_json(&sent, &want) {
            failures.push(format!("{name}: build_request sent\n  {sent}\n  want {want}"));
        }
        assert_eq!(wire.url, "http://127.0.0.1:9/v1/chat/completions");
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 100, "{checked}");
}

#[test]
fn compat_stream_with_tool_calls_and_stop_finishes_as_tool_calls() {
    // Same rule as the non-streamed path: a compatible server that says `stop` after
    // streaming tool calls has asked for tool calls. OpenAI itself is taken at its word.
    let body = concat!(
        "data: {\"id\":\"c1\",\"model\":\"llama\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"t1\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"llama\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    );
    let compat = decode(&provider(ProviderKind::OpenaiCompatible), body.as_bytes(), &[]);
    assert_eq!(compat.error, None);
    let r = compat.fold();
    assert_eq!(r.finish_reason(), Some(polyroute::FinishReason::ToolCalls));
    assert_eq!(r.choices[0].native_finish_reason.as_deref(), Some("stop"));
    let openai = decode(&provider(ProviderKind::Openai), body.as_bytes(), &[]).fold();
    assert_eq!(openai.finish_reason(), Some(polyroute::FinishReason::Stop));
}

#[test]
fn in_band_stream_errors_keep_the_status_they_stand_for() {
    let p = provider(ProviderKind::OpenaiCompatible);
    let start = "data: {\"id\":\"c1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
    let cases = [
        // Groq: string code, status in `status_code`.
        ("event: error\ndata: {\"error\":{\"message\":\"bad\",\"type\":\"invalid_request_error\",\"code\":\"tool_use_failed\",\"status_code\":400}}\n\n", ErrorKind::InvalidRequest, Some(400)),
        // OpenRouter: numeric code.
        ("data: {\"error\":{\"code\":429,\"message\":\"slow\"}}\n\n", ErrorKind::RateLimited, Some(429)),
        ("data: {\"error\":{\"code\":502,\"message\":\"upstream\"}}\n\n", ErrorKind::ServerError, Some(502)),
        // A known code and no status: classified by code, no invented status.
        ("data: {\"error\":{\"code\":\"context_length_exceeded\",\"message\":\"long\"}}\n\n", ErrorKind::ContextLengthExceeded, None),
        ("data: {\"error\":{\"type\":\"server_overloaded\",\"message\":\"busy\"}}\n\n", ErrorKind::Overloaded, None),
        // Nothing to go on: a server error, still with no invented status.
        ("event: error\ndata: something broke\n\n", ErrorKind::ServerError, None),
    ];
    for (tail, kind, status) in cases {
        let d = decode(&p, format!("{start}{tail}").as_bytes(), &[]);
        let e = d.error.clone().unwrap_or_else(|| panic!("{tail}: no error"));
        assert_eq!((e.kind, e.status), (kind, status), "{tail}: {e}");
        assert!(d.fold().content().starts_with("Hi"), "content before the error is kept");
    }
}

#[test]
fn malformed_stream_chunks_are_typed() {
    let p = provider(ProviderKind::Openai);
    for bad in [
        "data: {not json\n\n",
        "data: [1,2]\n\n",
        "data: {\"choices\": 5}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":\"x\"}}]}\n\n",
    ] {
        let d = decode(&p, bad.as_bytes(), &[]);
        assert_eq!(d.error.as_ref().map(|e| e.kind), Some(ErrorKind::MalformedResponse), "{bad}");
    }
}

// ---------------------------------------------------------------------------------------
// Bodies for tools/openapi-check.

/// A varied set of requests, as (name, adapter kind, stream, OpenAI-shaped body).
fn openapi_cases() -> Vec<(&'static str, ProviderKind, bool, Value)> {
    let user = json!({"role": "user", "content": "What is the weather in Paris?"});
    let weather = json!({"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city", "strict": true,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}}});
    let png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    vec![
        ("plain", ProviderKind::Openai, false, json!({"messages": [user]})),
        ("plain-stream", ProviderKind::Openai, true, json!({"messages": [user]})),
        (
            "system-and-developer",
            ProviderKind::Openai,
            false,
            json!({"messages": [
            {"role": "system", "content": "Be brief."}, {"role": "developer", "content": "Use metric units."}, user]}),
        ),
        (
            "tools-named-choice",
            ProviderKind::Openai,
            false,
            json!({"messages": [user], "tools": [weather, {"type": "function", "function": {"name": "no_params"}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "parallel_tool_calls": false}),
        ),
        ("tools-auto-stream", ProviderKind::Openai, true, json!({"messages": [user], "tools": [weather], "tool_choice": "auto"})),
        ("tools-none", ProviderKind::Openai, false, json!({"messages": [user], "tools": [weather], "tool_choice": "none"})),
        ("tools-required", ProviderKind::Openai, false, json!({"messages": [user], "tools": [weather], "tool_choice": "required"})),
        (
            "tool-results",
            ProviderKind::Openai,
            false,
            json!({"messages": [user,
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}],
             "reasoning_content": "stripped before sending"},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "(array form)"}]}], "tools": [weather]}),
        ),
        (
            "images",
            ProviderKind::Openai,
            false,
            json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "Compare these"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            {"type": "image_url", "image_url": {"url": png, "detail": "low"}}]}]}),
        ),
        (
            "json-schema-strict",
            ProviderKind::Openai,
            false,
            json!({"messages": [user], "response_format": {"type": "json_schema", "json_schema": {
            "name": "weather", "description": "A weather report", "strict": true,
            "schema": {"type": "object", "properties": {"temp": {"type": "number"}}, "required": ["temp"], "additionalProperties": false}}}}),
        ),
        ("json-object", ProviderKind::Openai, false, json!({"messages": [user], "response_format": {"type": "json_object"}})),
        ("text-format", ProviderKind::Openai, true, json!({"messages": [user], "response_format": {"type": "text"}})),
        (
            "sampling-stop-string",
            ProviderKind::Openai,
            false,
            json!({"messages": [user], "temperature": 0.2, "top_p": 0.9, "stop": "END", "seed": 7, "max_tokens": 64}),
        ),
        ("stop-array-stream", ProviderKind::Openai, true, json!({"messages": [user], "stop": ["END", "\n\n"], "max_completion_tokens": 128})),
        (
            "extra-fields",
            ProviderKind::Openai,
            false,
            json!({"messages": [user], "n": 2, "logprobs": true, "top_logprobs": 2, "user": "u-1",
            "presence_penalty": 0.5, "frequency_penalty": 0.1, "metadata": {"run": "r-1"}, "polyroute": {"tenant": "acme", "route": "chat"}}),
        ),
        ("compat-plain", ProviderKind::OpenaiCompatible, false, json!({"messages": [user], "max_completion_tokens": 32})),
        ("compat-tools-stream", ProviderKind::OpenaiCompatible, true, json!({"messages": [user], "tools": [weather], "tool_choice": "auto"})),
    ]
}

/// Builds every body `OpenAiProvider::build_request` sends for `openapi_cases` and checks
/// the adapter's own rules; with `POLYROUTE_OPENAPI_BODIES=<dir>` it also writes them there
/// as `<name>.json` (that is how `tools/openapi-check/run.sh` gets them), together with the
/// recorded OpenAI request bodies as rebuilt by the adapter.
#[test]
fn adapter_bodies_for_openapi_check() {
    let out = std::env::var_os("POLYROUTE_OPENAPI_BODIES").map(PathBuf::from);
    let mut bodies: Vec<(String, Value)> = Vec::new();
    for (name, kind, stream, body) in openapi_cases() {
        let req = ChatRequest::from_openai_json(body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let wire = provider(kind).build_request("gpt-4o-mini", &req, stream).unwrap();
        let sent: Value = serde_json::from_slice(&wire.body).unwrap();
        assert_eq!(sent["model"], "gpt-4o-mini", "{name}");
        assert!(sent.get("polyroute").is_none(), "{name}: routing metadata never leaves");
        if name == "extra-fields" {
            assert_eq!(sent["metadata"], json!({"run": "r-1"}), "OpenAI's own metadata is forwarded");
        }
        assert_eq!(sent["stream"] == true, stream, "{name}");
        assert_eq!(sent["stream_options"]["include_usage"] == true, stream, "{name}");
        let no_reasoning = sent["messages"].as_array().unwrap().iter().all(|m| m.get("reasoning_content").is_none());
        assert!(no_reasoning, "{name}: reasoning is ours to keep");
        match kind {
            ProviderKind::Openai => assert!(sent.get("max_tokens").is_none(), "{name}: OpenAI gets max_completion_tokens"),
            _ => assert!(sent.get("max_completion_tokens").is_none(), "{name}: compatible servers get max_tokens"),
        }
        bodies.push((name.to_string(), sent));
    }
    // Real bodies OpenAI accepted, rebuilt by the adapter: they must validate too.
    let mut cassettes = BTreeMap::new();
    for x in expected_entries().iter().filter(|x| x["kind"] == "openai") {
        let rec = recorded(x, &mut cassettes);
        let req = ChatRequest::from_openai_json(rec.request.clone()).unwrap();
        let stream = rec.request["stream"] == true;
        let wire = provider(rec.kind).build_request(rec.request["model"].as_str().unwrap(), &req, stream).unwrap();
        let stem = x["file"].as_str().unwrap().trim_start_matches("openai/").trim_end_matches(".yaml");
        let name: String =
            format!("recorded-{stem}-{}", x["index"]).chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        bodies.push((name, serde_json::from_slice(&wire.body).unwrap()));
    }
    assert!(bodies.len() >= 50, "{}", bodies.len());
    if let Some(dir) = out {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, body) in &bodies {
            std::fs::write(dir.join(format!("{name}.json")), serde_json::to_vec_pretty(body).unwrap()).unwrap();
        }
    }
}

#[test]
fn non_json_chunk_error_quotes_a_char_safe_snippet() {
    // 119 ASCII bytes then a 4-byte character across the 120-byte cut: must not panic.
    let data = format!("data: {}\u{1F600}{}\n\n", "x".repeat(119), "y".repeat(50));
    let d = decode(&provider(ProviderKind::Openai), data.as_bytes(), &[]);
    let e = d.error.expect("not JSON");
    assert_eq!(e.kind, ErrorKind::MalformedResponse);
    assert!(e.message.ends_with(&"x".repeat(119)), "{}", e.message);
}
