//! The `cause` block: exceptions with their stacks, built from Rust errors.
//!
//! Stacks are captured where an error is recorded (when enabled) or a panic raised, as raw
//! return addresses ([`CapturedStack`]); turning them into function names, files and lines
//! (symbol resolution, which reads the binary's debug information) happens only when the
//! document is written, on the emitter's thread.

use std::backtrace::Backtrace;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use crate::id::EntityId;

fn is_false(b: &bool) -> bool {
    !*b
}

/// Most stack frames recorded per exception; the rest are counted in `truncated`.
pub const MAX_STACK_FRAMES: usize = 50;

/// One frame of an exception's stack.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StackFrame {
    /// Source file path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Line number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Function name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// One exception of a `cause` block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exception {
    /// A 16-hex-digit ID, unique within the trace.
    pub id: EntityId,
    /// The error message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The error type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// True when the error came from a downstream service rather than this process.
    #[serde(skip_serializing_if = "is_false")]
    pub remote: bool,
    /// Number of stack frames left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<u32>,
    /// Number of exceptions left out between this one and its cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<u32>,
    /// The ID of the exception that caused this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<EntityId>,
    /// Stack frames, innermost first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stack: Vec<StackFrame>,
    /// Frames captured but not yet resolved: when the document is written (on the emitter's
    /// thread), they are resolved and follow the frames of `stack`, within
    /// [`MAX_STACK_FRAMES`]. Serializing an `Exception` directly leaves them out.
    #[serde(skip)]
    pub captured: Option<CapturedStack>,
}

impl Exception {
    /// An exception with a fresh ID and the given message and type.
    pub fn new(message: impl Into<String>, kind: impl Into<String>) -> Self {
        Exception {
            id: EntityId::new(),
            message: Some(message.into()),
            kind: Some(kind.into()),
            remote: false,
            truncated: None,
            skipped: None,
            cause: None,
            stack: Vec::new(),
            captured: None,
        }
    }

    /// Marks the exception as coming from a downstream service.
    pub fn remote(mut self, remote: bool) -> Self {
        self.remote = remote;
        self
    }
}

/// The `cause` block: the working directory, and exceptions (the first is the outermost).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cause {
    /// The process's working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// Source paths of interest (rarely used).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// The exceptions, outermost first; each one's `cause` is the next one's `id`.
    pub exceptions: Vec<Exception>,
}

/// At most this many exceptions are kept in one segment's or subsegment's `cause`; the ones
/// after are counted in the `skipped` of the last one kept.
pub const MAX_EXCEPTIONS: usize = 32;

/// Appends `new` to `list`, keeping at most [`MAX_EXCEPTIONS`].
pub(crate) fn append_exceptions(list: &mut Vec<Exception>, new: Vec<Exception>) {
    let room = MAX_EXCEPTIONS.saturating_sub(list.len());
    let over = new.len().saturating_sub(room);
    list.extend(new.into_iter().take(room));
    count_skipped(list, over);
}

/// Keeps the first `max` exceptions of `list`, counting the others in the last one's `skipped`.
pub(crate) fn truncate_exceptions(list: &mut Vec<Exception>, max: usize) {
    let over = list.len().saturating_sub(max);
    list.truncate(max);
    count_skipped(list, over);
}

fn count_skipped(list: &mut [Exception], skipped: usize) {
    if skipped == 0 {
        return;
    }
    if let Some(last) = list.last_mut() {
        let skipped = u32::try_from(skipped).unwrap_or(u32::MAX);
        last.skipped = Some(last.skipped.unwrap_or(0).saturating_add(skipped));
    }
}

fn working_directory() -> Option<String> {
    static DIR: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        std::env::current_dir()
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    })
    .clone()
}

