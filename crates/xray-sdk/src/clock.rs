//! Time: the SDK's one clock.
//!
//! - Start and end times of segments and subsegments are wall-clock microseconds since the
//!   Unix epoch (`now_micros`), read from the CPU's time-stamp counter instead of the system
//!   clock.
//! - Sampling decisions and new trace IDs need only the whole epoch second
//!   (`epoch_seconds`), taken from the same counter.
//! - Samplers read time through the [`Clock`] trait, so tests can replace it: [`SystemClock`]
//!   is this clock, [`ManualClock`] moves only when told to.
//!
//! A request with three subsegments reads the time eight times, plus the second for its
//! sampling decision and trace ID. On the virtual machines this SDK usually runs on,
//! `SystemTime::now` costs 30 to 50 ns, about a third of the whole request path; the counter
//! (through `quanta`, which calibrates it once per process and falls back to the monotonic
//! clock where it is unusable) costs about 10 ns.
//!
//! Each thread anchors the counter to the wall clock (one `SystemTime::now` next to one
//! counter read) and derives times from the anchor until it is a second old, then anchors
//! again. The counter's calibration is good to some tens of parts per million, so a time is
//! at most some tens of microseconds off the wall clock, and a step of the wall clock (NTP,
//! an operator) shows within a second. A counter that went backwards (another core, a
//! resumed machine) also re-anchors. Two threads' anchors may disagree by the same tens of
//! microseconds, so an entity that starts on one thread and ends on another can see its end
//! slightly before its start; ending clamps the end to the start.
//!
//! The same disagreement would let two threads see different seconds for a few microseconds
//! after each second starts, and a reservoir counting "requests this second" would then start
//! its second twice. So the seconds are kept in one place: the latest second read from the
//! counter is one process-wide atomic, which a thread whose anchor is up to a second behind
//! takes as its own, and while decisions are being made a job on the SDK's background thread
//! ticks the current second into another, which decisions load instead of reading the
//! counter.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static COUNTER: OnceLock<Counter> = OnceLock::new();

/// The calibrated counter, and its rate in the form a reading needs.
struct Counter {
    clock: quanta::Clock,
    /// Microseconds per 2^40 counter ticks (rounded up, so that a whole number of
    /// microseconds is never read as one less).
    scale: Scale,
}

/// Counter ticks to microseconds: `ticks * per_2_40 >> 40`, one multiplication.
#[derive(Clone, Copy, Debug)]
struct Scale {
    per_2_40: u64,
}

impl Scale {
    /// A scale of `nanos` nanoseconds per 2^40 ticks. (A counter slower than a tick per
    /// microsecond, which quanta never reads, is taken as one tick per microsecond.)
    fn from_nanos_per_2_40(nanos: u64) -> Scale {
        Scale {
            per_2_40: nanos.div_ceil(1_000).clamp(1, (1 << 40) - 1),
        }
    }

    #[inline]
    fn micros(self, ticks: u64) -> u64 {
        // Under 2^64 ticks times under 2^40, shifted by 40: under 2^64, nothing cut off.
        ((u128::from(ticks) * u128::from(self.per_2_40)) >> 40) as u64
    }
}

/// How long a thread's anchor is used before it is taken again.
const ANCHOR_MICROS: u64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Anchor {
    /// Counter reading at the anchor; 0 when the thread has none yet.
    raw: u64,
    wall_us: u64,
}

impl Anchor {
    const NONE: Anchor = Anchor { raw: 0, wall_us: 0 };
}

thread_local! {
    static ANCHOR: Cell<Anchor> = const { Cell::new(Anchor::NONE) };
}

/// Calibrates the counter now (under a millisecond, once per process) rather than on the
/// first request.
pub(crate) fn warm_up() {
    counter();
}

/// The calibrated counter: a load and a test once calibrated (inline: every entity reads
/// the clock twice).
#[inline]
fn counter() -> &'static Counter {
    match COUNTER.get() {
        Some(counter) => counter,
        None => calibrate(),
    }
}

