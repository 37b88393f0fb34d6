//! Value types that go into segment documents: annotations, the `http`, `sql` and `cause`
//! blocks, and the rules for names and annotation keys.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

use crate::id::EntityId;

/// Longest segment or subsegment name the X-Ray service accepts, in characters.
pub const MAX_NAME_LEN: usize = 200;

/// Longest annotation key, in characters.
pub const MAX_ANNOTATION_KEY_LEN: usize = 500;

/// Longest annotation string value, in characters (longer values are truncated).
pub const MAX_ANNOTATION_VALUE_LEN: usize = 1000;

/// Most stack frames recorded per exception; the rest are counted in `truncated`.
pub const MAX_STACK_FRAMES: usize = 50;

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric()
        || c.is_whitespace()
        || matches!(
            c,
            '_' | '.' | ':' | '/' | '%' | '&' | '#' | '=' | '+' | '\\' | '-' | '@'
        )
}

/// [`is_name_char`] for every byte that is a whole (ASCII) character; `false` for the bytes
/// of multi-byte characters, which the ASCII fast path of [`is_valid_name`] leaves to the
/// character-by-character check. 256 entries, so a byte indexes it without a bounds check.
const ASCII_NAME_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 128 {
        table[b] = matches!(
            b as u8,
            b'a'..=b'z'
                | b'A'..=b'Z'
                | b'0'..=b'9'
                // The ASCII characters `char::is_whitespace` accepts (with vertical tab).
                | b' '
                | b'\t'
                | b'\n'
                | 0x0b
                | 0x0c
                | b'\r'
                | b'_'
                | b'.'
                | b':'
                | b'/'
                | b'%'
                | b'&'
                | b'#'
                | b'='
                | b'+'
                | b'\\'
                | b'-'
                | b'@'
        );
        b += 1;
    }
    table
};

/// Whether `name` is a non-empty name of at most [`MAX_NAME_LEN`] name characters.
pub(crate) fn is_valid_name(name: &str) -> bool {
    // The usual name is short and ASCII: one table look-up per byte, no branch per byte (a
    // bad byte is noticed at the end). A name with any other byte is checked character by
    // character.
    if !name.is_empty() && name.len() <= MAX_NAME_LEN {
        let mut all = true;
        for &b in name.as_bytes() {
            all &= ASCII_NAME_CHARS[usize::from(b)];
        }
        if all {
            return true;
        }
    }
    let mut count = 0usize;
    for c in name.chars() {
        count += 1;
        if count > MAX_NAME_LEN || !is_name_char(c) {
            return false;
        }
    }
    count > 0
}

/// Makes a name acceptable to X-Ray: characters outside Unicode letters, digits, whitespace and
/// `_ . : / % & # = + \ - @` are removed and the result is cut to 200 characters. An empty result
/// becomes `"unnamed"`. Valid names are returned as they are, without allocating.
///
/// ```
/// use xray_sdk::model::sanitize_name;
/// assert_eq!(sanitize_name("api.example.com:8080"), "api.example.com:8080");
/// assert_eq!(sanitize_name("GET /users?id=1"), "GET /usersid=1");
/// assert_eq!(sanitize_name("***"), "unnamed");
/// ```
pub fn sanitize_name(name: impl Into<Cow<'static, str>>) -> Cow<'static, str> {
    let name = name.into();
    if is_valid_name(&name) {
        return name;
    }
    let cleaned: String = name
        .chars()
        .filter(|c| is_name_char(*c))
        .take(MAX_NAME_LEN)
        .collect();
    if cleaned.is_empty() {
        Cow::Borrowed("unnamed")
    } else {
        Cow::Owned(cleaned)
    }
}

/// Why an annotation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnnotationError {
    /// The key is empty, longer than 500 characters, or has characters other than ASCII
    /// letters, digits and `_`.
    InvalidKey(String),
    /// A number annotation was NaN or infinite.
    NonFiniteNumber(String),
}

impl fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnnotationError::InvalidKey(k) => write!(
                f,
                "invalid annotation key {k:?}: use 1 to 500 ASCII letters, digits or underscores"
            ),
            AnnotationError::NonFiniteNumber(k) => {
                write!(f, "annotation {k:?} is not a finite number")
            }
        }
    }
}

impl std::error::Error for AnnotationError {}

/// Checks an annotation key: 1 to 500 ASCII letters, digits or underscores, the characters
/// that work with X-Ray's filter expressions.
pub fn validate_annotation_key(key: &str) -> Result<(), AnnotationError> {
    if key.is_empty()
        || key.len() > MAX_ANNOTATION_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Err(AnnotationError::InvalidKey(key.to_owned()))
    } else {
        Ok(())
    }
}

