//! Per-store resource limits, and a limiter that remembers which one a guest hit.

use wasmtime::ResourceLimiter;

/// What one plugin instance may use. Fuel, not wall-clock time, bounds computation so that a
/// limit hit is reproducible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Fuel for one call (a batch call gets this much per item).
    pub fuel_per_call: u64,
    /// Linear memory, summed over the instance's memories.
    pub memory_bytes: usize,
    pub instances: usize,
    pub tables: usize,
    pub table_elements: usize,
    /// Bytes of plugin output (stdout, stderr, `log` messages) kept per instance; the rest is
    /// counted and dropped.
    pub log_bytes: usize,
    /// Seed of the plugin's (deterministic) random number generator.
    pub seed: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel_per_call: 500_000_000,
            memory_bytes: 256 << 20,
            instances: 16,
            tables: 16,
            table_elements: 100_000,
            log_bytes: 64 << 10,
            seed: 0,
        }
    }
}

/// Which limit stopped a guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitHit {
    Memory { requested: usize, limit: usize },
    TableElements { requested: usize, limit: usize },
}

pub(crate) struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    instances: usize,
    tables: usize,
    pub(crate) hit: Option<LimitHit>,
    /// The most linear memory the instance has had (memories only grow).
    pub(crate) peak_memory: usize,
}

impl Limiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            memory_bytes: limits.memory_bytes,
            table_elements: limits.table_elements,
            instances: limits.instances,
            tables: limits.tables,
            hit: None,
            peak_memory: 0,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.hit = Some(LimitHit::Memory {
                requested: desired,
                limit: self.memory_bytes,
            });
            wasmtime::bail!(
                "memory limit: the plugin asked for {desired} bytes of linear memory, the limit is {}",
                self.memory_bytes
            );
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.hit = Some(LimitHit::TableElements {
                requested: desired,
                limit: self.table_elements,
            });
            wasmtime::bail!(
                "table limit: the plugin asked for {desired} table elements, the limit is {}",
                self.table_elements
            );
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.instances
    }
}