/// The type name of an error as Rust's `Debug` spells it: the leading identifier, e.g.
/// `ParseIntError` for `ParseIntError { kind: InvalidDigit }`, `Os` for an I/O error.
fn debug_type_name(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let dbg = format!("{err:?}");
    let name: String = dbg
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let name = name.rsplit("::").next().unwrap_or("").to_owned();
    if name.is_empty() { None } else { Some(name) }
}

fn short_type_name(full: &str) -> String {
    // "core::num::error::ParseIntError" -> "ParseIntError"; keep generics readable.
    let base = full.split('<').next().unwrap_or(full);
    let short = base.rsplit("::").next().unwrap_or(base);
    if base.len() == full.len() {
        short.to_owned()
    } else {
        format!("{short}{}", &full[base.len()..])
    }
}

impl Cause {
    /// Builds a cause from an error and its `source()` chain, one exception per error, each
    /// linked to the next through `cause`. The outermost error's type is its Rust type name;
    /// the sources' types are read from their `Debug` output.
    ///
    /// ```
    /// use xray_sdk::model::Cause;
    /// let err = "x".parse::<u32>().unwrap_err();
    /// let cause = Cause::from_error(&err);
    /// assert_eq!(cause.exceptions[0].kind.as_deref(), Some("ParseIntError"));
    /// assert_eq!(cause.exceptions[0].message.as_deref(), Some("invalid digit found in string"));
    /// ```
    pub fn from_error<E: std::error::Error + 'static>(err: &E) -> Self {
        let mut cause = Cause::from_dyn_error(err);
        if let Some(first) = cause.exceptions.first_mut() {
            first.kind = Some(short_type_name(std::any::type_name::<E>()));
        }
        cause
    }

    /// Like [`Cause::from_error`] for a trait object (type names come from `Debug`).
    ///
    /// When a recorder built with
    /// [`error_stacks(true)`](crate::RecorderBuilder::error_stacks) is alive, the first
    /// exception also carries the stack where it was built, captured unresolved
    /// ([`CapturedStack`]); otherwise no stack is captured, whatever `RUST_BACKTRACE` says.
    pub fn from_dyn_error(err: &(dyn std::error::Error + 'static)) -> Self {
        let mut exceptions: Vec<Exception> = Vec::new();
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
        let mut depth = 0;
        while let Some(e) = current {
            if depth == 16 {
                // Pathological chains: record how many were left out.
                let mut rest = 0u32;
                let mut tail = Some(e);
                while let Some(t) = tail {
                    rest += 1;
                    tail = t.source();
                    if rest > 10_000 {
                        break;
                    }
                }
                if let Some(last) = exceptions.last_mut() {
                    last.skipped = Some(rest);
                }
                break;
            }
            let ex = Exception {
                id: EntityId::new(),
                message: Some(e.to_string()),
                kind: debug_type_name(e),
                remote: false,
                truncated: None,
                skipped: None,
                cause: None,
                stack: Vec::new(),
                captured: None,
            };
            if let Some(prev) = exceptions.last_mut() {
                prev.cause = Some(ex.id);
            }
            exceptions.push(ex);
            current = e.source();
            depth += 1;
        }
        if error_stacks_enabled()
            && let Some(first) = exceptions.first_mut()
        {
            first.captured = Some(CapturedStack::capture());
        }
        Cause {
            working_directory: working_directory(),
            paths: Vec::new(),
            exceptions,
        }
    }

    /// A cause with a single exception.
    pub fn from_exception(exception: Exception) -> Self {
        Cause {
            working_directory: working_directory(),
            paths: Vec::new(),
            exceptions: vec![exception],
        }
    }

    /// Marks every exception as remote (the error came from a downstream service).
    pub fn remote(mut self, remote: bool) -> Self {
        for e in &mut self.exceptions {
            e.remote = remote;
        }
        self
    }

    /// The same cause with every captured stack resolved into `stack` (borrowed as it is
    /// when nothing was captured). Resolution reads debug information: this is for the
    /// emitter's thread, which calls it when it writes the document.
    pub(crate) fn with_resolved_stacks(&self) -> Cow<'_, Cause> {
        if self.exceptions.iter().all(|e| e.captured.is_none()) {
            return Cow::Borrowed(self);
        }
        let mut cause = self.clone();
        for e in &mut cause.exceptions {
            let Some(captured) = e.captured.take() else {
                continue;
            };
            let (frames, omitted) = captured.resolve();
            let room = MAX_STACK_FRAMES.saturating_sub(e.stack.len());
            let cut = frames.len().saturating_sub(room) + omitted as usize;
            e.stack.extend(frames.iter().take(room).cloned());
            if cut > 0 {
                let cut = u32::try_from(cut).unwrap_or(u32::MAX);
                e.truncated = Some(e.truncated.unwrap_or(0).saturating_add(cut));
            }
        }
        Cow::Owned(cause)
    }
}

