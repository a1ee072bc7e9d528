//! The typed decoding of usual OpenAI stream chunks (`openai_chunk`) against the `Value`
//! path, over every recorded stream and over shapes that must fall back.

use super::openai::OpenAiStreamDecoder;
use super::openai_chunk::Chunk;
use super::StreamDecoder;
use crate::sse::SseEvent;
use crate::types::StreamEvent;

/// Feed `chunks` to one decoder as the stream does (usual chunks typed) and to another
/// only through `Value`s: the same events, errors and end state.
fn both_paths_agree(name: &str, chunks: &[String], compat: bool) -> usize {
    let (mut fast, mut slow) = (OpenAiStreamDecoder::new("asked-model"), OpenAiStreamDecoder::new("asked-model"));
    (fast.compat, slow.compat) = (compat, compat);
    let mut typed = 0;
    for data in chunks {
        let (mut a, mut b) = (Vec::<StreamEvent>::new(), Vec::<StreamEvent>::new());
        let ev = SseEvent { event: None, data: data.clone(), id: None, retry: None };
        typed += usize::from(Chunk::parse(data.trim()).is_some());
        let ra = fast.on_event(&ev, &mut a).map_err(|e| (e.kind, e.message, e.status));
        let rb = if data.trim() == "[DONE]" {
            fast_done(&mut slow)
        } else {
            slow.on_value_data(data.trim(), &mut b).map_err(|e| (e.kind, e.message, e.status))
        };
        assert_eq!(ra, rb, "{name}: {data}");
        assert_eq!(a, b, "{name}: {data}");
    }
    assert_eq!(fast.is_done(), slow.is_done(), "{name}");
    typed
}

fn fast_done(d: &mut OpenAiStreamDecoder) -> Result<(), (crate::error::ErrorKind, String, Option<u16>)> {
    let ev = SseEvent { event: None, data: "[DONE]".into(), id: None, retry: None };
    d.on_event(&ev, &mut Vec::new()).map_err(|e| (e.kind, e.message, e.status))
}

/// Every recorded OpenAI-shaped stream in the fixtures: VCR cassettes and `.sse`
/// captures (`data:` lines), and the real-traffic chunk lists (a chunk per line).
fn recorded_streams() -> Vec<(String, Vec<String>)> {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files = Vec::new();
    let cassettes = fixtures.join("cassettes-openai");
    for dir in std::fs::read_dir(&cassettes).unwrap().flatten().filter(|d| d.path().is_dir()) {
        files.extend(std::fs::read_dir(dir.path()).unwrap().flatten().map(|f| f.path()));
    }
    files.extend(std::fs::read_dir(fixtures.join("openai-sse")).unwrap().flatten().map(|f| f.path()));
    let real = std::fs::read_dir(fixtures.join("real-traffic")).unwrap().flatten().map(|f| f.path());
    files.extend(
        real.filter(|p| p.to_string_lossy().ends_with(".chunks.txt") && std::fs::read_to_string(p).unwrap().contains("chat.completion.chunk")),
    );
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let chunks: Vec<String> = if f.to_string_lossy().ends_with(".chunks.txt") {
            text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect()
        } else {
            text.lines().filter_map(|l| l.trim_start().strip_prefix("data: ")).map(str::to_string).collect()
        };
        if !chunks.is_empty() {
            out.push((f.display().to_string(), chunks));
        }
    }
    out
}

#[test]
fn usual_chunks_decode_as_through_a_value_for_every_recorded_stream() {
    let (mut streams, mut typed) = (0, 0);
    for (name, chunks) in recorded_streams() {
        streams += 1;
        for compat in [false, true] {
            typed += both_paths_agree(&name, &chunks, compat);
        }
    }
    assert!(streams >= 25 && typed > 500, "{streams} recorded streams, {typed} chunks took the typed path");
}

#[test]
fn unusual_chunks_take_the_value_path_and_decode_alike() {
    let chunks = [
        r#"{"id":"a","model":"","choices":[],"prompt_filter_results":[{"x":1}]}"#,
        r#"{"id":"","model":"m2","choices":[{"index":0,"delta":{"role":"assistant","content":"hé\n\"q\""},"finish_reason":null,"logprobs":null,"content_filter_results":{}}]}"#,
        r#"{"choices":[{"index":1,"delta":{"content":"second choice"}},{"index":0,"delta":{"content":"x","refusal":"no"}}]}"#,
        r#"{"choices":[{"index":0.0,"delta":{"content":"float index"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"parts"}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"reasoning_content":"thinking","content":null}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"reasoning":null,"tool_calls":null,"content":"nulls"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":3,"id":"c1","function":{"name":"f","arguments":"{}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":null,"finish_reason":"stop"}],"usage":null}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":7}]}"#,
        r#"{"choices":[1, "x"]}"#,
        r#"{"choices":{"index":0}}"#,
        r#"{"id":5,"choices":null,"usage":"n/a"}"#,
        r#"{"x_groq":{"usage":{"prompt_tokens":3,"completion_tokens":4}},"choices":[]}"#,
        r#"{"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7},"choices":[]}"#,
        r#"{"choices":[{"delta":{"content":"a"}}],"choices":[{"delta":{"content":"b"}}]}"#,
        r#"{"error":null,"choices":[{"index":0,"delta":{"content":"null error"}}]}"#,
        r#"{"error":{"message":"overloaded","code":529}}"#,
        r#"[1,2]"#,
        r#"not json"#,
        "[DONE]",
    ];
    for compat in [false, true] {
        let chunks: Vec<String> = chunks.iter().map(|c| c.to_string()).collect();
        // Each alone (from a fresh decoder) and all in order.
        for c in &chunks {
            both_paths_agree(c, std::slice::from_ref(c), compat);
        }
        both_paths_agree("all", &chunks, compat);
    }
}
