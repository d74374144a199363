//! What a plugin's `Store` holds: its WASI context (nothing of the host but what a world needs),
//! its limiter, and its log.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use super::limits::{Limiter, Limits};
use super::output::PluginLog;
use super::write_log::WriteLog;
use crate::trajectory::Message;

/// A completion asked for by a plugin, in the host's message model.
pub struct LlmRequest {
    pub messages: Vec<Message>,
    pub tools: Vec<serde_json::Value>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

/// What answers a plugin's `llm.complete`: the pipeline's teacher, bound to an item.
pub type LlmFn = Box<dyn FnMut(LlmRequest) -> Result<Message, String> + Send>;

pub(crate) struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) log: PluginLog,
    pub(crate) writes: WriteLog,
    /// The teacher, for worlds that import `llm`.
    pub(crate) llm: Option<LlmFn>,
    /// The token counter, for worlds that import `tokenizer`.
    pub(crate) tokens: Option<std::sync::Arc<crate::tokenizer::TokenCounter>>,
    /// Commands, for the tools world that imports `exec`.
    pub(crate) exec: Option<Box<dyn super::exec_host::ExecHost>>,
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

/// The guest's random numbers: SplitMix64 from the configured seed. Written out here rather than
/// taken from `rand` because its output must never change with a dependency upgrade: audits
/// rebuild shards from plugin outputs, and a plugin may draw random numbers.
struct SeededRng(u64);

impl SeededRng {
    /// Distinct streams for `wasi:random/random` and `wasi:random/insecure` from one seed.
    fn new(seed: u64, stream: u64) -> Self {
        Self(seed ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03))
    }
}

impl rand_core::TryRng for SeededRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Ok(z ^ (z >> 31))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
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
            .secure_random(SeededRng::new(limits.seed, 1))
            .insecure_random(SeededRng::new(limits.seed, 2))
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
            writes: WriteLog::default(),
            llm: None,
            tokens: None,
            exec: None,
        })
    }
}
