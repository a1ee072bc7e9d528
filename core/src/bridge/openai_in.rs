//! The OpenAI chat-completions wire format on the way in: an HTTP request body plus its
//! headers, as an OpenAI client sends them, into a core [`ChatRequest`].
//!
//! Shared by the `polyroute serve` gateway and the in-process transports for the openai SDKs
//! (Python's httpx transport), so both read routing metadata the same way: from `x-polyroute-*`
//! headers, from the body's `polyroute` object (what the SDKs send as `extra_body`), and from
//! `model` when it names a route.

use http::HeaderMap;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::types::ChatRequest;

/// A parsed OpenAI request: the core request and the two stream settings the answer's wire
/// format needs.
#[derive(Debug, Clone)]
pub struct OpenAiRequest {
    pub request: ChatRequest,
    /// `stream: true`: the answer is SSE of `chat.completion.chunk`.
    pub stream: bool,
    /// `stream_options.include_usage`: a usage chunk before `[DONE]`.
    pub include_usage: bool,
}

/// Routing headers (`x-polyroute-<name>`) and the metadata key each sets.
const ROUTING_HEADERS: [(&str, &str); 5] =
    [("route", "route"), ("tenant", "tenant"), ("feature", "feature"), ("tier", "tier"), ("data-class", "data_class")];

/// Parse a request body (JSON bytes) and its headers. `routes` are the router's route names
/// (`model` naming one asks for it); `tenant`, when an access key gave one, replaces whatever
/// tenant the caller sent. Every failure is the caller's `invalid_request`.
pub fn parse_request(body: &[u8], headers: &HeaderMap, routes: &[String], tenant: Option<&str>) -> Result<OpenAiRequest> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| Error::invalid_request(format!("the request body is not valid JSON: {e}")))?;
    metadata_into_body(headers, &mut v, routes, tenant)?;
    let stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = v.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let request = super::request_from_value(v)?;
    Ok(OpenAiRequest { request, stream, include_usage })
}

/// Routing metadata from `x-polyroute-*` headers and the body's `polyroute` object, merged
/// into the body's `metadata` (headers win over the body, `polyroute` over `metadata`).
/// `model` naming a route asks for that route unless one was asked for explicitly. `tenant`
/// replaces any tenant the caller sent.
pub fn metadata_into_body(headers: &HeaderMap, body: &mut Value, routes: &[String], tenant: Option<&str>) -> Result<()> {
    let Some(obj) = body.as_object_mut() else { return Err(Error::invalid_request("the request body must be a JSON object")) };
    let mut md = match obj.remove("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(Error::invalid_request("`metadata` must be an object")),
    };
    match obj.remove("polyroute") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => md.extend(m),
        Some(_) => return Err(Error::invalid_request("`polyroute` (extra_body) must be an object")),
    }
    for (name, key) in ROUTING_HEADERS {
        if let Some(v) = header(headers, name)? {
            md.insert(key.into(), v.into());
        }
    }
    if let Some(v) = header(headers, "tags")? {
        md.insert("tags".into(), v.split(',').map(str::trim).filter(|t| !t.is_empty()).collect::<Vec<_>>().into());
    }
    if !md.contains_key("route") {
        if let Some(m) = obj.get("model").and_then(Value::as_str).filter(|m| routes.iter().any(|r| r == m)) {
            md.insert("route".into(), m.into());
        }
    }
    if let Some(t) = tenant {
        md.insert("tenant".into(), t.into());
    }
    if !md.is_empty() {
        obj.insert("metadata".into(), Value::Object(md));
    }
    Ok(())
}

/// `x-polyroute-<name>`, if present; a value that is not text is the caller's error.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>> {
    let Some(v) = headers.get(format!("x-polyroute-{name}")) else { return Ok(None) };
    v.to_str().map(Some).map_err(|_| Error::invalid_request(format!("header x-polyroute-{name} is not valid text")))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use serde_json::json;

    use super::*;
    use crate::error::ErrorKind;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn routes() -> Vec<String> {
        vec!["chat".into(), "fast".into()]
    }

    fn body(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    const MSG: &str = "hi";

    #[test]
    fn model_naming_a_route_asks_for_it_and_other_models_are_left_alone() {
        let r = parse_request(&body(json!({"model": "fast", "messages": [{"role": "user", "content": MSG}]})), &HeaderMap::new(), &routes(), None)
            .unwrap();
        assert_eq!(r.request.metadata.route.as_deref(), Some("fast"));
        let r = parse_request(&body(json!({"model": "gpt-x", "messages": [{"role": "user", "content": MSG}]})), &HeaderMap::new(), &routes(), None)
            .unwrap();
        assert_eq!(r.request.metadata.route, None);
        assert!(!r.stream && !r.include_usage);
    }

    #[test]
    fn headers_win_over_extra_body_which_wins_over_metadata() {
        let b = body(json!({
            "model": "fast",
            "messages": [{"role": "user", "content": MSG}],
            "metadata": {"tenant": "m", "feature": "m"},
            "polyroute": {"tenant": "pb", "tier": "gold"},
            "stream": true,
            "stream_options": {"include_usage": true},
        }));
        let h = headers(&[("x-polyroute-route", "chat"), ("x-polyroute-feature", "hf"), ("x-polyroute-tags", "a, b,,c")]);
        let r = parse_request(&b, &h, &routes(), None).unwrap();
        let md = &r.request.metadata;
        assert_eq!(md.route.as_deref(), Some("chat"), "an explicit route wins over model");
        assert_eq!(md.tenant.as_deref(), Some("pb"));
        assert_eq!(md.feature.as_deref(), Some("hf"));
        assert_eq!(md.tier.as_deref(), Some("gold"));
        assert_eq!(md.tags, vec!["a", "b", "c"]);
        assert!(r.stream && r.include_usage);
        let r = parse_request(&b, &h, &routes(), Some("key-tenant")).unwrap();
        assert_eq!(r.request.metadata.tenant.as_deref(), Some("key-tenant"), "a key's tenant replaces the caller's");
    }

    #[test]
    fn bad_bodies_and_headers_are_invalid_request() {
        let cases: Vec<(Vec<u8>, HeaderMap)> = vec![
            (b"{not json".to_vec(), HeaderMap::new()),
            (body(json!([1])), HeaderMap::new()),
            (body(json!({"messages": [], "metadata": 3})), HeaderMap::new()),
            (body(json!({"messages": [], "polyroute": "x"})), HeaderMap::new()),
            (body(json!({"messages": [{"role": "user", "content": MSG}]})), {
                let mut h = HeaderMap::new();
                h.insert("x-polyroute-tenant", HeaderValue::from_bytes(b"\xff").unwrap());
                h
            }),
        ];
        for (b, h) in cases {
            let e = parse_request(&b, &h, &routes(), None).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidRequest, "{}", e.message);
        }
    }
}
