//! The control API under `/_mock/`: install scripts, reset, read the attempt log.
//!
//! JSON in, JSON out, synchronous: every language's harness drives the server with a plain
//! HTTP client, so the surface is small and the errors say exactly what was wrong with a
//! script (serde's message names the offending field).

use polyroute::provider::mock::{percent_decode, MockScript};
use serde_json::json;

use crate::conn::{Request, SimpleResponse};
use crate::state::Shared;

pub(crate) fn handle(shared: &Shared, req: &Request) -> SimpleResponse {
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let m = req.method.as_str();
    if let Some(name) = path.strip_prefix("/_mock/scripts/") {
        let name = percent_decode(name);
        if name.is_empty() {
            return SimpleResponse::json(400, json!({"error": "script name is empty"}));
        }
        return match m {
            "PUT" | "POST" => install(shared, &name, &req.body),
            "DELETE" => SimpleResponse::json(200, json!({"ok": true, "removed": shared.remove_script(&name)})),
            _ => SimpleResponse::json(405, json!({"error": "use PUT or DELETE"})),
        };
    }
    match (m, path) {
        ("GET", "/_mock/scripts") => SimpleResponse::json(200, json!(shared.scripts())),
        ("POST", "/_mock/reset") => {
            shared.reset();
            SimpleResponse::json(200, json!({"ok": true}))
        }
        ("GET", "/_mock/log") => {
            let script = query.split('&').find_map(|kv| kv.strip_prefix("script=")).map(percent_decode);
            SimpleResponse::json(200, json!(shared.log(script.as_deref())))
        }
        ("GET", "/_mock/health") => SimpleResponse::json(200, json!({"ok": true, "uptime_ms": shared.now_ms()})),
        _ => SimpleResponse::json(404, json!({"error": format!("unknown control endpoint {m} {path}")})),
    }
}

fn install(shared: &Shared, name: &str, body: &[u8]) -> SimpleResponse {
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(_) => return SimpleResponse::json(400, json!({"error": "script body is not UTF-8"})),
    };
    match MockScript::from_json(text) {
        Ok(script) => {
            let steps = script.steps.len();
            shared.set_script(name, script);
            SimpleResponse::json(200, json!({"ok": true, "script": name, "steps": steps}))
        }
        Err(e) => SimpleResponse::json(400, json!({"error": e.message})),
    }
}
