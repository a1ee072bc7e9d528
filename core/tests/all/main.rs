//! Every integration test of the core, as one test binary.
//!
//! Each module here was its own test crate (`core/tests/<name>.rs`); one binary links once
//! instead of twenty times, which dominates `cargo test` on a small machine. Run a part with
//! a filter on the module path:
//!
//! ```text
//! cargo test -p polyroute --test all                    # everything
//! cargo test -p polyroute --test all router_inproc::    # one former file
//! cargo test -p polyroute --test all scenarios::        # the scenario runner
//! ```
//!
//! Tests of all modules run on parallel threads of one process: anything process-global
//! (environment variables, fixed ports, the current directory) goes through `common`.

// The core's `Error` is returned by value (see core/src/lib.rs).
#![allow(clippy::result_large_err)]

mod common;

mod anthropic_fixtures;
mod anthropic_http;
mod anthropic_mock_server;
mod azure_http;
mod azure_mock_server;
mod cache;
mod catalog_cost;
mod conformance;
mod gemini_fixtures;
mod gemini_http;
mod gemini_mock_server;
mod guards;
mod host_keys;
mod inline_drive;
mod inline_driven;
mod inline_http;
mod mock_server_parity;
mod mock_wire_shapes;
mod openai_fixtures;
mod openai_http;
mod otlp;
mod parsing_regressions;
mod rollout;
mod router_http;
mod router_inproc;
mod scenarios;
mod state_redis;
mod telemetry;
