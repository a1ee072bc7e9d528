//! `polyroute-mock-server`: a loopback HTTP/1.1 server that speaks the OpenAI (and Azure
//! OpenAI), Anthropic and Gemini wire formats with scripted faults.
//!
//! It is the one fake provider every suite uses: Rust tests start it in-process with
//! [`start`], Python/Node/Swift harnesses run the binary and read its `LISTENING` line,
//! benchmarks hammer it. Scripts, renderers and fault plans are the core's
//! (`polyroute::provider::mock`), so the in-process `MockTransport` and this server behave
//! identically; this crate only adds HTTP (see `conn.rs` for why it is hand-rolled), the
//! control API (`control.rs`) and the attempt log (`state.rs`).
//!
//! It binds 127.0.0.1 only: it is a test double and must never be reachable from outside.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use polyroute::provider::mock::{MockScript, MockStep};
//! let server = polyroute_mock_server::start(Default::default()).await?;
//! server.set_script("gpt-4o", MockScript::new(vec![MockStep::error(429).with_retry_after("2")])).unwrap();
//! // point an OpenAI provider at server.base_url() ...
//! assert_eq!(server.log().len(), 0);
//! server.shutdown().await;
//! # Ok(()) }
//! ```

// The core's `Error` is returned by value (see core/src/lib.rs).
#![allow(clippy::result_large_err)]

mod conn;
mod control;
pub mod redis;
mod state;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use polyroute::provider::mock::MockScript;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use state::LogEntry;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// 0 picks a free port.
    pub port: u16,
    /// Most log entries kept (oldest dropped first); 0 disables the log (benchmarks).
    pub log_capacity: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions { port: 0, log_capacity: 10_000 }
    }
}

/// A running server. Dropping it stops the server too (without waiting).
#[derive(Debug)]
pub struct MockServerHandle {
    addr: SocketAddr,
    shared: Arc<state::Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// Bind 127.0.0.1:`port` and serve on the current tokio runtime.
pub async fn start(opts: ServerOptions) -> std::io::Result<MockServerHandle> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, opts.port)).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(state::Shared::new(opts.log_capacity));
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, shared.clone(), stop_rx));
    Ok(MockServerHandle { addr, shared, stop, task: Some(task) })
}

async fn accept_loop(listener: TcpListener, shared: Arc<state::Shared>, stop: watch::Receiver<bool>) {
    let mut stop_accept = stop.clone();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    // SSE events must leave as soon as they are written.
                    let _ = stream.set_nodelay(true);
                    let conn = conn::Conn::new(stream, shared.clone());
                    let mut stop = stop.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = conn.serve() => {}
                            _ = stopped(&mut stop) => {}
                        }
                    });
                }
                // Out of file descriptors under a benchmark, or an aborted handshake: back
                // off briefly instead of spinning, and keep serving.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
            _ = stopped(&mut stop_accept) => return,
        }
    }
}

/// Resolves once stop is signalled (or the handle is gone). The guard `wait_for` returns is
/// dropped here, so callers' futures stay `Send`.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

impl MockServerHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://127.0.0.1:PORT` (Anthropic, Gemini and Azure base URLs).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// `http://127.0.0.1:PORT/v1`, the base URL an OpenAI-style client wants.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
    /// Install or replace a script (its step counter and timeline restart).
    pub fn set_script(&self, name: &str, script: MockScript) -> polyroute::Result<()> {
        script.validate()?;
        self.shared.set_script(name, script);
        Ok(())
    }
    pub fn remove_script(&self, name: &str) -> bool {
        self.shared.remove_script(name)
    }
    /// Clear scripts and the log.
    pub fn reset(&self) {
        self.shared.reset();
    }
    /// Every attempt seen since start or the last reset, in arrival order.
    pub fn log(&self) -> Vec<LogEntry> {
        self.shared.log(None)
    }
    /// Attempts served by one script.
    pub fn log_for(&self, script: &str) -> Vec<LogEntry> {
        self.shared.log(Some(script))
    }
    /// Milliseconds since the server started (the log's time base).
    pub fn now_ms(&self) -> f64 {
        self.shared.now_ms()
    }
    /// Stop accepting, close every connection, and wait for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for MockServerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
