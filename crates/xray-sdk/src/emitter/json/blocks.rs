//! The segment-level blocks that are the same for every segment of the process: `aws.xray`
//! (SDK name and version, sampling rule), the plugins' `aws` keys, and `service`.

use std::sync::Arc;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::value::RawValue;

use crate::plugins::{ResourceData, Resources};

/// The SDK name written in `aws.xray.sdk`.
pub(crate) const SDK_NAME: &str = "X-Ray for Rust";
/// The SDK version written in `aws.xray.sdk_version`.
pub(crate) const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The rustc version this crate was built with.
pub(crate) const RUSTC_VERSION: &str = env!("XRAY_SDK_RUSTC_VERSION");

/// Most services use a handful of sampling rules; more are serialized each time.
const MAX_CACHED_AWS_BLOCKS: usize = 16;

/// What every segment of the process shares: the plugins' findings and `service.version`.
#[derive(Debug, Default)]
pub(crate) struct ProcessInfo {
    pub(crate) resources: Arc<Resources>,
    pub(crate) service_version: Option<String>,
}

/// The segment `aws` block and the `service` block only change with the rule name and once
/// the plugins have answered, so they are serialized once per variant and copied into each
/// document as they are.
#[derive(Default)]
pub(crate) struct ConstantBlocks {
    /// Keyed by (plugin data present, rule name).
    aws: Vec<(bool, Option<Arc<str>>, Box<RawValue>)>,
    service: Option<Box<RawValue>>,
}

impl ConstantBlocks {
    /// Serializes the blocks a segment chosen by `rule_name` needs, unless cached (or the
    /// cache is full: the writer then serializes the `aws` block itself).
    pub(crate) fn prepare(&mut self, info: &ProcessInfo, rule_name: Option<&Arc<str>>) {
        if self.service.is_none() {
            self.service = serde_json::value::to_raw_value(&Service {
                version: info.service_version.as_deref(),
            })
            .ok();
        }
        if self.aws.len() >= MAX_CACHED_AWS_BLOCKS || self.aws(info, rule_name).is_some() {
            return;
        }
        let res = info.resources.get();
        let block = SegmentAws {
            rule_name: rule_name.map(|n| &**n),
            resources: res,
        };
        if let Ok(raw) = serde_json::value::to_raw_value(&block) {
            self.aws.push((res.is_some(), rule_name.cloned(), raw));
        }
    }

    /// The cached `aws` block for this rule name.
    pub(crate) fn aws(
        &self,
        info: &ProcessInfo,
        rule_name: Option<&Arc<str>>,
    ) -> Option<&RawValue> {
        let ready = info.resources.get().is_some();
        self.aws
            .iter()
            .find(|(r, name, _)| *r == ready && name.as_deref() == rule_name.map(|n| &**n))
            .map(|(_, _, raw)| &**raw)
    }

    /// The cached `service` block for the process-wide version.
    pub(crate) fn service(&self) -> Option<&RawValue> {
        self.service.as_deref()
    }
}

pub(crate) struct SegmentAws<'a> {
    pub(crate) rule_name: Option<&'a str>,
    pub(crate) resources: Option<&'a ResourceData>,
}

impl SegmentAws<'_> {
    /// The keys this block writes for `resources`.
    pub(crate) fn keys(resources: Option<&ResourceData>) -> Vec<&'static str> {
        let mut keys = vec!["xray"];
        if let Some(r) = resources {
            for (key, present) in [
                ("ecs", r.ecs.is_some()),
                ("ec2", r.ec2.is_some()),
                ("eks", r.eks.is_some()),
                ("account_id", r.account_id.is_some()),
                ("cloudwatch_logs", r.cloudwatch_logs.is_some()),
            ] {
                if present {
                    keys.push(key);
                }
            }
        }
        keys
    }
}

impl Serialize for SegmentAws<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(
            "xray",
            &XRayInfo {
                rule_name: self.rule_name,
            },
        )?;
        if let Some(r) = self.resources {
            for (key, value) in [("ecs", &r.ecs), ("ec2", &r.ec2), ("eks", &r.eks)] {
                if let Some(v) = value {
                    m.serialize_entry(key, v)?;
                }
            }
            if let Some(account) = &r.account_id {
                m.serialize_entry("account_id", account)?;
            }
            if let Some(logs) = &r.cloudwatch_logs {
                m.serialize_entry("cloudwatch_logs", logs)?;
            }
        }
        m.end()
    }
}

struct XRayInfo<'a> {
    rule_name: Option<&'a str>,
}

impl Serialize for XRayInfo<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("sdk", SDK_NAME)?;
        m.serialize_entry("sdk_version", SDK_VERSION)?;
        if let Some(rule) = self.rule_name {
            m.serialize_entry("sampling_rule_name", rule)?;
        }
        m.end()
    }
}

pub(crate) struct Service<'a> {
    pub(crate) version: Option<&'a str>,
}

impl Serialize for Service<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if let Some(v) = self.version {
            m.serialize_entry("version", v)?;
        }
        m.serialize_entry("runtime", "rust")?;
        m.serialize_entry("runtime_version", RUSTC_VERSION)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_aws_block_has_what_the_plugins_found_and_names_its_keys() {
        let found = ResourceData {
            origin: Some("AWS::ECS::Container"),
            ecs: Some(serde_json::json!({"container": "host-1"})),
            account_id: Some("123456789012".into()),
            cloudwatch_logs: Some(serde_json::json!([{"log_group": "/ecs/app"}])),
            ..Default::default()
        };
        let block = SegmentAws {
            rule_name: Some("api"),
            resources: Some(&found),
        };
        let v = serde_json::to_value(&block).unwrap();
        assert_eq!(v["xray"]["sampling_rule_name"], "api");
        assert_eq!(v["ecs"]["container"], "host-1");
        assert_eq!(v["account_id"], "123456789012");
        assert_eq!(v["cloudwatch_logs"][0]["log_group"], "/ecs/app");
        let mut written: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut named = SegmentAws::keys(Some(&found));
        written.sort_unstable();
        named.sort_unstable();
        assert_eq!(written, named);
        assert_eq!(SegmentAws::keys(None), ["xray"]);
    }
}
