//! The `X-Amzn-Trace-Id` header: `Root=<trace id>;Parent=<entity id>;Sampled=<1|0|?>[;key=value]...`.
//!
//! Parsing is as lenient as the most tolerant official SDK: parts are trimmed, empty parts and
//! parts without `=` are skipped, keys are matched case-insensitively, the last duplicate wins,
//! `Self=` (added by load balancers) is dropped, and every other key (such as `Lineage`) is kept
//! in order. Parsing never fails: an invalid `Root` or `Parent` is simply absent, which callers
//! treat as "start a new trace". Nothing that is not visible ASCII ever makes it into a
//! formatted header value.
//!
//! The W3C Trace Context headers (`traceparent`, `tracestate`) are in [`w3c`] (re-exported
//! here), and [`incoming_trace`] picks the trace a request continues from either header.

use std::fmt;
use std::sync::Arc;

use crate::id::{EntityId, TraceId};

mod incoming;
pub mod w3c;

pub use incoming::{incoming_trace, is_recent_epoch};
pub use w3c::{
    MAX_TRACESTATE_LEN, MAX_TRACESTATE_MEMBERS, TRACEPARENT, TRACESTATE, TraceParent,
    TraceParentError, normalize_tracestate,
};

/// The header name, in the canonical case the official SDKs send.
pub const HEADER_NAME: &str = "X-Amzn-Trace-Id";

/// The header name in lower case, as `http::HeaderName` stores it.
pub const HEADER_NAME_LOWER: &str = "x-amzn-trace-id";

/// Longest header value that is parsed (the AWS Lambda API's limit). Longer input is cut at
/// the last `;` before this length.
pub const MAX_HEADER_LEN: usize = 8192;

/// Budget, in bytes of keys plus values, for the extra keys that are kept and propagated.
pub const MAX_EXTRA_LEN: usize = 256;

/// At most this many extra keys are read from a header: once that many are held, later keys
/// (repeated ones included) are ignored. Real headers carry one or two (`Lineage`).
const MAX_EXTRA_PARTS: usize = 32;

/// The `Sampled` field of a trace header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SamplingFlag {
    /// `Sampled=1`: the caller sampled this trace; record it.
    Sampled,
    /// `Sampled=0`: the caller did not sample this trace; record nothing, propagate the decision.
    NotSampled,
    /// `Sampled=?`: the caller asks this service to decide and echo the decision back.
    Requested,
    /// No `Sampled` field (or an unrecognised value): this service decides.
    #[default]
    Unknown,
}

impl SamplingFlag {
    /// The flag for a decision that has been made.
    pub fn from_decision(sampled: bool) -> Self {
        if sampled {
            SamplingFlag::Sampled
        } else {
            SamplingFlag::NotSampled
        }
    }

    /// `Some(decision)` when the header carries a decision, `None` when this service decides.
    pub fn decision(self) -> Option<bool> {
        match self {
            SamplingFlag::Sampled => Some(true),
            SamplingFlag::NotSampled => Some(false),
            SamplingFlag::Requested | SamplingFlag::Unknown => None,
        }
    }

    fn as_str(self) -> Option<&'static str> {
        match self {
            SamplingFlag::Sampled => Some("1"),
            SamplingFlag::NotSampled => Some("0"),
            SamplingFlag::Requested => Some("?"),
            SamplingFlag::Unknown => None,
        }
    }
}

/// A parsed `X-Amzn-Trace-Id` header.
///
/// ```
/// use xray_sdk::{SamplingFlag, TraceHeader};
///
/// let h = TraceHeader::parse(" Root=1-5759e988-bd862e3fe1be46a994272793; parent=53995c3f42cd8ad8;Sampled=1;Self=x;Lineage=10:1234abcd:3;");
/// assert_eq!(h.root().unwrap().to_string(), "1-5759e988-bd862e3fe1be46a994272793");
/// assert_eq!(h.parent().unwrap().to_string(), "53995c3f42cd8ad8");
/// assert_eq!(h.sampled(), SamplingFlag::Sampled);
/// assert_eq!(h.extra(), Some("Lineage=10:1234abcd:3"));
/// assert_eq!(
///     h.to_string(),
///     "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=10:1234abcd:3"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceHeader {
    root: Option<TraceId>,
    parent: Option<EntityId>,
    sampled: SamplingFlag,
    carried: Option<Arc<Carried>>,
    invalid_root: bool,
}

/// What came in with a trace and goes out unchanged with every downstream call: allocated
/// only when there is something (most requests carry none of it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Carried {
    /// The X-Ray header's extra keys (such as `Lineage`), as `k=v;k=v`.
    pub(crate) extra: Option<Box<str>>,
    /// The W3C `tracestate`, normalized ([`normalize_tracestate`]).
    pub(crate) tracestate: Option<Box<str>>,
    /// The W3C random-trace-id flag came in with the trace.
    pub(crate) random: bool,
}

impl Carried {
    /// `None` when there is nothing to carry.
    fn shared(self) -> Option<Arc<Carried>> {
        (self != Carried::default()).then(|| Arc::new(self))
    }
}