/// Turns any string into a valid annotation key: every other character becomes `_`, and the
/// result is cut to 500 characters. An empty key becomes `"_"`.
///
/// ```
/// use xray_sdk::model::sanitize_annotation_key;
/// assert_eq!(sanitize_annotation_key("http.route"), "http_route");
/// assert_eq!(sanitize_annotation_key("user_id"), "user_id");
/// ```
pub fn sanitize_annotation_key(key: &str) -> Cow<'_, str> {
    if validate_annotation_key(key).is_ok() {
        return Cow::Borrowed(key);
    }
    let s: String = key
        .chars()
        .take(MAX_ANNOTATION_KEY_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        Cow::Borrowed("_")
    } else {
        Cow::Owned(s)
    }
}

/// An annotation value: string, number or boolean (the only types X-Ray indexes).
#[derive(Debug, Clone, PartialEq)]
pub enum AnnotationValue {
    /// A string, up to 1000 characters.
    String(Cow<'static, str>),
    /// An integer.
    Int(i64),
    /// A floating point number (must be finite).
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl Serialize for AnnotationValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AnnotationValue::String(v) => s.serialize_str(v),
            AnnotationValue::Int(v) => s.serialize_i64(*v),
            AnnotationValue::Float(v) => s.serialize_f64(*v),
            AnnotationValue::Bool(v) => s.serialize_bool(*v),
        }
    }
}

impl From<&'static str> for AnnotationValue {
    fn from(v: &'static str) -> Self {
        AnnotationValue::String(Cow::Borrowed(v))
    }
}
impl From<String> for AnnotationValue {
    fn from(v: String) -> Self {
        AnnotationValue::String(Cow::Owned(v))
    }
}
impl From<Cow<'static, str>> for AnnotationValue {
    fn from(v: Cow<'static, str>) -> Self {
        AnnotationValue::String(v)
    }
}
impl From<bool> for AnnotationValue {
    fn from(v: bool) -> Self {
        AnnotationValue::Bool(v)
    }
}
impl From<f64> for AnnotationValue {
    fn from(v: f64) -> Self {
        AnnotationValue::Float(v)
    }
}
impl From<f32> for AnnotationValue {
    fn from(v: f32) -> Self {
        AnnotationValue::Float(f64::from(v))
    }
}
macro_rules! int_annotation {
    ($($t:ty),*) => {$(
        impl From<$t> for AnnotationValue {
            fn from(v: $t) -> Self { AnnotationValue::Int(i64::from(v)) }
        }
    )*};
}
int_annotation!(i8, i16, i32, i64, u8, u16, u32);
impl From<u64> for AnnotationValue {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(AnnotationValue::Float(v as f64), AnnotationValue::Int)
    }
}
impl From<usize> for AnnotationValue {
    fn from(v: usize) -> Self {
        i64::try_from(v).map_or(AnnotationValue::Float(v as f64), AnnotationValue::Int)
    }
}

/// The `namespace` of a subsegment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// A call to an AWS service through an AWS SDK.
    Aws,
    /// A call to another service (HTTP, database, ...).
    Remote,
}

impl Namespace {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Aws => "aws",
            Namespace::Remote => "remote",
        }
    }
}

/// The `http.request` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HttpRequest {
    /// The request method (`GET`, `POST`, ...); see [`http_method`] for a copy-free value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Cow<'static, str>>,
    /// The full URL: scheme, host, port, path (and query if the caller keeps it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The `User-Agent` of the request (segments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The client's IP address (segments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// True when `client_ip` came from `X-Forwarded-For` (segments).
    #[serde(skip_serializing_if = "is_false")]
    pub x_forwarded_for: bool,
    /// True when the downstream service is known to be traced (subsegments).
    #[serde(skip_serializing_if = "is_false")]
    pub traced: bool,
}

/// A request method as the `http.request.method` value: upper case, and borrowed without
/// copying for the standard methods.
///
/// ```
/// use xray_sdk::model::http_method;
/// assert_eq!(http_method("GET"), "GET");
/// assert!(matches!(http_method("GET"), std::borrow::Cow::Borrowed(_)));
/// assert_eq!(http_method("purge"), "PURGE");
/// ```
pub fn http_method(method: &str) -> Cow<'static, str> {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    match STANDARD.iter().find(|m| **m == method) {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(method.to_ascii_uppercase()),
    }
}

