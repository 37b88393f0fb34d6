//! The error code and message of a failed AWS response, read from the response itself so it
//! works for every service and protocol without knowing the generated error types.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

/// Error codes that mean "throttled", as the SDKs' retry classifiers list them.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// True when an error code is one of the throttling codes.
pub(crate) fn is_throttling_code(code: &str) -> bool {
    THROTTLING_CODES.contains(&code)
}

/// What a failed response says about the error.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RemoteError {
    pub(crate) code: Option<String>,
    pub(crate) message: Option<String>,
}

/// Strips the namespace and the trailing details that some protocols put around a code:
/// `com.amazonaws.dynamodb.v20120810#ResourceNotFoundException` and
/// `ValidationException:http://internal.amazon.com/...` both become the bare name.
fn sanitize_code(code: &str) -> &str {
    let code = code.split(':').next().unwrap_or(code);
    let code = code.rsplit('#').next().unwrap_or(code);
    code.trim()
}

/// Reads the error code (the `x-amzn-errortype` header, the JSON `__type`/`code` field or the
/// XML `<Code>` element) and the message (JSON `message`/`Message`, XML `<Message>`).
pub(crate) fn read(response: &HttpResponse) -> RemoteError {
    let mut out = RemoteError {
        code: response
            .headers()
            .get("x-amzn-errortype")
            .map(|c| sanitize_code(c).to_owned())
            .filter(|c| !c.is_empty()),
        message: None,
    };
    let Some(body) = response.body().bytes() else {
        return out;
    };
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first == Some(b'{') {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
            let text = |keys: &[&str]| {
                keys.iter()
                    .find_map(|k| map.get(*k).and_then(|v| v.as_str()))
                    .map(str::to_owned)
            };
            if out.code.is_none() {
                out.code = text(&["__type", "code", "Code"])
                    .map(|c| sanitize_code(&c).to_owned())
                    .filter(|c| !c.is_empty());
            }
            out.message = text(&["message", "Message", "errorMessage"]);
        }
    } else if first == Some(b'<') {
        let text = String::from_utf8_lossy(body);
        if out.code.is_none() {
            out.code = xml_element(&text, "Code")
                .map(sanitize_code)
                .filter(|c| !c.is_empty())
                .map(str::to_owned);
        }
        out.message = xml_element(&text, "Message").map(str::to_owned);
    }
    out
}

/// The text of the first `<name>...</name>` element (error documents are flat and small).
fn xml_element<'a>(doc: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = doc.find(&open)? + open.len();
    let len = doc.get(start..)?.find(&close)?;
    doc.get(start..start + len).map(str::trim)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    fn response(status: u16, headers: &[(&'static str, &'static str)], body: &str) -> HttpResponse {
        let mut r = HttpResponse::new(
            StatusCode::try_from(status).unwrap(),
            SdkBody::from(body.to_owned()),
        );
        for (k, v) in headers {
            r.headers_mut().insert(*k, *v);
        }
        r
    }

    #[test]
    fn json_errors() {
        let r = response(
            400,
            &[],
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#,
        );
        assert_eq!(
            read(&r),
            RemoteError {
                code: Some("ResourceNotFoundException".into()),
                message: Some("Requested resource not found".into())
            }
        );
        let r = response(
            400,
            &[("x-amzn-errortype", "ThrottlingException:http://internal")],
            r#"{"Message":"slow down"}"#,
        );
        let e = read(&r);
        assert_eq!(e.code.as_deref(), Some("ThrottlingException"));
        assert_eq!(e.message.as_deref(), Some("slow down"));
        assert!(is_throttling_code("ThrottlingException"));
        assert!(!is_throttling_code("ResourceNotFoundException"));
    }

    #[test]
    fn xml_and_garbage() {
        let r = response(
            503,
            &[],
            "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>",
        );
        let e = read(&r);
        assert_eq!(e.code.as_deref(), Some("SlowDown"));
        assert_eq!(e.message.as_deref(), Some("Reduce your request rate."));
        assert_eq!(read(&response(500, &[], "oops")), RemoteError::default());
        assert_eq!(
            read(&response(500, &[], "{not json")),
            RemoteError::default()
        );
        assert_eq!(
            read(&response(500, &[], "<Error><Code>")),
            RemoteError::default()
        );
        // XML codes are cleaned like JSON ones (found by the body fuzzer), and an empty
        // code is no code.
        let e = read(&response(
            400,
            &[],
            "<Error><Code>aws.ns#Throttling:details</Code></Error>",
        ));
        assert_eq!(e.code.as_deref(), Some("Throttling"));
        let e = read(&response(400, &[], "<Error><Code> </Code></Error>"));
        assert_eq!(e.code, None);
    }
}
