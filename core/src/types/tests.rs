//! Unit tests for the unified types: the OpenAI shape must survive a round trip unchanged,
//! and anything malformed must become a typed `invalid_request` error, never a panic.
//!
//! Round trips compare `serde_json::Value`s, not bytes: key order is not part of JSON, and
//! serde_json's `Value` equality is order-independent for objects. Every input here uses
//! float literals where the type is a float, so no number changes representation.
//! Request bodies recorded from real traffic are round-tripped in `tests/all/openai_fixtures.rs`.

use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

use super::*;
use crate::error::ErrorKind;

/// Parse an OpenAI request body and serialise it back; the result must equal the input.
fn request_roundtrip(body: Value) -> ChatRequest {
    let req = ChatRequest::from_openai_json(body.clone()).unwrap_or_else(|e| panic!("rejected {body}: {e}"));
    assert_eq!(req.to_openai_json(), body, "request changed on the way through");
    // A second trip must be a fixed point too (serialisation is deterministic).
    let again = ChatRequest::from_openai_json(req.to_openai_json()).expect("re-parse");
    assert_eq!(again, req);
    req
}

fn response_roundtrip(body: Value) -> ChatResponse {
    let r = ChatResponse::from_openai_json(body.clone()).unwrap_or_else(|e| panic!("rejected {body}: {e}"));
    assert_eq!(r.to_openai_json(), body, "response changed on the way through");
    r
}

fn rejected(body: Value) -> crate::Error {
    match ChatRequest::from_openai_json(body.clone()) {
        Ok(r) => panic!("accepted malformed request {body}: {r:?}"),
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::InvalidRequest, "{body} -> {e}");
            e
        }
    }
}

#[test]
fn plain_string_content() {
    let req = request_roundtrip(json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello", "name": "alice"}
        ]
    }));
    assert_eq!(req.messages[1].content, Some(Content::Text("Hello".into())));
    assert_eq!(req.messages[1].name.as_deref(), Some("alice"));
    assert_eq!(req.model.as_deref(), Some("gpt-4o-mini"));
}

#[test]
fn multipart_text_and_images_by_url_and_data_url() {
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let req = request_roundtrip(json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in these images?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}"), "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/dog.jpg", "detail": "high"}}
        ]}]
    }));
    let parts = match &req.messages[0].content {
        Some(Content::Parts(p)) => p.clone(),
        other => panic!("expected parts, got {other:?}"),
    };
    assert_eq!(parts[0], ContentPart::text("What is in these images?"));
    assert_eq!(parts[1], ContentPart::Image { source: ImageSource::Url("https://example.com/cat.jpg".into()), detail: None });
    // The data: URL is understood (media type kept for Anthropic/Gemini) and rebuilt exactly.
    assert_eq!(
        parts[2],
        ContentPart::Image { source: ImageSource::Base64 { media_type: "image/png".into(), data: png.into() }, detail: Some("low".into()) }
    );
    assert!(req.uses_vision());
    assert_eq!(req.messages[0].text(), "What is in these images?");
}

#[test]
fn audio_file_and_unknown_parts_are_kept_verbatim() {
    let req = request_roundtrip(json!({
        "model": "gpt-4o-audio-preview",
        "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
            {"type": "file", "file": {"file_id": "file-abc123"}},
            {"type": "text", "text": "cached", "cache_control": {"type": "ephemeral"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "auto", "x": 1}},
            {"type": "image_url", "image_url": "https://example.com/bare-string.png"},
            {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}}
        ]}]
    }));
    let Some(Content::Parts(parts)) = &req.messages[0].content else { panic!("parts") };
    // Each of these carries something the typed variants cannot hold, so each is `Other`.
    assert!(parts.iter().all(|p| matches!(p, ContentPart::Other(_))), "{parts:?}");
    assert_eq!(req.messages[0].text(), "", "text of an Other part is not guessed");
}

