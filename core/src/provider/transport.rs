//! Byte movers. [`HttpTransport`] is real HTTP (reqwest, rustls, pooled connections); the
//! mock provider has an in-process transport in `mock.rs`. Transports classify only what
//! they see (connect failure, reset, timeout); HTTP statuses are the adapter's business.

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use http::HeaderMap;

use super::WireRequest;
use crate::error::{Error, ErrorKind, Result};

/// Largest non-streamed body or error body we will read.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Response body as a stream of chunks. An `Err` item means the connection broke mid-body.
pub type BodyStream = BoxStream<'static, Result<Bytes>>;

pub struct WireResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: BodyStream,
}

impl std::fmt::Debug for WireResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireResponse").field("status", &self.status).field("headers", &self.headers).finish()
    }
}

pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Send the request and return once response headers have arrived.
    fn send(&self, req: WireRequest) -> BoxFuture<'static, Result<WireResponse>>;
}

#[derive(Debug, Clone)]
pub struct TransportOptions {
    pub connect_timeout: Duration,
    /// Idle pooled connections per host. Loopback benchmarks at concurrency 512 want many.
    pub pool_max_idle_per_host: usize,
    pub pool_idle_timeout: Duration,
    /// Requests to plain-`http` providers on the inline clients (`provider::inline`) rather
    /// than reqwest: the calling thread's for sync calls, the awaiting task's for async ones.
    /// Off also when the environment configures a proxy or sets `POLYROUTE_INLINE_HTTP=0`.
    pub inline_http: bool,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            connect_timeout: Duration::from_secs(10),
            pool_max_idle_per_host: 1024,
            pool_idle_timeout: Duration::from_secs(90),
            inline_http: true,
        }
    }
}

/// Real HTTP over reqwest. One client (one connection pool) is shared by every provider of a
/// router; cloning is cheap.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    urls: UrlCache,
    /// Sync callers' requests to plain-`http` providers (`inline`); `None` when the
    /// options or the environment turn that off.
    inline: Option<std::sync::Arc<super::inline::Pool>>,
    /// Async callers' whole-body requests to plain-`http` providers; off with `inline`.
    direct: Option<std::sync::Arc<super::inline::AsyncPool>>,
}

/// Parsed URLs by their text: a router sends to a handful of URLs, and parsing one per request
/// (host and IDNA checks included) was ~4 % of a routed call's CPU. Bounded; emptied when
/// full (rotating keys in a Gemini query make new URLs). Never printed: URLs may hold keys.
#[derive(Clone, Default)]
struct UrlCache(std::sync::Arc<std::sync::Mutex<crate::FastMap<String, reqwest::Url>>>);

const URL_CACHE_MAX: usize = 256;

impl UrlCache {
    fn get(&self, text: &str) -> std::result::Result<reqwest::Url, String> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = m.get(text) {
            return Ok(u.clone());
        }
        // The parse error names the problem, never the URL (it may carry a key).
        let u = reqwest::Url::parse(text).map_err(|e| format!("invalid provider URL: {e}"))?;
        if m.len() >= URL_CACHE_MAX {
            m.clear();
        }
        m.insert(text.to_string(), u.clone());
        Ok(u)
    }
}

impl std::fmt::Debug for UrlCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlCache")
    }
}

impl HttpTransport {
    pub fn new(opts: &TransportOptions) -> Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .pool_max_idle_per_host(opts.pool_max_idle_per_host)
            .pool_idle_timeout(opts.pool_idle_timeout)
            .tcp_nodelay(true)
            // We never follow redirects for API calls: a redirect would drop or leak auth headers.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::config(format!("cannot build HTTP client: {e}")))?;
        let on = opts.inline_http && super::inline::enabled_by_env();
        let inline = on.then(|| {
            std::sync::Arc::new(super::inline::Pool::new(opts.pool_max_idle_per_host, opts.pool_idle_timeout, opts.connect_timeout, MAX_BODY_BYTES))
        });
        let direct = on.then(|| {
            std::sync::Arc::new(super::inline::AsyncPool::new(
                opts.pool_max_idle_per_host,
                opts.pool_idle_timeout,
                opts.connect_timeout,
                MAX_BODY_BYTES,
            ))
        });
        Ok(HttpTransport { client, urls: UrlCache::default(), inline, direct })
    }
}

