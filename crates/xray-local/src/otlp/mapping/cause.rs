//! `fault`/`error`/`throttle` from the status code and the span status, and
//! `cause` from `exception` events (stack traces read for the languages
//! whose format is known).

use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::{Map, Value as Json, json};

use super::attrs::Attrs;
use super::{Kind, derived_id};

/// Frames kept per exception (X-Ray SDKs cap stacks similarly).
const MAX_FRAMES: usize = 100;
/// Exceptions kept per span, chained causes included.
const MAX_EXCEPTIONS: usize = 50;

/// The flags a span gets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Flags {
    pub(super) error: bool,
    pub(super) fault: bool,
    pub(super) throttle: bool,
}

/// 4xx is an error (429 a throttle too), 5xx a fault; without a status
/// code in that range, an `ERROR` span status is a fault.
pub(super) fn flags(span: &Span, status_code: Option<i64>) -> Flags {
    match status_code {
        Some(c @ 400..=499) => Flags {
            error: true,
            throttle: c == 429,
            fault: false,
        },
        Some(500..=599) => Flags {
            fault: true,
            ..Flags::default()
        },
        _ => Flags {
            fault: is_error_status(span),
            ..Flags::default()
        },
    }
}

fn is_error_status(span: &Span) -> bool {
    span.status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32)
}

/// The `cause`: one exception per `exception` event (on `aws-api` spans,
/// `HTTP request failure` events count too); without any, an `ERROR`
/// status with a message (or `http.status_text`) gives one exception
/// carrying that message.
pub(super) fn cause(
    span: &Span,
    kind: Kind,
    attrs: &Attrs<'_>,
    language: Option<&str>,
) -> Option<Json> {
    let aws_sdk = attrs.str("rpc.system") == Some("aws-api");
    let remote = matches!(kind, Kind::Client | Kind::Producer);
    let mut exceptions: Vec<Json> = Vec::new();
    let mut n = 0u64;
    for event in &span.events {
        if event.name != "exception" && !(aws_sdk && event.name == "HTTP request failure") {
            continue;
        }
        let a = Attrs::new(&event.attributes);
        let ty = a.str("exception.type");
        let message = a.str("exception.message");
        let stack = a.str("exception.stacktrace").unwrap_or("");
        let mut next_id = || {
            n += 1;
            derived_id(&span.span_id, n)
        };
        let parsed = parse(language, ty, message, stack, remote, &mut next_id);
        exceptions.extend(parsed);
        if exceptions.len() >= MAX_EXCEPTIONS {
            exceptions.truncate(MAX_EXCEPTIONS);
            break;
        }
    }
    if exceptions.is_empty() && is_error_status(span) {
        let message = span
            .status
            .as_ref()
            .map(|s| s.message.as_str())
            .filter(|m| !m.is_empty())
            .or_else(|| attrs.str("http.status_text"))?;
        exceptions.push(json!({"id": derived_id(&span.span_id, 1), "message": message}));
    }
    (!exceptions.is_empty()).then(|| json!({ "exceptions": exceptions }))
}

/// One exception (or a chain of them, outermost first, each naming the next
/// in `cause`) from an event.
fn parse(
    language: Option<&str>,
    ty: Option<&str>,
    message: Option<&str>,
    stack: &str,
    remote: bool,
    next_id: &mut impl FnMut() -> String,
) -> Vec<Json> {
    let mut all = vec![Exception::new(next_id(), ty, message, remote)];
    match language {
        Some("python") => python(stack, &mut all, remote, next_id),
        Some("java" | "php") => java(stack, &mut all, remote, next_id),
        Some("javascript" | "nodejs") => javascript(stack, &mut all[0]),
        _ => {}
    }
    all.into_iter().map(Exception::into_json).collect()
}

struct Exception {
    id: String,
    ty: Option<String>,
    message: Option<String>,
    remote: bool,
    stack: Vec<Json>,
    cause: Option<String>,
}

impl Exception {
    fn new(id: String, ty: Option<&str>, message: Option<&str>, remote: bool) -> Self {
        Self {
            id,
            ty: ty.map(str::to_string),
            message: message.map(str::to_string),
            remote,
            stack: Vec::new(),
            cause: None,
        }
    }

