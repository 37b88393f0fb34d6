//! Stacks for panics.
//!
//! A recorder built with [`panic_stacks`](crate::RecorderBuilder::panic_stacks) on (the
//! default) installs a panic hook, once per process, in front of the hook that was there
//! before (the standard one prints the message as usual). While such a recorder is alive,
//! the hook captures the panicking thread's stack, unresolved (microseconds; names, files and
//! lines are looked up when the document is written, on the emitter's thread), and keeps it
//! in a slot of that thread with a fingerprint of the panic's payload.
//!
//! Code that catches a panic turns the payload into an exception with [`exception`], on the
//! thread that caught it (`catch_unwind` returns on the panicking thread):
//!
//! ```
//! use std::panic::{AssertUnwindSafe, catch_unwind};
//! use xray_sdk::Record;
//!
//! # let recorder = xray_sdk::Recorder::disabled();
//! let segment = recorder.segment("jobs").begin();
//! if let Err(payload) = catch_unwind(AssertUnwindSafe(|| run_job())) {
//!     segment.set_fault();
//!     segment.add_exception(xray_sdk::panic::exception(&*payload));
//! }
//! # fn run_job() {}
//! ```
//!
//! When the payload is out of reach (a panic caught and answered further in, such as by
//! tower-http's `CatchPanicLayer`), [`panics_on_this_thread`] before and after the inner code
//! says whether it panicked, and [`latest_exception`] gives the exception.
//!
//! A hook installed later that does not call the one it replaces (`take_hook`) ends the
//! capture: install yours before building the recorder, or chain to the previous one.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::PanicHookInfo;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::model::{CapturedStack, Exception, SwitchGuard, unless_in_stack_work};

/// Recorders alive that were built with `panic_stacks(true)`.
static PANIC_STACKS: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();

/// The text of a panic whose payload is neither a `&str` nor a `String`.
const NON_STRING: &str = "panic with a non-string payload";

struct LastPanic {
    fingerprint: u64,
    message: String,
    /// Where it happened (`file`, `line`), for a frame when no stack was captured.
    location: Option<(String, u32)>,
    /// The segment of the recorded work that was current, if any.
    segment: Option<crate::EntityId>,
    stack: Option<CapturedStack>,
}

thread_local! {
    /// This thread's latest panic.
    static LAST: RefCell<Option<LastPanic>> = const { RefCell::new(None) };
    /// Panics the hook has seen on this thread.
    static SEEN: Cell<u64> = const { Cell::new(0) };
}

/// Installs the hook, once per process (every enabled recorder does: panics are noted with
/// their message, place and segment whether or not their stacks are captured). Not from a
/// thread that is panicking, where the hook cannot be changed.
pub(crate) fn install() {
    if std::thread::panicking() {
        tracing::debug!("recorder built while panicking: no panic hook installed");
        return;
    }
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            hook(info);
            previous(info);
        }));
    });
}

/// Installs the hook and turns stack capture on while the guard lives. `None` on a thread
/// that is panicking.
pub(crate) fn enable_panic_stacks() -> Option<SwitchGuard> {
    install();
    INSTALL
        .is_completed()
        .then(|| SwitchGuard::on(&PANIC_STACKS))
}

fn hook(info: &PanicHookInfo<'_>) {
    let _ = unless_in_stack_work(|| {
        let location = info.location().map(|l| (l.file(), l.line()));
        let stack = (PANIC_STACKS.load(Ordering::Relaxed) > 0)
            .then(|| CapturedStack::capture_panic(location));
        // The segment of whatever recorded work is current; none for unsampled requests.
        let segment = crate::context::with_current(|c| c.and_then(|c| c.segment()).map(|s| s.id()));
        let entry = LastPanic {
            fingerprint: fingerprint(info.payload()),
            message: message(info.payload()).to_owned(),
            location: location.map(|(f, l)| (f.to_owned(), l)),
            segment,
            stack,
        };
        // Always replaced, so a panic that was not captured never gets an older one's stack.
        let _ = LAST.try_with(|last| {
            if let Ok(mut slot) = last.try_borrow_mut() {
                *slot = Some(entry);
            }
        });
        let _ = SEEN.try_with(|n| n.set(n.get().wrapping_add(1)));
    });
}

fn fingerprint(payload: &(dyn Any + Send)) -> u64 {
    let mut h = DefaultHasher::new();
    payload.type_id().hash(&mut h);
    message(payload).hash(&mut h);
    h.finish()
}

/// The message of a panic's payload: the `&str` or `String` that `panic!` carries, else
/// `"panic with a non-string payload"`.
///
/// ```
/// assert_eq!(xray_sdk::panic::message(&"boom"), "boom");
/// assert_eq!(xray_sdk::panic::message(&String::from("bang")), "bang");
/// assert_eq!(xray_sdk::panic::message(&7u8), "panic with a non-string payload");
/// ```
pub fn message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        NON_STRING
    }
}