#[test]
fn tools_tool_choice_and_parallel_tool_calls() {
    let tools = json!([
        {"type": "function", "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false},
            "strict": true
        }},
        {"type": "function", "function": {"name": "no_params"}},
        {"type": "function", "function": {"name": "loose", "parameters": {"type": "object"}, "strict": false}}
    ]);
    for choice in [json!("auto"), json!("none"), json!("required"), json!({"type": "function", "function": {"name": "get_weather"}})] {
        let req = request_roundtrip(json!({
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "weather in Paris?"}],
            "tools": tools,
            "tool_choice": choice,
            "parallel_tool_calls": false
        }));
        assert_eq!(req.tools.len(), 3);
        assert_eq!(req.tools[0].strict, Some(true));
        assert_eq!(req.tools[1].parameters, Value::Null);
        assert_eq!(req.parallel_tool_calls, Some(false));
    }
    let req = ChatRequest::from_openai_json(json!({
        "messages": [{"role": "user", "content": "x"}], "tools": tools,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
    }))
    .unwrap();
    assert_eq!(req.tool_choice, Some(ToolChoice::Named("get_weather".into())));
    assert!(req.uses_tools());
}

#[test]
fn response_formats() {
    for rf in [
        json!({"type": "text"}),
        json!({"type": "json_object"}),
        json!({"type": "json_schema", "json_schema": {
            "name": "city", "description": "A city", "strict": true,
            "schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"], "additionalProperties": false}
        }}),
        json!({"type": "json_schema", "json_schema": {"name": "loose", "schema": {"type": "object"}}}),
    ] {
        let req = request_roundtrip(json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "response_format": rf}));
        assert_eq!(req.uses_json_schema(), rf["type"] == "json_schema");
    }
}

#[test]
fn sampling_fields_stop_seed_and_token_caps() {
    let req = request_roundtrip(json!({
        "model": "gpt-4o", "messages": [{"role": "user", "content": "x"}],
        "temperature": 0.7, "top_p": 0.9, "stop": "END", "seed": 42, "max_tokens": 100
    }));
    assert_eq!(req.stop, Some(Stop::One("END".into())));
    assert_eq!(req.stop_sequences(), vec!["END".to_string()]);
    assert_eq!(req.max_output_tokens(), Some(100));
    let req = request_roundtrip(json!({
        "model": "o3-mini", "messages": [{"role": "user", "content": "x"}],
        "stop": ["\n\n", "END"], "seed": -7, "max_completion_tokens": 2048
    }));
    assert_eq!(req.stop_sequences(), vec!["\n\n".to_string(), "END".to_string()]);
    assert_eq!(req.max_tokens, None, "the caller's field is kept, not renamed");
    assert_eq!(req.max_output_tokens(), Some(2048));
    let both = request_roundtrip(json!({
        "messages": [{"role": "user", "content": "x"}], "max_tokens": 10, "max_completion_tokens": 20
    }));
    assert_eq!(both.max_output_tokens(), Some(20), "max_completion_tokens wins");
}

#[test]
fn unknown_top_level_fields_ride_along() {
    let req = request_roundtrip(json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "x"}],
        "n": 2, "logprobs": true, "top_logprobs": 3, "user": "user-1234",
        "presence_penalty": 0.5, "frequency_penalty": -0.5, "logit_bias": {"50256": -100},
        "stream": true, "stream_options": {"include_usage": true},
        "reasoning_effort": "low", "service_tier": "flex", "store": false,
        "prediction": {"type": "content", "content": "draft"}
    }));
    assert_eq!(req.extra["n"], json!(2));
    assert_eq!(req.extra["user"], json!("user-1234"));
    assert_eq!(req.stream, Some(true));
}

