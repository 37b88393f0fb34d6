//! One change to an entity, as user code hands it over, and how it is applied to the arena.
//!
//! Values are checked, sanitized and (for metadata and other `aws` fields) turned into JSON
//! text before a change becomes an [`Op`]: applying one runs no user code, so it is done
//! under the trace's lock without any risk of re-entering it.

use std::borrow::Cow;

use super::TraceState;
use super::entity::{AwsKey, Extra, Item, Scalar, Text, status_flags};
use crate::deferred::DeferredFields;
use crate::id::EntityId;
use crate::model::{AnnotationValue, Cause, Namespace, Sql, append_exceptions};

/// A change to one segment or subsegment. Strings are borrowed where the caller can lend
/// them: they are copied into the trace's text when the change is applied.
#[allow(unreachable_pub)]
#[derive(Debug)]
#[non_exhaustive]
pub enum Op<'a> {
    /// A name already sanitized.
    Name(Cow<'a, str>),
    Namespace(Namespace),
    /// Flag bits to set.
    Flags(u8),
    HttpMethod(Cow<'a, str>),
    HttpUrl(Cow<'a, str>),
    HttpUserAgent(Cow<'a, str>),
    HttpClientIp {
        ip: Cow<'a, str>,
        x_forwarded_for: bool,
    },
    HttpTraced(bool),
    /// The response status (and the flags it implies) and length.
    HttpResponse {
        status: u16,
        content_length: Option<u64>,
    },
    Aws(AwsKey, Cow<'a, str>),
    AwsRetries(u32),
    /// Any other `aws` field, as JSON text.
    AwsJson {
        key: Cow<'a, str>,
        json: Cow<'a, str>,
    },
    User(Cow<'a, str>),
    Origin(Cow<'a, str>),
    ResourceArn(Cow<'a, str>),
    ServiceVersion(Cow<'a, str>),
    /// A checked annotation.
    Annotation(Cow<'a, str>, AnnotationValue<'a>),
    /// A metadata value, already JSON text.
    Metadata {
        namespace: Cow<'a, str>,
        key: Cow<'a, str>,
        json: Box<str>,
    },
    Cause(Box<Cause>),
    Sql(Box<Sql>),
    Deferred(Box<dyn DeferredFields>),
    Precursor(EntityId),
}

impl TraceState {
    /// Applies `op` to the entity at `index` (which the caller has checked exists).
    pub(crate) fn apply(&mut self, index: usize, op: Op<'_>) {
        let text = &mut self.text;
        let Some(e) = self.entities.get_mut(index) else {
            return;
        };
        match op {
            Op::Name(name) => {
                if let Some(t) = Text::push(text, &name) {
                    e.name = t;
                }
            }
            Op::Namespace(ns) => e.namespace = Some(ns),
            Op::Flags(bits) => e.flags |= bits,
            Op::HttpMethod(v) => e.http.method = Text::push(text, &v),
            Op::HttpUrl(v) => e.http.url = Text::push(text, &v),
            Op::HttpUserAgent(v) => e.http.user_agent = Text::push(text, &v),
            Op::HttpClientIp {
                ip,
                x_forwarded_for,
            } => {
                e.http.client_ip = Text::push(text, &ip);
                e.http.x_forwarded_for = x_forwarded_for;
            }
            Op::HttpTraced(traced) => e.http.traced = traced,
            Op::HttpResponse {
                status,
                content_length,
            } => {
                e.flags |= status_flags(status);
                e.http.status = Some(status);
                e.http.content_length = content_length;
            }
            Op::Aws(key, v) => {
                *e.aws.slot(key) = Text::push(text, &v);
                self.remove_aws_extra(index, key.as_str());
            }
            Op::AwsRetries(n) => {
                e.aws.retries = Some(n);
                self.remove_aws_extra(index, "retries");
            }
            Op::AwsJson { key, json } => {
                // The latest value of a key wins, typed or not.
                if key == "retries" {
                    e.aws.retries = None;
                } else if let Some(k) = AwsKey::from_key(&key) {
                    *e.aws.slot(k) = None;
                }
                let json = Text::push(text, &json);
                match self.find_extra(
                    index,
                    |i, t| matches!(i, Item::Aws { key: k, .. } if k.get(t) == key),
                ) {
                    Some(pos) => {
                        if let (
                            Some(Extra {
                                item: Item::Aws { json: slot, .. },
                                ..
                            }),
                            Some(json),
                        ) = (self.extras.get_mut(pos), json)
                        {
                            *slot = json;
                        }
                    }
                    None => {
                        if let (Some(key), Some(json)) = (Text::push(&mut self.text, &key), json) {
                            self.push_extra(index, Item::Aws { key, json });
                        }
                    }
                }
            }
            Op::User(v) => e.more.user = Text::push(text, &v),
            Op::Origin(v) => e.more.origin = Text::push(text, &v),
            Op::ResourceArn(v) => e.more.resource_arn = Text::push(text, &v),
            Op::ServiceVersion(v) => e.more.service_version = Text::push(text, &v),
            Op::Annotation(key, value) => {
                let value = match value {
                    AnnotationValue::String(s) => match Text::push(text, &s) {
                        Some(t) => Scalar::Str(t),
                        None => return,
                    },
                    AnnotationValue::Int(i) => Scalar::Int(i),
                    AnnotationValue::Float(f) => Scalar::Float(f),
                    AnnotationValue::Bool(b) => Scalar::Bool(b),
                };
                match self.find_extra(
                    index,
                    |i, t| matches!(i, Item::Annotation { key: k, .. } if k.get(t) == key),
                ) {
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
                        if let Some(key) = Text::push(&mut self.text, &key) {
                            self.push_extra(index, Item::Annotation { key, value });
                        }
                    }
                }
            }
            Op::Metadata {
                namespace,
                key,
                json,
            } => {
                let Some(json) = Text::push(text, &json) else {
                    return;
                };
                match self.find_extra(index, |i, t| {
                    matches!(i, Item::Metadata { namespace: n, key: k, .. }
                        if n.get(t) == namespace && k.get(t) == key)
                }) {
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
                            Text::push(&mut self.text, &namespace),
                            Text::push(&mut self.text, &key),
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
            Op::Cause(mut cause) => {
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
            Op::Sql(sql) => match self.find_extra(index, |i, _| matches!(i, Item::Sql(_))) {
                Some(pos) => {
                    if let Some(Extra {
                        item: Item::Sql(slot),
                        ..
                    }) = self.extras.get_mut(pos)
                    {
                        *slot = sql;
                    }
                }
                None => self.push_extra(index, Item::Sql(sql)),
            },
            Op::Deferred(fields) => self.push_extra(index, Item::Deferred(fields)),
            Op::Precursor(id) => self.push_extra(index, Item::Precursor(id)),
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
