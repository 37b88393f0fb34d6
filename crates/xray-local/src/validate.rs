//! Checks that flag what the X-Ray service would reject or misrender.
//!
//! Document-level checks run on every document as it arrives
//! ([`check_document`]); trace-level checks (orphan subsegments, unfinished
//! in-progress documents) run once a trace has been quiet for the settle
//! time, in the store (`state::store`).

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::document::{self, Field, Node, Scalar, SmallStr, Sub};

/// The service's document size limit.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// Longest accepted segment or subsegment name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Trace IDs older than this are rejected by the service (`InvalidTraceId`).
pub const MAX_TRACE_AGE_SECS: i64 = 30 * 24 * 3600;
/// Trace IDs further in the future than this are flagged.
pub const MAX_TRACE_FUTURE_SECS: i64 = 5 * 60;
/// Embedded subsegments deeper than this are not inspected.
const MAX_DEPTH: usize = 64;
/// Problems listed per document; the rest are counted in one final
/// `too_many_problems` entry, so a small document cannot yield megabytes of
/// messages.
pub const MAX_PROBLEMS_PER_DOCUMENT: usize = 100;
/// Path levels shown at each end of a long subsegment path.
const PATH_LEVELS_SHOWN: usize = 3;

/// One problem found in a document or a trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Problem {
    /// Stable snake_case code, e.g. `invalid_trace_id`.
    pub code: &'static str,
    /// Human-readable explanation naming the offending entity and value.
    pub message: String,
}

impl Problem {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Every problem code this module or the store can report.
pub const CODES: [&str; 27] = [
    "document_too_large",
    "missing_trace_id",
    "invalid_trace_id",
    "trace_id_too_old",
    "trace_id_in_future",
    "missing_id",
    "invalid_id",
    "invalid_parent_id",
    "missing_name",
    "name_too_long",
    "name_invalid_characters",
    "missing_start_time",
    "start_time_not_number",
    "missing_end_time",
    "end_time_not_number",
    "end_before_start",
    "invalid_annotations",
    "invalid_annotation_key",
    "invalid_annotation_value",
    "invalid_type",
    "streamed_subsegment_missing_type",
    "streamed_subsegment_missing_trace_id",
    "streamed_subsegment_missing_parent_id",
    "orphan_subsegment",
    "in_progress_never_completed",
    "invalid_subsegments",
    "too_many_problems",
];

/// `true` if `s` is `1-` + 8 lowercase hex + `-` + 24 lowercase hex.
pub fn is_valid_trace_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 35
        && b[0] == b'1'
        && b[1] == b'-'
        && b[10] == b'-'
        && b[2..10].iter().chain(&b[11..]).all(|c| is_lower_hex(*c))
}

/// `true` if `s` is 16 hex digits.
pub fn is_valid_entity_id(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

fn is_lower_hex(c: u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
}

/// `true` if every character is allowed in a segment name.
pub fn is_valid_name_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/%&#=+\\-@".contains(c)
}

/// Checks one top-level document (a segment or an independently sent
/// subsegment) held as a JSON object. `now` is the current Unix time in
/// seconds. Intake uses [`check_node`] on the typed form instead; both give
/// the same result.
pub fn check_document(doc: &Map<String, Value>, raw_len: usize, now: i64) -> Vec<Problem> {
    check_node(&document::from_map(doc), raw_len, now)
}