#[test]
fn conversation_with_tool_calls_tool_results_and_developer_role() {
    let req = request_roundtrip(json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "developer", "content": "Answer with tools."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
            {"role": "assistant", "content": "Paris 18C, Rome 21C.", "refusal": "none needed"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_3", "type": "function", "function": {"name": "noop", "arguments": ""}}
            ]}
        ]
    }));
    assert_eq!(req.messages[0].role, Role::Developer);
    let asst = &req.messages[2];
    assert_eq!(asst.content, None);
    assert_eq!(asst.tool_calls[1], ToolCall { id: "call_2".into(), name: "get_weather".into(), arguments: "{\"city\":\"Rome\"}".into() });
    assert_eq!(req.messages[3].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(req.messages[4].text(), "21C");
    assert_eq!(req.messages[6].tool_calls[0].arguments, "", "empty arguments stay empty");
    assert!(req.uses_tools());
}

#[test]
fn unknown_message_fields_are_kept() {
    // Mistral's `prefix`, OpenRouter's `reasoning_details`, audio replies: not ours to drop.
    request_roundtrip(json!({
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": "y", "prefix": true, "audio": {"id": "audio_1"}, "reasoning_details": [{"type": "reasoning.text", "text": "t"}]}
        ]
    }));
}

#[test]
fn routing_metadata_is_read_and_kept() {
    let req = request_roundtrip(json!({
        "messages": [{"role": "user", "content": "x"}],
        "polyroute": {"route": "chat", "tenant": "acme", "feature": "search", "tier": "pro", "tags": ["a"], "data_class": "pii", "trace_id": "t-1"}
    }));
    assert_eq!(req.routing.tenant.as_deref(), Some("acme"));
    assert_eq!(req.routing.extra["trace_id"], json!("t-1"));
}

fn full_response() -> Value {
    json!({
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1_727_346_172,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_5050236cbd",
        "service_tier": "default",
        "choices": [
            {"index": 0, "finish_reason": "tool_calls", "logprobs": null, "message": {
                "role": "assistant", "content": null, "annotations": [],
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]
            }},
            {"index": 1, "finish_reason": "stop", "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."},
             "logprobs": {"content": null, "refusal": [{"token": "I", "logprob": -0.25, "bytes": [73], "top_logprobs": []}]}},
            {"index": 2, "finish_reason": "length", "logprobs": null, "message": {"role": "assistant", "content": "Once upon a"}},
            {"index": 3, "finish_reason": "content_filter", "logprobs": null, "message": {"role": "assistant", "content": ""}},
            {"index": 4, "finish_reason": "function_call", "logprobs": null, "message": {"role": "assistant", "content": "legacy"}},
            {"index": 5, "finish_reason": null, "logprobs": null, "message": {"role": "assistant", "content": "unfinished"}}
        ],
        "usage": {
            "prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 1024},
            "completion_tokens_details": {"reasoning_tokens": 256}
        }
    })
}

#[test]
fn response_roundtrip_keeps_everything_openai_sends() {
    let r = response_roundtrip(full_response());
    assert_eq!(r.tool_calls()[0].name, "get_weather");
    assert_eq!(r.finish_reason(), Some(FinishReason::ToolCalls));
    let fr: Vec<_> = r.choices.iter().map(|c| c.finish_reason).collect();
    assert_eq!(
        fr,
        [
            Some(FinishReason::ToolCalls),
            Some(FinishReason::Stop),
            Some(FinishReason::Length),
            Some(FinishReason::ContentFilter),
            Some(FinishReason::ToolCalls),
            None
        ]
    );
    assert_eq!(r.choices[1].message.refusal.as_deref(), Some("I can't help with that."));
    assert!(r.choices[1].logprobs.is_some());
    let u = r.usage.unwrap();
    assert_eq!((u.input_tokens, u.output_tokens, u.cache_read_tokens, u.reasoning_tokens), (1200, 300, 1024, 256));
    assert_eq!(u.uncached_input_tokens(), 176);
    assert_eq!(r.extra["system_fingerprint"], json!("fp_5050236cbd"));
    assert_eq!(r.content(), "");
    assert_eq!(r.choices[2].message.text(), "Once upon a");
}