    fn frame(&mut self, path: &str, line: Option<i64>, label: &str) {
        if self.stack.len() >= MAX_FRAMES {
            return;
        }
        let mut f = Map::new();
        if !path.is_empty() {
            f.insert("path".into(), path.into());
        }
        if let Some(l) = line {
            f.insert("line".into(), l.into());
        }
        if !label.is_empty() {
            f.insert("label".into(), label.into());
        }
        self.stack.push(f.into());
    }

    /// Appends the exception that caused the last one of `all` (false when
    /// the chain is already as long as kept).
    fn push_cause(all: &mut Vec<Exception>, line: &str, remote: bool, id: String) -> bool {
        if all.len() >= MAX_EXCEPTIONS {
            return false;
        }
        let (ty, message) = type_and_message(line);
        let cause = Exception::new(id, Some(ty), message, remote);
        if let Some(last) = all.last_mut() {
            last.cause = Some(cause.id.clone());
        }
        all.push(cause);
        true
    }

    fn into_json(self) -> Json {
        let mut e = Map::new();
        e.insert("id".into(), self.id.into());
        if let Some(t) = self.ty {
            e.insert("type".into(), t.into());
        }
        if let Some(m) = self.message {
            e.insert("message".into(), m.into());
        }
        if self.remote {
            e.insert("remote".into(), true.into());
        }
        if !self.stack.is_empty() {
            e.insert("stack".into(), self.stack.into());
        }
        if let Some(c) = self.cause {
            e.insert("cause".into(), c.into());
        }
        e.into()
    }
}

/// `Type: message` (or just `Type`) on a line of its own.
fn type_and_message(line: &str) -> (&str, Option<&str>) {
    match line.split_once(": ") {
        Some((t, m)) => (t.trim(), Some(m)),
        None => (line.trim().trim_end_matches(':'), None),
    }
}

/// A Python traceback, read from the end: the frames of the exception
/// raised (most recent first), then, across "During handling of the above
/// exception" or "The above exception was the direct cause", the exception
/// it came from.
fn python(
    stack: &str,
    all: &mut Vec<Exception>,
    remote: bool,
    next_id: &mut impl FnMut() -> String,
) {
    let lines: Vec<&str> = stack.lines().collect();
    let mut i = lines.len();
    // Skip the final `Type: message` line(s) of the exception raised.
    while i > 0 && !lines[i - 1].trim_start().starts_with("File \"") {
        if lines[i - 1].starts_with("Traceback (most recent call last)") {
            break;
        }
        i -= 1;
    }
    loop {
        while i > 0 {
            i -= 1;
            let line = lines[i];
            if line.starts_with("Traceback (most recent call last)") {
                break;
            }
            if let Some(rest) = line.trim_start().strip_prefix("File \"")
                && let Some((path, rest)) = rest.split_once('"')
            {
                let line_no = rest
                    .split_once("line ")
                    .and_then(|(_, r)| r.split(',').next())
                    .and_then(|n| n.trim().parse().ok());
                let label = rest.split_once(", in ").map_or("", |(_, l)| l.trim());
                if let Some(current) = all.last_mut() {
                    current.frame(path, line_no, label);
                }
            }
        }
        // Above the traceback: a separator, then the cause's last line.
        let mut j = i;
        while j > 0 && lines[j - 1].trim().is_empty() {
            j -= 1;
        }
        let chained = j > 0
            && (lines[j - 1].starts_with("During handling of the above exception")
                || lines[j - 1].starts_with("The above exception was the direct cause"));
        if !chained {
            return;
        }
        j -= 1;
        while j > 0 && lines[j - 1].trim().is_empty() {
            j -= 1;
        }
        if j == 0 {
            return;
        }
        if !Exception::push_cause(all, lines[j - 1], remote, next_id()) {
            return;
        }
        i = j - 1;
    }
}