/// Recorders alive that were built with `error_stacks(true)`.
static ERROR_STACKS: AtomicUsize = AtomicUsize::new(0);

fn error_stacks_enabled() -> bool {
    ERROR_STACKS.load(Ordering::Relaxed) > 0
}

/// Keeps a process-wide switch on while it lives (one per recorder that turned it on).
#[derive(Debug)]
pub(crate) struct SwitchGuard(&'static AtomicUsize);

impl SwitchGuard {
    pub(crate) fn on(switch: &'static AtomicUsize) -> Self {
        switch.fetch_add(1, Ordering::Relaxed);
        SwitchGuard(switch)
    }
}

impl Drop for SwitchGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Turns on stack capture for errors while the guard lives.
pub(crate) fn enable_error_stacks() -> SwitchGuard {
    SwitchGuard::on(&ERROR_STACKS)
}

thread_local! {
    /// Set while this thread captures a panic's stack or resolves a stack: a panic then
    /// (inside the standard library's backtrace code, which holds its lock) must not capture
    /// again.
    static STACK_WORK: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (which resolves a stack) with this thread's panics left uncaptured.
pub(crate) fn while_resolving<R>(f: impl FnOnce() -> R) -> R {
    let was = STACK_WORK.try_with(|b| b.replace(true)).unwrap_or(true);
    let result = f();
    let _ = STACK_WORK.try_with(|b| b.set(was));
    result
}

/// Runs `f` (a panic hook's capture) unless this thread is already capturing or resolving a
/// stack; `None` then.
pub(crate) fn unless_in_stack_work<R>(f: impl FnOnce() -> R) -> Option<R> {
    if STACK_WORK.try_with(|b| b.replace(true)).unwrap_or(true) {
        return None;
    }
    let result = f();
    let _ = STACK_WORK.try_with(|b| b.set(false));
    Some(result)
}

/// What a capture is of, which says which leading frames are the capture's own machinery.
#[derive(Debug)]
enum Origin {
    /// An error being recorded: the SDK's own frames come first.
    Error,
    /// A panic: the panic hook, the panic runtime and the `unwrap`/`expect` helpers come
    /// first; the panic's location fills the first frame's file and line when the binary has
    /// no line information.
    Panic { location: Option<(String, u32)> },
}

struct Captured {
    backtrace: Backtrace,
    origin: Origin,
    resolved: OnceLock<(Vec<StackFrame>, u32)>,
}

/// A stack captured where an error was recorded or a panic raised: the return addresses
/// only, which costs microseconds. Function names, files and lines are looked up when the
/// document is written, on the emitter's thread, and kept (a document written twice, or a
/// stack shared by two exceptions, is resolved once).
///
/// Build one with [`CapturedStack::capture`] and put it in [`Exception::captured`]; the SDK
/// does so for errors when [`error_stacks`](crate::RecorderBuilder::error_stacks) is on and
/// for panics through [`crate::panic::exception`]. Cloning shares the capture.
#[derive(Clone)]
pub struct CapturedStack(Arc<Captured>);

impl CapturedStack {
    /// Captures the calling thread's stack, unresolved. The frames of the SDK itself at the
    /// top of the stack are left out when it is resolved.
    ///
    /// The capture costs 0.25 to 0.4 µs per frame (5 to 8 µs for 20 frames, 16 to 24 µs for
    /// 60, on the machine `benches/causes.rs` was run on). It walks the stack under the
    /// standard library's backtrace lock, which the emitter's thread also holds while it
    /// resolves a stack (0.06 to 0.2 ms once the debug information is loaded; loading it, at
    /// the first resolution in a process, took 120 to 150 ms there): a capture made just then
    /// waits for that resolution. Only threads that capture (a panic, or an error with `error_stacks` on)
    /// ever wait on it; the standard library's own panic message does the same when
    /// `RUST_BACKTRACE` is set.
    pub fn capture() -> Self {
        Self::new(Origin::Error)
    }

    pub(crate) fn capture_panic(location: Option<(&str, u32)>) -> Self {
        Self::new(Origin::Panic {
            location: location.map(|(file, line)| (file.to_owned(), line)),
        })
    }

    fn new(origin: Origin) -> Self {
        CapturedStack(Arc::new(Captured {
            backtrace: Backtrace::force_capture(),
            origin,
            resolved: OnceLock::new(),
        }))
    }

    /// True once the frames have been resolved.
    pub fn is_resolved(&self) -> bool {
        self.0.resolved.get().is_some()
    }

    /// The frames, innermost first (at most [`MAX_STACK_FRAMES`]), and how many more were
    /// left out. Resolved on the first call, which reads the binary's debug information
    /// (loaded once per process, the first time): the SDK calls it on the emitter's thread
    /// when it writes the document, never on the request path.
    pub fn resolve(&self) -> (&[StackFrame], u32) {
        let (frames, omitted) = self.resolved();
        (frames, *omitted)
    }

    fn resolved(&self) -> &(Vec<StackFrame>, u32) {
        self.0.resolved.get_or_init(|| {
            let text = while_resolving(|| self.0.backtrace.to_string());
            let mut frames = parse_backtrace(&text);
            let location = match &self.0.origin {
                Origin::Error => None,
                Origin::Panic { location } => Some(location.as_ref()),
            };
            let skip = match location {
                None => leading(&frames, |l| is_capture_frame(l) || is_std_frame(l)),
                Some(location) => first_panicking_frame(&frames, location),
            };
            frames.drain(..skip);
            if let Some(Some((file, line))) = location {
                match frames.first_mut() {
                    Some(first) if first.path.is_none() => {
                        first.path = Some(file.clone());
                        first.line = Some(*line);
                    }
                    Some(_) => {}
                    None => frames.push(StackFrame {
                        path: Some(file.clone()),
                        line: Some(*line),
                        label: None,
                    }),
                }
            }
            let omitted =
                u32::try_from(frames.len().saturating_sub(MAX_STACK_FRAMES)).unwrap_or(u32::MAX);
            frames.truncate(MAX_STACK_FRAMES);
            frames.shrink_to_fit();
            (frames, omitted)
        })
    }
}

/// Never resolves: formatting an exception on the request path must stay cheap.
impl fmt::Debug for CapturedStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapturedStack")
            .field("origin", &self.0.origin)
            .field("resolved", &self.is_resolved())
            .finish()
    }
}

