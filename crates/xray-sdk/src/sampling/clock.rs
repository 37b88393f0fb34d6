//! Time and randomness for sampling, both replaceable so tests are deterministic.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;

/// The wall clock the samplers read: whole seconds since the Unix epoch.
///
/// Reservoirs count per wall-clock second, quotas expire at an epoch second and the rule cache
/// expires an hour after the last refresh; all of them read this clock. The pollers' sleeps
/// use the real monotonic clock whatever this says.
///
/// With the default [`SystemClock`], decisions do not read the wall clock themselves: they
/// load the current second from a process-wide `xray-clock` thread that stores it just after
/// each second starts, so their seconds may begin up to the thread's wake-up latency late
/// (under a millisecond on an idle machine). If that thread falls two seconds behind, or
/// cannot start, decisions read the wall clock again.
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

/// The samplers' time source: the system clock (read coarsely on the decision path), or a
/// clock given in code.
#[derive(Debug, Clone)]
pub(crate) enum Time {
    System,
    Custom(Arc<dyn Clock>),
}

impl Time {
    /// The epoch second for a decision: [`coarse_epoch_seconds`] for the system clock.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        match self {
            Time::System => coarse_epoch_seconds(),
            Time::Custom(clock) => clock.epoch_seconds(),
        }
    }

    /// The epoch second read from the clock itself (for the poller, off the request path).
    pub(crate) fn exact(&self) -> u64 {
        match self {
            Time::System => SystemClock.epoch_seconds(),
            Time::Custom(clock) => clock.epoch_seconds(),
        }
    }
}

// The coarse system clock. Reading the wall clock costs 20 to 50 ns on the virtual machines
// this SDK usually runs on, as much as the rest of a decision, while a decision needs only
// the whole second. So one `xray-clock` thread per process stores the epoch second in
// `COARSE` just after each second starts (it sleeps until the next boundary, plus
// `TICK_MARGIN`), and decisions load it: one relaxed atomic load.
//
// Every `CHECK_EVERY`th read on each thread also reads the wall clock to check the ticker.
// If it is two or more seconds behind (its thread is dead after a `fork`, or was stopped, or
// the machine was suspended), the coarse clock is switched off for good and every read is
// exact again, as it would be without it. So the seconds decisions see lag the wall clock by
// the ticker's wake-up latency (well under a millisecond on an idle machine, a few on a
// loaded one) and never by a second or more for long.

/// Whole epoch seconds kept by the `xray-clock` thread; 0 until it runs, or when switched off.
static COARSE: AtomicU64 = AtomicU64::new(0);
/// Set when the coarse clock is switched off (its thread could not start, or fell behind).
static COARSE_OFF: AtomicBool = AtomicBool::new(false);
static TICKER: Once = Once::new();
const CHECK_EVERY: u32 = 16;
const TICK_MARGIN: Duration = Duration::from_micros(500);

thread_local! {
    static READS: Cell<u32> = const { Cell::new(0) };
}

/// The current epoch second from the coarse clock (see above); starts its thread on first use.
#[inline]
pub(crate) fn coarse_epoch_seconds() -> u64 {
    let coarse = COARSE.load(Ordering::Relaxed);
    if coarse != 0 {
        let n = READS.with(|r| {
            let n = r.get().wrapping_add(1);
            r.set(n);
            n
        });
        if !n.is_multiple_of(CHECK_EVERY) {
            return coarse;
        }
    }
    coarse_slow(coarse)
}

#[cold]
#[inline(never)]
fn coarse_slow(coarse: u64) -> u64 {
    let exact = SystemClock.epoch_seconds();
    if coarse == 0 {
        if !COARSE_OFF.load(Ordering::Relaxed) {
            TICKER.call_once(start_ticker);
        }
        return exact;
    }
    if exact > coarse.saturating_add(1) {
        tracing::debug!(
            coarse,
            exact,
            "sampling clock thread fell behind; reading the wall clock from now on"
        );
        COARSE_OFF.store(true, Ordering::Relaxed);
        COARSE.store(0, Ordering::Relaxed);
        return exact;
    }
    // Within the ticker's wake-up latency: keep to the second every other decision sees, so
    // reservoirs do not flip between two seconds.
    coarse
}

fn start_ticker() {
    let spawned = std::thread::Builder::new()
        .name("xray-clock".into())
        .stack_size(64 * 1024)
        .spawn(|| {
            loop {
                if COARSE_OFF.load(Ordering::Relaxed) {
                    COARSE.store(0, Ordering::Relaxed);
                    return;
                }
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                COARSE.store(now.as_secs().max(1), Ordering::Relaxed);
                let to_next = Duration::from_nanos(1_000_000_000 - u64::from(now.subsec_nanos()));
                std::thread::sleep(to_next + TICK_MARGIN);
            }
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "sampling clock thread could not start; reading the wall clock");
        COARSE_OFF.store(true, Ordering::Relaxed);
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
    fn coarse_clock_follows_the_wall_clock() {
        for _ in 0..3 {
            let before = SystemClock.epoch_seconds();
            // Enough reads to start the ticker and pass the periodic checks.
            let coarse: Vec<u64> = (0..100).map(|_| coarse_epoch_seconds()).collect();
            let after = SystemClock.epoch_seconds();
            // At most one second behind (the ticker's wake-up latency), never ahead.
            assert!(
                coarse.iter().all(|&c| c + 1 >= before && c <= after),
                "{before} {coarse:?} {after}"
            );
            std::thread::sleep(std::time::Duration::from_millis(400));
        }
    }

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
