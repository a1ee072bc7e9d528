//! `polyroute-mock-server` binary: what Python, Node and Swift test harnesses (and the
//! benchmarks) run.
//!
//! Contract with harnesses: exactly one line `LISTENING http://127.0.0.1:PORT` on stdout once
//! the socket accepts, then nothing else on stdout. The process exits when killed, or when
//! its stdin reaches EOF if stdin is a pipe or socket, so a harness that dies (and with it
//! the write end of the pipe) cannot leave a server behind. A stdin that is a terminal,
//! a file or `/dev/null` is not watched, or the server would exit at once when started
//! detached; `--no-stdin-exit` turns the watch off explicitly.

use std::io::{Read, Write};

const USAGE: &str = "usage: polyroute-mock-server [--port N (default 0: any free port)] [--threads N] \
[--log-capacity N (default 10000; 0 disables the log)] [--no-stdin-exit]";

struct Args {
    port: u16,
    threads: Option<usize>,
    log_capacity: usize,
    stdin_exit: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { port: 0, threads: None, log_capacity: 10_000, stdin_exit: true };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = |name: &str| inline.clone().or_else(|| it.next()).ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--port" => a.port = value("--port")?.parse().map_err(|e| format!("--port: {e}"))?,
            "--threads" => {
                let n: usize = value("--threads")?.parse().map_err(|e| format!("--threads: {e}"))?;
                a.threads = Some(n.max(1));
            }
            "--log-capacity" => a.log_capacity = value("--log-capacity")?.parse().map_err(|e| format!("--log-capacity: {e}"))?,
            "--no-stdin-exit" => a.stdin_exit = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(a)
}

/// Only a pipe or socket has a writer whose death we can observe as EOF.
fn stdin_is_watchable() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        std::fs::metadata("/dev/stdin").map(|m| m.file_type().is_fifo() || m.file_type().is_socket()).unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("polyroute-mock-server: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.threads {
        rt.worker_threads(n);
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("polyroute-mock-server: cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async {
        let opts = polyroute_mock_server::ServerOptions { port: args.port, log_capacity: args.log_capacity };
        let server = match polyroute_mock_server::start(opts).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("polyroute-mock-server: cannot bind 127.0.0.1:{}: {e}", args.port);
                std::process::exit(1);
            }
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "LISTENING {}", server.url());
        let _ = out.flush();
        drop(out);
        if args.stdin_exit && stdin_is_watchable() {
            std::thread::spawn(|| {
                let mut buf = [0u8; 4096];
                let mut stdin = std::io::stdin().lock();
                loop {
                    match stdin.read(&mut buf) {
                        Ok(0) | Err(_) => std::process::exit(0),
                        Ok(_) => {}
                    }
                }
            });
        }
        // Serve until killed (or the stdin watcher exits the process).
        std::future::pending::<()>().await;
        drop(server);
    });
}
