//! The trace list of `GET /api/TraceSummaries` (and the same selection for
//! `GET /api/export`): simple filters, a filter expression, a response-time
//! range, sorting and paging.

use std::cmp::Ordering;

use serde_json::{Value, json};

use crate::document::Scalar;
use crate::state::App;
use crate::state::unix_now;
use crate::views::filter::{Facts, Filter, FilterError};
use crate::views::histogram::Histogram;
use crate::views::summary::Summary;

use super::query::{Params, QueryError};

/// Status filter values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// No error, fault or throttle on the root segment.
    Ok,
    /// The root segment has `error` (4xx).
    Error,
    /// The root segment has `fault` (5xx).
    Fault,
    /// The root segment has `throttle` (429).
    Throttle,
    /// The root answered fine, but something it called failed.
    Downstream,
}

/// The column the list is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Start time.
    Time,
    /// Trace duration.
    Duration,
    /// Root response time.
    Response,
    /// Worst status first (fault, throttle, error, downstream, ok).
    Status,
    /// The root's HTTP status code.
    Http,
    /// The root's method and URL path.
    Url,
    /// The entry point's name.
    Entry,
    /// Problems found.
    Problems,
}

/// Filters, order and page of the trace list.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Earliest trace start, Unix seconds.
    pub start: Option<f64>,
    /// Latest trace start, Unix seconds.
    pub end: Option<f64>,
    /// A service (segment name) that must appear in the trace.
    pub service: Option<String>,
    /// Root segment status.
    pub status: Option<Status>,
    /// An annotation `key=value` that must appear in the trace.
    pub annotation: Option<(String, String)>,
    /// Minimum duration, seconds.
    pub min_duration: Option<f64>,
    /// A filter expression.
    pub filter: Option<Filter>,
    /// Response-time range (seconds), both ends included.
    pub response: (Option<f64>, Option<f64>),
    /// A part of the trace ID.
    pub id: Option<String>,
    /// Sort column and direction.
    pub sort: (Sort, bool),
    /// Summaries skipped before the page.
    pub offset: usize,
    /// Maximum number of summaries returned.
    pub limit: usize,
}

/// Query keys accepted by [`ListQuery::parse`].
pub const LIST_KEYS: [&str; 14] = [
    "start",
    "end",
    "service",
    "status",
    "annotation",
    "min_duration",
    "limit",
    "filter",
    "rt_min",
    "rt_max",
    "id",
    "sort",
    "order",
    "offset",
];

/// A list query that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListError {
    /// A bad parameter.
    Query(QueryError),
    /// A malformed filter expression.
    Filter(FilterError),
}

impl From<QueryError> for ListError {
    fn from(e: QueryError) -> Self {
        ListError::Query(e)
    }
}

impl ListQuery {
    /// Parses a raw query string.
    pub fn parse(raw: &str) -> Result<Self, ListError> {
        let p = Params::parse(raw, &LIST_KEYS)?;
        let status = match p.get("status") {
            None => None,
            Some(s) => Some(match s.to_ascii_lowercase().as_str() {
                "ok" => Status::Ok,
                "error" => Status::Error,
                "fault" => Status::Fault,
                "throttle" => Status::Throttle,
                "downstream" => Status::Downstream,
                _ => {
                    return Err(QueryError(format!(
                        "status must be ok, error, fault, throttle or downstream, got {s:?}"
                    ))
                    .into());
                }
            }),
        };
        let annotation = match p.get("annotation") {
            None => None,
            Some(a) => match a.split_once('=') {
                Some((k, v)) if !k.is_empty() => Some((k.to_string(), v.to_string())),
                _ => {
                    return Err(
                        QueryError(format!("annotation must be key=value, got {a:?}")).into(),
                    );
                }
            },
        };
        let sort = match p.get("sort").unwrap_or("time") {
            "time" => Sort::Time,
            "duration" => Sort::Duration,
            "response" => Sort::Response,
            "status" => Sort::Status,
            "http" => Sort::Http,
            "url" => Sort::Url,
            "entry" => Sort::Entry,
            "problems" => Sort::Problems,
            other => {
                return Err(QueryError(format!(
                    "sort must be time, duration, response, status, http, url, entry or problems, got {other:?}"
                ))
                .into());
            }
        };
        let descending = match p.get("order") {
            None => sort != Sort::Url && sort != Sort::Entry,
            Some("desc") => true,
            Some("asc") => false,
            Some(other) => {
                return Err(QueryError(format!("order must be asc or desc, got {other:?}")).into());
            }
        };
        let offset = match p.get("offset") {
            None => 0,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .map_err(|_| QueryError(format!("offset must be a whole number, got {v:?}")))?,
        };
        let filter = match p.get("filter") {
            Some(text) if !text.trim().is_empty() => {
                Some(Filter::parse(text).map_err(ListError::Filter)?)
            }
            _ => None,
        };
        let q = Self {
            start: p.number("start")?,
            end: p.number("end")?,
            service: p.get("service").map(str::to_string),
            status,
            annotation,
            min_duration: p.number("min_duration")?,
            filter,
            response: (p.number("rt_min")?, p.number("rt_max")?),
            id: p.get("id").map(|s| s.trim().to_string()),
            sort: (sort, descending),
            offset,
            limit: p.limit(100)?,
        };
        if let (Some(s), Some(e)) = (q.start, q.end)
            && s > e
        {
            return Err(QueryError("start must not be after end".into()).into());
        }
        Ok(q)
    }

