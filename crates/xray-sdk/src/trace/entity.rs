//! One segment or subsegment as a trace's arena holds it: every field X-Ray knows is typed and
//! stored in place, strings are ranges of the trace's text buffer, and the open-ended parts
//! (annotations, metadata, other `aws` fields, `cause`, `sql`, ...) are [`Extra`] entries of
//! the trace, tagged with the entity they belong to.

use std::num::NonZeroU32;

use crate::deferred::DeferredFields;
use crate::id::EntityId;
use crate::model::{Cause, Namespace, Sql};

/// The parent index of an entity without a parent in its arena or batch.
pub(crate) const NO_PARENT: u32 = u32::MAX;

pub(crate) const FLAG_ERROR: u8 = 1;
pub(crate) const FLAG_FAULT: u8 = 2;
pub(crate) const FLAG_THROTTLE: u8 = 4;

/// Flags for an HTTP status, as all official SDKs set them: 4xx error, 429 also throttle,
/// 5xx fault.
pub(crate) fn status_flags(status: u16) -> u8 {
    match status {
        429 => FLAG_ERROR | FLAG_THROTTLE,
        400..=499 => FLAG_ERROR,
        500..=599 => FLAG_FAULT,
        _ => 0,
    }
}

/// A string stored in a trace's text buffer, as a byte range of it. (The end is kept plus
/// one, so that an absent string costs no more room than a present one.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Text {
    start: u32,
    end_plus_one: NonZeroU32,
}

impl Text {
    /// The empty string.
    pub(crate) const EMPTY: Text = Text {
        start: 0,
        end_plus_one: NonZeroU32::MIN,
    };

    /// Appends `s` to `text` and returns where it is; `None` when the buffer would pass
    /// 4 GiB (the value is then not recorded).
    #[inline]
    pub(crate) fn push(text: &mut String, s: &str) -> Option<Text> {
        Text::push_all(text, [s])
    }

    /// Appends the concatenation of `parts` to `text` and returns where it is.
    #[inline]
    pub(crate) fn push_all<const N: usize>(text: &mut String, parts: [&str; N]) -> Option<Text> {
        let start = text.len();
        // No overflow: a buffer and a string each hold at most `isize::MAX` bytes.
        let end = start + parts.iter().map(|p| p.len()).sum::<usize>();
        // One check: the start is not past the end, so it fits whenever the end does.
        if end >= u32::MAX as usize {
            return None;
        }
        let (start, end_plus_one) = (start as u32, NonZeroU32::MIN.saturating_add(end as u32));
        for p in parts {
            text.push_str(p);
        }
        Some(Text {
            start,
            end_plus_one,
        })
    }

    /// The string in `text`; empty if the range is not one of `text`'s.
    pub(crate) fn get(self, text: &str) -> &str {
        text.get(self.start as usize..self.end() as usize)
            .unwrap_or("")
    }

    /// Copies the string from `from` into `to` and points at the copy.
    pub(crate) fn moved(self, from: &str, to: &mut String) -> Text {
        Text::push(to, self.get(from)).unwrap_or(Text::EMPTY)
    }

    fn end(self) -> u32 {
        self.end_plus_one.get() - 1
    }
}

