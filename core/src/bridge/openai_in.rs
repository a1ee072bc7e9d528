//! The OpenAI chat-completions wire format on the way in: an HTTP request body plus its
//! headers, as an OpenAI client sends them, into a core [`ChatRequest`].
//!
//! Shared by the `polyroute serve` gateway and the in-process transports for the openai SDKs
//! (Python's httpx transport), so both read routing metadata the same way: from `x-polyroute-*`
//! headers and from the body's `polyroute` object (what the SDKs send as `extra_body`). OpenAI's
//! own `metadata` is not read: it is forwarded. `model` is resolved by the router (a route, a
//! deployment or a served model id), as for every other caller.

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

/// Parse a request body (JSON bytes) and its headers. `tenant`, when an access key gave one,
/// replaces whatever tenant the caller sent. Every failure is the caller's `invalid_request`.
pub fn parse_request(body: &[u8], headers: &HeaderMap, tenant: Option<&str>) -> Result<OpenAiRequest> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| Error::invalid_request(format!("the request body is not valid JSON: {e}")))?;
    routing_into_body(headers, &mut v, tenant)?;
    let stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = v.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let request = super::request_from_value(v)?;
    Ok(OpenAiRequest { request, stream, include_usage })
}

/// Routing metadata from `x-polyroute-*` headers merged into the body's `polyroute` object
/// (headers win), and the SDK's own timeout header as the deadline when none was given.
/// `tenant` replaces any tenant the caller sent.
pub fn routing_into_body(headers: &HeaderMap, body: &mut Value, tenant: Option<&str>) -> Result<()> {
    let Some(obj) = body.as_object_mut() else { return Err(Error::invalid_request("the request body must be a JSON object")) };
    let mut md = match obj.remove("polyroute") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(Error::invalid_request("`polyroute` (extra_body) must be an object")),
    };
    for (name, key) in ROUTING_HEADERS {
        if let Some(v) = header(headers, name)? {
            md.insert(key.into(), v.into());
        }
    }
    if let Some(v) = header(headers, "tags")? {
        md.insert("tags".into(), v.split(',').map(str::trim).filter(|t| !t.is_empty()).collect::<Vec<_>>().into());
    }
    if let Some(v) = header(headers, "timeout")? {
        let secs: f64 = v.trim().parse().map_err(|_| Error::invalid_request(format!("header x-polyroute-timeout must be seconds, got {v:?}")))?;
        md.insert("timeout".into(), secs.into());
    }
    if !md.contains_key("timeout") {
        // The openai SDKs announce their own timeout (Python: the read timeout, Node: the whole
        // request, in whole seconds); past it they give up, so attempts after it are wasted
        // spend. Ours to honour, not to validate: a value we cannot use is ignored.
        let sdk = ["x-stainless-read-timeout", "x-stainless-timeout"].iter().find_map(|h| {
            headers.get(*h).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok()).filter(|t| t.is_finite() && *t > 0.0)
        });
        if let Some(t) = sdk {
            md.insert("timeout".into(), t.into());
        }
    }
    if let Some(t) = tenant {
        md.insert("tenant".into(), t.into());
    }
    if !md.is_empty() {
        obj.insert("polyroute".into(), Value::Object(md));
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

    fn body(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    const MSG: &str = "hi";

    #[test]
    fn model_is_left_for_the_router_and_openai_metadata_is_forwarded() {
        let r = parse_request(
            &body(json!({"model": "fast", "messages": [{"role": "user", "content": MSG}], "metadata": {"tenant": "t", "run": "7"}})),
            &HeaderMap::new(),
            None,
        )
        .unwrap();
        assert_eq!(r.request.model.as_deref(), Some("fast"));
        assert_eq!(r.request.routing.route, None, "the router resolves `model`, not the parser");
        assert_eq!(r.request.routing.tenant, None, "OpenAI's metadata is not routing metadata");
        assert_eq!(r.request.extra["metadata"], json!({"tenant": "t", "run": "7"}));
        assert!(!r.stream && !r.include_usage);
    }

    #[test]
    fn headers_win_over_the_polyroute_object() {
        let b = body(json!({
            "model": "fast",
            "messages": [{"role": "user", "content": MSG}],
            "polyroute": {"tenant": "pb", "tier": "gold", "feature": "body"},
            "stream": true,
            "stream_options": {"include_usage": true},
        }));
        let h = headers(&[
            ("x-polyroute-route", "chat"),
            ("x-polyroute-feature", "hf"),
            ("x-polyroute-tags", "a, b,,c"),
            ("x-polyroute-timeout", " 2.5"),
        ]);
        let r = parse_request(&b, &h, None).unwrap();
        let md = &r.request.routing;
        assert_eq!(md.route.as_deref(), Some("chat"));
        assert_eq!(md.tenant.as_deref(), Some("pb"));
        assert_eq!(md.feature.as_deref(), Some("hf"));
        assert_eq!(md.tier.as_deref(), Some("gold"));
        assert_eq!(md.tags, vec!["a", "b", "c"]);
        assert_eq!(md.timeout, Some(2.5));
        assert!(r.stream && r.include_usage);
        assert!(!r.request.extra.contains_key("polyroute"), "routing metadata is never forwarded");
        let sdk = headers(&[("x-stainless-read-timeout", "3.5")]);
        let r = parse_request(&body(json!({"messages": [{"role": "user", "content": MSG}]})), &sdk, None).unwrap();
        assert_eq!(r.request.routing.timeout, Some(3.5), "openai-python's timeout is the deadline");
        let both = headers(&[("x-stainless-read-timeout", "3.5"), ("x-polyroute-timeout", "2.5")]);
        let r = parse_request(&body(json!({"messages": [{"role": "user", "content": MSG}]})), &both, None).unwrap();
        assert_eq!(r.request.routing.timeout, Some(2.5), "an explicit timeout wins over the SDK's");
        let r =
            parse_request(&body(json!({"messages": [{"role": "user", "content": MSG}]})), &headers(&[("x-stainless-timeout", "0")]), None).unwrap();
        assert_eq!(r.request.routing.timeout, None, "openai-node truncates 500 ms to 0 s: ignored, not an error");
        let r = parse_request(&b, &h, Some("key-tenant")).unwrap();
        assert_eq!(r.request.routing.tenant.as_deref(), Some("key-tenant"), "a key's tenant replaces the caller's");
    }

    #[test]
    fn bad_bodies_and_headers_are_invalid_request() {
        let cases: Vec<(Vec<u8>, HeaderMap)> = vec![
            (b"{not json".to_vec(), HeaderMap::new()),
            (body(json!([1])), HeaderMap::new()),
            (body(json!({"messages": [], "polyroute": "x"})), HeaderMap::new()),
            (body(json!({"messages": [{"role": "user", "content": MSG}], "polyroute": {"timeout": 0}})), HeaderMap::new()),
            (body(json!({"messages": [{"role": "user", "content": MSG}]})), headers(&[("x-polyroute-timeout", "soon")])),
            (body(json!({"messages": [{"role": "user", "content": MSG}]})), {
                let mut h = HeaderMap::new();
                h.insert("x-polyroute-tenant", HeaderValue::from_bytes(b"\xff").unwrap());
                h
            }),
        ];
        for (b, h) in cases {
            let e = parse_request(&b, &h, None).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidRequest, "{}", e.message);
        }
    }
}