/// Checks the typed form of one top-level document. `now` is the current
/// Unix time in seconds.
pub fn check_node(doc: &Node, raw_len: usize, now: i64) -> Vec<Problem> {
    let mut out = Sink::default();
    if raw_len > MAX_DOCUMENT_BYTES {
        out.push("document_too_large", || {
            format!("document is {raw_len} bytes; the limit is {MAX_DOCUMENT_BYTES}")
        });
    }
    let streamed = match &doc.kind {
        Field::Absent => false,
        Field::Ok(t) if &**t == "subsegment" => true,
        other => {
            out.push("invalid_type", || {
                format!(
                    "type must be \"subsegment\" when present, got {}",
                    short_str(other)
                )
            });
            false
        }
    };
    match &doc.trace_id {
        Field::Absent if streamed => out.push("streamed_subsegment_missing_trace_id", || {
            "an independently sent subsegment needs trace_id".into()
        }),
        Field::Absent => out.push("missing_trace_id", || "trace_id is required".into()),
        v => check_trace_id(v, now, &mut out),
    }
    if streamed && !doc.parent_id.is_present() {
        out.push("streamed_subsegment_missing_parent_id", || {
            "an independently sent subsegment needs parent_id".into()
        });
    }
    if !streamed && doc.namespace.is_present() {
        out.push("streamed_subsegment_missing_type", || {
            "document has a namespace (a subsegment field) but no \"type\":\"subsegment\"; \
             it would be taken for a segment"
                .into()
        });
    }
    check_entity(doc, &mut Vec::new(), &mut out);
    out.finish()
}

/// Collects at most [`MAX_PROBLEMS_PER_DOCUMENT`] problems and counts the
/// rest; messages of problems not listed are never formatted.
#[derive(Default)]
struct Sink {
    list: Vec<Problem>,
    more: usize,
}

