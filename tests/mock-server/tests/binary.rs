//! The binary's contract with other languages' harnesses: one `LISTENING` line on stdout,
//! serving until killed, and exiting when the parent closes its stdin pipe.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn prints_listening_serves_and_exits_on_stdin_eof() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_polyroute-mock-server"))
        .args(["--port", "0", "--threads", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let url = line.strip_prefix("LISTENING http://").unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    assert!(url.starts_with("127.0.0.1:"), "{url}");
    let health = get(url, "/_mock/health");
    assert!(health.starts_with("HTTP/1.1 200") && health.contains("\"ok\":true"), "{health}");

    drop(child.stdin.take()); // the harness "dies"
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "server did not exit on stdin EOF");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(lines.next().is_none(), "nothing else on stdout");
}

#[test]
fn no_stdin_exit_keeps_serving_and_bad_args_fail() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_polyroute-mock-server"))
        .arg("--no-stdin-exit")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let line = BufReader::new(child.stdout.take().unwrap()).lines().next().unwrap().unwrap();
    let url = line.strip_prefix("LISTENING http://").unwrap().to_string();
    drop(child.stdin.take());
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "must keep running");
    assert!(get(&url, "/_mock/health").starts_with("HTTP/1.1 200"));
    child.kill().unwrap();
    child.wait().unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_polyroute-mock-server")).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