#[test]
fn response_normalisations_are_the_documented_ones() {
    // Usage: ONE meaning across providers, so fields outside the unified breakdown (audio,
    // prediction tokens) and zero breakdowns are not echoed, and total is recomputed.
    let r = ChatResponse::from_openai_json(json!({
        "id": "x", "model": "m", "choices": [],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}
    }))
    .unwrap();
    assert_eq!(r.to_openai_json()["usage"], json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}));
    // A non-OpenAI finish reason is reported in OpenAI's vocabulary, the native one kept aside.
    let r = ChatResponse::from_openai_json(json!({
        "id": "x", "model": "m",
        "choices": [{"index": 0, "finish_reason": "end_turn", "message": {"role": "assistant", "content": "hi"}}]
    }))
    .unwrap();
    assert_eq!(r.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(r.choices[0].native_finish_reason.as_deref(), Some("end_turn"));
    assert_eq!(r.to_openai_json()["choices"][0]["finish_reason"], json!("stop"));
}

#[test]
fn malformed_response_is_typed() {
    for bad in [json!(null), json!([]), json!({"id": "x"}), json!({"id": "x", "model": "m", "choices": [{"index": 0}]})] {
        let e = ChatResponse::from_openai_json(bad.clone()).expect_err("must reject");
        assert_eq!(e.kind, ErrorKind::MalformedResponse, "{bad}");
    }
}

#[test]
fn malformed_requests_are_typed_with_clear_messages() {
    let user = json!({"role": "user", "content": "hi"});
    let cases: Vec<(Value, &str)> = vec![
        (json!({"model": "gpt-4o"}), "messages"),
        (json!({"messages": []}), "must not be empty"),
        (json!({"messages": "hi"}), "messages"),
        (json!([user]), "invalid chat request"),
        (json!("hello"), "invalid chat request"),
        (json!(null), "invalid chat request"),
        (json!({"messages": [{"content": "hi"}]}), "role"),
        (json!({"messages": [{"role": "robot", "content": "hi"}]}), "robot"),
        (json!({"messages": [{"role": "user"}]}), "content"),
        (json!({"messages": [{"role": "user", "content": 42}]}), "content"),
        (json!({"messages": [{"role": "user", "content": [{"text": "no type"}]}]}), "type"),
        (json!({"messages": [{"role": "user", "content": [{"type": "text"}]}]}), "text"),
        (json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"detail": "low"}}]}]}), "url"),
        (json!({"messages": [{"role": "tool", "content": "18C"}]}), "tool_call_id"),
        (
            json!({"messages": [user, {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"arguments": "{}"}}]}]}),
            "function.name",
        ),
        (json!({"messages": [user], "tools": [{"type": "function", "function": {"description": "nameless"}}]}), "function.name"),
        (json!({"messages": [user], "tools": [{"type": "function"}]}), "function"),
        (json!({"messages": [user], "tools": [{"type": "retrieval"}]}), "retrieval"),
        (json!({"messages": [user], "tool_choice": "sometimes"}), "sometimes"),
        (json!({"messages": [user], "tool_choice": {"type": "function", "function": {"name": "ghost"}}}), "ghost"),
        (json!({"messages": [user], "tool_choice": 3}), "tool_choice"),
        (json!({"messages": [user], "response_format": {"type": "xml"}}), "xml"),
        (json!({"messages": [user], "response_format": {}}), "type"),
        (json!({"messages": [user], "temperature": "hot"}), "temperature"),
        (json!({"messages": [user], "temperature": 3.5}), "temperature"),
        (json!({"messages": [user], "top_p": 1.5}), "top_p"),
        (json!({"messages": [user], "max_tokens": 0}), "max_tokens"),
        (json!({"messages": [user], "max_tokens": -1}), "max_tokens"),
        (json!({"messages": [user], "max_completion_tokens": 1e12}), "max_completion_tokens"),
        (json!({"messages": [user], "stop": 5}), "stop"),
        (json!({"messages": [user], "seed": "lucky"}), "seed"),
        (json!({"messages": [user], "parallel_tool_calls": "yes"}), "parallel_tool_calls"),
        (json!({"messages": [user], "stream": "yes"}), "stream"),
        (json!({"messages": [user], "model": 4}), "model"),
    ];
    let mut unclear = Vec::new();
    for (body, needle) in cases {
        let e = rejected(body.clone());
        if !e.message.contains(needle) {
            unclear.push(format!("{body}\n    should mention `{needle}`: {}", e.message));
        }
    }
    assert!(unclear.is_empty(), "unclear messages:\n{}", unclear.join("\n"));
}

