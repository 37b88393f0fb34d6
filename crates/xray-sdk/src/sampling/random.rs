//! The coin the samplers flip: a fast per-thread generator, or a seeded one for tests.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;

/// Where the samplers draw their random numbers: a fast per-thread generator, or a seeded,
/// lock-free SplitMix64 sequence shared by all threads (reproducible when used from one
/// thread).
///
/// `Thread` is SplitMix64 in a thread-local `Cell`, seeded once per thread from `rand`'s
/// OS-seeded `ThreadRng`. It is not cryptographic and need not be: it only flips the
/// sampling coin.
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
            Random::Thread => unit(mix(THREAD_STATE.with(|s| {
                let mut z = s.get();
                if z == 0 {
                    // First draw on this thread.
                    z = rand::rng().random::<u64>();
                }
                z = z.wrapping_add(GOLDEN_GAMMA);
                s.set(z);
                z
            }))),
            Random::Seeded(state) => unit(mix(state
                .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
                .wrapping_add(GOLDEN_GAMMA))),
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

thread_local! {
    /// The state of `Random::Thread` on this thread; 0 until its first draw.
    static THREAD_STATE: Cell<u64> = const { Cell::new(0) };
}

/// The SplitMix64 output function.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 53 random bits as a fraction of 2^53, in `[0, 1)`.
#[inline]
fn unit(z: u64) -> f64 {
    (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_random_is_uniform_and_differs_between_threads() {
        let xs: Vec<f64> = (0..10_000).map(|_| Random::Thread.next_f64()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        let below = xs.iter().filter(|&&x| x < 0.05).count();
        assert!((350..650).contains(&below), "{below}");
        let other = std::thread::spawn(|| Random::Thread.next_f64())
            .join()
            .expect("thread");
        assert!(!xs.contains(&other));
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
