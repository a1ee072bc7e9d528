//! Helpers shared by the integration-test modules of this one test binary.
//!
//! All of `core/tests` is one binary (`tests/all/main.rs`): one link instead of twenty, which
//! is most of the build time on a small machine. The price is that every test runs on a
//! thread of the same process, so process-global state must be handled here, once:
//! environment variables go through [`set_env`] (unique names per test, set under one lock),
//! and every server binds an ephemeral port on 127.0.0.1.
//!
//! - `support`: decode bytes through a provider's stream decoder, load VCR cassettes;
//! - `loopback`: a byte-exact canned HTTP server for the `*_http` adapter tests;
//! - `mock_server`: the loopback mock server (`tests/mock-server`) driven by one adapter.
#![allow(dead_code)]

pub mod loopback;
pub mod mock_server;
pub mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use polyroute::provider::{build_provider, Endpoint, HttpTransport, ProviderConfig, TransportOptions};
use polyroute_mock_server::{MockServerHandle, ServerOptions};

/// The API key the adapter tests send: recognisably fake, so a leak check can look for it.
pub const KEY: &str = "sk-test-not-a-real-key";

/// `core/` (this crate's manifest directory), for data paths that must not depend on the
/// working directory the test runner picked.
pub fn core_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One adapter over real HTTP (reqwest with default options), as the router builds it.
pub fn http_endpoint(cfg: ProviderConfig) -> Endpoint {
    let transport = HttpTransport::new(&TransportOptions::default()).expect("http client");
    Endpoint::new(build_provider(cfg).expect("provider"), Arc::new(transport))
}

/// The loopback mock server on an ephemeral port.
pub async fn mock_server() -> MockServerHandle {
    polyroute_mock_server::start(ServerOptions::default()).await.expect("mock server binds 127.0.0.1")
}

static ENV: Mutex<()> = Mutex::new(());

/// Set an environment variable for a test. Tests share the process, so each test uses its
/// own variable name (never one another test reads or expects unset) and sets it here,
/// under one lock, so two tests never write the environment at the same time.
pub fn set_env(name: &str, value: &str) {
    let _g = ENV.lock().unwrap_or_else(|p| p.into_inner());
    std::env::set_var(name, value);
}
