//! [`ErrorCause`]: an error a handler answered with, carried to the layer by the response.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use xray_sdk::Cause;

type SharedError = Arc<dyn Error + Send + Sync + 'static>;

/// An error that a response stands for, put in the response's extensions for
/// [`XRayLayer`](crate::XRayLayer) to record as the segment's `cause`: the error and its
/// `source()` chain, one exception each.
///
/// This is how a handler's returned error (the usual axum failure: `Result<_, AppError>`
/// whose `IntoResponse` answers 500) reaches the segment. The flags still come from the
/// response status (5xx `fault`, 4xx `error`); the cause is added whatever the status. The
/// error is formatted only when the request is sampled, on the way out.
///
/// With the `axum` feature, `ErrorCause` is also a response part:
///
/// ```
/// use axum::http::StatusCode;
/// use axum::response::{IntoResponse, Response};
/// use xray_sdk_tower::ErrorCause;
///
/// #[derive(Debug)]
/// struct AppError(std::io::Error);
///
/// impl std::fmt::Display for AppError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         write!(f, "storage failed")
///     }
/// }
///
/// impl std::error::Error for AppError {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
///         Some(&self.0)
///     }
/// }
///
/// impl IntoResponse for AppError {
///     fn into_response(self) -> Response {
///         // The client sees a generic message; the segment gets the error and its sources.
///         (StatusCode::INTERNAL_SERVER_ERROR, ErrorCause::new(self), "internal error")
///             .into_response()
///     }
/// }
/// ```
///
/// Without axum, insert it yourself: `response.extensions_mut().insert(ErrorCause::new(e))`.
#[derive(Clone)]
pub struct ErrorCause {
    error: SharedError,
    cause_of: fn(&(dyn Error + Send + Sync + 'static)) -> Cause,
}

impl ErrorCause {
    /// The cause for `error`; the first exception's type is `E`'s name.
    pub fn new<E: Error + Send + Sync + 'static>(error: E) -> Self {
        ErrorCause {
            error: Arc::new(error),
            cause_of: typed_cause::<E>,
        }
    }

    /// The cause for a boxed error, such as `anyhow::Error` converted with `.into()`; the
    /// exceptions' types are read from the errors' `Debug` output.
    pub fn from_boxed(error: Box<dyn Error + Send + Sync + 'static>) -> Self {
        ErrorCause {
            error: Arc::from(error),
            cause_of: |e| Cause::from_dyn_error(e),
        }
    }

    /// The error.
    pub fn error(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.error
    }

    /// The `cause` block recorded for it.
    pub fn to_cause(&self) -> Cause {
        (self.cause_of)(&*self.error)
    }
}

fn typed_cause<E: Error + 'static>(error: &(dyn Error + Send + Sync + 'static)) -> Cause {
    match error.downcast_ref::<E>() {
        Some(e) => Cause::from_error(e),
        None => Cause::from_dyn_error(error),
    }
}

impl fmt::Debug for ErrorCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ErrorCause").field(&self.error).finish()
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponseParts for ErrorCause {
    type Error = std::convert::Infallible;

    fn into_response_parts(
        self,
        mut res: axum::response::ResponseParts,
    ) -> Result<axum::response::ResponseParts, Self::Error> {
        res.extensions_mut().insert(self);
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::num::ParseIntError);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bad order id")
        }
    }

    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn causes_name_the_error_and_its_sources() {
        let inner = "x".parse::<u32>().unwrap_err();
        let cause = ErrorCause::new(Outer(inner.clone())).to_cause();
        assert_eq!(cause.exceptions.len(), 2);
        assert_eq!(cause.exceptions[0].kind.as_deref(), Some("Outer"));
        assert_eq!(cause.exceptions[0].message.as_deref(), Some("bad order id"));
        assert_eq!(cause.exceptions[0].cause, Some(cause.exceptions[1].id));
        assert_eq!(
            cause.exceptions[1].message.as_deref(),
            Some("invalid digit found in string")
        );

        let boxed = ErrorCause::from_boxed(Box::new(Outer(inner))).to_cause();
        assert_eq!(boxed.exceptions.len(), 2);
        assert_eq!(boxed.exceptions[0].kind.as_deref(), Some("Outer"));
        let text = ErrorCause::from_boxed("plain text".into()).to_cause();
        assert_eq!(text.exceptions[0].message.as_deref(), Some("plain text"));
    }
}
