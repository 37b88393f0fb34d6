//! The `cause` block: exceptions with their stacks, built from Rust errors.

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
            };
            if let Some(prev) = exceptions.last_mut() {
                prev.cause = Some(ex.id);
            }
            exceptions.push(ex);
            current = e.source();
            depth += 1;
        }
        if let Some(first) = exceptions.first_mut() {
            let (stack, omitted) = capture_stack();
            first.stack = stack;
            first.truncated = (omitted > 0).then_some(omitted);
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
}

/// Captures the current stack when `RUST_BACKTRACE` / `RUST_LIB_BACKTRACE` enable it, else
/// nothing (capturing is expensive and off by default in Rust). Returns at most
/// [`MAX_STACK_FRAMES`] frames and the number of frames left out.
fn capture_stack() -> (Vec<StackFrame>, u32) {
    let bt = std::backtrace::Backtrace::capture();
    if bt.status() != std::backtrace::BacktraceStatus::Captured {
        return (Vec::new(), 0);
    }
    parse_backtrace(&bt.to_string())
}

/// Parses the text form of a `std::backtrace::Backtrace` ("  N: symbol\n     at path:line:col"):
/// at most [`MAX_STACK_FRAMES`] frames, and the number of further frames left out.
fn parse_backtrace(text: &str) -> (Vec<StackFrame>, u32) {
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
    // Drop the frames of the capture machinery itself.
    frames.retain(|f| {
        f.label
            .as_deref()
            .is_none_or(|l| !l.starts_with("std::backtrace") && !l.starts_with("xray_sdk::model::"))
    });
    let omitted = u32::try_from(frames.len().saturating_sub(MAX_STACK_FRAMES)).unwrap_or(u32::MAX);
    frames.truncate(MAX_STACK_FRAMES);
    (frames, omitted)
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
        let (frames, omitted) = parse_backtrace(text);
        assert_eq!((frames.len(), omitted), (2, 0));
        assert_eq!(frames[0].label.as_deref(), Some("my_app::handler::run"));
        assert_eq!(frames[0].path.as_deref(), Some("./src/handler.rs"));
        assert_eq!(frames[0].line, Some(42));
        assert_eq!(frames[1].label.as_deref(), Some("main"));
    }

    #[test]
    fn a_long_backtrace_keeps_the_first_frames_and_counts_the_rest() {
        let text: String = (0..MAX_STACK_FRAMES + 7)
            .map(|i| format!("  {i}: app::f{i}\n        at ./src/f.rs:{i}:1\n"))
            .collect();
        let (frames, omitted) = parse_backtrace(&text);
        assert_eq!(frames.len(), MAX_STACK_FRAMES);
        assert_eq!(omitted, 7);
        assert_eq!(frames[0].label.as_deref(), Some("app::f0"));
        let last = MAX_STACK_FRAMES - 1;
        assert_eq!(
            frames[last].label.as_deref(),
            Some(format!("app::f{last}").as_str())
        );
        let (frames, omitted) = parse_backtrace(
            &text
                .lines()
                .take(2 * MAX_STACK_FRAMES)
                .collect::<Vec<_>>()
                .join("\n"),
        );
        assert_eq!((frames.len(), omitted), (MAX_STACK_FRAMES, 0));
    }
}