/// Random JSON built from request-ish keys and values: parsing must return, never panic,
/// and anything it rejects is `invalid_request`.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![
            "user",
            "assistant",
            "tool",
            "system",
            "developer",
            "text",
            "image_url",
            "function",
            "auto",
            "required",
            "json_schema",
            "data:image/png;base64,AAAA",
            "data:",
            "",
            "\u{0}",
            "💥",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop::sample::select(vec![
            "messages",
            "role",
            "content",
            "type",
            "text",
            "image_url",
            "url",
            "detail",
            "tools",
            "function",
            "name",
            "parameters",
            "strict",
            "tool_choice",
            "tool_calls",
            "tool_call_id",
            "id",
            "arguments",
            "response_format",
            "json_schema",
            "schema",
            "stop",
            "temperature",
            "top_p",
            "max_tokens",
            "max_completion_tokens",
            "seed",
            "metadata",
            "polyroute",
            "tags",
            "n",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..6).prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]
    #[test]
    fn arbitrary_json_never_panics(body in arb_json()) {
        match ChatRequest::from_openai_json(body) {
            Ok(req) => {
                // Whatever was accepted serialises and re-parses to itself.
                let again = ChatRequest::from_openai_json(req.to_openai_json());
                prop_assert_eq!(again.ok(), Some(req));
            }
            Err(e) => prop_assert_eq!(e.kind, ErrorKind::InvalidRequest),
        }
    }

    #[test]
    fn arbitrary_messages_never_panic(messages in prop::collection::vec(arb_json(), 1..4)) {
        let body = json!({"model": "m", "messages": messages});
        if let Err(e) = ChatRequest::from_openai_json(body) {
            prop_assert_eq!(e.kind, ErrorKind::InvalidRequest);
        }
    }
}