    /// `true` when the summary passes every filter but the response-time
    /// range (the histogram shows the matches around the range).
    fn matches(&self, s: &Summary) -> bool {
        if self.start.is_some_and(|t| s.start < t) || self.end.is_some_and(|t| s.start > t) {
            return false;
        }
        if self.min_duration.is_some_and(|d| s.duration < d) {
            return false;
        }
        if let Some(svc) = &self.service
            && !s.services.iter().any(|(n, _)| n == svc)
        {
            return false;
        }
        if let Some(id) = &self.id
            && !s.id.contains(id.as_str())
        {
            return false;
        }
        if let Some(status) = self.status {
            let ok = match status {
                Status::Ok => !s.has_error && !s.has_fault && !s.has_throttle,
                Status::Error => s.has_error,
                Status::Fault => s.has_fault,
                Status::Throttle => s.has_throttle,
                Status::Downstream => s.downstream_failed,
            };
            if !ok {
                return false;
            }
        }
        if let Some((k, want)) = &self.annotation {
            let hit = s
                .annotations
                .get(k)
                .is_some_and(|vals| vals.iter().any(|(v, _)| annotation_eq(v, want)));
            if !hit {
                return false;
            }
        }
        true
    }

    fn in_response_range(&self, s: &Summary) -> bool {
        let (lo, hi) = self.response;
        // To the millisecond, as the histogram counts (times are differences of
        // epoch seconds: 0.1 s may come out as 0.0999999).
        let rt = (s.response_time * 1000.0).round() / 1000.0;
        lo.is_none_or(|v| rt >= v) && hi.is_none_or(|v| rt <= v)
    }
}

fn annotation_eq(v: &Scalar, want: &str) -> bool {
    match v {
        Scalar::Str(s) => &**s == want,
        Scalar::Bool(b) => want.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Scalar::Num(n) => want
            .parse::<f64>()
            .ok()
            .zip(n.as_f64())
            .is_some_and(|(a, b)| a == b),
        _ => false,
    }
}

/// The summaries the query selects, in its order, with how many traces
/// were looked at and the response times of the matches before the
/// response-time range was applied.
pub fn select(app: &App, q: &ListQuery) -> (Vec<Summary>, usize, Histogram) {
    let store = app.store();
    let mut processed = 0usize;
    let mut histogram = Histogram::default();
    let mut hits = Vec::new();
    for t in store.traces() {
        processed += 1;
        let s = Summary::of(t);
        if !q.matches(&s) {
            continue;
        }
        if let Some(f) = &q.filter
            && !f.matches(&Facts::new(t, f.needs_graph()))
        {
            continue;
        }
        histogram.add(s.response_time);
        if q.in_response_range(&s) {
            hits.push(s);
        }
    }
    drop(store);
    let (sort, descending) = q.sort;
    hits.sort_by(|a, b| {
        let o = compare(sort, a, b);
        let o = if descending { o.reverse() } else { o };
        // Ties: newest first, then by ID, so pages never overlap.
        o.then_with(|| b.start.total_cmp(&a.start))
            .then_with(|| a.id.cmp(&b.id))
    });
    (hits, processed, histogram)
}

fn severity(s: &Summary) -> u8 {
    if s.has_fault {
        4
    } else if s.has_throttle {
        3
    } else if s.has_error {
        2
    } else if s.downstream_failed {
        1
    } else {
        0
    }
}

/// The URL's path (and query), or the URL as it is when it has no scheme.
pub fn url_path(url: &str) -> &str {
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => url,
    }
}

fn compare(sort: Sort, a: &Summary, b: &Summary) -> Ordering {
    let num = |x: Option<f64>, y: Option<f64>| {
        x.unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&y.unwrap_or(f64::NEG_INFINITY))
    };
    match sort {
        Sort::Time => a.start.total_cmp(&b.start),
        Sort::Duration => a.duration.total_cmp(&b.duration),
        Sort::Response => a.response_time.total_cmp(&b.response_time),
        Sort::Status => severity(a).cmp(&severity(b)),
        Sort::Http => num(a.http.status, b.http.status),
        Sort::Url => {
            let key = |s: &Summary| {
                (
                    s.http
                        .url
                        .as_deref()
                        .map(url_path)
                        .unwrap_or("")
                        .to_string(),
                    s.http.method.as_deref().unwrap_or("").to_string(),
                )
            };
            key(a).cmp(&key(b))
        }
        Sort::Entry => {
            let name = |s: &Summary| s.entry_point.as_ref().map(|e| e.0.clone());
            name(a).cmp(&name(b))
        }
        Sort::Problems => a.problems.cmp(&b.problems),
    }
}

/// The `/api/TraceSummaries` document for a raw query string.
pub fn trace_summaries_json(app: &App, raw: &str) -> Result<Value, ListError> {
    let q = ListQuery::parse(raw)?;
    let (hits, processed, histogram) = select(app, &q);
    let total = hits.len();
    let page: Vec<Value> = hits
        .iter()
        .skip(q.offset)
        .take(q.limit)
        .map(Summary::to_json)
        .collect();
    Ok(json!({
        "TraceSummaries": page,
        "ApproximateTime": unix_now(),
        "TracesProcessedCount": processed,
        "MatchedCount": total,
        "Offset": q.offset,
        "ResponseTimeHistogram": histogram,
    }))
}

#[cfg(test)]
mod tests {
    use super::url_path;

    #[test]
    fn paths_of_urls() {
        assert_eq!(
            url_path("http://localhost:8080/orders/1?x=2"),
            "/orders/1?x=2"
        );
        assert_eq!(url_path("https://example.com"), "/");
        assert_eq!(url_path("/already/a/path"), "/already/a/path");
    }
}
