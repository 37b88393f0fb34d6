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
//! let segment = recorder.segment("checkout").begin();
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

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::ContextMissing;
use crate::handle::{Context, Entity};

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
/// let segment = recorder.segment("job").begin();
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
    /// The current context of this task or thread, if any (see [`crate::context`]).
    pub fn current() -> Option<Context> {
        current()
    }

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
        subsegment: Option<Entity>,
    }
}

impl<F: Future> Future for InSubsegment<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        if let Some(name) = this.name.take() {
            // Begun on first poll, so an enclosing `in_context` is already in effect.
            *this.subsegment = begin_subsegment_in_current(name);
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
/// runs untouched and the context-missing policy applies (as for [`begin_subsegment`], except that
/// `RUNTIME_ERROR` is logged like `LOG_ERROR`: there is no error to return).
pub fn subsegment<F: Future>(name: impl Into<Cow<'static, str>>, future: F) -> InSubsegment<F> {
    InSubsegment {
        inner: future,
        name: Some(name.into()),
        subsegment: None,
    }
}

/// Runs `f` inside a new subsegment of the current context, with the subsegment current.
pub fn with_subsegment<R>(name: impl Into<Cow<'static, str>>, f: impl FnOnce(&Entity) -> R) -> R {
    match begin_subsegment_in_current(name) {
        Some(sub) => {
            let out = sub.in_scope(|| f(&sub));
            sub.end();
            out
        }
        None => f(&Entity::noop()),
    }
}

/// There was no current segment or subsegment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextMissingError {
    operation: &'static str,
}

impl std::fmt::Display for ContextMissingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "X-Ray context missing: {} was called outside any segment (wrap the work in a segment, or set AWS_XRAY_CONTEXT_MISSING=IGNORE_ERROR)",
            self.operation
        )
    }
}

impl std::error::Error for ContextMissingError {}

/// The policy of the places that find no context and have no setting of their own (this
/// module's free functions, and the adapters unless given one): `AWS_XRAY_CONTEXT_MISSING`,
/// else `LOG_ERROR`. No recorder changes it, the global one included: outside any context
/// there is no recorder to ask, and a default that changed with whether `install_global` had
/// run would be a trap.
pub(crate) fn process_default() -> ContextMissing {
    env_policy().unwrap_or_default()
}

/// `AWS_XRAY_CONTEXT_MISSING`, read once; an invalid value is logged once and ignored.
pub(crate) fn env_policy() -> Option<ContextMissing> {
    static FROM_ENV: OnceLock<Option<ContextMissing>> = OnceLock::new();
    *FROM_ENV.get_or_init(|| {
        let value = std::env::var(crate::config::env::CONTEXT_MISSING).ok()?;
        match ContextMissing::parse(&value) {
            Ok(policy) => Some(policy),
            Err(e) => {
                tracing::error!(error = %e, "ignoring invalid X-Ray setting; using LOG_ERROR");
                None
            }
        }
    })
}

/// Applies `policy` for `operation`: `Err` only for `RUNTIME_ERROR`. Logging is rate-limited
/// (the 1st, 2nd, 4th, ... and every 1000th occurrence).
pub(crate) fn apply_policy(
    policy: ContextMissing,
    operation: &'static str,
) -> Result<(), ContextMissingError> {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let err = ContextMissingError { operation };
    match policy {
        ContextMissing::IgnoreError => Ok(()),
        ContextMissing::LogError => {
            let n = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() || n.is_multiple_of(1000) {
                tracing::error!(occurrences = n, "{err}");
            }
            Ok(())
        }
        ContextMissing::RuntimeError => Err(err),
    }
}

/// Begins a subsegment of the current context. Without one, the context-missing policy
/// (`AWS_XRAY_CONTEXT_MISSING`, else `LOG_ERROR`; see [`ContextMissing`]) decides:
/// `LOG_ERROR` logs and `IGNORE_ERROR` stays silent (both return an entity that records
/// nothing), `RUNTIME_ERROR` returns the error.
pub fn begin_subsegment<'a>(name: impl Into<Cow<'a, str>>) -> Result<Entity, ContextMissingError> {
    let name = name.into();
    match with_current(|c| c.map(|c| c.begin_subsegment(name))) {
        Some(sub) => Ok(sub),
        None => apply_policy(process_default(), "begin_subsegment").map(|()| Entity::noop()),
    }
}

/// A subsegment of the current context for callers that cannot return an error: without a
/// context, `RUNTIME_ERROR` is logged like `LOG_ERROR`.
fn begin_subsegment_in_current<'a>(name: impl Into<Cow<'a, str>>) -> Option<Entity> {
    let name = name.into();
    let sub = with_current(|c| c.map(|c| c.begin_subsegment(name)));
    if sub.is_none() {
        let _ = apply_policy(
            match process_default() {
                ContextMissing::RuntimeError => ContextMissing::LogError,
                other => other,
            },
            "subsegment",
        );
    }
    sub
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` with a subscriber on this thread and returns the ERROR events it logged.
    fn errors_logged(f: impl FnOnce()) -> Vec<String> {
        use std::sync::{Arc, Mutex};
        let lines = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let lines = Arc::clone(&lines);
            move || LineWriter(Arc::clone(&lines))
        };
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::ERROR)
            .with_ansi(false)
            .with_writer(writer)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    struct LineWriter(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl std::io::Write for LineWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut lines) = self.0.lock() {
                lines.push(String::from_utf8_lossy(buf).into_owned());
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn missing_context_strategies() {
        // The occurrence counter is process-wide: among any 1000 calls, at least one is
        // logged (a power of two or a multiple of 1000), and only a handful are.
        const CALLS: usize = 1000;
        let logged = errors_logged(|| {
            for _ in 0..CALLS {
                assert!(apply_policy(ContextMissing::LogError, "annotate").is_ok());
            }
        });
        assert!((1..=12).contains(&logged.len()), "{logged:?}");
        for line in &logged {
            assert!(line.contains("ERROR"), "{line}");
            assert!(line.contains("annotate"), "{line}");
            assert!(line.contains("occurrences="), "{line}");
        }

        let logged = errors_logged(|| {
            for _ in 0..CALLS {
                assert!(apply_policy(ContextMissing::IgnoreError, "annotate").is_ok());
            }
        });
        assert!(logged.is_empty(), "{logged:?}");

        let logged = errors_logged(|| {
            let e = apply_policy(ContextMissing::RuntimeError, "begin_subsegment").unwrap_err();
            assert!(e.to_string().contains("begin_subsegment"));
        });
        assert!(logged.is_empty(), "{logged:?}");
    }
}
