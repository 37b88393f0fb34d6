//! How a request's segment is named.

use std::borrow::Cow;
use std::sync::Arc;

use xray_sdk::model::sanitize_name;
use xray_sdk::sampling::wildcard_match;

/// How [`XRayLayer`](crate::XRayLayer) names the segment of each request.
///
/// - [`SegmentNaming::fixed`]: one name for every request (the default is the recorder's
///   service name).
/// - [`SegmentNaming::dynamic`]: the request's `Host` header (port included) when it matches
///   a wildcard pattern (`*` any run of characters, `?` exactly one, case-insensitive: the
///   matcher of the sampling rules, [`xray_sdk::sampling::wildcard_match`]), and a
///   fallback name otherwise, as the official SDKs' dynamic naming strategies do.
///
/// As in the official SDKs, `AWS_XRAY_TRACING_NAME`, when set, replaces the name given to
/// `fixed` and the fallback given to `dynamic` (the environment wins over code). The layer
/// applies it from its recorder ([`Recorder::env_segment_name`]), so a recorder built with
/// `ignore_env()` keeps the names given here; [`SegmentNaming::name_for`] answers before the
/// environment is applied.
///
/// [`Recorder::env_segment_name`]: xray_sdk::Recorder::env_segment_name
///
/// ```
/// use xray_sdk_tower::SegmentNaming;
///
/// let fixed = SegmentNaming::fixed("checkout");
/// assert_eq!(fixed.name_for(Some("shop.example.com")), "checkout");
///
/// let dynamic = SegmentNaming::dynamic("*.example.com", "checkout");
/// assert_eq!(dynamic.name_for(Some("shop.example.com")), "shop.example.com");
/// assert_eq!(dynamic.name_for(Some("10.0.0.7:8080")), "checkout");
/// assert_eq!(dynamic.name_for(None), "checkout");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentNaming {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Sanitized once here.
    Fixed(Arc<str>),
    Dynamic {
        recognized_hosts: Cow<'static, str>,
        /// Sanitized once here.
        fallback: Arc<str>,
    },
}

impl SegmentNaming {
    /// Every segment gets `name` (made valid for X-Ray: see
    /// [`xray_sdk::model::sanitize_name`]), unless the recorder read `AWS_XRAY_TRACING_NAME`.
    pub fn fixed(name: impl Into<Cow<'static, str>>) -> Self {
        SegmentNaming {
            kind: Kind::Fixed(sanitize_name(name.into()).into()),
        }
    }

    /// Segments are named after the `Host` header when it matches `recognized_hosts` (a
    /// wildcard pattern; `"*"` accepts every host), and `fallback` (or the recorder's
    /// `AWS_XRAY_TRACING_NAME`) otherwise or when the request has no host.
    pub fn dynamic(
        recognized_hosts: impl Into<Cow<'static, str>>,
        fallback: impl Into<Cow<'static, str>>,
    ) -> Self {
        SegmentNaming {
            kind: Kind::Dynamic {
                recognized_hosts: recognized_hosts.into(),
                fallback: sanitize_name(fallback.into()).into(),
            },
        }
    }

    /// The segment name for a request with this `Host` (before the X-Ray name rules are
    /// applied to a host name).
    pub fn name_for<'a>(&'a self, host: Option<&'a str>) -> &'a str {
        match &self.kind {
            Kind::Fixed(name) => name,
            Kind::Dynamic {
                recognized_hosts,
                fallback,
            } => match host {
                Some(h) if wildcard_match(recognized_hosts, h) => h,
                _ => fallback,
            },
        }
    }
}

