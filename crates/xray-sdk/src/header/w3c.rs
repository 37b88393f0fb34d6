//! W3C Trace Context: the `traceparent` header
//! (`version-traceid-parentid-flags`, 2-32-16-2 lowercase hex digits), the `tracestate` header
//! kept as an opaque value to pass on, and their conversion to and from the X-Ray header.
//!
//! Parsing follows the W3C rules: the fields are lowercase hexadecimal; version `ff` is
//! invalid; an all-zero trace ID or parent ID is invalid; version `00` is exactly 55
//! characters. A version above `00` is read as the specification asks of a version it does
//! not know yet: the first 55 characters in the `00` layout, followed by the end of the value
//! or a `-` and whatever a later version adds. A value that does not parse is ignored (the
//! request starts a new trace); it is never an error for the caller.
//!
//! The conversion with the X-Ray header: the trace ID's 32 hex digits are the X-Ray ID's
//! 8 + 24 digits joined (`1-{8}-{24}`), the parent ID is `Parent`, and flag `01` (sampled) is
//! `Sampled=1`. The random-trace-id flag (`02`, Trace Context Level 2) is passed on unchanged
//! when it came in with the trace, and never set otherwise.

use std::fmt;
use std::sync::Arc;

use super::{Carried, SamplingFlag, TraceHeader};
use crate::id::{EntityId, TraceId, write_hex};

/// The `traceparent` header name (lower case, as `http::HeaderName` stores it).
pub const TRACEPARENT: &str = "traceparent";

/// The `tracestate` header name (lower case).
pub const TRACESTATE: &str = "tracestate";

/// Longest `tracestate` value passed on (the size the specification asks every vendor to
/// propagate at least). A longer one loses its members over 128 characters first, then
/// members from its end, as the specification describes.
pub const MAX_TRACESTATE_LEN: usize = 512;

/// Most list members a `tracestate` may have; one with more is discarded whole.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;

/// Members longer than this go first when a `tracestate` must be shortened.
const LONG_MEMBER: usize = 128;

/// Flag `01`: the caller sampled (recorded) this trace.
pub const FLAG_SAMPLED: u8 = 0x01;

/// Flag `02` (Trace Context Level 2): at least the last 7 bytes of the trace ID are random.
pub const FLAG_RANDOM: u8 = 0x02;

/// A `traceparent` header: a trace ID, the caller's span (parent) ID and the trace flags.
///
/// ```
/// use xray_sdk::header::TraceParent;
///
/// let tp = TraceParent::parse("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01").unwrap();
/// assert_eq!(tp.trace_id().to_string(), "1-5759e988-bd862e3fe1be46a994272793");
/// assert_eq!(tp.parent_id().to_string(), "53995c3f42cd8ad8");
/// assert!(tp.sampled());
/// // The same trace as an X-Ray header, and back.
/// let header = tp.to_trace_header();
/// assert_eq!(
///     header.to_string(),
///     "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
/// );
/// assert_eq!(TraceParent::from_trace_header(&header), Some(tp));
/// assert_eq!(tp.to_string(), "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01");
///
/// assert!(TraceParent::parse("ff-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01").is_err());
/// assert!(TraceParent::parse("00-00000000000000000000000000000000-53995c3f42cd8ad8-01").is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: TraceId,
    parent_id: EntityId,
    flags: u8,
}

/// Why a `traceparent` value is invalid (and ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceParentError {
    /// Shorter than 55 characters, or a version `00` value longer than 55.
    Length {
        /// The length found, in bytes (after surrounding spaces and tabs).
        found: usize,
    },
    /// Version `ff`, which the specification forbids.
    Version,
    /// A field is not lowercase hexadecimal digits.
    NotLowerHex {
        /// The field: `version`, `trace-id`, `parent-id` or `trace-flags`.
        field: &'static str,
    },
    /// A `-` is missing between two fields, or after the flags of a later version.
    Separator,
    /// The trace ID is all zeros.
    ZeroTraceId,
    /// The parent ID is all zeros.
    ZeroParentId,
}

