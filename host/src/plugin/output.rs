//! Plugin output (stdout, stderr, `log` calls) kept in memory with a size cap.
//!
//! wasmtime-wasi's `MemoryOutputPipe` traps the guest once it is full; a chatty plugin must not
//! fail its item for that, so this pipe keeps the first bytes, counts the rest and drops them.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// One piece of plugin output. `source` is `stdout`, `stderr` or the level of a `log` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub source: &'static str,
    pub text: String,
}

#[derive(Debug, Default)]
struct Buffer {
    entries: Vec<(&'static str, Vec<u8>)>,
    kept: usize,
    dropped: u64,
}

/// The shared, capped log of one plugin instance.
#[derive(Clone, Debug)]
pub(crate) struct PluginLog {
    cap: usize,
    inner: Arc<Mutex<Buffer>>,
}

impl PluginLog {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            inner: Arc::default(),
        }
    }

    pub(crate) fn append(&self, source: &'static str, bytes: &[u8]) {
        let mut buf = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.cap.saturating_sub(buf.kept);
        let keep = bytes.len().min(room);
        buf.dropped += (bytes.len() - keep) as u64;
        if keep == 0 {
            return;
        }
        buf.kept += keep;
        match buf.entries.last_mut() {
            // Streams arrive in chunks; a `log` call is always its own entry.
            Some((s, text)) if *s == source && matches!(source, "stdout" | "stderr") => {
                text.extend_from_slice(&bytes[..keep])
            }
            _ => buf.entries.push((source, bytes[..keep].to_vec())),
        }
    }

    /// Takes what was logged so far, with a note when bytes were dropped at the cap.
    pub(crate) fn take(&self) -> Vec<LogEntry> {
        let mut buf = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Buffer {
            entries, dropped, ..
        } = std::mem::take(&mut *buf);
        let mut out: Vec<LogEntry> = entries
            .into_iter()
            .map(|(source, bytes)| LogEntry {
                source,
                text: String::from_utf8_lossy(&bytes).into_owned(),
            })
            .collect();
        if dropped > 0 {
            out.push(LogEntry {
                source: "host",
                text: format!(
                    "plugin output truncated: {dropped} more bytes dropped (cap {} bytes)",
                    self.cap
                ),
            });
        }
        out
    }

    /// The last `max` bytes the plugin wrote to stderr (where a Rust panic message goes).
    pub(crate) fn stderr_tail(&self, max: usize) -> String {
        let buf = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = Vec::new();
        for (source, bytes) in &buf.entries {
            if *source == "stderr" {
                all.extend_from_slice(bytes);
            }
        }
        let start = all.len().saturating_sub(max);
        String::from_utf8_lossy(&all[start..]).trim().to_string()
    }

    pub(crate) fn pipe(&self, source: &'static str) -> CappedPipe {
        CappedPipe {
            source,
            log: self.clone(),
        }
    }
}

/// A WASI output stream writing into a [`PluginLog`]; it never blocks and never fails.
#[derive(Clone, Debug)]
pub(crate) struct CappedPipe {
    source: &'static str,
    log: PluginLog,
}

/// The most a guest may write per `write` call; a small permit keeps each host call cheap.
const PERMIT: usize = 64 << 10;

impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.log.append(self.source, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.log.append(self.source, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_first_bytes_and_counts_the_rest() {
        let log = PluginLog::new(10);
        log.append("stdout", b"hello ");
        log.append("stdout", b"world!!");
        log.append("info", b"x");
        let entries = log.take();
        assert_eq!(entries[0].text, "hello worl");
        assert_eq!(entries[1].source, "host");
        assert!(
            entries[1].text.contains("4 more bytes dropped"),
            "{entries:?}"
        );
        assert!(log.take().is_empty());
    }
}
