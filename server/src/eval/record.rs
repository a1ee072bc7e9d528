//! `results.jsonl`: one line per (case, deployment) run, appended and flushed as each one
//! finishes, so an interrupted eval loses at most the runs in flight. Checks are not stored:
//! they are judged from the stored answer when the report is written, so fixing an
//! expectation in the dataset needs no new request.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolCallRecord {
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// The router's error kind (`server_error`, `rate_limited`, `timeout`...).
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub case: String,
    pub deployment: String,
    pub request_hash: String,
    /// The answer text (partial text for an interrupted stream).
    #[serde(default)]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorRecord>,
    /// From sending to the first content event; absent when none arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    pub total_ms: f64,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    /// `None` when the deployment has no pricing (the catalog does not know its model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Unix time in milliseconds when the run finished.
    pub finished_at_ms: u64,
}

impl RunRecord {
    pub fn refused(&self) -> bool {
        self.refusal.as_deref().is_some_and(|r| !r.is_empty()) || self.finish_reason.as_deref() == Some("content_filter")
    }
}

/// The earlier results, keyed by (case, deployment); the last line for a pair wins (a run
/// with `--retry-errors` appends a new answer after the old error).
pub struct Previous {
    pub runs: HashMap<(String, String), RunRecord>,
    /// Unreadable lines (a write cut by a crash), reported and otherwise ignored.
    pub bad_lines: Vec<usize>,
}

pub fn load(path: &Path) -> Result<Previous, String> {
    let mut prev = Previous { runs: HashMap::new(), bad_lines: Vec::new() };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(prev),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RunRecord>(line) {
            Ok(r) => {
                prev.runs.insert((r.case.clone(), r.deployment.clone()), r);
            }
            Err(_) => prev.bad_lines.push(i + 1),
        }
    }
    Ok(prev)
}

/// Appends records one line at a time. A file cut mid-line by a crash gets a newline first,
/// so the next record is not glued onto the broken one.
pub struct Appender {
    file: std::fs::File,
    pub path: PathBuf,
}

impl Appender {
    pub fn open(path: &Path) -> Result<Appender, String> {
        let needs_newline = match std::fs::read(path) {
            Ok(b) => b.last().is_some_and(|&c| c != b'\n'),
            Err(_) => false,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open {} for appending: {e}", path.display()))?;
        if needs_newline {
            file.write_all(b"\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(Appender { file, path: path.to_path_buf() })
    }

    pub fn append(&mut self, r: &RunRecord) -> Result<(), String> {
        let mut line = serde_json::to_string(r).map_err(|e| format!("cannot encode a result: {e}"))?;
        line.push('\n');
        // One write per line: with O_APPEND a line lands whole, and flushing each keeps the
        // file resumable whatever kills the process.
        self.file.write_all(line.as_bytes()).and_then(|_| self.file.flush()).map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}