/// A Java stack trace: `\tat pkg.Class.method(File.java:12)` frames, and
/// `Caused by: Type: message` starting the next exception of the chain.
fn java(stack: &str, all: &mut Vec<Exception>, remote: bool, next_id: &mut impl FnMut() -> String) {
    for line in stack.lines() {
        let t = line.trim();
        if let Some(frame) = t.strip_prefix("at ") {
            let (label, loc) = match frame.split_once('(') {
                Some((l, rest)) => (l, rest.trim_end_matches(')')),
                None => (frame, ""),
            };
            let (path, line_no) = match loc.rsplit_once(':') {
                Some((p, n)) => (p, n.parse().ok()),
                None => (loc, None),
            };
            if let Some(current) = all.last_mut() {
                current.frame(path, line_no, label);
            }
        } else if let Some(rest) = t.strip_prefix("Caused by: ")
            && !Exception::push_cause(all, rest, remote, next_id())
        {
            return;
        }
    }
}

/// A JavaScript (V8) stack: `    at fn (/path/file.js:10:5)` or
/// `    at /path/file.js:10:5`.
fn javascript(stack: &str, first: &mut Exception) {
    for line in stack.lines() {
        let Some(frame) = line.trim().strip_prefix("at ") else {
            continue;
        };
        let (label, loc) = match frame.rsplit_once(" (") {
            Some((l, rest)) => (l, rest.trim_end_matches(')')),
            None => ("", frame),
        };
        // path:line:column
        let mut parts = loc.rsplitn(3, ':');
        let _column = parts.next();
        let line_no = parts.next().and_then(|n| n.parse().ok());
        let path = parts.next().unwrap_or(loc);
        first.frame(path, line_no, label);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("{n:016x}")
        }
    }

    #[test]
    fn python_chain() {
        let tb = "Traceback (most recent call last):\n  File \"/app/a.py\", line 3, in load\n    d['k']\nKeyError: 'k'\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"/app/main.py\", line 10, in handler\n    load()\n  File \"/app/a.py\", line 5, in load\n    raise ValueError('boom')\nValueError: boom\n";
        let out = parse(
            Some("python"),
            Some("ValueError"),
            Some("boom"),
            tb,
            false,
            &mut ids(),
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0]["type"], "ValueError");
        assert_eq!(
            out[0]["stack"][0],
            json!({"path": "/app/a.py", "line": 5, "label": "load"})
        );
        assert_eq!(out[0]["stack"][1]["label"], "handler");
        assert_eq!(out[0]["cause"], out[1]["id"]);
        assert_eq!(out[1]["type"], "KeyError");
        assert_eq!(out[1]["message"], "'k'");
        assert_eq!(out[1]["stack"][0]["line"], 3);
    }

    #[test]
    fn java_chain_and_javascript() {
        let st = "java.lang.IllegalStateException: boom\n\tat com.ex.A.run(A.java:12)\n\tat com.ex.Main.main(Main.java:5)\nCaused by: java.io.IOException: disk\n\tat com.ex.B.read(B.java:7)\n\t... 2 more\n";
        let out = parse(
            Some("java"),
            Some("java.lang.IllegalStateException"),
            Some("boom"),
            st,
            true,
            &mut ids(),
        );
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0]["stack"][0],
            json!({"path": "A.java", "line": 12, "label": "com.ex.A.run"})
        );
        assert_eq!(out[0]["remote"], true);
        assert_eq!(out[1]["type"], "java.io.IOException");
        assert_eq!(out[1]["stack"].as_array().map(Vec::len), Some(1));
        let js = "Error: boom\n    at handler (/app/index.js:10:5)\n    at /app/x.js:3:1\n";
        let out = parse(
            Some("javascript"),
            Some("Error"),
            Some("boom"),
            js,
            false,
            &mut ids(),
        );
        assert_eq!(
            out[0]["stack"][0],
            json!({"path": "/app/index.js", "line": 10, "label": "handler"})
        );
        assert_eq!(out[0]["stack"][1], json!({"path": "/app/x.js", "line": 3}));
        // Other languages keep type and message only.
        let out = parse(
            Some("rust"),
            Some("E"),
            Some("m"),
            "whatever",
            false,
            &mut ids(),
        );
        assert_eq!(
            out,
            vec![json!({"id": "0000000000000001", "type": "E", "message": "m"})]
        );
    }
}