#[cold]
#[inline(never)]
fn calibrate() -> &'static Counter {
    COUNTER.get_or_init(|| {
        let clock = quanta::Clock::new();
        // Where there is no usable counter, quanta reads the monotonic clock in nanoseconds.
        let scale = Scale::from_nanos_per_2_40(clock.delta_as_nanos(0, 1 << 40));
        Counter { clock, scale }
    })
}

/// Microseconds since the Unix epoch from the system clock (0 before the epoch).
pub(crate) fn wall_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() * 1_000_000 + u64::from(d.subsec_micros()))
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch, from this thread's anchor and the counter.
#[inline]
pub(crate) fn now_micros() -> u64 {
    let counter = counter();
    let raw = counter.clock.raw();
    ANCHOR
        .try_with(|slot| read(slot, raw, counter.scale, wall_micros))
        // Thread-local storage already destroyed (a thread exiting): the system clock.
        .unwrap_or_else(|_| wall_micros())
}

/// The time at counter reading `raw`: the anchor's wall time plus the counter's elapsed time
/// while the anchor is younger than a second and the counter has not gone backwards;
/// otherwise `wall()`, which becomes the new anchor.
#[inline]
fn read(slot: &Cell<Anchor>, raw: u64, scale: Scale, wall: impl FnOnce() -> u64) -> u64 {
    let anchor = slot.get();
    if anchor.raw != 0 && raw >= anchor.raw {
        let elapsed = scale.micros(raw - anchor.raw);
        if elapsed < ANCHOR_MICROS {
            return anchor.wall_us + elapsed;
        }
    }
    let wall_us = wall();
    slot.set(Anchor {
        raw: raw.max(1),
        wall_us,
    });
    wall_us
}

/// The latest epoch second any thread has read from the counter (see [`exact_seconds`]).
static LATEST_SECOND: AtomicU64 = AtomicU64::new(0);

/// Whole seconds since the Unix epoch from the counter, the same on every thread: a thread
/// whose anchor is up to a second behind the latest second read takes that second. For
/// readers off the request path: it neither needs nor starts the ticker.
pub(crate) fn exact_seconds() -> u64 {
    agree(&LATEST_SECOND, now_micros() / 1_000_000)
}

/// This thread's second `mine`, made to agree with the latest second seen by any thread.
#[inline]
fn agree(latest: &AtomicU64, mine: u64) -> u64 {
    let seen = latest.load(Ordering::Relaxed);
    if mine == seen {
        mine
    } else if mine.saturating_add(1) == seen {
        // Another thread's anchor has reached the next second a few microseconds before
        // this one's.
        seen
    } else if mine > seen {
        latest.fetch_max(mine, Ordering::Relaxed);
        mine
    } else {
        // Two or more seconds behind: the wall clock was set back. Follow it.
        latest.store(mine, Ordering::Relaxed);
        mine
    }
}

// The ticked second. Reading the counter costs about 10 ns on the virtual machines this SDK
// runs on (the `rdtsc` instruction alone), as much as the rest of a sampling decision, and
// a decision needs only the whole second. So while decisions are being made, a job on the
// SDK's background thread stores the second in `TICKED` just after each second starts, and
// decisions load it: one relaxed load. When no one has read it for `IDLE_TICKS` ticks, the
// job stops and sets it to 0; the next read takes the second from the counter and starts the
// job again. An idle process therefore costs no wake-ups, and a busy one one a second, on a
// thread it has anyway.
//
// Every `CHECK_EVERY`th read on each thread also reads the counter; if the ticked second is
// behind it (the background thread was busy with a call when the second started, or a forked
// child has no background thread), it moves the ticked second on. So the seconds readers see
// lag the counter's by the job's wake-up latency at most, or by `CHECK_EVERY` reads of a
// thread if the background thread is held up.