/// The stack of the panic whose payload this is, if it was the latest panic on this thread
/// and a recorder with `panic_stacks` on was alive when it happened. Unresolved: the SDK
/// resolves it when it writes the document, off the request path.
pub fn stack(payload: &(dyn Any + Send)) -> Option<CapturedStack> {
    let fingerprint = fingerprint(payload);
    LAST.try_with(|last| {
        let slot = last.try_borrow().ok()?;
        let entry = slot.as_ref()?;
        (entry.fingerprint == fingerprint)
            .then(|| entry.stack.clone())
            .flatten()
    })
    .ok()
    .flatten()
}

/// How many panics the SDK's hook has seen on this thread (0 until a recorder installed it).
/// Code that cannot see the payload (a panic caught and answered further in, such as by
/// tower-http's `CatchPanicLayer`) compares it before and after running the inner code, and
/// then records [`latest_exception`].
pub fn panics_on_this_thread() -> u64 {
    SEEN.try_with(Cell::get).unwrap_or(0)
}

/// The exception of this thread's latest panic, as [`exception`] builds it from its payload:
/// type `panic`, the message, and the frames when they were captured. `None` before the
/// SDK's hook has seen a panic on this thread.
pub fn latest_exception() -> Option<Exception> {
    LAST.try_with(|last| {
        let slot = last.try_borrow().ok()?;
        Some(slot.as_ref()?.exception())
    })
    .ok()
    .flatten()
}

/// Takes this thread's latest panic if it happened while work of `segment` was current, as
/// an exception: for code that learns of a panic only from a failed response (a
/// `CatchPanicLayer` inside a tower layer). Taken, so it is recorded once.
pub fn take_for_segment(segment: crate::EntityId) -> Option<Exception> {
    LAST.try_with(|last| {
        let mut slot = last.try_borrow_mut().ok()?;
        if slot.as_ref()?.segment != Some(segment) {
            return None;
        }
        slot.take().map(|entry| entry.exception())
    })
    .ok()
    .flatten()
}

impl LastPanic {
    /// Type `panic`, the message, and the stack (or, without one, the place as one frame).
    fn exception(&self) -> Exception {
        let mut e = Exception::new(self.message.clone(), "panic");
        e.captured = self.stack.clone();
        if e.captured.is_none()
            && let Some((file, line)) = &self.location
        {
            e.stack.push(crate::model::StackFrame {
                path: Some(file.clone()),
                line: Some(*line),
                label: None,
            });
        }
        e
    }
}

/// An exception for a caught panic: type `panic`, the payload's [`message`], and the
/// panic's [`stack`] (the frames from the code that panicked outwards, without the panic
/// machinery). Call it on the thread that caught the panic; a panic caught elsewhere (a
/// task's `JoinError`) gets the message only.
pub fn exception(payload: &(dyn Any + Send)) -> Exception {
    let fingerprint = fingerprint(payload);
    let noted = LAST
        .try_with(|last| {
            let slot = last.try_borrow().ok()?;
            let entry = slot.as_ref()?;
            (entry.fingerprint == fingerprint).then(|| entry.exception())
        })
        .ok()
        .flatten();
    noted.unwrap_or_else(|| Exception::new(message(payload), "panic"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noted_panic_is_taken_by_its_segment_only_and_once() {
        let recorder = crate::Recorder::builder()
            .ignore_env()
            .sampler(crate::sampling::AlwaysSample)
            .centralized_sampling(false)
            .daemon_address("127.0.0.1:9")
            .build()
            .expect("recorder");
        let segment = recorder.segment("svc").begin();
        let sub = segment.begin_subsegment("step");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _current = sub.enter();
            panic!("noted {}", 7);
        }));
        assert!(caught.is_err());
        // Another segment's ID does not take it...
        assert!(take_for_segment(crate::EntityId::new()).is_none());
        // ...the segment does, once, with where it happened.
        let noted = take_for_segment(segment.id()).expect("noted");
        assert_eq!(noted.message.as_deref(), Some("noted 7"));
        assert_eq!(noted.kind.as_deref(), Some("panic"));
        let placed = noted.captured.is_some()
            || noted.stack.first().is_some_and(|f| {
                f.path.as_deref().is_some_and(|p| p.ends_with("panic.rs")) && f.line > Some(0)
            });
        assert!(placed, "{noted:?}");
        assert!(take_for_segment(segment.id()).is_none());

        // Without a current context nothing is noted for the segment.
        assert!(std::panic::catch_unwind(|| panic!("unnoted")).is_err());
        assert!(take_for_segment(segment.id()).is_none());
    }
}
