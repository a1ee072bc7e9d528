//! Starting the real `polyroute serve` binary for a test: its policy in a temporary file, a
//! loopback port chosen by the OS (read from its start line), its stderr kept for assertions,
//! and the process killed when the test lets go of it.

#![allow(dead_code)] // each test file uses its part

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

pub struct Gateway {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The policy file it serves (tests rewrite it to exercise reloads).
    pub policy: PathBuf,
    /// Everything it wrote to stderr so far.
    pub stderr: Arc<Mutex<String>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// `polyroute serve` on `policy_text`; `tag` keeps concurrent tests' files apart.
    pub fn start(tag: &str, policy_text: &str, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let dir = std::env::temp_dir().join(format!("polyroute-gw-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let policy = dir.join("policy.yaml");
        std::fs::write(&policy, policy_text).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_polyroute"))
            .args(["serve", policy.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let url = first.split("serving ").nth(1).and_then(|r| r.split(' ').next()).unwrap_or_else(|| panic!("{first}")).to_string();
        let stderr = Arc::new(Mutex::new(format!("{first}\n")));
        let sink = stderr.clone();
        // Read on, so the gateway never blocks on a full pipe.
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
        });
        Gateway { child, url, policy, stderr }
    }

    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `HUP`) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill -{sig}");
    }
}