/// The current second while the ticker runs; 0 while it does not.
static TICKED: AtomicU64 = AtomicU64::new(0);
/// Set by readers of `TICKED` since the last tick.
static TICKED_READ: AtomicBool = AtomicBool::new(false);
/// The ticker job: `IDLE`, `RUNNING`, or `UNAVAILABLE` (the background thread could not
/// start: every read takes the counter).
static TICKER: AtomicU8 = AtomicU8::new(IDLE);
const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const UNAVAILABLE: u8 = 2;
/// Ticks without a reader before the ticker stops.
const IDLE_TICKS: u32 = 2;
/// How long after a second starts the tick comes.
const TICK_MARGIN: Duration = Duration::from_micros(500);
const CHECK_EVERY: u32 = 16;

thread_local! {
    static READS: Cell<u32> = const { Cell::new(0) };
}

/// Whole seconds since the Unix epoch, the same on every thread: for sampling decisions and
/// trace IDs. Usually one relaxed load (see above).
#[inline]
pub(crate) fn epoch_seconds() -> u64 {
    let ticked = TICKED.load(Ordering::Relaxed);
    if ticked != 0 {
        if !TICKED_READ.load(Ordering::Relaxed) {
            TICKED_READ.store(true, Ordering::Relaxed);
        }
        let reads = READS
            .try_with(|r| {
                let n = r.get().wrapping_add(1);
                r.set(n);
                n
            })
            .unwrap_or(0);
        if !reads.is_multiple_of(CHECK_EVERY) {
            return ticked;
        }
    }
    epoch_seconds_slow(ticked)
}

#[cold]
#[inline(never)]
fn epoch_seconds_slow(ticked: u64) -> u64 {
    let exact = exact_seconds();
    if ticked == 0 {
        start_ticker();
        return exact;
    }
    if exact > ticked {
        // The tick is late: move the second on for everyone.
        TICKED.fetch_max(exact, Ordering::Relaxed);
        return exact;
    }
    // The counter a little behind the tick (another thread's anchor): keep to the second
    // everyone else sees.
    ticked
}

fn start_ticker() {
    if TICKER
        .compare_exchange(IDLE, RUNNING, Ordering::Relaxed, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    let ticker = Ticker { idle: 0 };
    match crate::background::schedule(Box::new(ticker), Instant::now()) {
        Ok(handle) => handle.detach(),
        Err(e) => {
            tracing::debug!(error = %e, "X-Ray clock: no background thread; reading the counter for every second");
            TICKER.store(UNAVAILABLE, Ordering::Relaxed);
        }
    }
}

/// The job that keeps `TICKED`.
struct Ticker {
    /// Ticks in a row without a reader.
    idle: u32,
}

impl crate::background::Job for Ticker {
    fn run(&mut self) -> Option<Instant> {
        if TICKED_READ.swap(false, Ordering::Relaxed) {
            self.idle = 0;
        } else {
            self.idle += 1;
        }
        if self.idle > IDLE_TICKS {
            // Nobody reads it: stop; the next reader starts the ticker again.
            TICKED.store(0, Ordering::Relaxed);
            TICKER.store(IDLE, Ordering::Relaxed);
            return None;
        }
        let micros = now_micros();
        // Stored as is, not raised with `fetch_max`, so that a wall clock set back shows.
        TICKED.store(
            agree(&LATEST_SECOND, micros / 1_000_000).max(1),
            Ordering::Relaxed,
        );
        let to_next = Duration::from_micros(1_000_000 - micros % 1_000_000);
        Some(Instant::now() + to_next + TICK_MARGIN)
    }
}

/// The wall clock the samplers read: whole seconds since the Unix epoch.
///
/// Reservoirs count per wall-clock second, quotas expire at an epoch second and the rule cache
/// expires an hour after the last refresh; all of them read this clock. The pollers' waits
/// use the real monotonic clock whatever this says.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Seconds since the Unix epoch.
    fn epoch_seconds(&self) -> u64;
}

/// The system clock, as the SDK reads it: the CPU's time-stamp counter anchored to the wall
/// clock once a second per thread (see the [module's docs](self)), so a reading costs no
/// system call and every thread sees the same second.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn epoch_seconds(&self) -> u64 {
        epoch_seconds()
    }
}

/// A clock that moves only when told to, for tests.
///
/// ```
/// use xray_sdk::clock::{Clock, ManualClock};
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

