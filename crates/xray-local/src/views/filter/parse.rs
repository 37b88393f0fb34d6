//! Recursive descent over the tokens, with the depth bounded so that no
//! input can exhaust the stack.

use super::lex::{Tok, tokens};
use super::{Cmp, Expr, FilterError, Key, MAX_DEPTH, NumOp, ServiceTarget, StrOp};

/// The keywords, for messages.
const KEYWORDS: &str = "ok, error, fault, throttle, responsetime, duration, http.status, \
     http.url, http.method, http.useragent, http.clientip, user, annotation.KEY, service(), edge()";

pub(super) fn parse(text: &str) -> Result<Expr, FilterError> {
    let toks = tokens(text)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
    };
    if p.peek() == &Tok::End {
        return Err(FilterError::at(1, "the expression is empty"));
    }
    let e = p.expr(false)?;
    match p.peek() {
        Tok::End => Ok(e),
        Tok::RParen => Err(p.error_here("this `)` closes nothing")),
        Tok::RBrace => Err(p.error_here("this `}` closes nothing")),
        t => Err(p.error_here(format!(
            "expected AND, OR or the end of the expression, found {}",
            t.describe()
        ))),
    }
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    i: usize,
    depth: usize,
}

fn word_is(t: &Tok, w: &str) -> bool {
    matches!(t, Tok::Word(x) if x.eq_ignore_ascii_case(w))
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.i).map_or(&Tok::End, |(t, _)| t)
    }

    fn pos(&self) -> usize {
        self.toks
            .get(self.i)
            .or(self.toks.last())
            .map_or(1, |(_, p)| *p)
    }

    fn next(&mut self) -> (Tok, usize) {
        let t = self
            .toks
            .get(self.i)
            .cloned()
            .unwrap_or((Tok::End, self.pos()));
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn error_here(&self, message: impl Into<String>) -> FilterError {
        FilterError::at(self.pos(), message)
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), FilterError> {
        if self.peek() == want {
            self.next();
            return Ok(());
        }
        Err(self.error_here(format!("expected {what}, found {}", self.peek().describe())))
    }

    fn deeper(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_here(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    /// `inner`: inside the braces of `service` or `edge`.
    fn expr(&mut self, inner: bool) -> Result<Expr, FilterError> {
        let mut terms = vec![self.and(inner)?];
        while word_is(self.peek(), "OR") {
            self.next();
            terms.push(self.and(inner)?);
        }
        Ok(if terms.len() == 1 {
            terms.swap_remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self, inner: bool) -> Result<Expr, FilterError> {
        let mut terms = vec![self.unary(inner)?];
        while word_is(self.peek(), "AND") {
            self.next();
            terms.push(self.unary(inner)?);
        }
        Ok(if terms.len() == 1 {
            terms.swap_remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn unary(&mut self, inner: bool) -> Result<Expr, FilterError> {
        self.deeper()?;
        let e = self.unary_inner(inner);
        self.depth -= 1;
        e
    }

    fn unary_inner(&mut self, inner: bool) -> Result<Expr, FilterError> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Bang => {
                self.next();
                Ok(Expr::Not(Box::new(self.unary(inner)?)))
            }
            Tok::LParen => {
                self.next();
                let e = self.expr(inner)?;
                if self.peek() != &Tok::RParen {
                    return Err(self.error_here(format!(
                        "expected `)` to close the `(` at position {pos}, found {}",
                        self.peek().describe()
                    )));
                }
                self.next();
                Ok(e)
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("service") || w.eq_ignore_ascii_case("edge") => {
                if inner {
                    return Err(FilterError::at(
                        pos,
                        format!("`{w}()` cannot be used inside the braces of service() or edge()"),
                    ));
                }
                self.next();
                self.graph_test(w.eq_ignore_ascii_case("edge"))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("AND") || w.eq_ignore_ascii_case("OR") => Err(
                FilterError::at(pos, format!("expected a condition before `{w}`")),
            ),
            Tok::Word(w) => {
                self.next();
                self.test(&w, pos)
            }
            Tok::End => Err(FilterError::at(
                pos,
                "the expression ends where a condition is expected",
            )),
            t => Err(FilterError::at(
                pos,
                format!(
                    "expected a condition (one of {KEYWORDS}), found {}",
                    t.describe()
                ),
            )),
        }
    }

    /// `service(...) {...}` or `edge(..., ...) {...}`, after the name.
    fn graph_test(&mut self, edge: bool) -> Result<Expr, FilterError> {
        self.expect(&Tok::LParen, "`(`")?;
        let e = if edge {
            let pos = self.pos();
            if self.peek() == &Tok::RParen {
                return Err(FilterError::at(
                    pos,
                    "edge() needs a source and a destination: edge(\"a\", \"b\")",
                ));
            }
            let from = self.target()?;
            self.expect(&Tok::Comma, "`,` and the destination service")?;
            let to = self.target()?;
            self.expect(&Tok::RParen, "`)`")?;
            Expr::Edge(from, to, self.braces()?)
        } else {
            let target = if self.peek() == &Tok::RParen {
                None
            } else {
                Some(self.target()?)
            };
            self.expect(&Tok::RParen, "`)`")?;
            Expr::Service(target, self.braces()?)
        };
        Ok(e)
    }

    fn braces(&mut self) -> Result<Option<Box<Expr>>, FilterError> {
        if self.peek() != &Tok::LBrace {
            return Ok(None);
        }
        let pos = self.pos();
        self.next();
        self.deeper()?;
        let e = self.expr(true)?;
        self.depth -= 1;
        if self.peek() != &Tok::RBrace {
            return Err(self.error_here(format!(
                "expected `}}` to close the `{{` at position {pos}, found {}",
                self.peek().describe()
            )));
        }
        self.next();
        Ok(Some(Box::new(e)))
    }

    /// A service name in quotes, or `id(name: .., type: ..)`.
    fn target(&mut self) -> Result<ServiceTarget, FilterError> {
        let (tok, pos) = self.next();
        match tok {
            Tok::Str(name) => Ok(ServiceTarget {
                name: Some(name),
                ..ServiceTarget::default()
            }),
            Tok::Word(w) if w.eq_ignore_ascii_case("id") => {
                self.expect(&Tok::LParen, "`(` after id")?;
                let mut t = ServiceTarget::default();
                loop {
                    let (key, kpos) = self.next();
                    let slot = match &key {
                        Tok::Word(k) if k.eq_ignore_ascii_case("name") => &mut t.name,
                        Tok::Word(k) if k.eq_ignore_ascii_case("type") => &mut t.kind,
                        Tok::Word(k) if k.eq_ignore_ascii_case("account.id") => &mut t.account,
                        other => {
                            return Err(FilterError::at(
                                kpos,
                                format!(
                                    "expected name, type or account.id in id(...), found {}",
                                    other.describe()
                                ),
                            ));
                        }
                    };
                    if slot.is_some() {
                        return Err(FilterError::at(
                            kpos,
                            format!("{} is given twice", key.describe()),
                        ));
                    }
                    self.expect(&Tok::Colon, "`:`")?;
                    let (value, vpos) = self.next();
                    let Tok::Str(v) = value else {
                        return Err(FilterError::at(
                            vpos,
                            format!(
                                "expected a string in double quotes, found {}",
                                value.describe()
                            ),
                        ));
                    };
                    *slot = Some(v);
                    match self.next() {
                        (Tok::Comma, _) => continue,
                        (Tok::RParen, _) => break,
                        (other, p) => {
                            return Err(FilterError::at(
                                p,
                                format!(
                                    "expected `,` or `)` in id(...), found {}",
                                    other.describe()
                                ),
                            ));
                        }
                    }
                }
                Ok(t)
            }
            other => Err(FilterError::at(
                pos,
                format!(
                    "expected a service name in double quotes or id(name: \"...\", type: \"...\"), found {}",
                    other.describe()
                ),
            )),
        }
    }

    /// A keyword and its comparison; `word` was just read at `pos`.
    fn test(&mut self, word: &str, pos: usize) -> Result<Expr, FilterError> {
        let lower = word.to_ascii_lowercase();
        let key = match lower.as_str() {
            "ok" => Key::Ok,
            "error" => Key::Error,
            "fault" => Key::Fault,
            "throttle" => Key::Throttle,
            "responsetime" => Key::ResponseTime,
            "duration" => Key::Duration,
            "http.status" => Key::HttpStatus,
            "http.url" => Key::HttpUrl,
            "http.method" => Key::HttpMethod,
            "http.useragent" => Key::HttpUserAgent,
            "http.clientip" => Key::HttpClientIp,
            "user" => Key::User,
            _ if lower.starts_with("annotation.") => {
                let k = &word["annotation.".len()..];
                if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(FilterError::at(
                        pos,
                        format!("`{word}`: annotation keys are letters, digits and _"),
                    ));
                }
                Key::Annotation(k.to_string())
            }
            _ if ["json.", "group.", "rootcause.", "edge.", "service."]
                .iter()
                .any(|p| lower.starts_with(p))
                || matches!(lower.as_str(), "json" | "group" | "rootcause") =>
            {
                return Err(FilterError::at(
                    pos,
                    format!("`{word}` is not supported by xray-local"),
                ));
            }
            _ => {
                return Err(FilterError::at(
                    pos,
                    format!("unknown keyword `{word}`; expected one of {KEYWORDS}"),
                ));
            }
        };
        let (op, op_pos) = match self.peek().clone() {
            Tok::Cmp(op) => (op.to_string(), self.pos()),
            Tok::Word(w)
                if ["CONTAINS", "BEGINSWITH", "ENDSWITH"]
                    .iter()
                    .any(|o| w.eq_ignore_ascii_case(o)) =>
            {
                (w.to_ascii_uppercase(), self.pos())
            }
            _ => {
                return match key {
                    Key::Ok | Key::Error | Key::Fault | Key::Throttle | Key::Annotation(_) => {
                        Ok(Expr::Test(key, Cmp::Truthy))
                    }
                    _ => Err(self.error_here(format!(
                        "`{word}` needs a comparison (an operator and a value), found {}",
                        self.peek().describe()
                    ))),
                };
            }
        };
        self.next();
        let (value, vpos) = self.next();
        let kind = match key {
            Key::Ok | Key::Error | Key::Fault | Key::Throttle => "boolean",
            Key::ResponseTime | Key::Duration | Key::HttpStatus => "number",
            Key::Annotation(_) => "any",
            _ => "string",
        };
        let cmp = match (&value, kind) {
            (Tok::Word(b), "boolean" | "any")
                if b.eq_ignore_ascii_case("true") || b.eq_ignore_ascii_case("false") =>
            {
                let v = b.eq_ignore_ascii_case("true");
                match op.as_str() {
                    "=" => Cmp::Bool(v),
                    "!=" => Cmp::Bool(!v),
                    _ => {
                        return Err(FilterError::at(
                            op_pos,
                            format!("`{word}` takes = or != with true or false, not {op}"),
                        ));
                    }
                }
            }
            (Tok::Num(n), "number" | "any") => {
                let op = match op.as_str() {
                    "=" => NumOp::Eq,
                    "!=" => NumOp::Ne,
                    "<" => NumOp::Lt,
                    "<=" => NumOp::Le,
                    ">" => NumOp::Gt,
                    ">=" => NumOp::Ge,
                    _ => {
                        return Err(FilterError::at(
                            op_pos,
                            format!("{op} does not compare numbers: use =, !=, <, <=, > or >="),
                        ));
                    }
                };
                Cmp::Num(op, *n)
            }
            (Tok::Str(s), "string" | "any") => {
                let op = match op.as_str() {
                    "=" => StrOp::Eq,
                    "!=" => StrOp::Ne,
                    "CONTAINS" => StrOp::Contains,
                    "BEGINSWITH" => StrOp::BeginsWith,
                    "ENDSWITH" => StrOp::EndsWith,
                    _ => {
                        return Err(FilterError::at(
                            op_pos,
                            format!(
                                "{op} does not compare strings: use =, !=, CONTAINS, BEGINSWITH or ENDSWITH"
                            ),
                        ));
                    }
                };
                Cmp::Str(op, s.clone())
            }
            (Tok::End, _) => {
                return Err(FilterError::at(
                    vpos,
                    format!("the expression ends where the value after {op} is expected"),
                ));
            }
            (v, k) => {
                let want = match k {
                    "boolean" => "true or false",
                    "number" => "a number",
                    "string" => "a string in double quotes",
                    _ => "a string, a number, true or false",
                };
                return Err(FilterError::at(
                    vpos,
                    format!("`{word}` compares with {want}, found {}", v.describe()),
                ));
            }
        };
        Ok(Expr::Test(key, cmp))
    }
}