/// The `http.response` block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct HttpResponse {
    /// The response status code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The response body length in bytes, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_length: Option<u64>,
}

/// The `http` block of a segment or subsegment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Http {
    /// The request half.
    #[serde(skip_serializing_if = "is_default_request")]
    pub request: HttpRequest,
    /// The response half.
    #[serde(skip_serializing_if = "is_default_response")]
    pub response: HttpResponse,
}

fn is_default_request(r: &HttpRequest) -> bool {
    *r == HttpRequest::default()
}
fn is_default_response(r: &HttpResponse) -> bool {
    *r == HttpResponse::default()
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// The `sql` block of a subsegment for a database query.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sql {
    /// Connection string, without a password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<String>,
    /// Database URL, without a password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The query, with user values replaced by placeholders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sanitized_query: Option<String>,
    /// Database engine, e.g. `PostgreSQL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_type: Option<String>,
    /// Database engine version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_version: Option<String>,
    /// Client driver name and version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// Database user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `call` or `statement`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preparation: Option<String>,
}

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
    use super::*;

    #[test]
    fn ascii_name_table_agrees_with_the_character_rule() {
        for b in 0u8..=255 {
            // Bytes from 0x80 are never whole characters: the table sends them to the
            // character-by-character check.
            let expected = b.is_ascii() && is_name_char(char::from(b));
            assert_eq!(ASCII_NAME_CHARS[usize::from(b)], expected, "byte {b:#04x}");
        }
        assert!(is_valid_name(&"a".repeat(MAX_NAME_LEN)));
        assert!(!is_valid_name(&"a".repeat(MAX_NAME_LEN + 1)));
        assert!(is_valid_name(&"é".repeat(MAX_NAME_LEN)));
        assert!(!is_valid_name(&"é".repeat(MAX_NAME_LEN + 1)));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a\u{7f}"));
        assert!(!is_valid_name("a*b"));
        assert!(is_valid_name("café-1 日本"));
        assert!(!is_valid_name("café*"));
    }

    #[test]
    fn valid_name_fast_path_agrees_with_the_rule_on_random_names() {
        use rand::{Rng, SeedableRng};
        // The rule spelled out character by character, without the ASCII fast path.
        let rule = |s: &str| {
            let n = s.chars().count();
            n > 0 && n <= MAX_NAME_LEN && s.chars().all(is_name_char)
        };
        let pool: Vec<char> = "aZ09 _.:/%&#=+\\-@*?!\"'<>\t\u{7f}\u{0}éßΩ日本🙂\u{a0}\u{2003}"
            .chars()
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..5_000 {
            let len = rng.random_range(0..=MAX_NAME_LEN + 10);
            // Mostly valid ASCII, with an occasional other character.
            let s: String = (0..len)
                .map(|_| {
                    if rng.random_bool(0.9) {
                        pool[rng.random_range(0..4)]
                    } else {
                        pool[rng.random_range(0..pool.len())]
                    }
                })
                .collect();
            assert_eq!(is_valid_name(&s), rule(&s), "{s:?}");
        }
    }

    #[test]
    fn names() {
        assert!(matches!(
            sanitize_name("ok name_1.2:3/4%&#=+\\-@"),
            Cow::Borrowed(_)
        ));
        assert_eq!(sanitize_name("a;b*c"), "abc");
        assert_eq!(sanitize_name("日本語 ok"), "日本語 ok");
        assert_eq!(sanitize_name("").as_ref(), "unnamed");
        let long = "x".repeat(300);
        assert_eq!(sanitize_name(long).chars().count(), MAX_NAME_LEN);
        let exact = "é".repeat(200);
        assert_eq!(sanitize_name(exact.clone()), exact);
    }

    #[test]
    fn annotation_keys() {
        assert!(validate_annotation_key("user_id_2").is_ok());
        for bad in ["", "a.b", "a b", "ü", &"k".repeat(501)] {
            assert!(validate_annotation_key(bad).is_err(), "{bad}");
        }
        assert_eq!(sanitize_annotation_key("a-b c"), "a_b_c");
        assert_eq!(sanitize_annotation_key(""), "_");
        let e = validate_annotation_key("a.b").unwrap_err();
        assert!(e.to_string().contains("\"a.b\""));
    }

    #[test]
    fn annotation_values_serialize() {
        let v = [
            AnnotationValue::from("s"),
            AnnotationValue::from(3u32),
            AnnotationValue::from(-2i64),
            AnnotationValue::from(1.5f64),
            AnnotationValue::from(true),
        ];
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"["s",3,-2,1.5,true]"#);
    }

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
