//! The host side of the `verifier` world: instances made from an `InstancePre`, recycled after
//! any trap, with fuel per call and a fallback from batch to single calls when a batch traps.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::Store;

use super::engine::{LoadedPlugin, PluginEngine};
use super::failure::{classify, FailureKind, PluginFailure};
use super::inspect::{inspect, WorldKind};
use super::limits::Limits;
use super::output::LogEntry;
use super::state::StoreState;

pub(super) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "verifier",
        additional_derives: [PartialEq],
    });
}

pub use bindings::sera::plugin::types::{PatchPair, Verdict};

impl bindings::sera::plugin::types::Host for StoreState {}

impl bindings::sera::plugin::log::Host for StoreState {
    fn log(&mut self, level: bindings::sera::plugin::log::Level, message: String) {
        use bindings::sera::plugin::log::Level;
        let source = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.log.append(source, message.as_bytes());
    }
}

struct Live {
    store: Store<StoreState>,
    bindings: bindings::Verifier,
}

/// A verifier plugin ready to score pairs. Not `Sync`: give each worker thread its own (they
/// share the compiled component, so a new one costs an instantiation, not a compilation).
pub struct Verifier {
    name: Arc<str>,
    sha256: Arc<str>,
    pre: bindings::VerifierPre<StoreState>,
    limits: Limits,
    config: String,
    live: Option<Live>,
    log: Vec<LogEntry>,
    instantiations: u64,
    last_fuel_used: u64,
}

