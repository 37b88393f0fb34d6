//! Evaluating an expression against one trace.

use crate::document::{Field, Node, Scalar, Sub};
use crate::state::store::{MAX_WALK_DEPTH, StoredEntity, Trace, end_of, start_of};
use crate::views::graph::{self, Key as NodeKey, TraceEdge};
use crate::views::summary::root_segment;

use super::{Cmp, Expr, Key, NumOp, ServiceTarget, StrOp};

/// What an expression is evaluated against: one trace, read once.
#[derive(Debug)]
pub struct Facts<'a> {
    entities: Vec<StoredEntity<'a>>,
    root: Option<&'a Node>,
    duration: f64,
    /// The requests along the map's edges, when the expression needs them.
    edges: Vec<(NodeKey, NodeKey, TraceEdge<'a>)>,
}

/// Where a keyword is read.
#[derive(Clone, Copy)]
enum Scope<'f, 'a> {
    /// The trace: the root segment, or the whole trace for some keywords.
    Trace(&'f Facts<'a>),
    /// One segment or call, inside the braces of `service` or `edge`.
    StoredEntity(&'a Node),
}

impl<'a> Facts<'a> {
    /// Reads `trace`; `graph` says whether service and edge tests will be
    /// asked (see [`super::Filter::needs_graph`]).
    pub fn new(trace: &'a Trace, graph: bool) -> Self {
        let entities = trace.entities();
        let root = root_segment(&entities).map(|e| e.node);
        let (start, end) = trace.time_range();
        let edges = if graph {
            graph::trace_edges(&entities, true)
        } else {
            Vec::new()
        };
        Facts {
            entities,
            root,
            duration: end - start,
            edges,
        }
    }

