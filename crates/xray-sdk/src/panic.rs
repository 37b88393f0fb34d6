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
//! let segment = recorder.begin_segment("jobs");
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

use crate::model::{CapturedStack, Exception, SwitchGuard};

/// Recorders alive that were built with `panic_stacks(true)`.
static PANIC_STACKS: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();

/// The text of a panic whose payload is neither a `&str` nor a `String`.
const NON_STRING: &str = "panic with a non-string payload";

struct LastPanic {
    fingerprint: u64,
    message: String,
    stack: Option<CapturedStack>,
}

thread_local! {
    /// This thread's latest panic.
    static LAST: RefCell<Option<LastPanic>> = const { RefCell::new(None) };
    /// Panics the hook has seen on this thread.
    static SEEN: Cell<u64> = const { Cell::new(0) };
    /// Set while this thread captures in the hook or resolves a stack: a panic then (inside
    /// the standard library's backtrace code, which holds its lock) must not capture again.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Installs the hook (once per process) and turns capture on while the guard lives. `None`
/// on a thread that is panicking, where the hook cannot be changed.
pub(crate) fn enable_panic_stacks() -> Option<SwitchGuard> {
    if std::thread::panicking() {
        tracing::debug!("recorder built while panicking: no panic hook installed");
        return None;
    }
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            hook(info);
            previous(info);
        }));
    });
    Some(SwitchGuard::on(&PANIC_STACKS))
}

fn hook(info: &PanicHookInfo<'_>) {
    let _ = BUSY.try_with(|busy| {
        if busy.get() {
            return;
        }
        busy.set(true);
        let stack = (PANIC_STACKS.load(Ordering::Relaxed) > 0).then(|| {
            let location = info.location().map(|l| (l.file(), l.line()));
            CapturedStack::capture_panic(location)
        });
        let entry = LastPanic {
            fingerprint: fingerprint(info.payload()),
            message: message(info.payload()).to_owned(),
            stack,
        };
        // Always replaced, so a panic that was not captured never gets an older one's stack.
        let _ = LAST.try_with(|last| {
            if let Ok(mut slot) = last.try_borrow_mut() {
                *slot = Some(entry);
            }
        });
        let _ = SEEN.try_with(|n| n.set(n.get().wrapping_add(1)));
        busy.set(false);
    });
}

/// Runs `f` (which resolves a stack) with this thread's panics left uncaptured.
pub(crate) fn while_resolving<R>(f: impl FnOnce() -> R) -> R {
    let was = BUSY.try_with(|b| b.replace(true)).unwrap_or(true);
    let result = f();
    let _ = BUSY.try_with(|b| b.set(was));
    result
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
        let entry = slot.as_ref()?;
        let mut e = Exception::new(entry.message.clone(), "panic");
        e.captured = entry.stack.clone();
        Some(e)
    })
    .ok()
    .flatten()
}

/// An exception for a caught panic: type `panic`, the payload's [`message`], and the
/// panic's [`stack`] (the frames from the code that panicked outwards, without the panic
/// machinery). Call it on the thread that caught the panic; a panic caught elsewhere (a
/// task's `JoinError`) gets the message only.
pub fn exception(payload: &(dyn Any + Send)) -> Exception {
    let mut e = Exception::new(message(payload), "panic");
    e.captured = stack(payload);
    e
}
