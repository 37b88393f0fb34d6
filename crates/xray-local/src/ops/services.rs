//! `GetServiceGraph`, `GetTraceGraph` and `GetTimeSeriesServiceStatistics`.

use serde_json::{Value, json};

use crate::state::App;
use crate::state::store::{Trace, start_of};
use crate::views::filter::{Filter, Selector};
use crate::views::graph::{self, Tally};

use super::traces::{batch, trace_ids};
use super::{ApiError, Members, OpResult, next_token, request};

/// Most periods one `GetTimeSeriesServiceStatistics` answer holds.
pub const MAX_PERIODS: usize = 10_000;

/// The start and end of a request; both required, in order.
fn window(m: &Members<'_>) -> Result<(f64, f64), ApiError> {
    let start = m.required("StartTime", Members::time)?;
    let end = m.required("EndTime", Members::time)?;
    if end < start {
        return Err(ApiError::invalid("EndTime must not be before StartTime"));
    }
    Ok((start, end))
}

/// Groups are not kept locally: only the default group (every trace) can
/// be named.
fn default_group_only(m: &Members<'_>) -> Result<(), ApiError> {
    let named = m.string("GroupName")?;
    let arn = m.string("GroupARN")?;
    if named.is_some_and(|g| g != "Default") || arn.is_some_and(|a| !a.ends_with("/Default")) {
        return Err(ApiError::invalid(
            "xray-local has only the Default group (every trace)",
        ));
    }
    Ok(())
}

/// Traces whose earliest start falls in `[start, end]`.
fn in_window(t: &Trace, (start, end): (f64, f64)) -> bool {
    let s = t.time_range().0;
    s >= start && s <= end
}

/// `POST /ServiceGraph`: the map of the traces that started in the window.
pub fn get_service_graph(app: &App, body: &[u8]) -> OpResult {
    let req = request(body)?;
    let m = Members(&req);
    let w = window(&m)?;
    default_group_only(&m)?;
    next_token(&m, |_| None::<()>)?;
    let store = app.store();
    let services = graph::build(store.traces().filter(|t| in_window(t, w)));
    drop(store);
    Ok(json!({
        "Services": services,
        "StartTime": w.0,
        "EndTime": w.1,
        "ContainsOldGroupVersions": false,
    }))
}

/// `POST /TraceGraph`: the map of the named traces.
pub fn get_trace_graph(app: &App, body: &[u8]) -> OpResult {
    let req = request(body)?;
    let m = Members(&req);
    next_token(&m, |_| None::<()>)?;
    let ids = trace_ids(&m)?;
    let store = app.store();
    let (found, _) = batch(&store, &ids, usize::MAX);
    let services = graph::build(found.into_iter());
    drop(store);
    Ok(json!({ "Services": services }))
}

/// `POST /TimeSeriesServiceStatistics`: per period, the requests a service
/// received or that went along an edge (`EntitySelectorExpression`), or,
/// without a selector, the requests that entered the system from clients.
pub fn get_time_series_service_statistics(app: &App, body: &[u8]) -> OpResult {
    let req = request(body)?;
    let m = Members(&req);
    let (start, end) = window(&m)?;
    default_group_only(&m)?;
    next_token(&m, |_| None::<()>)?;
    let period = m.integer("Period")?.unwrap_or(60);
    if period <= 0 || period % 60 != 0 {
        return Err(ApiError::invalid(
            "Period must be a positive multiple of 60",
        ));
    }
    let period = period as f64;
    // Periods start on whole multiples of the period, like the service's.
    let first = (start / period).floor() * period;
    let count = ((end - first) / period).ceil().max(1.0);
    if count > MAX_PERIODS as f64 {
        return Err(ApiError::invalid(format!(
            "the time range holds more than {MAX_PERIODS} periods; use a longer Period"
        )));
    }
    let selector = match m.string("EntitySelectorExpression")? {
        None => None,
        Some(text) if text.trim().is_empty() => None,
        Some(text) => {
            let f = Filter::parse(text).map_err(|e| ApiError::invalid(e.to_string()))?;
            Some(f.selector().ok_or_else(|| {
                ApiError::invalid(
                    "EntitySelectorExpression must be service(...) or edge(..., ...) without braces",
                )
            })?)
        }
    };
    let client = ("client".to_string(), "client".to_string());
    let selected = |from: &(String, String), to: &(String, String)| match &selector {
        None => *from == client,
        Some(Selector::Service(t)) => t.matches(to),
        Some(Selector::Edge(a, b)) => a.matches(from) && b.matches(to),
    };
    let mut tallies: Vec<Tally> = vec![Tally::default(); count as usize];
    let store = app.store();
    for t in store.traces() {
        let (s, e) = t.time_range();
        if e < first || s > end {
            continue;
        }
        let entities = t.entities();
        for (from, to, request) in graph::trace_edges(&entities, false) {
            let at = start_of(request.node);
            if !selected(&from, &to) || !(first..=end).contains(&at) {
                continue;
            }
            let i = ((at - first) / period).floor() as usize;
            if let Some(tally) = tallies.get_mut(i) {
                tally.record(request.node);
            }
        }
    }
    drop(store);
    let edge = matches!(selector, Some(Selector::Edge(..)));
    let series: Vec<Value> = tallies
        .into_iter()
        .enumerate()
        .map(|(i, tally)| {
            let mut v = json!({
                "Timestamp": first + i as f64 * period,
                "ResponseTimeHistogram": tally.histogram,
            });
            let key = if edge {
                "EdgeSummaryStatistics"
            } else {
                "ServiceSummaryStatistics"
            };
            v[key] = json!(tally.stats);
            v
        })
        .collect();
    Ok(json!({
        "TimeSeriesServiceStatistics": series,
        "ContainsOldGroupVersions": false,
    }))
}
