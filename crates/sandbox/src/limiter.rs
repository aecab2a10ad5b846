//! The per-task resource limiter: refuses memory and table growth past the
//! task's limits, remembers that it did, and records peak memory.
//!
//! The memory limit is the total over every linear memory of the instance:
//! a component holds several core instances, each with memories of its
//! own, and a limit checked per memory would let it hold a multiple of its
//! budget. Wasmtime reports each memory's creation (`current` = 0) and
//! every grow of it to the store's one limiter, so a running sum of the
//! increments is the total.

use wasmtime::ResourceLimiter;

/// Tracks one task's memory and table growth against its limits.
#[derive(Debug)]
pub(crate) struct TaskLimiter {
    memory_limit: usize,
    table_limit: usize,
    /// Bytes of every linear memory of the task together, now.
    memory_total: usize,
    /// Largest total of linear memory granted so far, in bytes.
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
            memory_total: 0,
            memory_peak: 0,
            denied: false,
        }
    }
}

impl ResourceLimiter for TaskLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let added = desired.saturating_sub(current);
        let total = self.memory_total.saturating_add(added);
        let allowed = total <= self.memory_limit && maximum.is_none_or(|max| desired <= max);
        if allowed {
            self.memory_total = total;
            self.memory_peak = self.memory_peak.max(total);
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

    const PAGE: usize = 65536;

    #[test]
    fn grants_up_to_the_limit_and_records_refusals() {
        let mut l = TaskLimiter::new(1 << 20, 10);
        assert!(l.memory_growing(0, PAGE, None).unwrap());
        assert!(l.memory_growing(PAGE, 1 << 20, None).unwrap());
        assert_eq!(l.memory_peak, 1 << 20);
        assert!(!l.denied);
        assert!(!l.memory_growing(1 << 20, (1 << 20) + PAGE, None).unwrap());
        assert!(l.denied);
        assert_eq!(l.memory_peak, 1 << 20);
    }

    #[test]
    fn the_limit_is_the_total_over_every_memory() {
        let mut l = TaskLimiter::new(1 << 20, 10);
        // Two memories created (current = 0), then each grown.
        assert!(l.memory_growing(0, 4 * PAGE, None).unwrap());
        assert!(l.memory_growing(0, 4 * PAGE, None).unwrap());
        assert_eq!(l.memory_peak, 8 * PAGE);
        assert!(l.memory_growing(4 * PAGE, 12 * PAGE, None).unwrap());
        assert_eq!(l.memory_peak, 16 * PAGE);
        // The second memory cannot take a page more: the total is full,
        // though it alone holds a quarter of the limit.
        assert!(!l.memory_growing(4 * PAGE, 5 * PAGE, None).unwrap());
        assert!(l.denied);
        // A third memory cannot even be created.
        assert!(!l.memory_growing(0, PAGE, None).unwrap());
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
