//! `polyroute`: the router behind HTTP for languages without a binding, and the operator's
//! policy tools.
//!
//! - `polyroute serve policy.yaml [--listen 127.0.0.1:4000]`: an OpenAI-compatible gateway
//!   (`/v1/chat/completions`, `/v1/models`, `/metrics`, `/healthz`, `/readyz`) over the same
//!   core the Python, Node and Swift bindings load: one implementation of routing and failover.
//! - `polyroute check policy.yaml [--format json]`: every problem with its path; exit 0 or 1.
//! - `polyroute plan policy.yaml --request req.json`: where a request would go and why,
//!   without sending it.
//! - `polyroute eval policy.yaml dataset.jsonl --deployments a,b`: every case of a dataset
//!   against every candidate deployment; a Markdown report, JSON and a chart (see `eval/`).
//! - `polyroute schema`: the policy's JSON Schema (also committed as
//!   `schema/policy.schema.json`, which editors use through the example policies).

// The core's `Error` is returned by value on purpose (see core/src/lib.rs).
#![allow(clippy::result_large_err)]

/// mimalloc: glibc's malloc and free were ~30 % of a routed call's instructions (issue 18).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod access;
mod eval;
mod listen;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use polyroute::{Policy, Router};

#[derive(Parser)]
#[command(name = "polyroute", version, about = "Polyroute: route LLM requests across providers with failover")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the OpenAI chat-completions API, routed by the policy.
    Serve {
        policy: PathBuf,
        #[arg(long, default_value = "127.0.0.1:4000")]
        listen: String,
        /// Largest request body accepted, in bytes.
        #[arg(long, default_value_t = 8 * 1024 * 1024)]
        max_body: usize,
        /// Chat requests served at once (a stream counts until its last byte); beyond, 503.
        #[arg(long, default_value_t = 4096)]
        max_concurrent: usize,
        /// On SIGTERM/SIGINT: how long in-flight requests may finish before the process exits.
        #[arg(long, default_value = "30", value_name = "SECONDS")]
        grace: u64,
        /// Connections open at once; one more gets 503 and is closed.
        #[arg(long, default_value_t = 10_000)]
        max_connections: usize,
        /// How long a connection may take to send a request head, counted from its opening or
        /// its previous answer (idle keep-alive and slow clients alike), and a request its body.
        /// A partial head or body at the deadline gets 408; an idle connection is closed.
        #[arg(long, default_value = "30", value_name = "SECONDS")]
        idle_timeout: f64,
        /// Largest request head (request line and headers) accepted, in bytes; beyond, 431.
        #[arg(long, default_value_t = 32 * 1024)]
        max_header_bytes: usize,
    },
    /// Validate a policy: every problem with its path; exit code 1 if there is any.
    Check {
        policy: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Where a request (an OpenAI chat-completions body) would go, and why, without sending.
    Plan {
        policy: PathBuf,
        #[arg(long)]
        request: PathBuf,
    },
    /// Run a dataset (JSON Lines of requests and expectations) against candidate deployments
    /// and report pass rates, latency and cost (report.md, report.json, chart.png in --out).
    Eval {
        policy: PathBuf,
        dataset: PathBuf,
        /// Comma-separated deployments to compare (default: every deployment of the policy).
        #[arg(long)]
        deployments: Option<String>,
        /// Results directory; a re-run with the same one skips the runs already recorded.
        #[arg(long, default_value = "polyroute-eval")]
        out: PathBuf,
        /// Runs in flight at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Stop starting runs once this much is recorded as spent in --out (USD).
        #[arg(long, value_name = "USD")]
        max_spend: Option<f64>,
        /// Longest one run may take.
        #[arg(long, default_value = "120", value_name = "SECONDS")]
        timeout: f64,
        /// Skip malformed dataset lines (each reported with its line number) instead of failing.
        #[arg(long)]
        skip_invalid: bool,
        /// Run again the (case, deployment) pairs whose recorded result is an error.
        #[arg(long)]
        retry_errors: bool,
    },
    /// Print the policy's JSON Schema (generated from the types the loader reads).
    Schema,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { policy, listen, max_body, max_concurrent, grace, max_connections, idle_timeout, max_header_bytes } => {
            if !(idle_timeout.is_finite() && idle_timeout > 0.0) {
                return fail("--idle-timeout must be a positive number of seconds");
            }
            let limits = listen::Limits { max_connections, idle_timeout: std::time::Duration::from_secs_f64(idle_timeout), max_header_bytes };
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return fail(&format!("cannot start the runtime: {e}")),
            };
            match rt.block_on(serve::run(serve::Options {
                policy,
                listen,
                max_body,
                max_concurrent,
                grace: std::time::Duration::from_secs(grace),
                limits,
            })) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Check { policy, format } => check(&policy, format),
        Command::Eval { policy, dataset, deployments, out, concurrency, max_spend, timeout, skip_invalid, retry_errors } => {
            if !(timeout.is_finite() && timeout > 0.0) {
                return fail("--timeout must be a positive number of seconds");
            }
            let timeout = std::time::Duration::from_secs_f64(timeout);
            match eval::run(eval::Options { policy, dataset, deployments, out, concurrency, max_spend, timeout, skip_invalid, retry_errors }) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Plan { policy, request } => plan(&policy, &request),
        Command::Schema => {
            println!("{}", serde_json::to_string_pretty(&polyroute::policy::policy_json_schema()).unwrap_or_default());
            ExitCode::SUCCESS
        }
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("polyroute: {msg}");
    ExitCode::FAILURE
}

fn check(path: &PathBuf, format: Format) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return fail(&format!("cannot read {}: {e}", path.display())),
    };
    let mut issues = Policy::check(&text);
    if issues.is_empty() {
        // What only building a router finds: a hosted provider without a key (the gateway has
        // no app to ask for one), catalog files, endpoints.
        if let Err(e) = Router::from_policy_str(&text) {
            let at = |l: &str| l.split_once(": ").map(|(p, m)| (p.to_string(), m.to_string())).unwrap_or_default();
            let lines: Vec<&str> = e.message.lines().filter_map(|l| l.strip_prefix("- ")).collect();
            if lines.is_empty() {
                issues.push(polyroute::policy::PolicyIssue { path: String::new(), message: e.message.clone() });
            }
            for l in lines {
                let (path, message) = at(l);
                issues.push(polyroute::policy::PolicyIssue { path, message });
            }
        }
    }
    match format {
        Format::Json => println!("{}", serde_json::json!({"ok": issues.is_empty(), "problems": issues})),
        Format::Text if issues.is_empty() => println!("{}: ok", path.display()),
        Format::Text => {
            println!("{}: {} problem{}", path.display(), issues.len(), if issues.len() == 1 { "" } else { "s" });
            for i in &issues {
                println!("  {i}");
            }
        }
    }
    if issues.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn plan(policy: &PathBuf, request: &PathBuf) -> ExitCode {
    let router = match Router::from_policy_file(policy) {
        Ok(r) => r,
        Err(e) => return fail(&e.message),
    };
    let req = match std::fs::read_to_string(request)
        .map_err(|e| e.to_string())
        .and_then(|t| polyroute::bridge::request_from_json(&t).map_err(|e| e.message))
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("{}: {e}", request.display())),
    };
    match router.plan(&req) {
        Ok(p) => {
            println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("{}: {}", e.kind, e.message)),
    }
}
