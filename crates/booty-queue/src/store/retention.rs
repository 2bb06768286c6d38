//! What a store keeps beyond its unfinished jobs: the one set of bounds every store's options hold.

/// Deliveries remembered for dedupe after their job is gone, by default (design.md's `dedupe_capacity`).
pub const DEFAULT_DEDUPE_CAPACITY: usize = 10_000;

/// Finished jobs kept for inspection, by default.
pub const DEFAULT_RETAINED_FINISHED: usize = 1_000;

/// How much a store remembers beyond its unfinished jobs, which it never drops. Every store takes one
/// (`MemoryStore::new`, `SqliteOptions::retention`, `PostgresOptions::retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// Dedupe keys remembered after their job is gone, at least (default
    /// [`DEFAULT_DEDUPE_CAPACITY`]), oldest forgotten first. The dedupe key of a job still stored is
    /// always a duplicate, whatever this says.
    pub dedupe_capacity: usize,
    /// Final jobs (`succeeded`, `failed`, `cancelled`, `abandoned`) kept for inspection (default
    /// [`DEFAULT_RETAINED_FINISHED`]), the earliest finished dropped first.
    pub retained_finished: usize,
}

impl Retention {
    /// Bounds of `dedupe_capacity` dedupe keys and `retained_finished` finished jobs.
    pub const fn new(dedupe_capacity: usize, retained_finished: usize) -> Self {
        Self {
            dedupe_capacity,
            retained_finished,
        }
    }
}

impl Default for Retention {
    /// [`DEFAULT_DEDUPE_CAPACITY`] and [`DEFAULT_RETAINED_FINISHED`].
    fn default() -> Self {
        Self::new(DEFAULT_DEDUPE_CAPACITY, DEFAULT_RETAINED_FINISHED)
    }
}
