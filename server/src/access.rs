//! Access control for the gateway: the policy's `keys:` (see `polyroute::policy::KeySpec`).
//!
//! Without `keys:` the gateway is open. With them, `/v1/*` needs one of the keys, presented as
//! `Authorization: Bearer <key>`, `api-key: <key>` or `x-api-key: <key>`. The presented key is
//! hashed and compared digest to digest in constant time by the core; it is never stored,
//! logged, put in a metric or echoed in an error (errors name the key by its `name` at most).
//! The key table is the router's current policy, so a reload changes it. A key's
//! `rate_limit` is counted in the router's state store (`Router::admit`): per process by
//! default, shared by every gateway replica with `state.redis`.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use polyroute::policy::{find_key, KeySpec};
use serde_json::json;

/// The key presented with a request, if any (first of `Authorization: Bearer`, `api-key`,
/// `x-api-key`). `Err` when a header is there but unreadable.
fn presented(headers: &HeaderMap) -> Result<Option<&str>, ()> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().map_err(|_| ())?;
        let (scheme, rest) = v.split_once(' ').ok_or(())?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(());
        }
        return Ok(Some(rest.trim()));
    }
    for name in ["api-key", "x-api-key"] {
        if let Some(v) = headers.get(name) {
            return v.to_str().map(|s| Some(s.trim())).map_err(|_| ());
        }
    }
    Ok(None)
}

/// OpenAI's error shape for the gateway's own refusals (401, 403): what the SDKs map to
/// `AuthenticationError` and `PermissionDeniedError`.
pub fn refusal(status: StatusCode, code: &'static str, message: String) -> Response {
    let kind = if status == StatusCode::UNAUTHORIZED { "invalid_request_error" } else { "permission_error" };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    let mut r = (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    // The same header every other refusal carries (its value is the body's `code`).
    r.headers_mut().insert("x-polyroute-error-kind", axum::http::HeaderValue::from_static(code));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
    }
    r
}

/// The key a request was made with: `Ok(None)` when the policy has no keys (open gateway),
/// a 401 response when it has keys and none of them was presented.
pub fn authenticate(keys: &[KeySpec], headers: &HeaderMap) -> Result<Option<KeySpec>, Response> {
    if keys.is_empty() {
        return Ok(None);
    }
    let unauthorized = |m: &str| refusal(StatusCode::UNAUTHORIZED, "invalid_api_key", m.to_string());
    match presented(headers) {
        Err(()) => Err(unauthorized("unreadable credentials: send `Authorization: Bearer <key>`")),
        Ok(None) | Ok(Some("")) => Err(unauthorized("missing API key: send `Authorization: Bearer <key>`")),
        Ok(Some(k)) => match find_key(keys, k) {
            Some(spec) => Ok(Some(spec.clone())),
            None => Err(unauthorized("invalid API key")),
        },
    }
}

/// The 403 for a route the key may not use.
pub fn forbidden(key: &KeySpec, route: &str) -> Response {
    refusal(StatusCode::FORBIDDEN, "route_not_allowed", format!("key `{}` may not use route `{route}`", key.name))
}
