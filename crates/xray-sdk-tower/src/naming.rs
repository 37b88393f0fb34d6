//! How a request's segment is named.

use std::borrow::Cow;

use xray_sdk::model::sanitize_name;
use xray_sdk::sampling::wildcard_match;

/// How [`XRayLayer`](crate::XRayLayer) names the segment of each request.
///
/// - [`SegmentNaming::fixed`]: one name for every request (the default is the recorder's
///   service name, which `AWS_XRAY_TRACING_NAME` overrides).
/// - [`SegmentNaming::dynamic`]: the request's `Host` header (port included) when it matches
///   a wildcard pattern (`*` any run of characters, `?` exactly one, case-insensitive: the
///   matcher of the sampling rules, [`xray_sdk::sampling::wildcard_match`]), and a
///   fallback name otherwise, as the official SDKs' dynamic naming strategies do.
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
    Fixed(Cow<'static, str>),
    Dynamic {
        recognized_hosts: Cow<'static, str>,
        fallback: Cow<'static, str>,
    },
}

impl SegmentNaming {
    /// Every segment gets `name` (made valid for X-Ray: see
    /// [`xray_sdk::model::sanitize_name`]).
    pub fn fixed(name: impl Into<Cow<'static, str>>) -> Self {
        SegmentNaming {
            kind: Kind::Fixed(sanitize_name(name)),
        }
    }

    /// Segments are named after the `Host` header when it matches `recognized_hosts` (a
    /// wildcard pattern; `"*"` accepts every host), and `fallback` otherwise or when the
    /// request has no host.
    pub fn dynamic(
        recognized_hosts: impl Into<Cow<'static, str>>,
        fallback: impl Into<Cow<'static, str>>,
    ) -> Self {
        SegmentNaming {
            kind: Kind::Dynamic {
                recognized_hosts: recognized_hosts.into(),
                fallback: sanitize_name(fallback),
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

    /// The name as an owned value for the segment, without allocating for a fixed name given
    /// as a `&'static str`.
    pub(crate) fn owned_name(&self, chosen: &str) -> Cow<'static, str> {
        match &self.kind {
            Kind::Fixed(name) => name.clone(),
            Kind::Dynamic { fallback, .. } if std::ptr::eq(chosen, &**fallback) => fallback.clone(),
            Kind::Dynamic { .. } => Cow::Owned(chosen.to_owned()),
        }
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
    fn owned_names() {
        let n = SegmentNaming::dynamic("*.example.com", "fallback");
        let chosen = n.name_for(Some("x.example.com"));
        assert_eq!(n.owned_name(chosen), "x.example.com");
        let chosen = n.name_for(Some("other"));
        assert!(matches!(n.owned_name(chosen), Cow::Borrowed("fallback")));
        let f = SegmentNaming::fixed("a b*c");
        assert_eq!(f.name_for(None), "a bc");
    }
}
