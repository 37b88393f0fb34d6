//! The OTLP resource: the service (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, the
//! recorder's name and version), the SDK, and the environment plugins' findings under the
//! semantic conventions (`cloud.*`, `aws.ecs.*`, `aws.log.*`, `host.*`, `k8s.*`,
//! `container.*`), which is where X-Ray's converter reads a segment's `origin` and its
//! `aws.ec2`/`aws.ecs`/`aws.eks`/`aws.cloudwatch_logs` blocks.

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::Value as Json;

use crate::emitter::json::{RUSTC_VERSION, SDK_VERSION};
use crate::plugins::{ResourceData, Resources};

/// A key-value attribute.
fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A string value.
fn text(s: &str) -> Value {
    Value::StringValue(s.to_owned())
}

/// What the resource is built from.
#[derive(Debug)]
pub(crate) struct ResourceInfo {
    /// `service.name`, settled.
    pub(crate) service_name: String,
    pub(crate) service_version: Option<String>,
    /// Attributes given in code and in `OTEL_RESOURCE_ATTRIBUTES` (which won already).
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) lambda_function: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) plugins: Arc<Resources>,
}

impl ResourceInfo {
    /// The resource, for segments that set no `origin` of their own (`origin: None`) or
    /// for those that set one, whose platform it states.
    pub(crate) fn build(&self, origin: Option<&str>) -> Resource {
        let mut attrs: Vec<KeyValue> = Vec::with_capacity(16);
        let mut put = |key: &str, value: Value| {
            attrs.retain(|a| a.key != key);
            attrs.push(kv(key, value));
        };
        put("telemetry.sdk.name", text("X-Ray"));
        put("telemetry.sdk.language", text("rust"));
        put("telemetry.sdk.version", text(SDK_VERSION));
        put("process.runtime.name", text("rust"));
        put("process.runtime.version", text(RUSTC_VERSION));
        if let Some(v) = &self.service_version {
            put("service.version", text(v));
        }
        if let Some(r) = &self.region {
            put("cloud.provider", text("aws"));
            put("cloud.region", text(r));
        }
        if let Some(f) = &self.lambda_function {
            put("cloud.provider", text("aws"));
            put("cloud.platform", text("aws_lambda"));
            put("faas.name", text(f));
        }
        if let Some(found) = self.plugins.get() {
            plugin_attributes(found, &mut put);
        }
        if let Some(origin) = origin {
            for (key, value) in platform_of(origin) {
                put("cloud.provider", text("aws"));
                put(key, text(value));
            }
        }
        for (k, v) in &self.attributes {
            put(k, text(v));
        }
        put("service.name", text(&self.service_name));
        Resource {
            attributes: attrs,
            ..Default::default()
        }
    }

    /// Whether the plugins have answered (the resource is complete).
    pub(crate) fn settled(&self) -> bool {
        self.plugins.get().is_some()
    }
}

/// `cloud.platform` (and for ECS the launch type) of an X-Ray `origin`: the reverse of X-Ray's
/// converter, which derives the origin from them.
fn platform_of(origin: &str) -> Vec<(&'static str, &'static str)> {
    match origin {
        "AWS::EC2::Instance" => vec![("cloud.platform", "aws_ec2")],
        "AWS::ECS::Container" => vec![("cloud.platform", "aws_ecs")],
        "AWS::ECS::EC2" => vec![("cloud.platform", "aws_ecs"), ("aws.ecs.launchtype", "ec2")],
        "AWS::ECS::Fargate" => vec![
            ("cloud.platform", "aws_ecs"),
            ("aws.ecs.launchtype", "fargate"),
        ],
        "AWS::EKS::Container" => vec![("cloud.platform", "aws_eks")],
        "AWS::ElasticBeanstalk::Environment" => {
            vec![("cloud.platform", "aws_elastic_beanstalk")]
        }
        "AWS::AppRunner::Service" => vec![("cloud.platform", "aws_app_runner")],
        "AWS::Lambda::Function" => vec![("cloud.platform", "aws_lambda")],
        _ => Vec::new(),
    }
}