/// A time source that is either the system clock, read without a virtual call on the
/// decision path, or a clock given in code.
#[derive(Debug, Clone)]
pub(crate) enum Time {
    System,
    Custom(Arc<dyn Clock>),
}

impl Time {
    /// The current epoch second, for decisions.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        match self {
            Time::System => epoch_seconds(),
            Time::Custom(clock) => clock.epoch_seconds(),
        }
    }

    /// The current epoch second, for work off the request path (the sampling poller): the
    /// same second, read without keeping the ticker busy.
    pub(crate) fn exact(&self) -> u64 {
        match self {
            Time::System => exact_seconds(),
            Time::Custom(clock) => clock.epoch_seconds(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake counter in nanoseconds and a fake wall clock, for the anchor rule alone.
    fn fake_read(slot: &Cell<Anchor>, raw_nanos: u64, wall_us: u64) -> u64 {
        read(slot, raw_nanos, NANOS, || wall_us)
    }

    /// A counter that ticks once a nanosecond (the monotonic clock's fallback).
    const NANOS: Scale = Scale {
        per_2_40: (1u64 << 40).div_ceil(1_000),
    };

    #[test]
    fn ticks_become_whole_microseconds() {
        assert_eq!(Scale::from_nanos_per_2_40(1 << 40).per_2_40, NANOS.per_2_40);
        // Within an anchor's second, whole microseconds are never read as one less, and the
        // rest is cut off.
        for us in [0u64, 1, 7, 999, 1_000, 123_456, 999_999, 1_000_000] {
            assert_eq!(NANOS.micros(us * 1_000), us);
            assert_eq!(NANOS.micros(us * 1_000 + 999), us);
        }
        // A 2.6 GHz time-stamp counter: a second of ticks is a second, within a microsecond.
        let tsc = Scale::from_nanos_per_2_40(((1u128 << 40) * 10 / 26) as u64);
        assert!(tsc.micros(2_600_000_000).abs_diff(1_000_000) <= 1);
        assert_eq!(tsc.micros(2_600), 1);
        // The largest readings do not wrap around, however slow the counter.
        assert!(tsc.micros(u64::MAX) > tsc.micros(u64::MAX / 2));
        let slowest = Scale::from_nanos_per_2_40(u64::MAX);
        assert_eq!(slowest.micros(u64::MAX), u64::MAX - (u64::MAX >> 40) - 1);
    }

    // The anchor rule, exactly, with an injected counter and wall clock. (Comparing the real
    // counter with the real wall clock within a fixed bound would test the machine: the
    // counter's calibration and the scheduler's delays between the reads, not this code.)
    #[test]
    fn times_are_the_anchor_plus_the_counters_elapsed_time() {
        let slot = Cell::new(Anchor::NONE);
        // The first reading anchors: it is the wall clock.
        assert_eq!(fake_read(&slot, 5_000, 1_000_000), 1_000_000);
        assert_eq!(
            slot.get(),
            Anchor {
                raw: 5_000,
                wall_us: 1_000_000
            }
        );
        // Within the second: anchor + elapsed, whatever the wall clock says now.
        assert_eq!(fake_read(&slot, 5_000 + 1_500, 9), 1_000_001);
        assert_eq!(fake_read(&slot, 5_000 + 250_000_999, 9), 1_250_000);
        assert_eq!(fake_read(&slot, 5_000 + 999_999_999, 9), 1_999_999);
        assert_eq!(slot.get().raw, 5_000);
    }

    #[test]
    fn a_second_old_anchor_or_a_counter_gone_back_re_anchors() {
        let slot = Cell::new(Anchor::NONE);
        fake_read(&slot, 5_000, 1_000_000);
        // A second old: the wall clock again (here stepped back by an operator).
        assert_eq!(fake_read(&slot, 5_000 + 1_000_000_000, 700_000), 700_000);
        assert_eq!(slot.get().raw, 1_000_005_000);
        // The counter went backwards: the wall clock again.
        assert_eq!(fake_read(&slot, 10, 800_000), 800_000);
        assert_eq!(
            slot.get(),
            Anchor {
                raw: 10,
                wall_us: 800_000
            }
        );
        // A zero reading still leaves an anchor (0 means "none").
        let slot = Cell::new(Anchor::NONE);
        assert_eq!(fake_read(&slot, 0, 3), 3);
        assert_eq!(fake_read(&slot, 1_001, 99), 4);
    }

    // With the real counter and wall clock, the first reading on a thread, and the first one
    // after its anchor is a second old, is a wall-clock reading taken between the two around
    // it: bracketed exactly, on any machine.
    #[test]
    fn follows_the_wall_clock() {
        for _ in 0..20 {
            std::thread::spawn(|| {
                let before = wall_micros();
                let t = now_micros();
                let after = wall_micros();
                assert!(before <= t && t <= after, "{before} <= {t} <= {after}");
            })
            .join()
            .expect("thread");
        }
    }

    #[test]
    fn advances_with_time_within_an_anchor() {
        let a = now_micros();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = now_micros();
        assert!(
            (19_000..200_000).contains(&(b - a)),
            "20 ms sleep measured as {} us",
            b - a
        );
    }

    #[test]
    fn re_anchors_after_a_second() {
        let first = now_micros();
        let anchored = ANCHOR.with(Cell::get);
        std::thread::sleep(std::time::Duration::from_millis(1_100));
        let before = wall_micros();
        let later = now_micros();
        let after = wall_micros();
        let reanchored = ANCHOR.with(Cell::get);
        assert_ne!(anchored.raw, reanchored.raw);
        assert!(later >= first + 1_000_000);
        // A new anchor: a wall-clock reading, taken between the two around it.
        assert!(
            before <= later && later <= after,
            "{before} <= {later} <= {after}"
        );
    }

    #[test]
    fn threads_agree_on_the_second() {
        let latest = AtomicU64::new(0);
        assert_eq!(agree(&latest, 100), 100);
        // A thread whose anchor is a little behind takes the second already seen.
        assert_eq!(agree(&latest, 99), 100);
        assert_eq!(agree(&latest, 101), 101);
        assert_eq!(latest.load(Ordering::Relaxed), 101);
        // Two seconds or more behind: the wall clock was set back; follow it.
        assert_eq!(agree(&latest, 50), 50);
        assert_eq!(agree(&latest, 50), 50);
        assert_eq!(agree(&latest, 49), 50);
        assert_eq!(agree(&latest, u64::MAX), u64::MAX);
    }

    #[test]
    fn the_second_is_ticked_while_it_is_read() {
        let deadline = Instant::now() + Duration::from_secs(10);
        // Reads start the ticker; it ticks the current second.
        loop {
            let read = epoch_seconds();
            let ticked = TICKED.load(Ordering::Relaxed);
            let wall = wall_micros() / 1_000_000;
            if ticked != 0 {
                assert!(ticked + 1 >= wall && ticked <= wall + 1, "{ticked} {wall}");
                assert!(read + 1 >= wall && read <= wall + 1, "{read} {wall}");
                break;
            }
            assert!(Instant::now() < deadline, "the ticker did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        // It follows the seconds while they are read.
        let first = TICKED.load(Ordering::Relaxed);
        while TICKED.load(Ordering::Relaxed) <= first {
            assert!(Instant::now() < deadline, "the ticker stopped ticking");
            epoch_seconds();
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn epoch_seconds_follow_the_wall_clock() {
        for _ in 0..3 {
            let before = wall_micros() / 1_000_000;
            let seconds: Vec<u64> = (0..100).map(|_| epoch_seconds()).collect();
            let after = wall_micros() / 1_000_000;
            // Within a second of the wall clock: the anchor rule keeps readings within the
            // counter's calibration error of it, and a thread may take the second another
            // thread reached first.
            assert!(
                seconds.iter().all(|&s| s + 1 >= before && s <= after + 1),
                "{before} {seconds:?} {after}"
            );
            assert!(seconds.windows(2).all(|w| w[0] <= w[1]), "{seconds:?}");
            std::thread::sleep(std::time::Duration::from_millis(400));
        }
    }
}
