//! An optional, tiny `/metrics` endpoint for processes that have no HTTP server of their own
//! (a worker, a CLI, a mobile app in development). It runs on its own OS thread with blocking
//! I/O, so it needs no async runtime and works the same from every binding.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

/// A running endpoint; dropping it stops the server.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl MetricsServer {
    /// Serve `render()` on `GET /metrics` at `addr` (e.g. `127.0.0.1:9464`; port 0 picks one).
    pub fn start(addr: &str, render: impl Fn() -> String + Send + 'static) -> Result<MetricsServer> {
        let listener = TcpListener::bind(addr).map_err(|e| Error::config(format!("cannot bind metrics endpoint {addr}: {e}")))?;
        let local = listener.local_addr().map_err(|e| Error::config(e.to_string()))?;
        // Non-blocking accept with a short sleep lets the thread notice `stop` promptly.
        listener.set_nonblocking(true).map_err(|e| Error::config(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::Builder::new()
            .name("polyroute-metrics".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut sock, _)) => {
                            let _ = sock.set_nonblocking(false);
                            let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
                            let mut line = String::new();
                            let _ = BufReader::new(&mut sock).read_line(&mut line);
                            let (status, ctype, body) = if line.starts_with("GET /metrics ") || line.starts_with("GET /metrics?") {
                                ("200 OK", "text/plain; version=0.0.4; charset=utf-8", render())
                            } else {
                                ("404 Not Found", "text/plain", "not found\n".to_string())
                            };
                            let _ = write!(
                                sock,
                                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            );
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
            .map_err(|e| Error::config(format!("cannot start metrics thread: {e}")))?;
        Ok(MetricsServer { addr: local, stop })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