/// The plugins' blocks as resource attributes.
fn plugin_attributes(found: &ResourceData, put: &mut impl FnMut(&str, Value)) {
    let field = |block: &Option<Json>, key: &str| {
        block
            .as_ref()
            .and_then(|b| b.get(key))
            .and_then(Json::as_str)
            .map(str::to_owned)
    };
    if found.ec2.is_some() {
        put("cloud.provider", text("aws"));
        for (attr, key) in [
            ("host.id", "instance_id"),
            ("cloud.availability_zone", "availability_zone"),
            ("host.type", "instance_size"),
            ("host.image.id", "ami_id"),
        ] {
            if let Some(v) = field(&found.ec2, key) {
                put(attr, Value::StringValue(v));
            }
        }
    }
    if found.ecs.is_some() {
        put("cloud.provider", text("aws"));
        for (attr, key) in [
            ("container.name", "container"),
            ("container.id", "container_id"),
            ("aws.ecs.container.arn", "container_arn"),
            ("aws.ecs.cluster.arn", "cluster_arn"),
            ("aws.ecs.task.arn", "task_arn"),
            ("aws.ecs.task.family", "task_family"),
            ("aws.ecs.launchtype", "launch_type"),
            ("cloud.availability_zone", "availability_zone"),
        ] {
            if let Some(v) = field(&found.ecs, key) {
                put(attr, Value::StringValue(v));
            }
        }
    }
    if found.eks.is_some() {
        put("cloud.provider", text("aws"));
        for (attr, key) in [
            ("k8s.pod.name", "pod"),
            ("container.id", "container_id"),
            ("k8s.cluster.name", "cluster_name"),
        ] {
            if let Some(v) = field(&found.eks, key) {
                put(attr, Value::StringValue(v));
            }
        }
    }
    if let Some(account) = &found.account_id {
        put("cloud.account.id", text(account));
    }
    if let Some(Json::Array(groups)) = &found.cloudwatch_logs {
        let list = |key: &str| {
            groups
                .iter()
                .filter_map(|g| g.get(key).and_then(Json::as_str))
                .map(|s| AnyValue {
                    value: Some(text(s)),
                })
                .collect::<Vec<_>>()
        };
        for (attr, key) in [
            ("aws.log.group.names", "log_group"),
            ("aws.log.group.arns", "arn"),
        ] {
            let values = list(key);
            if !values.is_empty() {
                put(
                    attr,
                    Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                        values,
                    }),
                );
            }
        }
    }
    if let Some(origin) = found.origin {
        for (key, value) in platform_of(origin) {
            put(key, text(value));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn get<'a>(r: &'a Resource, key: &str) -> Option<&'a Value> {
        r.attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn s<'a>(r: &'a Resource, key: &str) -> Option<&'a str> {
        match get(r, key) {
            Some(Value::StringValue(s)) => Some(s),
            _ => None,
        }
    }

    #[test]
    fn plugins_become_semantic_conventions_and_user_attributes_win() {
        let plugins = Arc::new(Resources::default());
        let info = ResourceInfo {
            service_name: "orders".into(),
            service_version: Some("1.2.3".into()),
            attributes: vec![
                ("deployment.environment.name".into(), "prod".into()),
                ("host.type".into(), "from-user".into()),
            ],
            lambda_function: None,
            region: Some("eu-west-1".into()),
            plugins: Arc::clone(&plugins),
        };
        let before = info.build(None);
        assert!(!info.settled());
        assert_eq!(s(&before, "service.name"), Some("orders"));
        assert_eq!(s(&before, "cloud.platform"), None);
        plugins.set(ResourceData {
            origin: Some("AWS::ECS::Container"),
            ecs: Some(serde_json::json!({
                "container": "web-1", "container_id": "abc", "launch_type": "fargate",
                "cluster_arn": "arn:aws:ecs:eu-west-1:1:cluster/c", "task_arn": "arn:t",
                "task_family": "web", "container_arn": "arn:c", "availability_zone": "eu-west-1a"
            })),
            ec2: Some(serde_json::json!({"instance_id": "i-1", "instance_size": "m5.large", "ami_id": "ami-1"})),
            eks: None,
            account_id: Some("123456789012".into()),
            cloudwatch_logs: Some(serde_json::json!([{"log_group": "/ecs/web", "arn": "arn:aws:logs:eu-west-1:1:log-group:/ecs/web"}])),
        });
        assert!(info.settled());
        let r = info.build(None);
        for (key, value) in [
            ("cloud.provider", "aws"),
            ("cloud.platform", "aws_ecs"),
            ("cloud.region", "eu-west-1"),
            ("cloud.account.id", "123456789012"),
            ("cloud.availability_zone", "eu-west-1a"),
            ("container.name", "web-1"),
            ("container.id", "abc"),
            ("aws.ecs.launchtype", "fargate"),
            ("aws.ecs.cluster.arn", "arn:aws:ecs:eu-west-1:1:cluster/c"),
            ("aws.ecs.task.arn", "arn:t"),
            ("aws.ecs.task.family", "web"),
            ("aws.ecs.container.arn", "arn:c"),
            ("host.id", "i-1"),
            ("host.type", "from-user"),
            ("host.image.id", "ami-1"),
            ("service.version", "1.2.3"),
            ("deployment.environment.name", "prod"),
            ("telemetry.sdk.language", "rust"),
        ] {
            assert_eq!(s(&r, key), Some(value), "{key}");
        }
        let Some(Value::ArrayValue(groups)) = get(&r, "aws.log.group.names") else {
            panic!("no log groups");
        };
        assert_eq!(groups.values.len(), 1);
        // Keys are unique.
        let mut keys: Vec<&str> = r.attributes.iter().map(|a| a.key.as_str()).collect();
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), n);
        // A segment's own origin states its platform.
        let ec2 = info.build(Some("AWS::ECS::EC2"));
        assert_eq!(s(&ec2, "aws.ecs.launchtype"), Some("ec2"));
        let eks = info.build(Some("AWS::EKS::Container"));
        assert_eq!(s(&eks, "cloud.platform"), Some("aws_eks"));
    }

    #[test]
    fn lambda_and_service_name() {
        let info = ResourceInfo {
            service_name: "fn-svc".into(),
            service_version: None,
            attributes: vec![("service.name".into(), "ignored".into())],
            lambda_function: Some("my-fn".into()),
            region: None,
            plugins: Arc::new(Resources::default()),
        };
        let r = info.build(None);
        assert_eq!(s(&r, "cloud.platform"), Some("aws_lambda"));
        assert_eq!(s(&r, "faas.name"), Some("my-fn"));
        assert_eq!(s(&r, "service.name"), Some("fn-svc"));
    }
}