fn is_visible_ascii(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

impl TraceHeader {
    /// A header with the given fields and no extra keys.
    pub fn new(root: TraceId, parent: Option<EntityId>, sampled: SamplingFlag) -> Self {
        TraceHeader {
            root: Some(root),
            parent,
            sampled,
            carried: None,
            invalid_root: false,
        }
    }

    /// Parses a header value. Never fails; see the module docs for the rules.
    pub fn parse(value: &str) -> Self {
        match Self::parse_canonical(value.as_bytes()) {
            Some(header) => header,
            None => Self::parse_lenient(value),
        }
    }

    /// The form every SDK sends, `Root=<id>[;Parent=<id>][;Sampled=<c>]` with nothing else,
    /// read without splitting; anything else (extra keys, spaces, other order or case, bad
    /// IDs) returns `None` and goes through the lenient parser.
    fn parse_canonical(v: &[u8]) -> Option<Self> {
        let rest = v.strip_prefix(b"Root=")?;
        let root = TraceId::parse_bytes(rest.get(..TraceId::LEN)?).ok()?;
        let mut rest = rest.get(TraceId::LEN..)?;
        let mut parent = None;
        if let Some(p) = rest.strip_prefix(b";Parent=") {
            parent = Some(EntityId::parse_bytes(p.get(..EntityId::LEN)?).ok()?);
            rest = p.get(EntityId::LEN..)?;
        }
        let mut sampled = SamplingFlag::Unknown;
        if let Some(flag) = rest.strip_prefix(b";Sampled=") {
            sampled = match flag {
                b"1" | b"1;" => SamplingFlag::Sampled,
                b"0" | b"0;" => SamplingFlag::NotSampled,
                b"?" | b"?;" => SamplingFlag::Requested,
                _ => return None,
            };
        } else if !rest.is_empty() && rest != b";" {
            return None;
        }
        Some(TraceHeader {
            root: Some(root),
            parent,
            sampled,
            carried: None,
            invalid_root: false,
        })
    }

    fn parse_lenient(value: &str) -> Self {
        let value = if value.len() > MAX_HEADER_LEN {
            // Back to a character boundary (a `&str` from the core API may have multi-byte
            // characters), then to the last whole part.
            let mut end = MAX_HEADER_LEN;
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            let cut = value.get(..end).and_then(|v| v.rfind(';')).unwrap_or(0);
            value.get(..cut).unwrap_or("")
        } else {
            value
        };
        let mut header = TraceHeader::default();
        // Extra keys are rare; collect them without allocating until one shows up.
        let mut extras: Vec<(&str, &str)> = Vec::new();
        for part in value.split(';') {
            let part = part.trim();
            let Some((key, val)) = part.split_once('=') else {
                continue;
            };
            let (key, val) = (key.trim(), val.trim());
            if key.is_empty() {
                continue;
            }
            if key.eq_ignore_ascii_case("root") {
                match TraceId::parse(val) {
                    Ok(id) => {
                        header.root = Some(id);
                        header.invalid_root = false;
                    }
                    Err(_) => {
                        header.root = None;
                        header.invalid_root = true;
                    }
                }
            } else if key.eq_ignore_ascii_case("parent") {
                header.parent = EntityId::parse(val).ok();
            } else if key.eq_ignore_ascii_case("sampled") {
                header.sampled = match val {
                    "1" => SamplingFlag::Sampled,
                    "0" => SamplingFlag::NotSampled,
                    "?" => SamplingFlag::Requested,
                    _ => SamplingFlag::Unknown,
                };
            } else if key.eq_ignore_ascii_case("self") {
                // Added by load balancers; never propagated.
            } else if extras.len() < MAX_EXTRA_PARTS
                && is_visible_ascii(key)
                && is_visible_ascii(val)
            {
                // A repeated key keeps its last value. The search is bounded by the cap on
                // extra parts: a header of thousands of distinct keys costs a linear scan,
                // not a quadratic one.
                if let Some(pos) = extras.iter().position(|(k, _)| k.eq_ignore_ascii_case(key)) {
                    extras.remove(pos);
                }
                extras.push((key, val));
            }
        }
        if !extras.is_empty() {
            // Keep the pairs that fit the budget, then build the string in one allocation.
            let mut budget = MAX_EXTRA_LEN;
            let mut kept = 0;
            let mut len = 0;
            for (k, v) in &extras {
                let cost = k.len() + v.len();
                if cost > budget {
                    break;
                }
                budget -= cost;
                kept += 1;
                len += cost + 2;
            }
            if kept > 0 {
                let mut out = String::with_capacity(len);
                for (k, v) in &extras[..kept] {
                    if !out.is_empty() {
                        out.push(';');
                    }
                    out.push_str(k);
                    out.push('=');
                    out.push_str(v);
                }
                header.carried = Some(Arc::new(Carried {
                    extra: Some(out.into_boxed_str()),
                    ..Carried::default()
                }));
            }
        }
        header
    }

    /// The trace ID, if the header had a valid one.
    pub fn root(&self) -> Option<TraceId> {
        self.root
    }

    /// The parent segment or subsegment ID, if the header had a valid one.
    pub fn parent(&self) -> Option<EntityId> {
        self.parent
    }

    /// The sampling flag.
    pub fn sampled(&self) -> SamplingFlag {
        self.sampled
    }

    /// Extra keys (such as `Lineage`), in their original order, as `k=v;k=v`.
    pub fn extra(&self) -> Option<&str> {
        self.carried.as_deref().and_then(|c| c.extra.as_deref())
    }

    /// The W3C `tracestate` that came with the trace, to pass on with `traceparent`. Not
    /// part of the X-Ray header's text.
    pub fn tracestate(&self) -> Option<&str> {
        self.carried
            .as_deref()
            .and_then(|c| c.tracestate.as_deref())
    }

    pub(crate) fn carried(&self) -> Option<&Carried> {
        self.carried.as_deref()
    }

    pub(crate) fn carried_shared(&self) -> Option<Arc<Carried>> {
        self.carried.clone()
    }

    /// The same fields with `change` made to what is carried.
    fn with_changed(mut self, change: impl FnOnce(&mut Carried)) -> Self {
        let mut carried = self.carried.as_deref().cloned().unwrap_or_default();
        change(&mut carried);
        self.carried = carried.shared();
        self
    }

    /// True when the header had a `Root` that was not a valid trace ID.
    pub fn had_invalid_root(&self) -> bool {
        self.invalid_root
    }

    /// Sets the parent ID.
    pub fn with_parent(mut self, parent: Option<EntityId>) -> Self {
        self.parent = parent;
        self
    }

    /// Sets the sampling flag.
    pub fn with_sampled(mut self, sampled: SamplingFlag) -> Self {
        self.sampled = sampled;
        self
    }

    /// Sets the extra keys. Pairs that contain anything but visible ASCII are dropped, and the
    /// total is kept within [`MAX_EXTRA_LEN`].
    pub fn with_extra(self, extra: Option<&str>) -> Self {
        let extra = extra.and_then(|e| {
            TraceHeader::parse(e)
                .carried
                .and_then(|c| Arc::unwrap_or_clone(c).extra)
        });
        self.with_changed(|c| c.extra = extra)
    }

    /// Sets the W3C `tracestate` passed on with the trace, normalized by
    /// [`normalize_tracestate`] (`None`, or an invalid list, removes it).
    pub fn with_tracestate(self, tracestate: Option<&str>) -> Self {
        let tracestate = tracestate
            .and_then(|t| normalize_tracestate([t.as_bytes()]))
            .map(String::into_boxed_str);
        self.with_changed(|c| c.tracestate = tracestate)
    }

    pub(crate) fn with_carried(mut self, carried: Option<Arc<Carried>>) -> Self {
        self.carried = carried;
        self
    }

    /// Formats the header value (same as `to_string()`), in one allocation of exactly its
    /// length (so that an HTTP header value made from it takes the buffer over without
    /// allocating again).
    pub fn to_header_value(&self) -> String {
        let mut out = String::with_capacity(self.formatted_len());
        self.write_parts(|part| out.push_str(part));
        debug_assert_eq!(out.len(), out.capacity());
        out
    }

    /// The length of the formatted value, worked out without formatting it.
    fn formatted_len(&self) -> usize {
        let mut parts = 0;
        let mut len = 0;
        if self.root.is_some() {
            parts += 1;
            len += "Root=".len() + TraceId::LEN;
        }
        if self.parent.is_some() {
            parts += 1;
            len += "Parent=".len() + EntityId::LEN;
        }
        if let Some(s) = self.sampled.as_str() {
            parts += 1;
            len += "Sampled=".len() + s.len();
        }
        if let Some(extra) = self.extra() {
            parts += 1;
            len += extra.len();
        }
        // One `;` between two parts.
        len + parts.max(1) - 1
    }

    /// Calls `out` with each piece of the formatted value, in order.
    #[inline]
    fn write_parts(&self, mut out: impl FnMut(&str)) {
        let mut sep = "";
        if let Some(root) = self.root {
            out("Root=");
            let bytes = root.to_bytes();
            // Hex digits and dashes only, so always UTF-8.
            out(std::str::from_utf8(&bytes).unwrap_or_default());
            sep = ";";
        }
        if let Some(parent) = self.parent {
            out(sep);
            out("Parent=");
            let bytes = parent.to_bytes();
            out(std::str::from_utf8(&bytes).unwrap_or_default());
            sep = ";";
        }
        if let Some(s) = self.sampled.as_str() {
            out(sep);
            out("Sampled=");
            out(s);
            sep = ";";
        }
        if let Some(extra) = self.extra() {
            out(sep);
            out(extra);
        }
    }
}

impl fmt::Display for TraceHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut result = Ok(());
        self.write_parts(|part| {
            if result.is_ok() {
                result = f.write_str(part);
            }
        });
        result
    }
}

impl std::str::FromStr for TraceHeader {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(TraceHeader::parse(s))
    }
}

#[cfg(test)]
mod tests;