impl fmt::Display for TraceParentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceParentError::Length { found } => write!(
                f,
                "traceparent must be 55 characters (version 00) or more (later versions), found {found}"
            ),
            TraceParentError::Version => f.write_str("traceparent version ff is invalid"),
            TraceParentError::NotLowerHex { field } => {
                write!(f, "traceparent {field} is not lowercase hexadecimal")
            }
            TraceParentError::Separator => f.write_str(
                "traceparent must have the form version-traceid-parentid-flags (2-32-16-2 hex digits)",
            ),
            TraceParentError::ZeroTraceId => f.write_str("traceparent trace-id is all zeros"),
            TraceParentError::ZeroParentId => f.write_str("traceparent parent-id is all zeros"),
        }
    }
}

impl std::error::Error for TraceParentError {}

/// The value of up to 16 lowercase hex digits; `None` for anything else.
fn lower_hex(digits: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &b in digits {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

impl TraceParent {
    /// Length of a version `00` value.
    pub const LEN: usize = 55;

    /// A `traceparent` for `trace_id`, with `parent_id` as the caller and the sampled flag.
    pub fn new(trace_id: TraceId, parent_id: EntityId, sampled: bool) -> Self {
        TraceParent {
            trace_id,
            parent_id,
            flags: if sampled { FLAG_SAMPLED } else { 0 },
        }
    }

    /// The same, with the random-trace-id flag set or cleared.
    #[must_use]
    pub fn with_random_trace_id(mut self, random: bool) -> Self {
        self.flags = (self.flags & !FLAG_RANDOM) | if random { FLAG_RANDOM } else { 0 };
        self
    }

    /// Parses a header value; see the [module docs](self) for the rules. Spaces and tabs
    /// around the value are ignored.
    pub fn parse(value: &str) -> Result<Self, TraceParentError> {
        Self::parse_bytes(value.as_bytes())
    }

    /// [`TraceParent::parse`] for a header value's bytes.
    pub fn parse_bytes(value: &[u8]) -> Result<Self, TraceParentError> {
        let v = value.trim_ascii();
        if v.len() < Self::LEN {
            return Err(TraceParentError::Length { found: v.len() });
        }
        let field = |range: std::ops::Range<usize>, name: &'static str| {
            v.get(range)
                .and_then(lower_hex)
                .ok_or(TraceParentError::NotLowerHex { field: name })
        };
        let version = field(0..2, "version")?;
        if version == 0xff {
            return Err(TraceParentError::Version);
        }
        if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return Err(TraceParentError::Separator);
        }
        let high = field(3..19, "trace-id")?;
        let low = field(19..35, "trace-id")?;
        let parent = field(36..52, "parent-id")?;
        let flags = field(53..55, "trace-flags")?;
        match (version, v.get(55)) {
            (_, None) => {}
            (0, Some(_)) => return Err(TraceParentError::Length { found: v.len() }),
            (_, Some(b'-')) => {}
            (_, Some(_)) => return Err(TraceParentError::Separator),
        }
        if high == 0 && low == 0 {
            return Err(TraceParentError::ZeroTraceId);
        }
        if parent == 0 {
            return Err(TraceParentError::ZeroParentId);
        }
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&high.to_be_bytes());
        id[8..].copy_from_slice(&low.to_be_bytes());
        let (epoch, random) = id.split_at(4);
        let epoch = u32::from_be_bytes([epoch[0], epoch[1], epoch[2], epoch[3]]);
        let mut rest = [0u8; 12];
        rest.copy_from_slice(random);
        Ok(TraceParent {
            trace_id: TraceId::from_parts(epoch, rest),
            parent_id: EntityId::from_u64(parent),
            // Only the flags this version defines; the others are reserved and sent as zero.
            flags: u8::try_from(flags).unwrap_or(0) & (FLAG_SAMPLED | FLAG_RANDOM),
        })
    }

    /// The trace ID, as X-Ray writes it (`1-` + the first 8 hex digits + `-` + the other 24).
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The caller's span ID: the X-Ray `Parent`.
    pub fn parent_id(&self) -> EntityId {
        self.parent_id
    }

    /// The trace flags this crate knows (`01` sampled, `02` random trace ID).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Flag `01`: the caller sampled the trace.
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// Flag `02`: the trace ID is random in at least its last 7 bytes.
    pub fn random_trace_id(&self) -> bool {
        self.flags & FLAG_RANDOM != 0
    }

    /// The 55-byte version `00` text, written into a stack buffer.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..3].copy_from_slice(b"00-");
        write_hex(
            &mut out[3..11],
            &self.trace_id.epoch_seconds().to_be_bytes(),
        );
        write_hex(&mut out[11..35], &self.trace_id.random_bytes());
        out[35] = b'-';
        write_hex(&mut out[36..52], &self.parent_id.as_u64().to_be_bytes());
        out[52] = b'-';
        write_hex(&mut out[53..55], &[self.flags]);
        out
    }

    /// The X-Ray header for the same trace: `Root`, `Parent` and `Sampled=1` or `Sampled=0`
    /// from the sampled flag. The random-trace-id flag is kept with it (it is not part of
    /// the X-Ray text) so that a `traceparent` made from the header carries it on.
    pub fn to_trace_header(&self) -> TraceHeader {
        let header = TraceHeader::new(
            self.trace_id,
            Some(self.parent_id),
            SamplingFlag::from_decision(self.sampled()),
        );
        if self.random_trace_id() {
            header.with_carried(Some(Arc::new(Carried {
                random: true,
                ..Carried::default()
            })))
        } else {
            header
        }
    }

    /// The `traceparent` of an X-Ray header: its `Root` and `Parent` (both needed, and not
    /// all zeros, which W3C forbids), flag `01` for `Sampled=1` and `00` for anything else
    /// (`Sampled=0`, `?` or none), and the random-trace-id flag if it came in with the trace.
    pub fn from_trace_header(header: &TraceHeader) -> Option<TraceParent> {
        let trace_id = header.root()?;
        let parent_id = header.parent()?;
        if parent_id.as_u64() == 0
            || (trace_id.epoch_seconds() == 0 && trace_id.random_bytes() == [0; 12])
        {
            return None;
        }
        let random = header.carried().is_some_and(|c| c.random);
        Some(
            TraceParent::new(
                trace_id,
                parent_id,
                header.sampled() == SamplingFlag::Sampled,
            )
            .with_random_trace_id(random),
        )
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        // Hex digits and dashes only.
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

impl std::str::FromStr for TraceParent {
    type Err = TraceParentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceParent::parse(s)
    }
}

