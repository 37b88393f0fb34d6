//! One change to an entity, as user code hands it over, and how it is applied to the arena.
//!
//! Values are checked, sanitized and (for metadata and other `aws` fields) turned into JSON
//! text before a change becomes an [`Op`]: applying one runs no user code, so it is done
//! under the trace's lock without any risk of re-entering it. An `Op` is plain data that
//! borrows its strings (from the caller, or from the buffer of the patch that collected it),
//! so collecting and applying changes costs no allocation and no drop.

use super::TraceState;
use super::entity::{AwsKey, EntityData, Extra, Item, MoreKey, Scalar, Text, status_flags};
use crate::deferred::DeferredFields;
use crate::id::EntityId;
use crate::model::{Cause, Namespace, Sql, append_exceptions};

/// A string of a change: borrowed from the caller, or a range of the collecting patch's own
/// buffer (a value the caller handed over owned).
#[allow(unreachable_pub)]
#[derive(Debug, Clone, Copy)]
pub enum Str<'a> {
    Borrowed(&'a str),
    Local { start: u32, end: u32 },
}

impl<'a> Str<'a> {
    #[inline]
    fn get<'s>(self, local: &'s str) -> &'s str
    where
        'a: 's,
    {
        match self {
            Str::Borrowed(s) => s,
            Str::Local { start, end } => local.get(start as usize..end as usize).unwrap_or(""),
        }
    }
}

