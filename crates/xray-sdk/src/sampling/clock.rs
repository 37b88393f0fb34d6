//! Time and randomness for sampling, both replaceable so tests are deterministic.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

/// The wall clock the samplers read: whole seconds since the Unix epoch.
///
/// Reservoirs count per wall-clock second, quotas expire at an epoch second and the rule cache
/// expires an hour after the last refresh; all of them read this clock. The pollers' sleeps
/// use the real monotonic clock whatever this says.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Seconds since the Unix epoch.
    fn epoch_seconds(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn epoch_seconds(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// A clock that moves only when told to, for tests.
///
/// ```
/// use xray_sdk::sampling::{Clock, ManualClock};
/// let clock = ManualClock::new(1_700_000_000);
/// clock.advance(5);
/// assert_eq!(clock.epoch_seconds(), 1_700_000_005);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock showing `epoch_seconds`.
    pub fn new(epoch_seconds: u64) -> Self {
        ManualClock {
            now: AtomicU64::new(epoch_seconds),
        }
    }

    /// Sets the time.
    pub fn set(&self, epoch_seconds: u64) {
        self.now.store(epoch_seconds, Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance(&self, seconds: u64) {
        self.now.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn epoch_seconds(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// Where the samplers draw their random numbers: the thread-local generator, or a seeded,
/// lock-free SplitMix64 sequence shared by all threads (reproducible when used from one
/// thread).
#[derive(Debug)]
pub(crate) enum Random {
    Thread,
    Seeded(AtomicU64),
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl Random {
    pub(crate) fn seeded(seed: u64) -> Self {
        Random::Seeded(AtomicU64::new(seed))
    }

    /// A uniform number in `[0, 1)`.
    pub(crate) fn next_f64(&self) -> f64 {
        match self {
            Random::Thread => rand::rng().random::<f64>(),
            Random::Seeded(state) => {
                let mut z = state
                    .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
                    .wrapping_add(GOLDEN_GAMMA);
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                // 53 random bits as a fraction of 2^53.
                (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
            }
        }
    }

    /// An independent generator of the same kind (a derived seed for a seeded one).
    pub(crate) fn fork(&self, salt: u64) -> Random {
        match self {
            Random::Thread => Random::Thread,
            Random::Seeded(state) => {
                Random::seeded(state.load(Ordering::Relaxed) ^ salt.wrapping_mul(GOLDEN_GAMMA))
            }
        }
    }
}

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

    #[test]
    fn seeded_random_is_uniform_and_repeatable() {
        let a = Random::seeded(7);
        let b = Random::seeded(7);
        let xs: Vec<f64> = (0..1000).map(|_| a.next_f64()).collect();
        let ys: Vec<f64> = (0..1000).map(|_| b.next_f64()).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }
}
