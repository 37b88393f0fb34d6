//! The current segment or subsegment, following a request across `.await` points.
//!
//! The current [`Context`] lives in a thread-local slot that a wrapped future fills for the
//! duration of each `poll` and empties afterwards, the way `tracing`'s `Instrumented` enters
//! its span. A task that moves between the threads of a multi-threaded runtime therefore sees
//! its own context on whichever thread polls it, and never another task's. Filling the slot
//! moves the context in and out (no reference counting per poll).
//!
//! ```
//! use xray_sdk::{Recorder, context::FutureExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let recorder = Recorder::disabled();
//! let segment = recorder.begin_segment("checkout");
//! async {
//!     // Anything in here (adapters included) finds the segment.
//!     let current = xray_sdk::Context::current().unwrap();
//!     assert_eq!(current.trace_id(), segment.trace_id());
//!     xray_sdk::subsegment("load-cart", async { /* timed */ }).await;
//! }
//! .in_context(segment.context())
//! .await;
//! # }
//! ```

use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use crate::segment::{Context, Subsegment};

thread_local! {
    static CURRENT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// The current context of this thread (set by [`WithContext`], [`Context::enter`] or
/// [`Context::in_scope`]).
#[inline]
pub fn current() -> Option<Context> {
    // `try_with`: a `Drop` of another thread-local may log or open spans while this one is
    // already gone; there is no context then, rather than an abort.
    CURRENT
        .try_with(|c| c.try_borrow().ok().and_then(|c| c.clone()))
        .ok()
        .flatten()
}

/// Runs `f` with a borrow of the current context, without cloning it.
#[inline]
pub fn with_current<R>(f: impl FnOnce(Option<&Context>) -> R) -> R {
    let mut f = Some(f);
    let ran = CURRENT.try_with(|c| {
        let f = f.take()?;
        let cur = c.try_borrow().ok();
        Some(f(cur.as_deref().and_then(Option::as_ref)))
    });
    if let Ok(Some(out)) = ran {
        return out;
    }
    // The thread's storage is being torn down (see `current`): no context.
    match f {
        Some(f) => f(None),
        None => unreachable!("`f` is taken only by the closure that returned its result"),
    }
}

/// Replaces the current context of this thread and returns the previous one. A low-level
/// building block for integrations (such as a `tracing` layer entering and leaving spans)
/// that cannot hold an [`EnterGuard`]; every call must be paired with one that restores
/// what it returned.
#[inline]
pub fn replace_current(context: Option<Context>) -> Option<Context> {
    let mut slot = context;
    swap(&mut slot);
    slot
}

/// Exchanges the current context of this thread with `slot`, in place: what was current ends
/// up in `slot`. The cheapest way for an integration that keeps its context in a slot of its
/// own (a future, a response body) to make it current and, with a second call, to take it
/// back. Every call must be paired with one that swaps back.
///
/// ```
/// use xray_sdk::{Recorder, context};
///
/// let recorder = Recorder::disabled();
/// let segment = recorder.begin_segment("job");
/// let mut slot = Some(segment.context());
/// context::swap_current(&mut slot); // the segment is current, `slot` holds what was
/// assert_eq!(context::current().map(|c| c.id()), Some(segment.id()));
/// context::swap_current(&mut slot); // back as before
/// assert!(context::current().is_none());
/// assert_eq!(slot.map(|c| c.id()), Some(segment.id()));
/// ```
#[inline]
pub fn swap_current(slot: &mut Option<Context>) {
    swap(slot);
}

#[inline]
fn swap(slot: &mut Option<Context>) {
    let _ = CURRENT.try_with(|c| {
        if let Ok(mut cur) = c.try_borrow_mut() {
            std::mem::swap(&mut *cur, slot);
        }
    });
}

/// Restores the previous current context when dropped.
#[must_use = "the context is current only while the guard lives"]
#[derive(Debug)]
pub struct EnterGuard {
    previous: Option<Context>,
    // Not Send: the guard must be dropped on the thread where it was created.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for EnterGuard {
    #[inline]
    fn drop(&mut self) {
        swap(&mut self.previous);
    }
}

impl Context {
    /// Makes this context current on this thread until the guard is dropped. Do not hold the
    /// guard across an `.await`; wrap the future with [`FutureExt::in_context`] instead.
    #[inline]
    pub fn enter(&self) -> EnterGuard {
        let mut previous = Some(self.clone());
        swap(&mut previous);
        EnterGuard {
            previous,
            _not_send: std::marker::PhantomData,
        }
    }

    /// Runs `f` with this context current.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.enter();
        f()
    }
}

pin_project_lite::pin_project! {
    /// A future that runs with a context current during every poll. See [`FutureExt`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct WithContext<F> {
        #[pin]
        inner: F,
        context: Option<Context>,
    }
}

struct Restore<'a> {
    slot: &'a mut Option<Context>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        // Runs on unwinding too, so a panicking poll cannot leave its context installed.
        swap(self.slot);
    }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        swap(this.context);
        let _restore = Restore { slot: this.context };
        this.inner.poll(cx)
    }
}

/// Attaches an X-Ray context to a future, for `.await` chains and spawned tasks.
pub trait FutureExt: Future + Sized {
    /// Runs this future with `context` current during every poll:
    /// `tokio::spawn(work().in_context(segment.context()))`.
    fn in_context(self, context: Context) -> WithContext<Self> {
        WithContext {
            inner: self,
            context: Some(context),
        }
    }

    /// Runs this future with the context that is current now (if any) current during every
    /// poll; use it when spawning a task from inside a traced request.
    fn in_current_context(self) -> WithContext<Self> {
        WithContext {
            inner: self,
            context: current(),
        }
    }
}

impl<F: Future> FutureExt for F {}

pin_project_lite::pin_project! {
    /// A future timed as a subsegment: see [`subsegment`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct InSubsegment<F> {
        #[pin]
        inner: F,
        name: Option<Cow<'static, str>>,
        subsegment: Option<Subsegment>,
    }
}

impl<F: Future> Future for InSubsegment<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        if let Some(name) = this.name.take() {
            // Begun on first poll, so an enclosing `in_context` is already in effect.
            *this.subsegment = crate::recorder::begin_subsegment_in_current(name);
        }
        let out = match this.subsegment.as_ref() {
            Some(sub) => {
                let _current = sub.enter();
                std::task::ready!(this.inner.poll(cx))
            }
            None => std::task::ready!(this.inner.poll(cx)),
        };
        if let Some(sub) = this.subsegment.take() {
            sub.end();
        }
        Poll::Ready(out)
    }
}

/// Runs `future` inside a new subsegment of the context that is current when it is first
/// polled: the subsegment is current while the future runs (so nested calls attach to it)
/// and ends when the future completes or is dropped. Outside any traced context the future
/// runs untouched and the context-missing strategy applies.
pub fn subsegment<F: Future>(name: impl Into<Cow<'static, str>>, future: F) -> InSubsegment<F> {
    InSubsegment {
        inner: future,
        name: Some(name.into()),
        subsegment: None,
    }
}

/// Runs `f` inside a new subsegment of the current context, with the subsegment current.
pub fn with_subsegment<R>(
    name: impl Into<Cow<'static, str>>,
    f: impl FnOnce(&Subsegment) -> R,
) -> R {
    match crate::recorder::begin_subsegment_in_current(name) {
        Some(sub) => {
            let out = sub.in_scope(|| f(&sub));
            sub.end();
            out
        }
        None => f(&Subsegment::noop()),
    }
}
