//! The per-second allowance of a sampling rule, shared by all threads.

use std::sync::atomic::{AtomicU64, Ordering};

/// A per-second allowance shared by all threads: `(second << 32) | used` in one atomic word.
#[derive(Debug, Default)]
pub(crate) struct Reservoir {
    window: AtomicU64,
}

impl Reservoir {
    /// Takes one of `capacity` slots of the wall-clock second `now`; false when none is left.
    pub(crate) fn take(&self, now: u64, capacity: u64) -> bool {
        if capacity == 0 {
            return false;
        }
        let sec = now & 0xffff_ffff;
        let mut cur = self.window.load(Ordering::Relaxed);
        loop {
            let next = if cur >> 32 != sec {
                (sec << 32) | 1
            } else if cur & 0xffff_ffff < capacity.min(0xffff_ffff) {
                cur + 1
            } else {
                return false;
            };
            match self
                .window
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservoir_counts_per_second() {
        let r = Reservoir::default();
        assert!(r.take(10, 2));
        assert!(r.take(10, 2));
        assert!(!r.take(10, 2));
        assert!(r.take(11, 2));
        assert!(!r.take(11, 0));
        assert!(r.take(11, 3));
        assert!(!r.take(11, 2));
    }
}
