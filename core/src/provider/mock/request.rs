//! Reading an incoming request the way each provider would: which wire format the path
//! names, which model, whether it streams, what to echo and how many prompt "tokens" it has.
//!
//! Token counts are deliberately simple (whitespace-separated words) so that cost and budget
//! tests can compute the expected numbers by hand, and identical across formats for the same
//! conversation.

use serde_json::Value;

/// The wire formats the mock speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireFormat {
    /// OpenAI Chat Completions (also Azure OpenAI and every OpenAI-compatible server).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Gemini `generateContent` / `streamGenerateContent?alt=sse`.
    Gemini,
}

/// Which API an HTTP path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockRoute {
    pub format: WireFormat,
    /// `openai`, `azure`, `anthropic` or `gemini` (shown in the server's log).
    pub api: &'static str,
    /// Model named by the path (Gemini model, Azure deployment); otherwise in the body.
    pub model: Option<String>,
    /// Streaming decided by the path (Gemini); otherwise by the body's `stream` flag.
    pub stream: Option<bool>,
    /// Gemini `streamGenerateContent` without `alt=sse` (a JSON array stream, unsupported).
    pub unsupported: Option<&'static str>,
}

/// Map a request path (with optional query) to an API. `None`: not a provider endpoint.
pub fn route(path_and_query: &str) -> Option<MockRoute> {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let path = path.trim_end_matches('/');
    let mk = |format, api, model: Option<String>, stream| MockRoute { format, api, model, stream, unsupported: None };
    if path == "/v1/chat/completions" || path == "/chat/completions" {
        return Some(mk(WireFormat::OpenAi, "openai", None, None));
    }
    if path == "/v1/messages" || path == "/messages" {
        return Some(mk(WireFormat::Anthropic, "anthropic", None, None));
    }
    if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        let (deployment, tail) = rest.split_once('/')?;
        if tail == "chat/completions" && !deployment.is_empty() {
            return Some(mk(WireFormat::OpenAi, "azure", Some(percent_decode(deployment)), None));
        }
        return None;
    }
    let rest = path.strip_prefix("/v1beta/models/").or_else(|| path.strip_prefix("/v1/models/"))?;
    let (model, method) = rest.rsplit_once(':')?;
    if model.is_empty() {
        return None;
    }
    let model = Some(percent_decode(model));
    match method {
        "generateContent" => Some(mk(WireFormat::Gemini, "gemini", model, Some(false))),
        "streamGenerateContent" => {
            let sse = query.split('&').any(|kv| kv == "alt=sse");
            let mut r = mk(WireFormat::Gemini, "gemini", model, Some(true));
            if !sse {
                r.unsupported = Some("the mock serves streamGenerateContent only with ?alt=sse");
            }
            Some(r)
        }
        _ => None,
    }
}