impl Sink {
    fn push(&mut self, code: &'static str, message: impl FnOnce() -> String) {
        if self.list.len() < MAX_PROBLEMS_PER_DOCUMENT {
            self.list.push(Problem::new(code, message()));
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self) -> Vec<Problem> {
        if self.more > 0 {
            self.list.push(Problem::new(
                "too_many_problems",
                format!("{} more problems not listed", self.more),
            ));
        }
        self.list
    }
}

fn check_trace_id(v: &Field<Arc<str>>, now: i64, out: &mut Sink) {
    let Some(s) = v.as_str().filter(|s| is_valid_trace_id(s)) else {
        out.push("invalid_trace_id", || {
            format!(
                "trace_id {} is not 1-<8 lowercase hex>-<24 lowercase hex>",
                short_str(v)
            )
        });
        return;
    };
    let epoch = i64::from_str_radix(&s[2..10], 16).unwrap_or(0);
    if epoch < now - MAX_TRACE_AGE_SECS {
        out.push("trace_id_too_old", || {
            format!("trace_id time {epoch} is more than 30 days old; the service rejects it")
        });
    } else if epoch > now + MAX_TRACE_FUTURE_SECS {
        out.push("trace_id_in_future", || {
            format!("trace_id time {epoch} is more than 5 minutes in the future")
        });
    }
}

/// Checks one entity; `path` holds the subsegment indexes leading to it
/// (empty for the top-level document).
fn check_entity(e: &Node, path: &mut Vec<usize>, out: &mut Sink) {
    let name = e.name.as_str();
    let at = |what: &str| -> String {
        match (path.is_empty(), name) {
            (true, _) => what.to_string(),
            (false, Some(n)) => format!("{} ({}): {what}", show_path(path), truncate(n, 40)),
            (false, None) => format!("{}: {what}", show_path(path)),
        }
    };
    match &e.name {
        Field::Absent => out.push("missing_name", || at("name is required")),
        Field::Ok(n) => {
            // Counting is only needed when the byte length could exceed it.
            let len = if n.len() > MAX_NAME_CHARS {
                n.chars().count()
            } else {
                n.len()
            };
            if len > MAX_NAME_CHARS {
                out.push("name_too_long", || {
                    at(&format!(
                        "name has {len} characters; the limit is {MAX_NAME_CHARS}"
                    ))
                });
            }
            if let Some(c) = n.chars().find(|c| !is_valid_name_char(*c)) {
                out.push("name_invalid_characters", || {
                    at(&format!(
                        "name contains {c:?}; only letters, digits, whitespace and _ . : / % & # = + \\ - @ are allowed"
                    ))
                });
            }
        }
        Field::Other(other) => out.push("missing_name", || {
            at(&format!("name must be a string, got {}", short(other)))
        }),
    }
    match &e.id {
        Field::Absent => out.push("missing_id", || at("id is required")),
        Field::Ok(v) if is_valid_entity_id(v) => {}
        v => out.push("invalid_id", || {
            at(&format!("id {} is not 16 hex digits", short_str(v)))
        }),
    }
    if e.parent_id.is_present() && !e.parent_id.as_str().is_some_and(is_valid_entity_id) {
        out.push("invalid_parent_id", || {
            at(&format!(
                "parent_id {} is not 16 hex digits",
                short_str(&e.parent_id)
            ))
        });
    }
    let start = match &e.start_time {
        Field::Absent => {
            out.push("missing_start_time", || at("start_time is required"));
            None
        }
        Field::Ok(n) => Some(*n),
        Field::Other(other) => {
            out.push("start_time_not_number", || {
                at(&format!(
                    "start_time must be a number, got {}",
                    short(other)
                ))
            });
            None
        }
    };
    match &e.end_time {
        Field::Absent if !e.in_progress => out.push("missing_end_time", || {
            at("end_time is required unless in_progress is true")
        }),
        Field::Absent => {}
        Field::Ok(end) => {
            if let Some(s) = start
                && *end < s
            {
                out.push("end_before_start", || {
                    at(&format!("end_time {end} is before start_time {s}"))
                });
            }
        }
        Field::Other(other) => out.push("end_time_not_number", || {
            at(&format!("end_time must be a number, got {}", short(other)))
        }),
    }
    check_annotations(&e.annotations, &at, out);
    match &e.subsegments {
        Field::Absent => {}
        Field::Ok(subs) => {
            if path.len() >= MAX_DEPTH {
                return;
            }
            for (i, sub) in subs.iter().enumerate() {
                path.push(i);
                match sub {
                    Sub::Node(m) => check_entity(m, path, out),
                    Sub::Other(other) => out.push("invalid_subsegments", || {
                        format!(
                            "{}: must be an object, got {}",
                            show_path(path),
                            short(other)
                        )
                    }),
                }
                path.pop();
            }
        }
        Field::Other(other) => out.push("invalid_subsegments", || {
            at(&format!(
                "subsegments must be an array, got {}",
                short(other)
            ))
        }),
    }
}

/// `subsegments[i].subsegments[j]...`, with the middle of a deep path
/// elided so messages stay short however deep the nesting goes.
fn show_path(path: &[usize]) -> String {
    let level = |i: &usize| format!("subsegments[{i}]");
    if path.len() <= 2 * PATH_LEVELS_SHOWN + 1 {
        return path.iter().map(level).collect::<Vec<_>>().join(".");
    }
    let head: Vec<String> = path.iter().take(PATH_LEVELS_SHOWN).map(level).collect();
    let tail: Vec<String> = path[path.len() - PATH_LEVELS_SHOWN..]
        .iter()
        .map(level)
        .collect();
    format!(
        "{}.(… {} levels …).{}",
        head.join("."),
        path.len() - 2 * PATH_LEVELS_SHOWN,
        tail.join(".")
    )
}

fn check_annotations(
    v: &Field<Vec<(SmallStr, Scalar)>>,
    at: &dyn Fn(&str) -> String,
    out: &mut Sink,
) {
    let list = match v {
        Field::Absent => return,
        Field::Other(other) => {
            out.push("invalid_annotations", || {
                at(&format!(
                    "annotations must be an object, got {}",
                    short(other)
                ))
            });
            return;
        }
        Field::Ok(list) => list,
    };
    for (key, value) in list {
        let key_ok = !key.is_empty() && key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
        if !key_ok {
            out.push("invalid_annotation_key", || {
                at(&format!(
                    "annotation key {:?} may only contain A-Z, a-z, 0-9 and _ (it cannot be used in filters)",
                    truncate(key, 60)
                ))
            });
        }
        if let Scalar::Other(other) = value {
            out.push("invalid_annotation_value", || {
                at(&format!(
                    "annotation {:?} must be a string, number or boolean, got {}",
                    truncate(key, 60),
                    short(other)
                ))
            });
        }
    }
}

/// [`short`] for a string field (absent renders as `null`).
fn short_str<S: std::ops::Deref<Target = str>>(v: &Field<S>) -> String {
    short(&v.to_value())
}

/// A short rendering of a JSON value for messages.
fn short(v: &Value) -> String {
    let s = v.to_string();
    truncate(&s, 60)
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes(v: Value, now: i64) -> Vec<&'static str> {
        let Value::Object(m) = v else {
            return vec!["not an object"];
        };
        check_document(&m, 100, now)
            .into_iter()
            .map(|p| p.code)
            .collect()
    }

