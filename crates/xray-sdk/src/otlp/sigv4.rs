//! SigV4 signing of OTLP requests (feature `otlp-sigv4`), with `aws-sigv4`, service `xray`.
//!
//! Credentials come from the AWS SDK's default chain (`aws-config`: environment, profile,
//! web identity, ECS and EC2 metadata, SSO, ...). Its providers are async; the core has no
//! runtime, so the signer builds a single-threaded tokio runtime of its own, on the emitter's
//! thread, the first time a request is to be signed, and polls the providers there with the
//! export's deadline as their bound. Nothing of it runs on the request path, and a build
//! without this feature has no tokio at all. Credentials are kept until five minutes before
//! they expire (those without an expiry, such as environment keys, for 15 minutes), and a
//! provider that fails while the ones held are still valid leaves them in use.
//!
//! The signed body is the one sent: after gzip when compression is on.

use std::time::{Duration, Instant, SystemTime};

use aws_config::Region;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use super::http::Sign;

/// The service name X-Ray's OTLP endpoint is signed for.
pub(crate) const SERVICE: &str = "xray";

/// Credentials without an expiry are fetched again after this long.
const REFRESH_UNTIMED: Duration = Duration::from_secs(15 * 60);
/// Credentials with an expiry are fetched again this long before it.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// Signs requests; lives on the emitter's thread.
pub(crate) struct Signer {
    region: String,
    runtime: Option<tokio::runtime::Runtime>,
    provider: Option<SharedCredentialsProvider>,
    held: Option<(Credentials, Instant)>,
}

impl Signer {
    pub(crate) fn new(region: String) -> Self {
        Signer {
            region,
            runtime: None,
            provider: None,
            held: None,
        }
    }

    fn fresh(&self) -> Option<&Credentials> {
        let (c, fetched) = self.held.as_ref()?;
        let fresh = match c.expiry() {
            Some(expiry) => SystemTime::now() + REFRESH_BEFORE_EXPIRY < expiry,
            None => fetched.elapsed() < REFRESH_UNTIMED,
        };
        fresh.then_some(c)
    }

    fn usable(&self) -> Option<&Credentials> {
        let (c, _) = self.held.as_ref()?;
        match c.expiry() {
            Some(expiry) => (SystemTime::now() < expiry).then_some(c),
            None => Some(c),
        }
    }

    /// Credentials for a request due by `deadline`.
    fn credentials(&mut self, deadline: Instant) -> Result<Credentials, String> {
        if let Some(c) = self.fresh() {
            return Ok(c.clone());
        }
        if self.runtime.is_none() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("no runtime for the AWS credential providers: {e}"))?;
            self.runtime = Some(rt);
        }
        let Some(rt) = &self.runtime else {
            return Err("no runtime for the AWS credential providers".to_owned());
        };
        let region = Region::new(self.region.clone());
        let provider = self.provider.get_or_insert_with(|| {
            let chain = rt.block_on(DefaultCredentialsChain::builder().region(region).build());
            SharedCredentialsProvider::new(chain)
        });
        let remaining = deadline.saturating_duration_since(Instant::now());
        let fetched = rt.block_on(async {
            tokio::time::timeout(remaining, provider.provide_credentials()).await
        });
        match fetched {
            Ok(Ok(c)) => {
                self.held = Some((c.clone(), Instant::now()));
                Ok(c)
            }
            Ok(Err(e)) => self
                .usable()
                .cloned()
                .ok_or_else(|| format!("no AWS credentials: {e}")),
            Err(_) => self
                .usable()
                .cloned()
                .ok_or_else(|| "no AWS credentials before the export's deadline".to_owned()),
        }
    }
}

impl Sign for Signer {
    fn sign(
        &mut self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        deadline: Instant,
    ) -> Result<Vec<(String, String)>, String> {
        let credentials = self.credentials(deadline)?;
        let identity: Identity = credentials.into();
        signed_headers(
            &identity,
            &self.region,
            SystemTime::now(),
            url,
            headers,
            body,
        )
    }
}

/// The headers SigV4 adds (`Authorization`, `X-Amz-Date`, and `X-Amz-Security-Token` for
/// temporary credentials) to a `POST` of `body` to `url` with `headers`.
pub(crate) fn signed_headers(
    identity: &Identity,
    region: &str,
    time: SystemTime,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Vec<(String, String)>, String> {
    let params = v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("SigV4 parameters: {e}"))?
        .into();
    let request = SignableRequest::new(
        "POST",
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("SigV4 request: {e}"))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| format!("SigV4 signing: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signature_names_the_service_region_and_headers() {
        let identity: Identity =
            Credentials::new("AKIDEXAMPLE", "secret", Some("token".into()), None, "test").into();
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let headers = vec![
            (
                "Content-Type".to_owned(),
                "application/x-protobuf".to_owned(),
            ),
            ("Content-Encoding".to_owned(), "gzip".to_owned()),
        ];
        let out = signed_headers(
            &identity,
            "us-west-2",
            time,
            "https://xray.us-west-2.amazonaws.com/v1/traces",
            &headers,
            b"body",
        )
        .unwrap();
        let get = |k: &str| {
            out.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let auth = get("authorization").unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-west-2/xray/aws4_request"
            ),
            "{auth}"
        );
        assert!(
            auth.contains(
                "SignedHeaders=content-encoding;content-type;host;x-amz-date;x-amz-security-token"
            ),
            "{auth}"
        );
        assert_eq!(get("x-amz-date"), Some("20231114T221320Z"));
        assert_eq!(get("x-amz-security-token"), Some("token"));
    }
}