/// Minimal %XX decoding for path segments (model names like `models%2Fgemini` or spaces).
/// Works on bytes, so a `%` next to multi-byte characters cannot split one.
pub fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the renderers need to know about a request.
#[derive(Debug, Clone, PartialEq)]
pub struct MockRequest {
    pub format: WireFormat,
    pub model: String,
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`: only then does an OpenAI stream carry usage.
    pub include_usage: bool,
    /// Words in every text the conversation carries (system, messages, tool results).
    pub prompt_tokens: u64,
    /// Text of the last user message.
    pub last_user_text: String,
}

impl MockRequest {
    /// Parse a body for a route. `Err` carries a message for a 400 reply.
    pub fn parse(route: &MockRoute, body: &[u8]) -> std::result::Result<MockRequest, String> {
        let v: Value = if body.is_empty() {
            return Err("request body is empty".into());
        } else {
            serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?
        };
        if !v.is_object() {
            return Err("request body must be a JSON object".into());
        }
        let body_model = v.get("model").and_then(Value::as_str).map(str::to_string);
        let stream_flag = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
        let (texts, last_user_text) = match route.format {
            WireFormat::OpenAi => openai_texts(&v)?,
            WireFormat::Anthropic => anthropic_texts(&v)?,
            WireFormat::Gemini => gemini_texts(&v)?,
        };
        let model = match (&route.model, body_model) {
            (Some(m), _) => m.clone(),
            (None, Some(m)) => m,
            (None, None) => return Err("request has no `model`".into()),
        };
        Ok(MockRequest {
            format: route.format,
            model,
            stream: route.stream.unwrap_or(stream_flag),
            include_usage: v.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false),
            prompt_tokens: texts.iter().map(|t| count_words(t)).sum(),
            last_user_text,
        })
    }
}

/// Text of an OpenAI-style content value (string, or parts with `text`).
fn content_text(c: &Value) -> String {
    match c {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

type Texts = (Vec<String>, String);

fn openai_texts(v: &Value) -> std::result::Result<Texts, String> {
    let msgs = v.get("messages").and_then(Value::as_array).ok_or("request needs a `messages` array")?;
    let mut texts = Vec::new();
    let mut last_user = String::new();
    for m in msgs {
        let t = m.get("content").map(content_text).unwrap_or_default();
        if m.get("role").and_then(Value::as_str) == Some("user") {
            last_user = t.clone();
        }
        texts.push(t);
    }
    Ok((texts, last_user))
}

fn anthropic_texts(v: &Value) -> std::result::Result<Texts, String> {
    let msgs = v.get("messages").and_then(Value::as_array).ok_or("request needs a `messages` array")?;
    let mut texts = Vec::new();
    if let Some(s) = v.get("system") {
        texts.push(content_text(s));
    }
    let mut last_user = None;
    for m in msgs {
        let c = m.get("content").cloned().unwrap_or(Value::Null);
        let mut user_text = Vec::new();
        match &c {
            Value::String(s) => {
                texts.push(s.clone());
                user_text.push(s.clone());
            }
            Value::Array(blocks) => {
                for b in blocks {
                    match b.get("type").and_then(Value::as_str) {
                        Some("text") => {
                            let t = b.get("text").and_then(Value::as_str).unwrap_or_default().to_string();
                            texts.push(t.clone());
                            user_text.push(t);
                        }
                        // Tool results count as prompt, but are not what the user said.
                        Some("tool_result") => texts.push(b.get("content").map(content_text).unwrap_or_default()),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        if m.get("role").and_then(Value::as_str) == Some("user") && !user_text.is_empty() {
            last_user = Some(user_text.join(" "));
        }
    }
    Ok((texts, last_user.unwrap_or_default()))
}

fn gemini_texts(v: &Value) -> std::result::Result<Texts, String> {
    let contents = v.get("contents").and_then(Value::as_array).ok_or("request needs a `contents` array")?;
    let parts_text = |c: &Value| -> Vec<String> {
        c.get("parts")
            .and_then(Value::as_array)
            .map(|ps| ps.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let mut texts = Vec::new();
    if let Some(si) = v.get("systemInstruction").or_else(|| v.get("system_instruction")) {
        texts.extend(parts_text(si));
    }
    let mut last_user = None;
    for c in contents {
        let t = parts_text(c);
        texts.extend(t.iter().cloned());
        let role = c.get("role").and_then(Value::as_str).unwrap_or("user");
        if role == "user" && !t.is_empty() {
            last_user = Some(t.join(" "));
        }
    }
    Ok((texts, last_user.unwrap_or_default()))
}

/// Whitespace-separated words: the mock's token unit.
pub fn count_words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Split text into pieces of `per_chunk` words, each word carrying the whitespace before it,
/// so the pieces concatenate back to the exact input (as real token deltas do). Leading
/// whitespace stays with the first word, trailing whitespace with the last.
pub fn word_chunks(s: &str, per_chunk: usize) -> Vec<String> {
    // A piece boundary is the end of a word that another word follows.
    let mut bounds = vec![0];
    let mut prev_ws = true;
    let mut word_end: Option<usize> = None;
    for (i, ch) in s.char_indices() {
        let ws = ch.is_whitespace();
        if ws && !prev_ws {
            word_end = Some(i);
        }
        if !ws && prev_ws {
            if let Some(e) = word_end.take() {
                bounds.push(e);
            }
        }
        prev_ws = ws;
    }
    if s.is_empty() {
        return Vec::new();
    }
    bounds.push(s.len());
    let pieces: Vec<&str> = bounds.windows(2).map(|w| &s[w[0]..w[1]]).collect();
    pieces.chunks(per_chunk.max(1)).map(|c| c.concat()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = route("/v1/chat/completions").unwrap();
        assert_eq!((r.format, r.api, r.model), (WireFormat::OpenAi, "openai", None));
        assert_eq!(route("/chat/completions").unwrap().api, "openai");
        let r = route("/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21").unwrap();
        assert_eq!((r.api, r.model.as_deref()), ("azure", Some("my-gpt")));
        assert_eq!(route("/v1/messages").unwrap().format, WireFormat::Anthropic);
        let r = route("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse").unwrap();
        assert_eq!((r.model.as_deref(), r.stream, r.unsupported), (Some("gemini-2.0-flash"), Some(true), None));
        let r = route("/v1beta/models/gemini-2.0-flash:generateContent?key=abc").unwrap();
        assert_eq!(r.stream, Some(false));
        assert!(route("/v1beta/models/g:streamGenerateContent").unwrap().unsupported.is_some());
        assert!(route("/v1/embeddings").is_none());
        assert!(route("/v1beta/models/:generateContent").is_none());
        assert!(route("/openai/deployments//chat/completions").is_none());
    }

    #[test]
    fn word_chunks_concatenate_back() {
        for s in ["", "one", "  lead and trail  ", "echo: hello  world", "a\nb\tc", "ünï cödé 字 字"] {
            for n in 1..4 {
                let c = word_chunks(s, n);
                assert_eq!(c.concat(), s, "{s:?} / {n}");
                let words = count_words(s) as usize;
                assert_eq!(c.len(), words.div_ceil(n).max(usize::from(!s.is_empty() && words == 0)), "{s:?} / {n}");
            }
        }
        assert_eq!(word_chunks("echo: hello world", 1), vec!["echo:", " hello", " world"]);
        assert_eq!(word_chunks("echo: hello world", 2), vec!["echo: hello", " world"]);
    }

    #[test]
    fn parses_each_format() {
        let oa = route("/v1/chat/completions").unwrap();
        let r = MockRequest::parse(
            &oa,
            br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},
                "messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi there"}]}]}"#,
        )
        .unwrap();
        assert_eq!((r.model.as_str(), r.stream, r.include_usage, r.prompt_tokens), ("m", true, true, 4));
        assert_eq!(r.last_user_text, "hi there");

        let an = route("/v1/messages").unwrap();
        let r = MockRequest::parse(
            &an,
            br#"{"model":"claude","system":"be brief","messages":[{"role":"user","content":"hi there"},
                {"role":"assistant","content":[{"type":"text","text":"ok"}]},
                {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"42"}]}]}"#,
        )
        .unwrap();
        assert_eq!((r.prompt_tokens, r.last_user_text.as_str(), r.stream), (6, "hi there", false));

        let ge = route("/v1beta/models/gem:streamGenerateContent?alt=sse").unwrap();
        let r = MockRequest::parse(
            &ge,
            br#"{"systemInstruction":{"parts":[{"text":"be brief"}]},"contents":[{"role":"user","parts":[{"text":"hi there"}]}]}"#,
        )
        .unwrap();
        assert_eq!((r.model.as_str(), r.stream, r.prompt_tokens, r.last_user_text.as_str()), ("gem", true, 4, "hi there"));

        assert!(MockRequest::parse(&oa, b"not json").is_err());
        assert!(MockRequest::parse(&oa, b"").is_err());
        assert!(MockRequest::parse(&oa, br#"{"model":"m"}"#).is_err());
        assert!(MockRequest::parse(&oa, br#"{"messages":[]}"#).is_err());
        assert!(MockRequest::parse(&oa, b"[1]").is_err());
    }
}
