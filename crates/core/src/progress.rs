//! Progress reporting for long work.
//!
//! Libraries never print. A long-running function takes a `&dyn Progress` and reports
//! [`ProgressUpdate`]s to it; an application draws them (the examples use a terminal bar),
//! logs them or ignores them with [`NoProgress`]. Any `Fn(&ProgressUpdate) + Send + Sync`
//! closure is a `Progress`.
//!
//! ```
//! use nanoml_core::progress::{ProgressCounter, ProgressUpdate};
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! let last = AtomicU64::new(0);
//! let sink = |u: &ProgressUpdate| last.store(u.done, Ordering::Relaxed);
//! let counter = ProgressCounter::new(&sink, "simulate", Some(10));
//! for _ in 0..10 {
//!     counter.advance(1);
//! }
//! assert_eq!(last.load(Ordering::Relaxed), 10);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

/// One progress report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressUpdate<'a> {
    /// What is being done, in a few words (`"simulate"`, `"label windows"`).
    pub stage: &'a str,
    /// Units of work finished so far.
    pub done: u64,
    /// Total units of work, when known.
    pub total: Option<u64>,
}

impl ProgressUpdate<'_> {
    /// Fraction done in `[0, 1]`, when the total is known and non-zero.
    pub fn fraction(&self) -> Option<f64> {
        self.total.filter(|&t| t > 0).map(|t| (self.done as f64 / t as f64).min(1.0))
    }
}

/// Receiver of progress reports. Must be callable from several threads at once.
pub trait Progress: Send + Sync {
    /// Called with each update. Implementations should return quickly.
    fn update(&self, update: &ProgressUpdate<'_>);
}

impl<F> Progress for F
where
    F: Fn(&ProgressUpdate<'_>) + Send + Sync,
{
    fn update(&self, update: &ProgressUpdate<'_>) {
        self(update)
    }
}

/// A [`Progress`] that ignores every report.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _update: &ProgressUpdate<'_>) {}
}

/// A thread-safe counter that forwards its running total to a [`Progress`] sink.
///
/// Share it by reference across rayon tasks and call [`advance`](Self::advance) as work
/// finishes; updates may reach the sink out of order, but `done` never exceeds the number
/// of units advanced so far.
pub struct ProgressCounter<'a> {
    sink: &'a dyn Progress,
    stage: &'a str,
    total: Option<u64>,
    done: AtomicU64,
}

impl<'a> ProgressCounter<'a> {
    /// A counter at zero. Reports the zero state immediately so that a bar can appear.
    pub fn new(sink: &'a dyn Progress, stage: &'a str, total: Option<u64>) -> Self {
        sink.update(&ProgressUpdate { stage, done: 0, total });
        ProgressCounter { sink, stage, total, done: AtomicU64::new(0) }
    }

    /// Records `n` more units of finished work and reports the new total.
    pub fn advance(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        self.sink.update(&ProgressUpdate { stage: self.stage, done, total: self.total });
    }

    /// Units finished so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for ProgressCounter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressCounter")
            .field("stage", &self.stage)
            .field("done", &self.done())
            .field("total", &self.total)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn counter_reports_every_advance_from_many_threads() {
        let seen = Mutex::new(Vec::new());
        let sink = |u: &ProgressUpdate| seen.lock().unwrap().push(u.done);
        let counter = ProgressCounter::new(&sink, "work", Some(100));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..25 {
                        counter.advance(1)
                    }
                });
            }
        });
        assert_eq!(counter.done(), 100);
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..=100).collect::<Vec<_>>());
    }

    #[test]
    fn fraction_handles_unknown_and_zero_totals() {
        let u = ProgressUpdate { stage: "x", done: 5, total: Some(10) };
        assert_eq!(u.fraction(), Some(0.5));
        assert_eq!(ProgressUpdate { total: None, ..u }.fraction(), None);
        assert_eq!(ProgressUpdate { total: Some(0), ..u }.fraction(), None);
    }
}
