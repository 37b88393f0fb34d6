//! Start and end times of segments and subsegments: wall-clock microseconds since the Unix
//! epoch, read from the CPU's time-stamp counter instead of the system clock.
//!
//! A request with three subsegments reads the time eight times. On the virtual machines this
//! SDK usually runs on, `SystemTime::now` costs 30 to 40 ns, about a third of the whole
//! request path; the counter (through `quanta`, which calibrates it once per process and
//! falls back to the monotonic clock where it is unusable) costs about 10 ns.
//!
//! Each thread anchors the counter to the wall clock (one `SystemTime::now` next to one
//! counter read) and derives times from the anchor until it is a second old, then anchors
//! again. The counter's calibration is good to some tens of parts per million, so a time is
//! at most some tens of microseconds off the wall clock, and a step of the wall clock (NTP,
//! an operator) shows within a second. A counter that went backwards (another core, a
//! resumed machine) also re-anchors. Two threads' anchors may disagree by the same tens of
//! microseconds, so an entity that starts on one thread and ends on another can see its end
//! slightly before its start; ending clamps the end to the start.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: OnceLock<quanta::Clock> = OnceLock::new();

/// How long a thread's anchor is used before it is taken again.
const ANCHOR_NANOS: u64 = 1_000_000_000;

#[derive(Clone, Copy)]
struct Anchor {
    /// Counter reading at the anchor; 0 when the thread has none yet.
    raw: u64,
    wall_us: u64,
}

thread_local! {
    static ANCHOR: Cell<Anchor> = const { Cell::new(Anchor { raw: 0, wall_us: 0 }) };
}

/// Calibrates the counter now (under a millisecond, once per process) rather than on the
/// first request.
pub(crate) fn warm_up() {
    counter();
}

fn counter() -> &'static quanta::Clock {
    COUNTER.get_or_init(quanta::Clock::new)
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
    let clock = counter();
    let raw = clock.raw();
    ANCHOR
        .try_with(|slot| {
            let anchor = slot.get();
            if anchor.raw != 0 && raw >= anchor.raw {
                let elapsed = clock.delta_as_nanos(anchor.raw, raw);
                if elapsed < ANCHOR_NANOS {
                    return anchor.wall_us + elapsed / 1_000;
                }
            }
            let wall_us = wall_micros();
            slot.set(Anchor {
                raw: raw.max(1),
                wall_us,
            });
            wall_us
        })
        // Thread-local storage already destroyed (a thread exiting): the system clock.
        .unwrap_or_else(|_| wall_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_wall_clock() {
        for _ in 0..2_000 {
            let before = wall_micros();
            let t = now_micros();
            let after = wall_micros();
            // Calibration error over at most one second of anchor age, plus scheduling.
            assert!(
                t + 5_000 >= before && t <= after + 5_000,
                "{before} <= {t} <= {after}"
            );
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
        let later = now_micros();
        let reanchored = ANCHOR.with(Cell::get);
        assert_ne!(anchored.raw, reanchored.raw);
        assert!(later >= first + 1_000_000);
        assert!(later.abs_diff(wall_micros()) < 5_000);
    }
}