impl Verifier {
    /// Checks that `plugin` implements the verifier world, links it, and runs `init(config)`
    /// once so a bad config is reported here rather than on every item.
    pub fn new(
        engine: &PluginEngine,
        plugin: &LoadedPlugin,
        config: &str,
        limits: Limits,
    ) -> Result<Self> {
        let info = inspect(engine, plugin)?;
        if info.world != WorldKind::Verifier {
            bail!(
                "{}: implements the {} world, not the verifier world",
                plugin.source,
                info.world
            );
        }
        let mut linker = Linker::<StoreState>::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(anyhow::Error::from)?;
        bindings::Verifier::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;
        let pre = linker
            .instantiate_pre(&plugin.component)
            .and_then(bindings::VerifierPre::new)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{}: cannot link the verifier", plugin.source))?;
        let mut verifier = Self {
            name: plugin.name.as_str().into(),
            sha256: plugin.sha256.as_str().into(),
            pre,
            limits,
            config: config.to_string(),
            live: None,
            log: Vec::new(),
            instantiations: 0,
            last_fuel_used: 0,
        };
        verifier.ensure_live("init")?;
        Ok(verifier)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// How many instances were created so far (one, plus one after each trap).
    pub fn instantiations(&self) -> u64 {
        self.instantiations
    }

    /// Fuel the last successful `verify` call used: a deterministic measure of its cost.
    pub fn last_fuel_used(&self) -> u64 {
        self.last_fuel_used
    }

    /// Linear memory of the live instance, in bytes (what it grew to; memories do not shrink).
    pub fn memory_bytes(&self) -> usize {
        self.live
            .as_ref()
            .map_or(0, |l| l.store.data().limiter.peak_memory)
    }

    /// Plugin output since the last call, oldest first.
    pub fn take_log(&mut self) -> Vec<LogEntry> {
        std::mem::take(&mut self.log)
    }

    fn failure(
        &self,
        item: &str,
        kind: FailureKind,
        message: String,
        backtrace: Option<String>,
    ) -> PluginFailure {
        PluginFailure {
            plugin: self.name.clone(),
            sha256: self.sha256.clone(),
            item: item.to_string(),
            kind,
            message,
            backtrace,
        }
    }

    /// A sandboxed store with this verifier's limits and a full tank of fuel.
    fn new_store(&self) -> wasmtime::Result<Store<StoreState>> {
        let mut store = Store::new(self.pre.engine(), StoreState::new(&self.limits, None)?);
        store.limiter(|s| &mut s.limiter);
        store.set_fuel(self.limits.fuel_per_call)?;
        Ok(store)
    }

    /// Creates and drops one instance without calling into it: the cost a trap adds to the
    /// next item. Public for the benchmark.
    pub fn instantiate_once(&self) -> Result<()> {
        let mut store = self.new_store().map_err(anyhow::Error::from)?;
        self.pre
            .instantiate(&mut store)
            .map_err(anyhow::Error::from)?;
        Ok(())
    }

    fn ensure_live(&mut self, item: &str) -> Result<&mut Live, PluginFailure> {
        if self.live.is_none() {
            let mut store = self.new_store().map_err(|e| {
                self.failure(item, FailureKind::Instantiate, format!("{e:#}"), None)
            })?;
            self.instantiations += 1;
            let fuel = self.limits.fuel_per_call;
            let bindings = match self.pre.instantiate(&mut store) {
                Ok(b) => b,
                Err(e) => {
                    let (_, message, backtrace) = classify(&e, store.data_mut(), fuel);
                    self.log.extend(store.data().log.take());
                    return Err(self.failure(item, FailureKind::Instantiate, message, backtrace));
                }
            };
            let _ = store.set_fuel(fuel);
            let init = bindings
                .sera_plugin_verify()
                .call_init(&mut store, &self.config);
            self.log.extend(store.data().log.take());
            match init {
                Ok(Ok(())) => {}
                Ok(Err(msg)) => {
                    return Err(self.failure(item, FailureKind::Init, msg, None));
                }
                Err(e) => {
                    let (kind, message, backtrace) = classify(&e, store.data_mut(), fuel);
                    return Err(self.failure(
                        item,
                        kind,
                        format!("during init: {message}"),
                        backtrace,
                    ));
                }
            }
            self.live = Some(Live { store, bindings });
        }
        Ok(self.live.as_mut().expect("set above"))
    }

    fn check_verdict(&self, item: &str, verdict: Verdict) -> Result<Verdict, PluginFailure> {
        let score_ok = verdict
            .score
            .is_none_or(|s| s.is_finite() && (0.0..=1.0).contains(&s));
        if !score_ok || verdict.matched > verdict.total {
            return Err(self.failure(
                item,
                FailureKind::MalformedReturn,
                format!(
                    "verdict breaks the contract (score in [0, 1] or none, matched <= total): score {:?}, matched {}, total {}",
                    verdict.score, verdict.matched, verdict.total
                ),
                None,
            ));
        }
        Ok(verdict)
    }

    fn take_store_log(&mut self) {
        if let Some(live) = &self.live {
            self.log.extend(live.store.data().log.take());
        }
    }

    /// Handles a call's trap: classifies it, keeps the log, and drops the poisoned instance.
    fn trapped(&mut self, item: &str, err: wasmtime::Error, fuel: u64) -> PluginFailure {
        let mut live = self.live.take().expect("a call needs a live instance");
        let (kind, message, backtrace) = classify(&err, live.store.data_mut(), fuel);
        self.log.extend(live.store.data().log.take());
        self.failure(item, kind, message, backtrace)
    }

    /// Scores one pair. `item` names it in errors.
    pub fn verify(&mut self, item: &str, pair: &PatchPair) -> Result<Verdict, PluginFailure> {
        let fuel = self.limits.fuel_per_call;
        let live = self.ensure_live(item)?;
        let _ = live.store.set_fuel(fuel);
        let result = live
            .bindings
            .sera_plugin_verify()
            .call_verify(&mut live.store, pair);
        self.last_fuel_used = fuel - live.store.get_fuel().unwrap_or(fuel);
        // A trap is classified from the store (stderr tail, limiter) before its log is taken.
        let result = match result {
            Ok(r) => r,
            Err(e) => return Err(self.trapped(item, e, fuel)),
        };
        self.take_store_log();
        match result {
            Ok(verdict) => self.check_verdict(item, verdict),
            Err(msg) => Err(self.failure(item, FailureKind::GuestError, msg, None)),
        }
    }

    /// Scores many pairs with one call into the plugin. If that call traps, every pair is retried
    /// on its own so that only the pairs that make the plugin fail are reported as failed.
    pub fn verify_batch(
        &mut self,
        items: &[String],
        pairs: &[PatchPair],
    ) -> Vec<Result<Verdict, PluginFailure>> {
        assert_eq!(items.len(), pairs.len(), "one item name per pair");
        if pairs.is_empty() {
            return Vec::new();
        }
        let fuel = self.limits.fuel_per_call.saturating_mul(pairs.len() as u64);
        let live = match self.ensure_live(&items[0]) {
            Ok(live) => live,
            Err(f) => {
                return items
                    .iter()
                    .map(|item| {
                        Err(PluginFailure {
                            item: item.clone(),
                            ..f.clone()
                        })
                    })
                    .collect()
            }
        };
        let _ = live.store.set_fuel(fuel);
        let result = live
            .bindings
            .sera_plugin_verify()
            .call_verify_batch(&mut live.store, pairs);
        if result.is_ok() {
            self.take_store_log();
        }
        match result {
            Ok(results) if results.len() == pairs.len() => results
                .into_iter()
                .zip(items)
                .map(|(r, item)| match r {
                    Ok(v) => self.check_verdict(item, v),
                    Err(msg) => Err(self.failure(item, FailureKind::GuestError, msg, None)),
                })
                .collect(),
            Ok(results) => {
                let n = results.len();
                items
                    .iter()
                    .map(|item| {
                        Err(self.failure(
                            item,
                            FailureKind::MalformedReturn,
                            format!(
                                "verify-batch returned {n} results for {} pairs",
                                pairs.len()
                            ),
                            None,
                        ))
                    })
                    .collect()
            }
            Err(e) => {
                let _ = self.trapped(&items[0], e, fuel);
                items
                    .iter()
                    .zip(pairs)
                    .map(|(item, pair)| self.verify(item, pair))
                    .collect()
            }
        }
    }
}