/// Map a reqwest failure without echoing the URL's query (Gemini puts keys there) or any
/// header. reqwest's Display includes the URL, so we strip it first.
pub(crate) fn map_reqwest_error(e: reqwest::Error, during_body: bool) -> Error {
    // Everything but a timeout is a connection problem from the router's point of view;
    // `during_body` only changes the wording (the endpoint turns it into stream_interrupted).
    let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Connection };
    let e = e.without_url();
    let mut msg = if during_body { format!("body read failed: {e}") } else { e.to_string() };
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    Error::new(kind, msg)
}

impl Transport for HttpTransport {
    fn send(&self, req: WireRequest) -> BoxFuture<'static, Result<WireResponse>> {
        let url = match self.urls.get(&req.url) {
            Ok(u) => u,
            // As reqwest classified it when it parsed: a connection failure (another
            // deployment may well have a good URL).
            Err(msg) => return Box::pin(async move { Err(Error::new(ErrorKind::Connection, msg)) }),
        };
        if url.scheme() == "http" {
            if let (Some(deadline), Some(pool)) = (super::inline::here(), &self.inline) {
                let r = pool.send(&url, req, deadline).map(|(status, headers, body)| {
                    let body = futures::stream::once(std::future::ready(Ok(Bytes::from(body)))).boxed();
                    WireResponse { status, headers, body }
                });
                return Box::pin(std::future::ready(r));
            }
            #[cfg(unix)]
            if let (true, Some(pool)) = (super::inline::driving(), &self.inline) {
                let sent = pool.clone().send_driven(url, req, super::inline::streaming());
                return Box::pin(async move {
                    let (status, headers, body) = sent.await?;
                    Ok(WireResponse { status, headers, body })
                });
            }
            if let Some(pool) = &self.direct {
                let sent = pool.clone().send(url, req, super::inline::streaming());
                return Box::pin(async move {
                    let (status, headers, body) = sent.await?;
                    Ok(WireResponse { status, headers, body })
                });
            }
        }
        let rb = self.client.request(req.method, url).headers(req.headers).body(req.body);
        Box::pin(async move {
            let resp = rb.send().await.map_err(|e| map_reqwest_error(e, false))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.bytes_stream().map(|r| r.map_err(|e| map_reqwest_error(e, true))).boxed();
            Ok(WireResponse { status, headers, body })
        })
    }
}

/// Read a whole body, refusing more than `limit` bytes (a misbehaving server must not be
/// able to make us allocate without bound).
pub async fn read_body(mut body: BodyStream, limit: usize) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if buf.len() + chunk.len() > limit {
            return Err(Error::malformed(format!("response body larger than {limit} bytes")));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_once_and_bad_ones_are_typed_errors_without_the_url() {
        let c = UrlCache::default();
        let a = c.get("http://127.0.0.1:9/v1/chat/completions?key=k-secret").unwrap();
        assert_eq!(a.path(), "/v1/chat/completions");
        assert_eq!(c.get("http://127.0.0.1:9/v1/chat/completions?key=k-secret").unwrap(), a);
        assert_eq!(c.0.lock().unwrap().len(), 1);
        let e = c.get("not a url?key=k-secret").unwrap_err();
        assert!(e.starts_with("invalid provider URL") && !e.contains("k-secret"), "{e}");
        for i in 0..URL_CACHE_MAX + 1 {
            c.get(&format!("http://h{i}.test/")).unwrap();
        }
        assert!(c.0.lock().unwrap().len() <= URL_CACHE_MAX);
        let t = HttpTransport::new(&TransportOptions::default()).unwrap();
        t.urls.get("http://127.0.0.1:9/?key=k-secret").unwrap();
        assert!(!format!("{t:?}").contains("k-secret"));
    }
}
