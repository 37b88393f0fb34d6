//! Value types that go into segment documents: annotations, the `http`, `sql` and `cause`
//! blocks, and the rules for names and annotation keys.

mod annotation;
mod cause;
mod http;
mod names;
mod sql;

pub use annotation::{AnnotationError, AnnotationValue};
pub use cause::{CapturedStack, Cause, Exception, MAX_EXCEPTIONS, MAX_STACK_FRAMES, StackFrame};
pub(crate) use cause::{
    SwitchGuard, append_exceptions, enable_error_stacks, truncate_exceptions, unless_in_stack_work,
};
pub use http::{HttpRequest, http_method};
pub use names::{
    MAX_ANNOTATION_KEY_LEN, MAX_ANNOTATION_VALUE_LEN, MAX_NAME_LEN, sanitize_annotation_key,
    sanitize_name, validate_annotation_key,
};
pub use sql::Sql;

/// The `namespace` of a subsegment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// A call to an AWS service through an AWS SDK.
    Aws,
    /// A call to another service (HTTP, database, ...).
    Remote,
}

impl Namespace {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Aws => "aws",
            Namespace::Remote => "remote",
        }
    }
}