impl SegmentNaming {
    /// This naming under the segment name the recorder read from the environment
    /// (`AWS_XRAY_TRACING_NAME`, see [`xray_sdk::Recorder::env_segment_name`]): it replaces
    /// the fixed name or the dynamic fallback.
    pub(crate) fn under_env(self, env_name: Option<&str>) -> Self {
        let Some(name) = env_name else {
            return self;
        };
        let name: Arc<str> = sanitize_name(name).into();
        let kind = match self.kind {
            Kind::Fixed(given) => {
                tracing::debug!(given = %given, name = %name, "AWS_XRAY_TRACING_NAME replaces the segment name given in code");
                Kind::Fixed(name)
            }
            Kind::Dynamic {
                recognized_hosts,
                fallback,
            } => {
                tracing::debug!(given = %fallback, name = %name, "AWS_XRAY_TRACING_NAME replaces the fallback segment name given in code");
                Kind::Dynamic {
                    recognized_hosts,
                    fallback: name,
                }
            }
        };
        SegmentNaming { kind }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let cases = [
            ("*", "anything", true),
            ("*.example.com", "api.example.com", true),
            ("*.example.com", "API.Example.COM", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "api.example.com:8080", false),
            ("*.example.com*", "api.example.com:8080", true),
            ("api.?.com", "api.b.com", true),
        ];
        for (pattern, host, want) in cases {
            let n = SegmentNaming::dynamic(pattern, "fallback");
            let got = n.name_for(Some(host)) == host;
            assert_eq!(got, want, "{pattern:?} vs {host:?}");
        }
    }

    #[test]
    fn fixed_and_fallback_names_are_shared() {
        let n = SegmentNaming::dynamic("*.example.com", "fallback");
        let Kind::Dynamic { fallback, .. } = &n.kind else {
            unreachable!()
        };
        assert!(std::ptr::eq(n.name_for(Some("other")), &**fallback));
        assert!(std::ptr::eq(n.name_for(None), &**fallback));
        assert_eq!(n.name_for(Some("x.example.com")), "x.example.com");
        let f = SegmentNaming::fixed("a b*c");
        assert_eq!(f.name_for(None), "a bc");
    }

    /// Runs itself again in a child process with `AWS_XRAY_TRACING_NAME` set (the variable
    /// cannot be set safely in this multi-threaded test process).
    #[test]
    fn the_environment_replaces_names_given_in_code() {
        const NAME: &str = "naming::tests::the_environment_replaces_names_given_in_code";
        match std::env::var("AWS_XRAY_TRACING_NAME").as_deref() {
            Ok("from-env") => {
                use xray_sdk::Recorder;
                let reads_env = Recorder::builder().enabled(false).build().unwrap();
                let env = reads_env.env_segment_name();
                assert_eq!(env, Some("from-env"));
                let layer = |recorder: &Recorder, naming| {
                    crate::XRayLayer::new(recorder.clone()).naming(naming)
                };
                let named =
                    |l: &crate::XRayLayer, host| l.config().naming.name_for(host).to_owned();
                assert_eq!(
                    SegmentNaming::fixed("code").under_env(env).name_for(None),
                    "from-env"
                );
                let l = layer(&reads_env, SegmentNaming::fixed("code"));
                assert_eq!(named(&l, None), "from-env");
                let d = SegmentNaming::dynamic("*.example.com", "code").under_env(env);
                assert_eq!(d.name_for(None), "from-env");
                assert_eq!(d.name_for(Some("a.example.com")), "a.example.com");
                // The recorder's name has been through the environment already.
                assert_eq!(reads_env.service_name(), "from-env");
                assert_eq!(SegmentNaming::fixed("code").name_for(None), "code");
                // A recorder built with `ignore_env()` keeps the names given in code.
                let ignores_env = Recorder::builder()
                    .enabled(false)
                    .service_name("service")
                    .ignore_env()
                    .build()
                    .unwrap();
                assert_eq!(ignores_env.env_segment_name(), None);
                let l = crate::XRayLayer::new(ignores_env.clone());
                assert_eq!(named(&l, None), "service");
                let l = layer(&ignores_env, SegmentNaming::fixed("code"));
                assert_eq!(named(&l, None), "code");
                let l = layer(
                    &ignores_env,
                    SegmentNaming::dynamic("*.example.com", "code"),
                );
                assert_eq!(named(&l, Some("other")), "code");
            }
            Ok(_) => {}
            Err(_) => {
                let out = std::process::Command::new(std::env::current_exe().unwrap())
                    .args(["--exact", NAME, "--test-threads=1"])
                    .env("AWS_XRAY_TRACING_NAME", "from-env")
                    .output()
                    .unwrap();
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(out.status.success(), "{stdout}");
                assert!(stdout.contains("1 passed"), "{stdout}");
                assert_eq!(SegmentNaming::fixed("code").name_for(None), "code");
            }
        }
    }
}