/// Moves every [`Text`] an `Option<Text>` holds.
fn move_opt(t: &mut Option<Text>, from: &str, to: &mut String) {
    if let Some(x) = t {
        *x = x.moved(from, to);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntityState {
    Open,
    Ended,
    /// Already sent as an independent subsegment; only a tombstone remains.
    Streamed,
}

/// The `http` block, packed: an entity is written on the request thread and read on the
/// emitter's, so every byte of it crosses between processors' caches once per trace.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HttpFields {
    pub(crate) method: Option<Text>,
    pub(crate) url: Option<Text>,
    pub(crate) user_agent: Option<Text>,
    pub(crate) client_ip: Option<Text>,
    /// `content_length` in two halves (keeps the block 4-byte aligned), when `HAS_LENGTH`.
    content_length: [u32; 2],
    /// The status, when `HAS_STATUS`.
    status: u16,
    bits: u8,
}

const X_FORWARDED_FOR: u8 = 1;
const TRACED: u8 = 2;
const HAS_STATUS: u8 = 4;
const HAS_LENGTH: u8 = 8;

impl HttpFields {
    pub(crate) fn has_request(&self) -> bool {
        self.method.is_some()
            || self.url.is_some()
            || self.user_agent.is_some()
            || self.client_ip.is_some()
            || self.bits & (X_FORWARDED_FOR | TRACED) != 0
    }

    pub(crate) fn has_response(&self) -> bool {
        self.bits & (HAS_STATUS | HAS_LENGTH) != 0
    }

    /// `http.request.x_forwarded_for`.
    pub(crate) fn x_forwarded_for(&self) -> bool {
        self.bits & X_FORWARDED_FOR != 0
    }

    /// `http.request.traced`.
    pub(crate) fn traced(&self) -> bool {
        self.bits & TRACED != 0
    }

    /// `http.response.status`.
    pub(crate) fn status(&self) -> Option<u16> {
        (self.bits & HAS_STATUS != 0).then_some(self.status)
    }

    /// `http.response.content_length`.
    pub(crate) fn content_length(&self) -> Option<u64> {
        let [high, low] = self.content_length;
        (self.bits & HAS_LENGTH != 0).then_some((u64::from(high) << 32) | u64::from(low))
    }

    fn set_bit(&mut self, bit: u8, on: bool) {
        if on {
            self.bits |= bit;
        } else {
            self.bits &= !bit;
        }
    }

    pub(crate) fn set_x_forwarded_for(&mut self, on: bool) {
        self.set_bit(X_FORWARDED_FOR, on);
    }

    pub(crate) fn set_traced(&mut self, on: bool) {
        self.set_bit(TRACED, on);
    }

    /// Sets the response block: the status, and the length when known.
    pub(crate) fn set_response(&mut self, status: u16, content_length: Option<u64>) {
        let len = content_length.unwrap_or(0);
        self.status = status;
        self.content_length = [(len >> 32) as u32, len as u32];
        let length_bit = if content_length.is_some() {
            HAS_LENGTH
        } else {
            0
        };
        self.bits = (self.bits & !HAS_LENGTH) | HAS_STATUS | length_bit;
    }

    fn move_text(&mut self, from: &str, to: &mut String) {
        for t in [
            &mut self.method,
            &mut self.url,
            &mut self.user_agent,
            &mut self.client_ip,
        ] {
            move_opt(t, from, to);
        }
    }
}

/// The `aws` fields X-Ray and the official SDKs give meaning to, typed. Other keys are
/// [`Item::Aws`] extras.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AwsFields {
    /// The typed string fields, indexed by [`AwsKey`].
    texts: [Option<Text>; 5],
    /// `retries` plus one (4 bytes where an `Option<u32>` takes 8; a count of `u32::MAX`
    /// retries is kept as one less).
    retries: Option<NonZeroU32>,
}

/// The typed string fields of the `aws` block, in the order they are written.
#[allow(unreachable_pub)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsKey {
    Operation = 0,
    Region = 1,
    RequestId = 2,
    TableName = 3,
    QueueUrl = 4,
}

impl AwsKey {
    pub(crate) const ALL: [AwsKey; 5] = [
        AwsKey::Operation,
        AwsKey::Region,
        AwsKey::RequestId,
        AwsKey::TableName,
        AwsKey::QueueUrl,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AwsKey::Operation => "operation",
            AwsKey::Region => "region",
            AwsKey::RequestId => "request_id",
            AwsKey::TableName => "table_name",
            AwsKey::QueueUrl => "queue_url",
        }
    }

    pub(crate) fn from_key(key: &str) -> Option<AwsKey> {
        AwsKey::ALL.into_iter().find(|k| k.as_str() == key)
    }
}

impl AwsFields {
    pub(crate) fn slot(&mut self, key: AwsKey) -> &mut Option<Text> {
        // In bounds: one slot per key.
        &mut self.texts[key as usize]
    }

    pub(crate) fn get(&self, key: AwsKey) -> Option<Text> {
        self.texts[key as usize]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.retries.is_none() && self.texts.iter().all(Option::is_none)
    }

    /// `retries`.
    pub(crate) fn retries(&self) -> Option<u32> {
        self.retries.map(|n| n.get() - 1)
    }

    pub(crate) fn set_retries(&mut self, retries: Option<u32>) {
        self.retries = retries.map(|n| NonZeroU32::MIN.saturating_add(n));
    }

    fn move_text(&mut self, from: &str, to: &mut String) {
        for t in &mut self.texts {
            move_opt(t, from, to);
        }
    }
}

/// Fields of the top level that few entities have (mostly segments), kept as [`Item::More`]
/// extras rather than in every entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MoreKey {
    User,
    Origin,
    ResourceArn,
    ServiceVersion,
}