/// An annotation value of a change.
#[allow(unreachable_pub)]
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Str(Str<'a>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// A change to one segment or subsegment.
#[allow(unreachable_pub)]
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Op<'a> {
    /// A name already sanitized.
    Name(Str<'a>),
    Namespace(Namespace),
    /// Flag bits to set.
    Flags(u8),
    HttpMethod(Str<'a>),
    HttpUrl(Str<'a>),
    /// A URL from its parts: `https` or not, host, path.
    HttpUrlParts(bool, Str<'a>, Str<'a>),
    HttpUserAgent(Str<'a>),
    HttpClientIp(Str<'a>, bool),
    HttpTraced(bool),
    /// The response status (and the flags it implies) and length.
    HttpResponse(u16, Option<u64>),
    Aws(AwsKey, Str<'a>),
    AwsRetries(u32),
    /// Any other `aws` field: its key and its value as JSON text.
    AwsJson(Str<'a>, Str<'a>),
    User(Str<'a>),
    Origin(Str<'a>),
    ResourceArn(Str<'a>),
    ServiceVersion(Str<'a>),
    /// A checked annotation.
    Annotation(Str<'a>, Value<'a>),
    /// A metadata value: namespace, key and JSON text, each in the patch's buffer.
    Metadata(Str<'a>, Str<'a>, Str<'a>),
    /// The value at this index of the patch's owned values.
    Owned(u32),
    Precursor(EntityId),
}

/// A value of a change that cannot be borrowed.
#[allow(unreachable_pub)]
#[derive(Debug)]
pub enum Owned {
    Cause(Box<Cause>),
    Sql(Box<Sql>),
    Deferred(Box<dyn DeferredFields>),
}

/// Changes ready to be applied, in order (`first`, then `more`), with the buffer their local
/// strings are in and the owned values they refer to.
pub(crate) struct Changes<'p, 'a> {
    pub(crate) first: &'p [Op<'a>],
    pub(crate) more: &'p [Op<'a>],
    pub(crate) local: &'p str,
    pub(crate) owned: &'p mut [Option<Owned>],
}

impl Changes<'_, '_> {
    /// Runs `f` with no changes.
    pub(crate) fn none<R>(f: impl FnOnce(Changes<'_, '_>) -> R) -> R {
        f(Changes {
            first: &[],
            more: &[],
            local: "",
            owned: &mut [],
        })
    }
}

/// Sets a typed field of `e` (strings into `text`); `false`, with nothing done, for a change
/// to the open-ended parts, or to a typed `aws` field while the entity has extras (an untyped
/// value of the same key must go too).
#[inline(always)]
fn set_typed(e: &mut EntityData, text: &mut String, op: &Op<'_>, local: &str) -> bool {
    match *op {
        Op::Name(name) => {
            if let Some(t) = Text::push(text, name.get(local)) {
                e.name = t;
            }
        }
        Op::Namespace(ns) => e.namespace = Some(ns),
        Op::Flags(bits) => e.flags |= bits,
        Op::HttpMethod(v) => e.http.method = Text::push(text, v.get(local)),
        Op::HttpUrl(v) => e.http.url = Text::push(text, v.get(local)),
        Op::HttpUrlParts(https, host, path) => {
            let scheme = if https { "https://" } else { "http://" };
            e.http.url = Text::push_all(text, [scheme, host.get(local), path.get(local)]);
        }
        Op::HttpUserAgent(v) => e.http.user_agent = Text::push(text, v.get(local)),
        Op::HttpClientIp(ip, x_forwarded_for) => {
            e.http.client_ip = Text::push(text, ip.get(local));
            e.http.set_x_forwarded_for(x_forwarded_for);
        }
        Op::HttpTraced(traced) => e.http.set_traced(traced),
        Op::HttpResponse(status, content_length) => {
            e.flags |= status_flags(status);
            e.http.set_response(status, content_length);
        }
        Op::Aws(key, v) if !e.has_extras => *e.aws.slot(key) = Text::push(text, v.get(local)),
        Op::AwsRetries(n) if !e.has_extras => e.aws.set_retries(Some(n)),
        _ => return false,
    }
    true
}

impl TraceState {
    /// Applies every change to the entity at `index` (which the caller has checked exists).
    #[inline]
    pub(crate) fn apply_all(&mut self, index: usize, changes: Changes<'_, '_>) {
        if changes.more.is_empty() && changes.owned.is_empty() {
            // Ending without last changes is the common case: no call for nothing.
            if !changes.first.is_empty() {
                self.apply_ops(index, changes.first, changes.local);
            }
        } else {
            self.apply_changes(index, changes);
        }
    }

    /// Applies changes that own nothing: those of a patch of a few changes (most of them).
    /// The entity is looked up once for a run of changes to its typed fields; the loop leaves
    /// it only for a change [`set_typed`] leaves.
    fn apply_ops(&mut self, index: usize, ops: &[Op<'_>], local: &str) {
        let mut ops = ops.iter();
        loop {
            let other = {
                let TraceState { entities, text, .. } = self;
                let Some(e) = entities.get_mut(index) else {
                    return;
                };
                ops.by_ref().find(|op| !set_typed(e, text, op, local))
            };
            match other {
                Some(op) => self.apply_extra(index, op, local),
                None => return,
            }
        }
    }

    fn apply_changes(&mut self, index: usize, changes: Changes<'_, '_>) {
        let Changes {
            first,
            more,
            local,
            owned,
        } = changes;
        // Each change is read where it is (an `Op` is several words: no copy per change).
        for op in first.iter().chain(more) {
            match *op {
                Op::Owned(i) => {
                    if let Some(value) = owned.get_mut(i as usize).and_then(Option::take) {
                        self.apply_owned(index, value);
                    }
                }
                _ => self.apply(index, op, local),
            }
        }
    }

    /// Applies one change (for [`Self::apply_changes`]).
    #[inline]
    fn apply(&mut self, index: usize, op: &Op<'_>, local: &str) {
        let TraceState { entities, text, .. } = self;
        let Some(e) = entities.get_mut(index) else {
            return;
        };
        if !set_typed(e, text, op, local) {
            self.apply_extra(index, op, local);
        }
    }

    /// Applies a change [`set_typed`] leaves: one to the entity's open-ended parts (other
    /// `aws` fields, annotations, metadata, precursors), to the fields few entities have
    /// (`user`, `origin`, ...), or to a typed `aws` field of an entity with extras (an untyped
    /// value of its key goes).
    #[inline(never)]
    fn apply_extra(&mut self, index: usize, op: &Op<'_>, local: &str) {
        let text = &mut self.text;
        let Some(e) = self.entities.get_mut(index) else {
            return;
        };
        match *op {
            Op::Aws(key, v) => {
                *e.aws.slot(key) = Text::push(text, v.get(local));
                self.remove_aws_extra(index, key.as_str());
            }
            Op::AwsRetries(n) => {
                e.aws.set_retries(Some(n));
                self.remove_aws_extra(index, "retries");
            }
            Op::AwsJson(key, json) => {
                let (key, json) = (key.get(local), json.get(local));
                // The latest value of a key wins, typed or not.
                if key == "retries" {
                    e.aws.set_retries(None);
                } else if let Some(k) = AwsKey::from_key(key) {
                    *e.aws.slot(k) = None;
                }
                let Some(json) = Text::push(text, json) else {
                    return;
                };
                let found = self.find_extra(
                    index,
                    |i, t| matches!(i, Item::Aws { key: k, .. } if k.get(t) == key),
                );
                match found {
                    Some(pos) => {
                        if let Some(Extra {
                            item: Item::Aws { json: slot, .. },
                            ..
                        }) = self.extras.get_mut(pos)
                        {
                            *slot = json;
                        }
                    }
                    None => {
                        if let Some(key) = Text::push(&mut self.text, key) {
                            self.push_extra(index, Item::Aws { key, json });
                        }
                    }
                }
            }
            Op::Annotation(key, value) => {
                let key = key.get(local);
                let value = match value {
                    Value::Str(s) => match Text::push(text, s.get(local)) {
                        Some(t) => Scalar::Str(t),
                        None => return,
                    },
                    Value::Int(i) => Scalar::Int(i),
                    Value::Float(f) => Scalar::Float(f),
                    Value::Bool(b) => Scalar::Bool(b),
                };
                let found = self.find_extra(
                    index,
                    |i, t| matches!(i, Item::Annotation { key: k, .. } if k.get(t) == key),
                );
                match found {
                    Some(pos) => {
                        if let Some(Extra {
                            item: Item::Annotation { value: slot, .. },
                            ..
                        }) = self.extras.get_mut(pos)
                        {
                            *slot = value;
                        }
                    }
                    None => {
                        if let Some(key) = Text::push(&mut self.text, key) {
                            self.push_extra(index, Item::Annotation { key, value });
                        }
                    }
                }
            }
            Op::Metadata(namespace, key, json) => {
                let (namespace, key) = (namespace.get(local), key.get(local));
                let Some(json) = Text::push(text, json.get(local)) else {
                    return;
                };
                let found = self.find_extra(index, |i, t| {
                    matches!(i, Item::Metadata { namespace: n, key: k, .. }
                        if n.get(t) == namespace && k.get(t) == key)
                });
                match found {
                    Some(pos) => {
                        if let Some(Extra {
                            item: Item::Metadata { json: slot, .. },
                            ..
                        }) = self.extras.get_mut(pos)
                        {
                            *slot = json;
                        }
                    }
                    None => {
                        if let (Some(namespace), Some(key)) = (
                            Text::push(&mut self.text, namespace),
                            Text::push(&mut self.text, key),
                        ) {
                            self.push_extra(
                                index,
                                Item::Metadata {
                                    namespace,
                                    key,
                                    json,
                                },
                            );
                        }
                    }
                }
            }
            Op::Precursor(id) => self.push_extra(index, Item::Precursor(id)),
            Op::User(v) => self.set_more(index, MoreKey::User, v.get(local)),
            Op::Origin(v) => self.set_more(index, MoreKey::Origin, v.get(local)),
            Op::ResourceArn(v) => self.set_more(index, MoreKey::ResourceArn, v.get(local)),
            Op::ServiceVersion(v) => self.set_more(index, MoreKey::ServiceVersion, v.get(local)),
            // Set by `set_typed`, or applied by `apply_all` (which holds the owned values).
            _ => {}
        }
    }

    /// Applies an owned value.
    pub(crate) fn apply_owned(&mut self, index: usize, value: Owned) {
        match value {
            Owned::Cause(mut cause) => {
                match self.find_extra(index, |i, _| matches!(i, Item::Cause(_))) {
                    Some(pos) => {
                        if let Some(Extra {
                            item: Item::Cause(existing),
                            ..
                        }) = self.extras.get_mut(pos)
                        {
                            // The first cause's working directory and paths stay.
                            let new = std::mem::take(&mut cause.exceptions);
                            append_exceptions(&mut existing.exceptions, new);
                        }
                    }
                    None => {
                        // Capped like any later addition.
                        let all = std::mem::take(&mut cause.exceptions);
                        append_exceptions(&mut cause.exceptions, all);
                        self.push_extra(index, Item::Cause(cause));
                    }
                }
            }
            Owned::Sql(sql) => {
                self.replace_extra(index, |i| matches!(i, Item::Sql(_)), Item::Sql(sql));
            }
            Owned::Deferred(fields) => self.push_extra(index, Item::Deferred(fields)),
        }
    }

    fn push_extra(&mut self, index: usize, item: Item) {
        if let Some(e) = self.entities.get_mut(index) {
            e.has_extras = true;
        }
        self.extras.push(Extra {
            entity: index as u32,
            item,
        });
    }

    /// The position of the entity's extra that `is` accepts.
    fn find_extra(&self, index: usize, is: impl Fn(&Item, &str) -> bool) -> Option<usize> {
        if !self.entities.get(index).is_some_and(|e| e.has_extras) {
            return None;
        }
        self.extras
            .iter()
            .position(|x| x.entity as usize == index && is(&x.item, &self.text))
    }

    /// Sets one of the fields few entities have, replacing an earlier value.
    fn set_more(&mut self, index: usize, key: MoreKey, value: &str) {
        if let Some(value) = Text::push(&mut self.text, value) {
            let same = |i: &Item| matches!(i, Item::More(k, _) if *k == key);
            self.replace_extra(index, same, Item::More(key, value));
        }
    }

    /// Replaces the entity's extra that `is` accepts with `item`, or adds `item`.
    fn replace_extra(&mut self, index: usize, is: impl Fn(&Item) -> bool, item: Item) {
        match self.find_extra(index, |i, _| is(i)) {
            Some(pos) => {
                if let Some(x) = self.extras.get_mut(pos) {
                    x.item = item;
                }
            }
            None => self.push_extra(index, item),
        }
    }

    /// Removes the entity's other `aws` field named `key` (a typed one was set).
    fn remove_aws_extra(&mut self, index: usize, key: &str) {
        if let Some(pos) = self.find_extra(
            index,
            |i, t| matches!(i, Item::Aws { key: k, .. } if k.get(t) == key),
        ) {
            self.extras.remove(pos);
        }
    }
}