    #[test]
    fn good_segment_has_no_problems() {
        let now = 0x5840_6520;
        let doc = json!({"name":"svc","id":"70de5b6f19ff9a0a","trace_id":"1-58406520-a006649127e371903a2de979",
            "start_time":1.0,"end_time":2.0,"annotations":{"user_id":"a","n":1,"ok":true},
            "subsegments":[{"name":"DynamoDB","id":"70de5b6f19ff9a0b","start_time":1.1,"end_time":1.2,"namespace":"aws"}]});
        assert!(codes(doc, now).is_empty());
    }

    #[test]
    fn flags_each_problem() {
        let now = 0x5840_6520;
        let doc = json!({"name":"bad?name","id":"xyz","trace_id":"1-58406520-A006649127E371903A2DE979",
            "start_time":"1","annotations":{"bad key":{"x":1}},
            "subsegments":[{"name":"s","id":"70de5b6f19ff9a0b","start_time":3.0,"end_time":2.0}]});
        let c = codes(doc, now);
        for want in [
            "name_invalid_characters",
            "invalid_id",
            "invalid_trace_id",
            "start_time_not_number",
            "missing_end_time",
            "invalid_annotation_key",
            "invalid_annotation_value",
            "end_before_start",
        ] {
            assert!(c.contains(&want), "{want} missing from {c:?}");
        }
    }

    #[test]
    fn problems_per_document_are_capped() {
        // 2,000 empty subsegments: four problems each.
        let subs = vec![json!({}); 2_000];
        let doc = json!({"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-58406520-a006649127e371903a2de979",
            "start_time":1,"end_time":2,"subsegments":subs});
        let Value::Object(m) = doc else {
            unreachable!("a JSON object")
        };
        let problems = check_document(&m, 100, 0x5840_6520);
        assert_eq!(problems.len(), MAX_PROBLEMS_PER_DOCUMENT + 1);
        let last = problems.last().map(|p| (p.code, p.message.as_str()));
        let more = 4 * 2_000 - MAX_PROBLEMS_PER_DOCUMENT;
        assert_eq!(
            last,
            Some((
                "too_many_problems",
                format!("{more} more problems not listed").as_str()
            ))
        );
    }

    #[test]
    fn deep_paths_are_abbreviated() {
        let mut doc = json!({"start_time":1});
        for _ in 0..60 {
            doc = json!({"name":"n","id":"70de5b6f19ff9a0b","start_time":1,"end_time":2,"subsegments":[doc]});
        }
        doc["trace_id"] = json!("1-58406520-a006649127e371903a2de979");
        let Value::Object(m) = doc else {
            unreachable!("a JSON object")
        };
        let problems = check_document(&m, 100, 0x5840_6520);
        let deepest = problems
            .iter()
            .find(|p| p.code == "missing_name")
            .map(|p| p.message.as_str())
            .unwrap_or_default();
        assert_eq!(
            deepest,
            "subsegments[0].subsegments[0].subsegments[0].(… 54 levels …).\
             subsegments[0].subsegments[0].subsegments[0]: name is required"
        );
        assert!(
            problems.iter().all(|p| p.message.len() < 200),
            "{problems:?}"
        );
    }

    #[test]
    fn trace_id_time_window() {
        let id = "1-58406520-a006649127e371903a2de979";
        let doc = |id: &str| json!({"name":"a","id":"70de5b6f19ff9a0a","trace_id":id,"start_time":1,"in_progress":true});
        assert_eq!(
            codes(doc(id), 0x5840_6520 + 31 * 86_400),
            ["trace_id_too_old"]
        );
        assert_eq!(codes(doc(id), 0x5840_6520 - 301), ["trace_id_in_future"]);
    }
}
