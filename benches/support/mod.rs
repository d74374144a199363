//! What the bench binaries share.

/// The process's peak resident set so far (VmHWM), in KiB; 0 where /proc is not there.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The same in MB (KiB / 1024, as the benches have always printed it).
#[allow(dead_code)] // not every bench prints MB
pub fn peak_rss_mb() -> u64 {
    peak_rss_kib() / 1024
}