/// A `tracestate` to pass on, from the header's lines (a request may split it over several,
/// which read as one list joined by commas): the list members trimmed of spaces and tabs,
/// empty ones dropped, joined by `,`; at most [`MAX_TRACESTATE_LEN`] bytes (see there for
/// what is dropped to fit). The value is otherwise opaque. `None` when nothing is left, when
/// a member is not `key=value` in printable ASCII, or when there are more than
/// [`MAX_TRACESTATE_MEMBERS`] members: the specification lets a vendor discard such a list.
///
/// ```
/// use xray_sdk::header::normalize_tracestate;
///
/// let lines: [&[u8]; 2] = [b"rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE", b"  "];
/// assert_eq!(normalize_tracestate(lines).as_deref(), Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
/// assert_eq!(normalize_tracestate([&b"no-equals-sign"[..]]), None);
/// ```
pub fn normalize_tracestate<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Option<String> {
    let mut members: Vec<&[u8]> = Vec::new();
    for line in lines {
        for member in line.split(|&b| b == b',') {
            let member = member.trim_ascii();
            if member.is_empty() {
                continue;
            }
            let printable = member.iter().all(|&b| (0x20..=0x7e).contains(&b));
            let key_value = member
                .iter()
                .position(|&b| b == b'=')
                .is_some_and(|i| i > 0);
            if !printable || !key_value || members.len() == MAX_TRACESTATE_MEMBERS {
                return None;
            }
            members.push(member);
        }
    }
    let joined = |members: &[&[u8]]| {
        members
            .iter()
            .map(|m| m.len() + 1)
            .sum::<usize>()
            .saturating_sub(1)
    };
    if joined(&members) > MAX_TRACESTATE_LEN {
        members.retain(|m| m.len() <= LONG_MEMBER);
        while joined(&members) > MAX_TRACESTATE_LEN {
            members.pop();
        }
    }
    if members.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(joined(&members));
    for m in &members {
        if !out.is_empty() {
            out.push(',');
        }
        // Printable ASCII, checked above.
        out.push_str(std::str::from_utf8(m).ok()?);
    }
    Some(out)
}

#[cfg(test)]
#[path = "w3c_tests.rs"]
mod tests;
