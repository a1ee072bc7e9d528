//! OpenTelemetry export: one span per request and one per attempt, following the GenAI
//! semantic conventions, sent as OTLP/HTTP JSON to a collector.
//!
//! Built on the router's event stream (like any host callback), so it runs on its own thread
//! and a slow or absent collector never delays a request: spans are dropped, not queued
//! without bound. The transport is plain HTTP/1.1 to the collector's OTLP/HTTP port (4318),
//! which is how collectors are deployed next to applications; TLS to a remote collector is
//! the collector's job. Prompt and completion content are never recorded: events do not
//! carry them.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::RouterEvent;
use crate::error::{Error, Result};

/// Where and how to export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// `http://host:4318` (the `/v1/traces` path is added unless given).
    pub endpoint: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_service")]
    pub service_name: String,
}

fn default_service() -> String {
    "polyroute".into()
}

/// Spans kept while a collector is unreachable; beyond this, new spans are dropped.
const MAX_PENDING: usize = 2048;

struct OpenRequest {
    trace_id: String,
    span_id: String,
    start_ns: u128,
}

struct State {
    open: HashMap<String, OpenRequest>,
    pending: Vec<Value>,
}

pub struct Exporter {
    cfg: OtlpConfig,
    host_port: String,
    path: String,
    state: Mutex<State>,
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

fn hex_id(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

fn s(k: &str, v: &str) -> Value {
    json!({"key": k, "value": {"stringValue": v}})
}
fn i(k: &str, v: u64) -> Value {
    json!({"key": k, "value": {"intValue": v.to_string()}})
}

/// `gen_ai.provider.name` well-known values; compatible servers keep the configured name.
fn genai_provider(kind: &str, configured: &str) -> String {
    match kind {
        "openai" => "openai".into(),
        "anthropic" => "anthropic".into(),
        "gemini" => "gcp.gemini".into(),
        "azure" => "azure.ai.openai".into(),
        _ => configured.to_string(),
    }
}

impl Exporter {
    pub fn new(cfg: OtlpConfig) -> Result<Exporter> {
        let rest = cfg
            .endpoint
            .strip_prefix("http://")
            .ok_or_else(|| Error::config(format!("telemetry.otlp.endpoint must be http://host:port (got `{}`)", cfg.endpoint)))?;
        let (host_port, path) = match rest.find('/') {
            Some(p) => (&rest[..p], &rest[p..]),
            None => (rest, ""),
        };
        if host_port.is_empty() {
            return Err(Error::config("telemetry.otlp.endpoint has no host"));
        }
        let path = if path.ends_with("/v1/traces") { path.to_string() } else { format!("{}/v1/traces", path.trim_end_matches('/')) };
        Ok(Exporter { host_port: host_port.to_string(), path, cfg, state: Mutex::new(State { open: HashMap::new(), pending: Vec::new() }) })
    }

    /// Feed one router event (called on the subscriber thread).
    pub fn on_event(&self, ev: &RouterEvent) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match ev {
            RouterEvent::RequestStarted { request_id, .. } => {
                st.open.insert(request_id.clone(), OpenRequest { trace_id: hex_id(16), span_id: hex_id(8), start_ns: now_ns() });
            }
            RouterEvent::AttemptFinished {
                request_id,
                deployment,
                provider,
                provider_kind,
                model,
                outcome,
                latency_ms,
                input_tokens,
                output_tokens,
                response_model,
                ..
            } => {
                let Some(parent) = st.open.get(request_id) else { return };
                let end = now_ns();
                let start = end.saturating_sub((latency_ms * 1e6) as u128);
                let mut attrs = vec![
                    s("gen_ai.operation.name", "chat"),
                    s("gen_ai.provider.name", &genai_provider(provider_kind, provider)),
                    s("gen_ai.request.model", model),
                    s("gen_ai.response.model", response_model.as_deref().unwrap_or(model)),
                    i("gen_ai.usage.input_tokens", *input_tokens),
                    i("gen_ai.usage.output_tokens", *output_tokens),
                    s("polyroute.deployment", deployment),
                    s("polyroute.provider", provider),
                ];
                let failed = outcome != "ok";
                if failed {
                    attrs.push(s("error.type", outcome));
                }
                let span = json!({
                    "traceId": parent.trace_id, "spanId": hex_id(8), "parentSpanId": parent.span_id,
                    "name": format!("chat {model}"), "kind": 3,
                    "startTimeUnixNano": start.to_string(), "endTimeUnixNano": end.to_string(),
                    "attributes": attrs,
                    "status": if failed { json!({"code": 2, "message": outcome}) } else { json!({"code": 1}) },
                });
                if st.pending.len() < MAX_PENDING {
                    st.pending.push(span);
                }
            }
            RouterEvent::RequestFinished { request_id, route, outcome, deployment, model, attempts, cost_usd, .. } => {
                let Some(open) = st.open.remove(request_id) else { return };
                let mut attrs = vec![s("gen_ai.operation.name", "chat"), s("polyroute.route", route), i("polyroute.attempts", u64::from(*attempts))];
                if let Some(m) = model {
                    attrs.push(s("gen_ai.response.model", m));
                }
                if let Some(d) = deployment {
                    attrs.push(s("polyroute.deployment", d));
                }
                if let Some(c) = cost_usd {
                    attrs.push(json!({"key": "polyroute.cost_usd", "value": {"doubleValue": c}}));
                }
                let failed = outcome != "ok" && outcome != "degraded";
                if failed {
                    attrs.push(s("error.type", outcome));
                }
                let span = json!({
                    "traceId": open.trace_id, "spanId": open.span_id,
                    "name": format!("chat {route}"), "kind": 1,
                    "startTimeUnixNano": open.start_ns.to_string(), "endTimeUnixNano": now_ns().to_string(),
                    "attributes": attrs,
                    "status": if failed { json!({"code": 2, "message": outcome}) } else { json!({"code": 1}) },
                });
                if st.pending.len() < MAX_PENDING {
                    st.pending.push(span);
                }
                let batch = std::mem::take(&mut st.pending);
                drop(st);
                if self.post(&batch).is_err() {
                    // Keep what fits for the next try; never grow without bound.
                    let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                    let room = MAX_PENDING.saturating_sub(st.pending.len());
                    st.pending.extend(batch.into_iter().take(room));
                }
            }
            _ => {}
        }
    }

    fn body(&self, spans: &[Value]) -> Value {
        json!({"resourceSpans": [{
            "resource": {"attributes": [s("service.name", &self.cfg.service_name), s("telemetry.sdk.name", "polyroute"), s("telemetry.sdk.language", "rust")]},
            "scopeSpans": [{"scope": {"name": "polyroute", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}]
        }]})
    }

    /// One OTLP/HTTP JSON export; errors mean "try again with the next batch".
    fn post(&self, spans: &[Value]) -> std::io::Result<()> {
        let body = serde_json::to_vec(&self.body(spans)).unwrap_or_default();
        let addr = self.host_port.to_socket_addrs_first()?;
        let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        sock.set_write_timeout(Some(Duration::from_secs(5)))?;
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.path,
            self.host_port,
            body.len()
        );
        for (k, v) in &self.cfg.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        sock.write_all(head.as_bytes())?;
        sock.write_all(&body)?;
        let mut resp = Vec::new();
        let _ = sock.take(64 * 1024).read_to_end(&mut resp);
        let status_ok = resp.starts_with(b"HTTP/1.1 2") || resp.starts_with(b"HTTP/1.0 2");
        if status_ok {
            Ok(())
        } else {
            Err(std::io::Error::other("collector refused the export"))
        }
    }
}

trait FirstAddr {
    fn to_socket_addrs_first(&self) -> std::io::Result<std::net::SocketAddr>;
}
impl FirstAddr for String {
    fn to_socket_addrs_first(&self) -> std::io::Result<std::net::SocketAddr> {
        use std::net::ToSocketAddrs;
        self.to_socket_addrs()?.next().ok_or_else(|| std::io::Error::other("collector address does not resolve"))
    }
}