/// One segment or subsegment.
#[derive(Debug, Clone)]
pub(crate) struct EntityData {
    pub(crate) id: EntityId,
    /// Index of the parent in the arena or batch, or [`NO_PARENT`].
    pub(crate) parent: u32,
    /// The parent's ID (when `has_parent_id`): for a segment the caller's (from the
    /// header), for a subsegment the enclosing entity's, kept so a streamed subtree knows
    /// where it belongs. Apart from its flag, to keep the entity small.
    parent_id: EntityId,
    has_parent_id: bool,
    pub(crate) name: Text,
    pub(crate) start_us: u64,
    /// 0 while the entity is in progress.
    pub(crate) end_us: u64,
    pub(crate) flags: u8,
    pub(crate) namespace: Option<Namespace>,
    pub(crate) state: EntityState,
    /// Whether any [`Extra`] of the trace belongs to this entity (lets writers skip the look-up).
    pub(crate) has_extras: bool,
    pub(crate) http: HttpFields,
    pub(crate) aws: AwsFields,
    /// Tree links inside the arena ([`NO_PARENT`] when absent), so a subtree can be moved
    /// out without scanning the whole arena.
    pub(crate) first_child: u32,
    pub(crate) last_child: u32,
    pub(crate) next_sibling: u32,
    /// Descendants not yet ended.
    pub(crate) open_descendants: u32,
    /// Next entry of the list of ended subsegments still in the arena.
    pub(crate) next_completed: u32,
}

impl EntityData {
    pub(crate) fn new(
        id: EntityId,
        parent: u32,
        parent_id: Option<EntityId>,
        name: Text,
        start_us: u64,
    ) -> Self {
        EntityData {
            id,
            parent,
            parent_id: parent_id.unwrap_or(EntityId::from_u64(0)),
            has_parent_id: parent_id.is_some(),
            name,
            start_us,
            end_us: 0,
            flags: 0,
            namespace: None,
            state: EntityState::Open,
            has_extras: false,
            http: HttpFields::default(),
            aws: AwsFields::default(),
            first_child: NO_PARENT,
            last_child: NO_PARENT,
            next_sibling: NO_PARENT,
            open_descendants: 0,
            next_completed: NO_PARENT,
        }
    }

    /// Copies every string of the entity from `from` into `to`.
    pub(crate) fn move_text(&mut self, from: &str, to: &mut String) {
        self.name = self.name.moved(from, to);
        self.http.move_text(from, to);
        self.aws.move_text(from, to);
    }

    /// The parent's ID.
    pub(crate) fn parent_id(&self) -> Option<EntityId> {
        self.has_parent_id.then_some(self.parent_id)
    }

    pub(crate) fn set_parent_id(&mut self, id: Option<EntityId>) {
        self.has_parent_id = id.is_some();
        if let Some(id) = id {
            self.parent_id = id;
        }
    }
}

/// An annotation value as the arena holds it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scalar {
    Str(Text),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// An open-ended part of an entity.
#[derive(Debug)]
pub(crate) enum Item {
    Annotation {
        key: Text,
        value: Scalar,
    },
    /// A value of the `metadata` block, already JSON text.
    Metadata {
        namespace: Text,
        key: Text,
        json: Text,
    },
    /// An `aws` field beyond the typed ones, as JSON text.
    Aws {
        key: Text,
        json: Text,
    },
    Cause(Box<Cause>),
    Sql(Box<Sql>),
    Deferred(Box<dyn DeferredFields>),
    Precursor(EntityId),
    /// `user`, `origin`, `resource_arn` or `service.version`.
    More(MoreKey, Text),
}

impl Item {
    pub(crate) fn move_text(&mut self, from: &str, to: &mut String) {
        match self {
            Item::Annotation { key, value } => {
                *key = key.moved(from, to);
                if let Scalar::Str(s) = value {
                    *s = s.moved(from, to);
                }
            }
            Item::Metadata {
                namespace,
                key,
                json,
            } => {
                *namespace = namespace.moved(from, to);
                *key = key.moved(from, to);
                *json = json.moved(from, to);
            }
            Item::Aws { key, json } => {
                *key = key.moved(from, to);
                *json = json.moved(from, to);
            }
            Item::More(_, value) => *value = value.moved(from, to),
            Item::Cause(_) | Item::Sql(_) | Item::Deferred(_) | Item::Precursor(_) => {}
        }
    }
}

/// An [`Item`] of the entity at index `entity`.
#[derive(Debug)]
pub(crate) struct Extra {
    pub(crate) entity: u32,
    pub(crate) item: Item,
}