#[test]
fn usage_reasoning_outside_completion_is_normalised() {
    let u = |v: Value| Usage::from_openai(&v);
    // OpenAI: reasoning inside completion, total = prompt + completion: as is.
    let openai = u(json!({"prompt_tokens": 15, "completion_tokens": 78, "total_tokens": 93, "completion_tokens_details": {"reasoning_tokens": 64}}));
    assert_eq!((openai.output_tokens, openai.reasoning_tokens, openai.total_tokens()), (78, 64, 93));
    // xAI: total = prompt + completion + reasoning.
    let xai = u(json!({"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 303, "completion_tokens_details": {"reasoning_tokens": 290}}));
    assert_eq!((xai.output_tokens, xai.reasoning_tokens, xai.total_tokens()), (291, 290, 303));
    // No total, but reasoning > completion cannot be a part of it.
    let no_total = u(json!({"prompt_tokens": 5, "completion_tokens": 3, "completion_tokens_details": {"reasoning_tokens": 40}}));
    assert_eq!(no_total.output_tokens, 43);
    // Ambiguous (no total, reasoning ≤ completion): OpenAI's meaning.
    assert_eq!(u(json!({"prompt_tokens": 5, "completion_tokens": 30, "completion_tokens_details": {"reasoning_tokens": 20}})).output_tokens, 30);
    // Our own serialisation reads back unchanged, and absurd counts do not overflow.
    for x in [openai, xai, no_total] {
        assert_eq!(Usage::from_openai(&x.to_openai()), x);
    }
    let big =
        u(json!({"prompt_tokens": u64::MAX, "completion_tokens": 1, "total_tokens": 1, "completion_tokens_details": {"reasoning_tokens": u64::MAX}}));
    assert_eq!(big.output_tokens, u64::MAX);
}

/// The parser's typed path reads exactly what `from_openai` reads from a `Value`, for shapes
/// providers really send and for ones they should not.
#[test]
fn usage_parsed_directly_equals_usage_read_from_a_value() {
    let cases = [
        r#"{"prompt_tokens": 15, "completion_tokens": 78, "total_tokens": 93, "completion_tokens_details": {"reasoning_tokens": 64}}"#,
        r#"{"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 303, "completion_tokens_details": {"reasoning_tokens": 290, "x": [1]}}"#,
        r#"{"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 2, "audio_tokens": null}, "extra": {"a": [1, {"b": 2}]}}"#,
        r#"{"prompt_tokens": -3, "completion_tokens": 2.0, "total_tokens": "5", "prompt_tokens_details": null}"#,
        r#"{"prompt_tokens": 1e3, "completion_tokens": true, "prompt_tokens_details": [1, 2], "completion_tokens_details": "n/a"}"#,
        r#"{"prompt_tokens": 1, "prompt_tokens": 7, "completion_tokens": {"n": 3}, "completion_tokens_details": 5}"#,
        r#"{"prompt_tokens": 18446744073709551615, "completion_tokens": 18446744073709551616}"#,
        r#"{"prompt\u005ftokens": 4, "completion_tokens": null}"#,
        r#"{}"#,
    ];
    for c in cases {
        let direct: Usage = serde_json::from_str(c).unwrap();
        let via_value = Usage::from_openai(&serde_json::from_str::<Value>(c).unwrap());
        assert_eq!(direct, via_value, "{c}");
    }
    for not_an_object in ["5", "\"x\"", "[1]", "true"] {
        let e = serde_json::from_str::<Usage>(not_an_object).unwrap_err().to_string();
        assert!(e.contains("usage must be an object"), "{not_an_object}: {e}");
    }
}

#[test]
fn usage_serialises_as_its_openai_object_byte_for_byte() {
    for (cache_read, cache_write, reasoning) in [(0, 0, 0), (5, 0, 0), (0, 3, 0), (5, 3, 0), (0, 0, 7), (5, 3, 7)] {
        let u =
            Usage { input_tokens: 20, output_tokens: 9, cache_read_tokens: cache_read, cache_write_tokens: cache_write, reasoning_tokens: reasoning };
        assert_eq!(serde_json::to_string(&u).unwrap(), u.to_openai().to_string(), "{u:?}");
    }
    // The mapping itself, pinned (both paths above are now the one `Serialize`).
    let text = |r, w, x| {
        serde_json::to_string(&Usage { input_tokens: 20, output_tokens: 9, cache_read_tokens: r, cache_write_tokens: w, reasoning_tokens: x })
            .unwrap()
    };
    assert_eq!(text(0, 0, 0), r#"{"completion_tokens":9,"prompt_tokens":20,"total_tokens":29}"#);
    assert_eq!(
        text(0, 3, 0),
        r#"{"completion_tokens":9,"prompt_tokens":20,"prompt_tokens_details":{"cache_write_tokens":3,"cached_tokens":0},"total_tokens":29}"#
    );
    assert_eq!(
        text(5, 3, 7),
        r#"{"completion_tokens":9,"completion_tokens_details":{"reasoning_tokens":7},"prompt_tokens":20,"prompt_tokens_details":{"cache_write_tokens":3,"cached_tokens":5},"total_tokens":29}"#
    );
}

/// `ChatResponse` and `Message` are read by hand (no `#[serde(flatten)]`): the same input must
/// read the same from bytes, a borrowed `Value` and an owned one, and keep the derive's rules.
#[test]
fn hand_written_response_and_message_readers_keep_the_derived_rules() {
    let body = json!({
        "id": "c1", "model": "m", "service_tier": "default", "system_fingerprint": "fp",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
            "message": {"role": "assistant", "content": "hi", "refusal": null, "tool_calls": null,
                "annotations": [], "audio": {"id": "a"}, "reasoning_content": "r"}}],
        "usage": null, "provider": null, "cost_usd": 0.5,
    });
    let text = body.to_string();
    let from_bytes: ChatResponse = serde_json::from_str(&text).unwrap();
    let from_ref = ChatResponse::deserialize(&body).unwrap();
    let from_owned: ChatResponse = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(from_bytes, from_ref);
    assert_eq!(from_bytes, from_owned);
    let r = from_bytes;
    assert_eq!((r.object.as_str(), r.created, r.usage, r.provider, r.cost_usd), ("chat.completion", 0, None, None, Some(0.5)));
    assert_eq!(r.extra, json!({"service_tier": "default", "system_fingerprint": "fp"}).as_object().unwrap().clone());
    let m = &r.choices[0].message;
    assert_eq!((m.role, m.text(), m.refusal.as_deref(), m.tool_calls.len()), (Role::Assistant, "hi".to_string(), None, 0));
    assert_eq!(m.reasoning_content.as_deref(), Some("r"));
    assert_eq!(m.extra, json!({"annotations": [], "audio": {"id": "a"}}).as_object().unwrap().clone());

    let err = |v: Value| serde_json::from_str::<ChatResponse>(&v.to_string()).unwrap_err().to_string();
    assert!(err(json!({"model": "m", "choices": []})).contains("missing field `id`"));
    assert!(err(json!({"id": "x", "choices": []})).contains("missing field `model`"));
    assert!(err(json!({"id": "x", "model": "m"})).contains("missing field `choices`"));
    let twice = r#"{"id": "x", "id": "y", "model": "m", "choices": []}"#;
    assert!(serde_json::from_str::<ChatResponse>(twice).unwrap_err().to_string().contains("duplicate field `id`"));
    assert!(err(json!({"id": "x", "model": "m", "choices": [], "created": "soon"})).contains("invalid type"));
    assert!(err(json!([1])).contains("expected struct ChatResponse"));

    let msg = |v: Value| Message::deserialize(&v);
    assert!(msg(json!({"content": "x"})).unwrap_err().to_string().contains("missing field `role`"));
    assert!(msg(json!("x")).unwrap_err().to_string().contains("expected struct Message"));
    let twice = r#"{"role": "user", "content": "a", "content": "b"}"#;
    assert!(serde_json::from_str::<Message>(twice).unwrap_err().to_string().contains("duplicate field `content`"));
    // Unknown keys given twice: the last wins, as the derive's buffered map did.
    let m: Message = serde_json::from_str(r#"{"role": "user", "content": null, "x": 1, "x": 2}"#).unwrap();
    assert_eq!((m.content, m.extra["x"].clone()), (None, json!(2)));
    let every = json!({"role": "tool", "content": [{"type": "text", "text": "t"}], "name": "n", "tool_call_id": "c",
        "refusal": "no", "reasoning_content": "rc", "reasoning_signature": "sig",
        "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]});
    let m = msg(every.clone()).unwrap();
    assert_eq!(
        (m.name.as_deref(), m.tool_call_id.as_deref(), m.refusal.as_deref(), m.reasoning_signature.as_deref(), m.tool_calls[0].name.as_str()),
        (Some("n"), Some("c"), Some("no"), Some("sig"), "f")
    );
    assert_eq!(serde_json::to_value(&m).unwrap(), every, "every known field read and written back");
}
