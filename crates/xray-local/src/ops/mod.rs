//! The X-Ray API operations, as JSON in and JSON out: what both the X-Ray
//! API surface and the daemon-side sampling API answer, without the HTTP.
//!
//! Requests are read leniently where the service is (unknown members are
//! ignored, an empty body is `{}`) and strictly where a client would get an
//! error from the service (missing or mistyped members are
//! `InvalidRequestException`s naming the member). Answers use the types the
//! AWS SDKs' deserializers expect: integers for counts, epoch seconds as
//! numbers for times.

pub mod sampling;
pub mod services;
pub mod traces;

use serde_json::{Map, Value, json};

/// An error answer in the AWS JSON protocol style.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// AWS error type, e.g. `InvalidRequestException`.
    pub kind: &'static str,
    /// Explanation.
    pub message: String,
}

impl ApiError {
    /// A 400 `InvalidRequestException`: the request is wrong.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            kind: "InvalidRequestException",
            message: message.into(),
        }
    }

    /// A 400 `RuleLimitExceededException`.
    pub fn rule_limit(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            kind: "RuleLimitExceededException",
            message: message.into(),
        }
    }

    /// A 404 for an operation xray-local does not serve.
    pub fn unknown_operation(message: impl Into<String>) -> Self {
        Self {
            status: 404,
            kind: "UnknownOperationException",
            message: message.into(),
        }
    }

    /// The JSON body: the type in `__type`, the text in `message` (and in
    /// `Message`, which some clients read instead).
    pub fn body(&self) -> Value {
        json!({"__type": self.kind, "message": self.message, "Message": self.message})
    }
}

/// The result of an operation.
pub type OpResult = Result<Value, ApiError>;

/// A request body as a JSON object (an empty body is `{}`).
pub fn request(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::invalid("the request body must be a JSON object")),
        Err(e) => Err(ApiError::invalid(format!(
            "the request body is not JSON: {e}"
        ))),
    }
}

/// Typed access to the members of a request object; a member of the wrong
/// JSON type is an error naming it, `null` counts as absent.
pub struct Members<'a>(pub &'a Map<String, Value>);

impl<'a> Members<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn wrong(key: &str, what: &str) -> ApiError {
        ApiError::invalid(format!("{key} must be {what}"))
    }

    /// A required member.
    pub fn required<T>(
        &self,
        key: &str,
        read: impl FnOnce(&Self, &str) -> Result<Option<T>, ApiError>,
    ) -> Result<T, ApiError> {
        read(self, key)?.ok_or_else(|| ApiError::invalid(format!("{key} is required")))
    }

    /// A timestamp: epoch seconds, a JSON number.
    pub fn time(&self, key: &str) -> Result<Option<f64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|t| t.is_finite())
                .map(Some)
                .ok_or_else(|| Self::wrong(key, "a timestamp in epoch seconds")),
        }
    }

    /// A number.
    pub fn number(&self, key: &str) -> Result<Option<f64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| Self::wrong(key, "a number")),
        }
    }

    /// An integer.
    pub fn integer(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| Self::wrong(key, "an integer")),
        }
    }

    /// A string.
    pub fn string(&self, key: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| Self::wrong(key, "a string")),
        }
    }

    /// A boolean.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| Self::wrong(key, "a boolean")),
        }
    }

    /// A list of strings.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<&'a str>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(list)) => list
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| Self::wrong(key, "a list of strings"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(Self::wrong(key, "a list of strings")),
        }
    }

    /// A list.
    pub fn list(&self, key: &str) -> Result<Option<&'a Vec<Value>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(list)) => Ok(Some(list)),
            Some(_) => Err(Self::wrong(key, "a list")),
        }
    }

    /// An object.
    pub fn object(&self, key: &str) -> Result<Option<Members<'a>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Members(m))),
            Some(_) => Err(Self::wrong(key, "an object")),
        }
    }
}

/// A request's `NextToken`, when it is one this server handed out: `read`
/// decodes it, and anything else is an `InvalidRequestException`.
pub fn next_token<T>(
    m: &Members<'_>,
    read: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, ApiError> {
    match m.string("NextToken")? {
        None | Some("") => Ok(None),
        Some(t) => read(t)
            .map(Some)
            .ok_or_else(|| ApiError::invalid("NextToken is not one this server handed out")),
    }
}
