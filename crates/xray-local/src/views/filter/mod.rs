//! X-Ray filter expressions: the language of `GetTraceSummaries`'
//! `FilterExpression` and of the console's search box.
//!
//! ```text
//! expr       := and ( OR and )*
//! and        := unary ( AND unary )*
//! unary      := "!" unary | "(" expr ")" | service | edge | test
//! service    := service "(" [ target ] ")" [ "{" inner "}" ]
//! edge       := edge "(" target "," target ")" [ "{" inner "}" ]
//! target     := STRING | id "(" pair ( "," pair )* ")"
//! pair       := ( name | type | account.id ) ":" STRING
//! test       := keyword [ op value ]
//! keyword    := ok | error | fault | throttle            (booleans: alone, = or != true/false)
//!             | responsetime | duration | http.status    (numbers: = != < <= > >=)
//!             | http.url | http.method | http.useragent
//!             | http.clientip | user                     (strings: = != CONTAINS BEGINSWITH ENDSWITH)
//!             | annotation.KEY                           (the operators of the value's type)
//! ```
//!
//! `inner` is an expression without `service` and `edge`. Words (`AND`,
//! `CONTAINS`, keywords) are case-insensitive; strings are double-quoted
//! with `\"` and `\\` escapes and compared case-sensitively; numbers are
//! seconds for times. Top-level keywords refer to the root segment, except
//! `duration` (the whole trace), `user` and `annotation.KEY` (any segment
//! or subsegment). Inside braces they refer to the service's segments (or,
//! for an AWS resource or remote host, the calls to it) and, for an edge,
//! to the callee's side of each call along it.
//!
//! A malformed expression is an error naming the 1-based character position
//! where it goes wrong.

mod eval;
mod lex;
mod parse;

use std::fmt;

pub use eval::Facts;

/// Longest expression accepted, in characters.
pub const MAX_LEN: usize = 4_096;
/// Deepest nesting of parentheses, braces and negations.
pub const MAX_DEPTH: usize = 50;

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: Expr,
    /// Whether evaluating needs the trace's services and edges.
    needs_graph: bool,
}

/// Why an expression cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// 1-based character position of the problem.
    pub position: usize,
    /// What is wrong there.
    pub message: String,
}

impl FilterError {
    pub(crate) fn at(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Invalid filter expression at position {}: {}",
            self.position, self.message
        )
    }
}

impl std::error::Error for FilterError {}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Test(Key, Cmp),
    Service(Option<ServiceTarget>, Option<Box<Expr>>),
    Edge(ServiceTarget, ServiceTarget, Option<Box<Expr>>),
}

/// A node of the service map, as `service()` and `edge()` name it: a plain
/// name, or `id(name: .., type: .., account.id: ..)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceTarget {
    pub(crate) name: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) account: Option<String>,
}

impl ServiceTarget {
    /// `true` when the map node `(name, type)` is the one named.
    pub fn matches(&self, (name, kind): &(String, String)) -> bool {
        // Everything here runs in one local account: an account.id matches none.
        self.account.is_none()
            && self.name.as_ref().is_none_or(|n| n == name)
            && self.kind.as_ref().is_none_or(|k| k == kind)
    }
}

/// What an entity selector (`GetTimeSeriesServiceStatistics`) picks.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    /// The requests a service receives.
    Service(ServiceTarget),
    /// The requests along an edge.
    Edge(ServiceTarget, ServiceTarget),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Key {
    Ok,
    Error,
    Fault,
    Throttle,
    ResponseTime,
    Duration,
    HttpStatus,
    HttpUrl,
    HttpMethod,
    HttpUserAgent,
    HttpClientIp,
    User,
    Annotation(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrOp {
    Eq,
    Ne,
    Contains,
    BeginsWith,
    EndsWith,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cmp {
    /// A boolean keyword or annotation alone: true.
    Truthy,
    /// `= true`, `!= false`, ...: the value must equal `.0`.
    Bool(bool),
    Num(NumOp, f64),
    Str(StrOp, String),
}

impl Filter {
    /// Parses an expression.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let n = text.chars().count();
        if n > MAX_LEN {
            return Err(FilterError::at(
                MAX_LEN + 1,
                format!("the expression is longer than {MAX_LEN} characters"),
            ));
        }
        let expr = parse::parse(text)?;
        let needs_graph = uses_graph(&expr);
        Ok(Filter { expr, needs_graph })
    }

    /// `true` when the trace described by `facts` matches.
    pub fn matches(&self, facts: &Facts<'_>) -> bool {
        facts.eval(&self.expr)
    }

    /// The service or edge the expression names, when it is nothing but
    /// `service(...)` or `edge(..., ...)` (an entity selector).
    pub fn selector(&self) -> Option<Selector> {
        match &self.expr {
            Expr::Service(Some(t), None) => Some(Selector::Service(t.clone())),
            Expr::Edge(a, b, None) => Some(Selector::Edge(a.clone(), b.clone())),
            _ => None,
        }
    }

    /// `true` when [`Facts`] must hold the trace's services and edges.
    pub fn needs_graph(&self) -> bool {
        self.needs_graph
    }
}

fn uses_graph(e: &Expr) -> bool {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().any(uses_graph),
        Expr::Not(e) => uses_graph(e),
        Expr::Test(..) => false,
        Expr::Service(..) | Expr::Edge(..) => true,
    }
}

#[cfg(test)]
mod tests;