/// The same capture (two clones of one [`CapturedStack`]).
impl PartialEq for CapturedStack {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// How many frames at the top satisfy `machinery`.
fn leading(frames: &[StackFrame], machinery: impl Fn(&str) -> bool) -> usize {
    frames
        .iter()
        .take_while(|f| f.label.as_deref().is_some_and(&machinery))
        .count()
}

/// The standard library's capture and the SDK's own frames (building the cause, recording it).
fn is_capture_frame(label: &str) -> bool {
    [
        "std::backtrace",
        "<std::backtrace",
        "xray_sdk::",
        "<xray_sdk::",
    ]
    .iter()
    .any(|p| label.starts_with(p))
}

/// A function of the standard library (closure helpers, `Option::map`, the panic runtime).
fn is_std_frame(label: &str) -> bool {
    let path = label.strip_prefix('<').unwrap_or(label);
    [
        "core::",
        "std::",
        "alloc::",
        "rust_begin_unwind",
        "__rustc::",
    ]
    .iter()
    .any(|p| path.starts_with(p))
}

/// The panic runtime's entry: the frames above it are the hooks and the capture.
fn is_panic_entry(label: &str) -> bool {
    label == "rust_begin_unwind"
        || label == "__rustc::rust_begin_unwind"
        || label.starts_with("core::panicking::panic_fmt")
        || label.starts_with("std::panicking::begin_panic")
}

/// Where the code that panicked is: the first frame below the panic runtime at the panic's
/// location (which `unwrap`, `expect` and indexing report as their caller's), else the first
/// frame below it that is not the standard library's (a binary without line information).
fn first_panicking_frame(frames: &[StackFrame], location: Option<&(String, u32)>) -> usize {
    let below = frames
        .iter()
        .position(|f| f.label.as_deref().is_some_and(is_panic_entry))
        .map_or(0, |i| i + 1);
    let file_name = |p: &str| p.rsplit(['/', '\\']).next().unwrap_or("").to_owned();
    if let Some((file, line)) = location {
        let name = file_name(file);
        let at = frames[below..].iter().position(|f| {
            f.line == Some(*line) && f.path.as_deref().is_some_and(|p| file_name(p) == name)
        });
        if let Some(at) = at {
            return below + at;
        }
    }
    below + leading(&frames[below..], is_std_frame)
}

/// Parses the text form of a `std::backtrace::Backtrace` ("  N: symbol\n     at path:line:col"),
/// every frame in order.
fn parse_backtrace(text: &str) -> Vec<StackFrame> {
    let mut frames: Vec<StackFrame> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(loc) = t.strip_prefix("at ") {
            if let Some(last) = frames.last_mut() {
                let mut parts = loc.rsplitn(3, ':');
                let _col = parts.next();
                let line_no = parts.next().and_then(|l| l.parse().ok());
                let path = parts.next().unwrap_or(loc);
                last.path = Some(path.to_owned());
                last.line = line_no;
            }
        } else if let Some((num, label)) = t.split_once(": ")
            && num.chars().all(|c| c.is_ascii_digit())
            && !num.is_empty()
        {
            frames.push(StackFrame {
                path: None,
                line: None,
                label: Some(label.to_owned()),
            });
        }
    }
    frames
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("loading config failed")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn cause_follows_the_source_chain() {
        let err = Outer(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file",
        ));
        let cause = Cause::from_error(&err);
        assert_eq!(cause.exceptions.len(), 2);
        let (a, b) = (&cause.exceptions[0], &cause.exceptions[1]);
        assert_eq!(a.kind.as_deref(), Some("Outer"));
        assert_eq!(a.message.as_deref(), Some("loading config failed"));
        assert_eq!(a.cause, Some(b.id));
        assert_eq!(b.message.as_deref(), Some("no such file"));
        assert_eq!(b.kind.as_deref(), Some("Custom"));
        assert!(cause.working_directory.is_some());
        let json = serde_json::to_value(&cause).unwrap();
        assert_eq!(json["exceptions"][0]["type"], "Outer");
        assert_eq!(json["exceptions"][0]["cause"], b.id.to_string());
        assert!(json["exceptions"][1].get("remote").is_none());
    }

    #[test]
    fn backtrace_text_is_parsed() {
        let text = "   0: std::backtrace::Backtrace::capture\n             at /rustc/x/library/std/src/backtrace.rs:296:13\n   1: my_app::handler::run\n             at ./src/handler.rs:42:9\n   2: main\n";
        let frames = parse_backtrace(text);
        assert_eq!(frames.len(), 3);
        assert_eq!(leading(&frames, is_capture_frame), 1);
        assert_eq!(frames[1].label.as_deref(), Some("my_app::handler::run"));
        assert_eq!(frames[1].path.as_deref(), Some("./src/handler.rs"));
        assert_eq!(frames[1].line, Some(42));
        assert_eq!(frames[2].label.as_deref(), Some("main"));
        assert_eq!((frames[2].path.as_ref(), frames[2].line), (None, None));
    }

    #[test]
    fn the_sdk_s_frames_are_dropped_from_the_top_only() {
        let labels = [
            "std::backtrace::Backtrace::force_capture",
            "xray_sdk::model::cause::CapturedStack::capture",
            "xray_sdk::model::cause::Cause::from_dyn_error",
            "<xray_sdk::handle::Entity as xray_sdk::record::Record>::record_error",
            "my_app::load",
            "xray_sdk::context::poll_in_context",
            "main",
        ];
        let frames: Vec<StackFrame> = labels
            .iter()
            .map(|l| StackFrame {
                label: Some((*l).to_owned()),
                ..StackFrame::default()
            })
            .collect();
        assert_eq!(leading(&frames, is_capture_frame), 4);
        assert_eq!(
            leading(&frames, |l| is_capture_frame(l) || is_std_frame(l)),
            4
        );
    }

    #[test]
    fn a_panic_s_frames_start_at_the_code_that_panicked() {
        // As `std` prints a stack captured in the SDK's hook (debug build) for an `expect`.
        let text = "   0: std::backtrace::Backtrace::force_capture
             at /rustc/x/library/std/src/backtrace.rs:312:9
   1: xray_sdk::model::cause::CapturedStack::capture_panic
   2: core::bool::<impl bool>::then
             at /rustc/x/library/core/src/bool.rs:66:24
   3: xray_sdk::panic::hook::{{closure}}
   4: std::thread::local::LocalKey<T>::try_with
   5: <alloc::boxed::Box<dyn for<'a, 'b> core::ops::function::Fn<(&'a std::panic::PanicHookInfo<'b>,), Output = ()> + core::marker::Sync + core::marker::Send> as core::ops::function::Fn<(&std::panic::PanicHookInfo,)>>::call
             at /rustc/x/library/alloc/src/boxed.rs:2254:9
   6: std::panicking::panic_with_hook
   7: std::panicking::panic_handler::{{closure}}
   8: std::sys::backtrace::__rust_end_short_backtrace
   9: __rustc::rust_begin_unwind
  10: core::panicking::panic_fmt
  11: core::panicking::panic_display::<&str>
  12: core::option::expect_failed
  13: core::option::Option<T>::expect
             at /rustc/x/library/core/src/option.rs:971:21
  14: shop::checkout::total
             at ./src/checkout.rs:17:31
  15: std::panicking::catch_unwind::do_call
  16: std::panic::catch_unwind
  17: main
";
        let frames = parse_backtrace(text);
        assert_eq!(frames.len(), 18);
        let location = ("src/checkout.rs".to_owned(), 17);
        let skip = first_panicking_frame(&frames, Some(&location));
        assert_eq!(frames[skip].label.as_deref(), Some("shop::checkout::total"));
        // Frames of `catch_unwind` further out stay.
        assert_eq!(frames.len() - skip, 4);
        // Without line information: the first frame below the runtime that is not std's.
        let bare: Vec<StackFrame> = frames
            .iter()
            .map(|f| StackFrame {
                label: f.label.clone(),
                ..StackFrame::default()
            })
            .collect();
        assert_eq!(first_panicking_frame(&bare, Some(&location)), skip);
        assert_eq!(first_panicking_frame(&bare, None), skip);
    }
}
