//! The per-task resource limiter: refuses memory and table growth past the
//! task's limits, remembers that it did, and records peak memory.

use wasmtime::ResourceLimiter;

/// Tracks one task's memory and table growth against its limits.
#[derive(Debug)]
pub(crate) struct TaskLimiter {
    memory_limit: usize,
    table_limit: usize,
    /// Largest linear memory granted so far, in bytes.
    pub(crate) memory_peak: usize,
    /// Set when a grow was refused: if the task then fails, it failed
    /// because of its memory limit.
    pub(crate) denied: bool,
}

impl TaskLimiter {
    pub(crate) fn new(memory_limit: u64, table_limit: usize) -> Self {
        Self {
            memory_limit: usize::try_from(memory_limit).unwrap_or(usize::MAX),
            table_limit,
            memory_peak: 0,
            denied: false,
        }
    }
}

impl ResourceLimiter for TaskLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_limit && maximum.is_none_or(|max| desired <= max);
        if allowed {
            self.memory_peak = self.memory_peak.max(desired);
        } else {
            self.denied = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.table_limit && maximum.is_none_or(|max| desired <= max);
        if !allowed {
            self.denied = true;
        }
        Ok(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_up_to_the_limit_and_records_refusals() {
        let mut l = TaskLimiter::new(1 << 20, 10);
        assert!(l.memory_growing(0, 65536, None).unwrap());
        assert!(l.memory_growing(65536, 1 << 20, None).unwrap());
        assert_eq!(l.memory_peak, 1 << 20);
        assert!(!l.denied);
        assert!(!l.memory_growing(1 << 20, (1 << 20) + 65536, None).unwrap());
        assert!(l.denied);
        assert_eq!(l.memory_peak, 1 << 20);
    }

    #[test]
    fn respects_the_module_maximum_and_tables() {
        let mut l = TaskLimiter::new(1 << 30, 10);
        assert!(!l.memory_growing(0, 2 << 20, Some(1 << 20)).unwrap());
        assert!(l.table_growing(0, 10, None).unwrap());
        assert!(!l.table_growing(10, 11, None).unwrap());
    }
}