    pub(super) fn eval(&self, e: &Expr) -> bool {
        match e {
            Expr::And(v) => v.iter().all(|e| self.eval(e)),
            Expr::Or(v) => v.iter().any(|e| self.eval(e)),
            Expr::Not(e) => !self.eval(e),
            Expr::Test(key, cmp) => test(Scope::Trace(self), key, cmp),
            Expr::Service(target, inner) => self.edges.iter().any(|(_, to, r)| {
                target.as_ref().is_none_or(|t| is_target(t, to))
                    && to.1 != "client"
                    && inner.as_ref().is_none_or(|i| eval_on(r.node, i))
            }),
            Expr::Edge(from, to, inner) => self.edges.iter().any(|(f, t, r)| {
                is_target(from, f)
                    && is_target(to, t)
                    && inner.as_ref().is_none_or(|i| eval_on(r.node, i))
            }),
        }
    }
}

fn is_target(t: &ServiceTarget, key: &NodeKey) -> bool {
    t.matches(key)
}

/// An expression inside braces, on one entity (no service or edge tests:
/// the parser refuses them there).
fn eval_on(node: &Node, e: &Expr) -> bool {
    match e {
        Expr::And(v) => v.iter().all(|e| eval_on(node, e)),
        Expr::Or(v) => v.iter().any(|e| eval_on(node, e)),
        Expr::Not(e) => !eval_on(node, e),
        Expr::Test(key, cmp) => test(Scope::StoredEntity(node), key, cmp),
        Expr::Service(..) | Expr::Edge(..) => false,
    }
}

fn test(scope: Scope<'_, '_>, key: &Key, cmp: &Cmp) -> bool {
    // The node the flags, times and HTTP fields come from.
    let node = match scope {
        Scope::Trace(f) => f.root,
        Scope::StoredEntity(n) => Some(n),
    };
    match key {
        Key::Ok => flag(
            cmp,
            node.is_some_and(|n| !n.error && !n.fault && !n.throttle),
        ),
        Key::Error => flag(cmp, node.is_some_and(|n| n.error || n.throttle)),
        Key::Fault => flag(cmp, node.is_some_and(|n| n.fault)),
        Key::Throttle => flag(cmp, node.is_some_and(|n| n.throttle)),
        Key::ResponseTime => number(cmp, node.and_then(response_time)),
        Key::Duration => number(
            cmp,
            match scope {
                Scope::Trace(f) => Some(f.duration).filter(|d| d.is_finite()),
                Scope::StoredEntity(n) => response_time(n),
            },
        ),
        Key::HttpStatus => number(cmp, node.and_then(|n| n.details().status)),
        Key::HttpUrl => string(cmp, node.and_then(|n| n.details().url.as_deref())),
        Key::HttpMethod => string(cmp, node.and_then(|n| n.details().method.as_deref())),
        Key::HttpUserAgent => string(cmp, node.and_then(|n| n.details().user_agent.as_deref())),
        Key::HttpClientIp => string(cmp, node.and_then(|n| n.details().client_ip.as_deref())),
        Key::User => match scope {
            Scope::Trace(f) => f
                .entities
                .iter()
                .any(|e| string(cmp, e.node.details().user.as_deref())),
            Scope::StoredEntity(n) => string(cmp, n.details().user.as_deref()),
        },
        Key::Annotation(k) => match scope {
            Scope::Trace(f) => f.entities.iter().any(|e| annotation(e.node, k, cmp)),
            Scope::StoredEntity(n) => annotation_below(n, k, cmp, 0),
        },
    }
}

fn response_time(n: &Node) -> Option<f64> {
    if n.in_progress {
        return None;
    }
    Some(end_of(n) - start_of(n)).filter(|d| d.is_finite())
}

fn flag(cmp: &Cmp, value: bool) -> bool {
    match cmp {
        Cmp::Truthy => value,
        Cmp::Bool(want) => value == *want,
        Cmp::Num(..) | Cmp::Str(..) => false,
    }
}

/// A missing value matches no comparison, `!=` included.
fn number(cmp: &Cmp, value: Option<f64>) -> bool {
    let (Cmp::Num(op, want), Some(v)) = (cmp, value) else {
        return false;
    };
    match op {
        NumOp::Eq => v == *want,
        NumOp::Ne => v != *want,
        NumOp::Lt => v < *want,
        NumOp::Le => v <= *want,
        NumOp::Gt => v > *want,
        NumOp::Ge => v >= *want,
    }
}

fn string(cmp: &Cmp, value: Option<&str>) -> bool {
    let (Cmp::Str(op, want), Some(v)) = (cmp, value) else {
        return false;
    };
    match op {
        StrOp::Eq => v == want,
        StrOp::Ne => v != want,
        StrOp::Contains => v.contains(want.as_str()),
        StrOp::BeginsWith => v.starts_with(want.as_str()),
        StrOp::EndsWith => v.ends_with(want.as_str()),
    }
}

/// The annotation `key` of one entity, compared by the value's type.
fn annotation(n: &Node, key: &str, cmp: &Cmp) -> bool {
    let Field::Ok(list) = &n.annotations else {
        return false;
    };
    let Ok(i) = list.binary_search_by(|(k, _)| (**k).cmp(key)) else {
        return false;
    };
    match &list[i].1 {
        Scalar::Bool(b) => flag(cmp, *b),
        Scalar::Num(x) => number(cmp, x.as_f64()),
        Scalar::Str(s) => string(cmp, Some(s)),
        Scalar::Other(_) => false,
    }
}

/// The annotation on a segment or call, or on a subsegment embedded in it.
fn annotation_below(n: &Node, key: &str, cmp: &Cmp, depth: usize) -> bool {
    if annotation(n, key, cmp) {
        return true;
    }
    if depth >= MAX_WALK_DEPTH {
        return false;
    }
    let Field::Ok(subs) = &n.subsegments else {
        return false;
    };
    subs.iter().any(|s| match s {
        Sub::Node(m) => annotation_below(m, key, cmp, depth + 1),
        Sub::Other(_) => false,
    })
}
