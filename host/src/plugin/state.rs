//! What a plugin's `Store` holds: its WASI context (nothing of the host but what a world needs),
//! its limiter, and its log.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use super::limits::{Limiter, Limits};
use super::output::PluginLog;

pub(crate) struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) log: PluginLog,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The wall clock every plugin sees: 2000-01-01T00:00:00Z, always.
const FIXED_WALL_CLOCK: Duration = Duration::from_secs(946_684_800);

struct FixedWallClock;

impl HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        FIXED_WALL_CLOCK
    }
}

/// A monotonic clock that advances one microsecond per reading, so guest code that waits for
/// time to pass still terminates, and does so identically on every run.
#[derive(Default)]
struct TickingClock(AtomicU64);

impl HostMonotonicClock for TickingClock {
    fn resolution(&self) -> u64 {
        1_000
    }
    fn now(&self) -> u64 {
        self.0.fetch_add(1_000, Ordering::Relaxed)
    }
}

/// 64 KiB of pseudo-random bytes derived from the seed; the WASI generators cycle through them.
fn random_bytes(seed: u64, domain: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 << 10);
    let mut counter = 0u64;
    while out.len() < 64 << 10 {
        let mut h = Sha256::new();
        h.update(domain.as_bytes());
        h.update(seed.to_le_bytes());
        h.update(counter.to_le_bytes());
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out
}

impl StoreState {
    /// A sandbox with no network, no environment, no arguments, no stdin, fixed clocks and
    /// seeded randomness; `preopen` is the only directory the guest can see (at `/workspace`).
    pub(crate) fn new(limits: &Limits, preopen: Option<&Path>) -> wasmtime::Result<Self> {
        let log = PluginLog::new(limits.log_bytes);
        let mut b = WasiCtxBuilder::new();
        b.stdout(log.pipe("stdout"))
            .stderr(log.pipe("stderr"))
            .wall_clock(FixedWallClock)
            .monotonic_clock(TickingClock::default())
            .secure_random(wasmtime_wasi::Deterministic::new(random_bytes(
                limits.seed,
                "secure",
            )))
            .insecure_random(wasmtime_wasi::Deterministic::new(random_bytes(
                limits.seed,
                "insecure",
            )))
            .insecure_random_seed(u128::from(limits.seed))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .allow_blocking_current_thread(true);
        if let Some(dir) = preopen {
            b.preopened_dir(dir, "/workspace", wasmtime_wasi::FsPerms::ReadWrite)?;
        }
        Ok(Self {
            wasi: b.build(),
            table: ResourceTable::new(),
            limiter: Limiter::new(limits),
            log,
        })
    }
}
