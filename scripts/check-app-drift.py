#!/usr/bin/env python3
"""Checks that deploy/cloudformation/app.yaml still matches the reference app's code.

Run by scripts/check-deploy.sh with the virtualenv of cfn-lint (PyYAML comes with it). It
reads the template and the sources of examples/reference and fails, naming the template
location and the code it disagrees with, when:

- a service's container sets an environment variable its code does not read, or leaves out
  one the service needs on ECS (REQUIRED below), or sets PORT, TABLE_NAME,
  AWS_XRAY_TRACING_NAME, AWS_XRAY_DAEMON_ADDRESS or BACKENDn_URL to a value that cannot work;
- a container port, the target group port, the security group ranges or the load balancer
  mapping differ from the code's default ports (Role::default_port);
- the target group health check path is not a route of the BFF, or the never-sampled rule
  does not cover it;
- a backend has no container health check, or it runs something the image or the binary
  does not provide;
- the backends' DynamoDB actions are not exactly the operations the backend code calls
  (and the BFF gets any);
- the table's key is not the key the code creates and writes;
- a /debug/ route of the services is reachable through the load balancer.
"""

import fnmatch
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy/cloudformation/app.yaml"
COMPOSE = ROOT / "deploy/docker-compose.yml"
DOCKERFILE = ROOT / "deploy/Dockerfile"
SRC = ROOT / "examples/reference/src"
SDK_CONFIG = ROOT / "crates/xray-sdk/src/config.rs"

# Variables whose local default is wrong on ECS, with the reason.
REQUIRED = {
    "all": {
        "BIND_ADDRESS": "the default 127.0.0.1 is unreachable from the load balancer and the BFF",
        "AWS_XRAY_TRACING_NAME": "the sampling rules match service names PREFIX-*",
    },
    "bff": {
        "BACKEND1_URL": "the default http://127.0.0.1:8081 is not backend 1 on ECS",
        "BACKEND2_URL": "the default http://127.0.0.1:8082 is not backend 2 on ECS",
    },
    "backend": {
        "TABLE_NAME": "the table is named by CloudFormation, not `xray-demo`",
        "AWS_REGION": "the default us-east-1 is not necessarily the stack's region",
    },
}

# DynamoDB operations as the Rust SDK names its fluent builders (client.put_item()).
DYNAMODB_OPERATIONS = {
    "batch_execute_statement", "batch_get_item", "batch_write_item", "create_table",
    "delete_item", "delete_table", "describe_table", "execute_statement",
    "execute_transaction", "get_item", "list_tables", "put_item", "query", "scan",
    "transact_get_items", "transact_write_items", "update_item", "update_table",
}

errors = []
checks = 0


def check(ok, message):
    global checks
    checks += 1
    if not ok:
        errors.append(message)
    return ok


# --- the template -----------------------------------------------------------------------------

class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns the short intrinsic functions (!Ref, !Sub, ...) into their long form."""


def _intrinsic(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Fn::" + suffix: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def show(value):
    """A template value as it is written (!Sub x, !Ref x, or the plain value)."""
    if isinstance(value, dict) and len(value) == 1:
        (key, inner), = value.items()
        short = "Ref" if key == "Ref" else key.replace("Fn::", "")
        return f"!{short} {inner}"
    return repr(value)


def sub(value):
    """The text of a !Sub string (or of a plain string); None otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        return value["Fn::Sub"]
    return None


def resources_of(template, rtype):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == rtype}


# --- the code ---------------------------------------------------------------------------------

def read(path):
    return path.read_text(encoding="utf-8")


def rel(path):
    return path.relative_to(ROOT).as_posix()


def blocks(text, header_re):
    """{name: body} of top-level items (`impl X {`, `fn x(`) whose header matches header_re,
    up to the closing brace in column 0."""
    out = {}
    for m in re.finditer(header_re, text, re.M):
        end = text.find("\n}\n", m.end())
        out[m.group(1)] = text[m.end(): end if end >= 0 else len(text)]
    return out


def match_arms(body):
    """`Role::Bff => 8080,` arms of a match: {"Bff": "8080"}."""
    return dict(re.findall(r"Role::(\w+)\s*=>\s*\"?([\w-]+)\"?", body))


def role_table(config_rs):
    impl_role = blocks(config_rs, r"^impl (Role) \{")["Role"]
    fns = blocks(impl_role.replace("\n    }\n", "\n}\n"), r"^    pub fn (\w+)\(")
    ids = match_arms(fns["id"])
    ports = match_arms(fns["default_port"])
    return {variant: {"id": ids[variant], "port": int(ports[variant])} for variant in ids}


def sdk_env_names():
    return dict(re.findall(r"pub const (\w+): &str = \"(\w+)\";", read(SDK_CONFIG)))


def env_reads(config_rs, roles):
    """{role id: {variable: where it is read}} from the code."""
    sdk = sdk_env_names()
    by_role = {r["id"]: {} for r in roles.values()}
    backends = [r["id"] for r in roles.values() if r["id"] != "bff"]
    scope = {"Common": list(by_role), "BffConfig": ["bff"], "BackendConfig": backends}

    def add(ids, name, where):
        for i in ids:
            by_role[i].setdefault(name, where)

    for impl, body in blocks(config_rs, r"^impl (\w+) \{").items():
        for name in re.findall(r"\bget\(\"(\w+)\"\)", body):
            add(scope.get(impl, []), name, f"config.rs ({impl})")
        # Helpers such as `let url = |key: &str, ...| { get(key) ... }; url("BACKEND1_URL", ..)`.
        for helper in re.findall(r"let (\w+) = \|(\w+): &str\b[^|]*\|", body):
            name_fn, param = helper
            if re.search(rf"\bget\({param}\)", body):
                for name in re.findall(rf"\b{name_fn}\(\"(\w+)\"", body):
                    add(scope.get(impl, []), name, f"config.rs ({impl})")
        for const in re.findall(r"\bget\(xray_sdk::config::env::(\w+)\)", body):
            add(scope.get(impl, []), sdk[const], f"config.rs ({impl})")
    # The recorder reads the SDK's own variables unless told to ignore the environment.
    if "read_xray_env = true" in config_rs:
        for name in sdk.values():
            add(by_role, name, "the X-Ray SDK (xray_sdk::config::env)")
    if "try_from_default_env" in read(SRC / "telemetry.rs"):
        add(by_role, "RUST_LOG", "telemetry.rs (EnvFilter)")
    file_roles = {"dynamo.rs": backends, "backend.rs": backends, "bff.rs": ["bff"],
                  "lib.rs": list(by_role), "telemetry.rs": list(by_role)}
    for file, ids in file_roles.items():
        for name in re.findall(r"(?:process_env|std::env::var)\(\"(\w+)\"\)", read(SRC / file)):
            add(ids, name, file)
    return by_role


def routes(path):
    return set(re.findall(r"\.route\(\s*\"([^\"]+)\"", read(path)))


def dynamo_calls(path, functions):
    """DynamoDB operations `path` calls itself or through the functions of dynamo.rs."""
    text = read(path)
    ops = {m for m in re.findall(r"\.\s*([a-z_]+)\(\)", text) if m in DYNAMODB_OPERATIONS}
    todo = re.findall(r"\bdynamo::(\w+)\(", text)
    seen = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        body = functions[name]
        ops |= {m for m in re.findall(r"\.\s*([a-z_]+)\(\)", body) if m in DYNAMODB_OPERATIONS}
        todo += [n for n in re.findall(r"\b(\w+)\(", body) if n in functions]
    return ops, seen


def action_name(op):
    return "dynamodb:" + "".join(part.capitalize() for part in op.split("_"))


# --- the checks -------------------------------------------------------------------------------

def main():
    template = yaml.load(read(TEMPLATE), Loader=CfnLoader)
    config_rs = read(SRC / "config.rs")
    roles = role_table(config_rs)
    reads = env_reads(config_rs, roles)
    port_of = {r["id"]: r["port"] for r in roles.values()}
    res = template["Resources"]
    where = rel(TEMPLATE)

    # Containers of the three services, by role id.
    containers = {}
    for tname, task in resources_of(template, "AWS::ECS::TaskDefinition").items():
        for c in task["Properties"]["ContainerDefinitions"]:
            if c["Name"] in port_of:
                containers[c["Name"]] = (tname, task, c)
    for rid in port_of:
        check(rid in containers, f"{where}: no task definition has a container named `{rid}`")

    daemon_ports = {}
    for tname, task in resources_of(template, "AWS::ECS::TaskDefinition").items():
        for c in task["Properties"]["ContainerDefinitions"]:
            if c["Name"] == "xray-daemon":
                daemon_ports[tname] = {
                    p["ContainerPort"] for p in c.get("PortMappings", []) if p.get("Protocol") == "udp"
                }

    dockerfile = read(DOCKERFILE)
    entrypoint = re.search(r"^ENTRYPOINT \[\"([^\"]+)\"", dockerfile, re.M)
    lib_rs = read(SRC / "lib.rs")
    health_arg = re.search(r"pub const HEALTH_CHECK_ARG: &str = \"([^\"]+)\";", lib_rs)

    for rid, (tname, task, c) in sorted(containers.items()):
        loc = f"{where}: {tname} container `{rid}`"
        kind = "bff" if rid == "bff" else "backend"
        env = {e["Name"]: e["Value"] for e in c.get("Environment", [])}
        for name, value in env.items():
            check(name in reads[rid],
                  f"{loc} sets {name}, which the {rid} code does not read "
                  f"(it reads: {', '.join(sorted(reads[rid]))})")
        for scope in ("all", kind):
            for name, why in REQUIRED[scope].items():
                if check(name in reads[rid],
                         f"scripts/check-app-drift.py requires {name} for {rid}, but the code "
                         f"no longer reads it: update REQUIRED"):
                    check(name in env, f"{loc} does not set {name} ({why})")

        # Ports: the code's default, PORT, the container port.
        port = port_of[rid]
        if "PORT" in env:
            check(str(env["PORT"]) == str(port),
                  f"{loc} sets PORT={env['PORT']}, but the code's default port of {rid} is {port} "
                  f"(Role::default_port in config.rs), which the other services and the "
                  f"template assume")
        tcp = [p["ContainerPort"] for p in c.get("PortMappings", []) if p.get("Protocol", "tcp") == "tcp"]
        check(tcp == [port], f"{loc} maps container port(s) {tcp}, expected [{port}] "
                             f"(Role::default_port in config.rs)")

        # Values that only work one way.
        if "TABLE_NAME" in env:
            check(env["TABLE_NAME"] == {"Ref": "Table"},
                  f"{loc} sets TABLE_NAME to {show(env['TABLE_NAME'])}, not !Ref Table")
        if "AWS_XRAY_TRACING_NAME" in env:
            name = sub(env["AWS_XRAY_TRACING_NAME"]) or ""
            rule_names = [sub(r["Properties"]["SamplingRule"]["ServiceName"]) or ""
                          for r in resources_of(template, "AWS::XRay::SamplingRule").values()]
            check(name == f"${{ServiceNamePrefix}}-{rid}",
                  f"{loc} sets AWS_XRAY_TRACING_NAME to {show(env['AWS_XRAY_TRACING_NAME'])}, "
                  f"expected !Sub ${{ServiceNamePrefix}}-{rid}")
            check(all(fnmatch.fnmatchcase(name, pattern) for pattern in rule_names),
                  f"{loc}: AWS_XRAY_TRACING_NAME {name} is not matched by every sampling rule "
                  f"(ServiceName {rule_names})")
        if "AWS_XRAY_DAEMON_ADDRESS" in env and task["Properties"].get("NetworkMode") == "awsvpc":
            m = re.fullmatch(r"(127\.0\.0\.1|localhost):(\d+)", str(env["AWS_XRAY_DAEMON_ADDRESS"]))
            check(m is not None and int(m.group(2)) in daemon_ports.get(tname, set()),
                  f"{loc} sets AWS_XRAY_DAEMON_ADDRESS={env['AWS_XRAY_DAEMON_ADDRESS']}: in awsvpc "
                  f"mode the sidecar is 127.0.0.1:<its udp port {sorted(daemon_ports.get(tname, []))}>")
        for n, backend in ((1, "backend1"), (2, "backend2")):
            key = f"BACKEND{n}_URL"
            if key not in env:
                continue
            url = sub(env[key]) or ""
            m = re.fullmatch(r"http://([^:/]+)\.\$\{ServiceNamePrefix\}\.internal:(\d+)", url)
            names = {d["Properties"]["Name"] for d in
                     resources_of(template, "AWS::ServiceDiscovery::Service").values()}
            check(m is not None and m.group(1) in names and m.group(1) == backend
                  and int(m.group(2)) == port_of[backend],
                  f"{loc} sets {key} to {show(env[key])}, expected "
                  f"!Sub http://{backend}.${{ServiceNamePrefix}}.internal:{port_of[backend]} "
                  f"(plain http: the BFF's client has no TLS; the Cloud Map name and port of "
                  f"{backend})")

        # Container health checks of the backends (the BFF has the load balancer's).
        if kind == "backend":
            hc = c.get("HealthCheck")
            if check(hc is not None,
                     f"{loc} has no HealthCheck: the deployment circuit breaker cannot see a "
                     f"broken backend"):
                cmd = hc.get("Command", [])
                check(cmd[:1] == ["CMD"] and entrypoint is not None
                      and cmd[1:2] == [entrypoint.group(1)]
                      and health_arg is not None and cmd[2:] == [health_arg.group(1)],
                      f"{loc} health check runs {cmd}; the image has no shell or curl: expected "
                      f"[CMD, {entrypoint.group(1) if entrypoint else '?'}, "
                      f"{health_arg.group(1) if health_arg else '--health-check'}] "
                      f"(deploy/Dockerfile ENTRYPOINT, HEALTH_CHECK_ARG in lib.rs)")
                check("/health" in routes(SRC / "backend.rs") and "GET /health" in lib_rs,
                      f"{loc}: the health check mode calls GET /health, which backend.rs "
                      f"does not serve")

    # Load balancer side of the BFF.
    bff_port = port_of["bff"]
    for name, tg in resources_of(template, "AWS::ElasticLoadBalancingV2::TargetGroup").items():
        props = tg["Properties"]
        check(props.get("Port") == bff_port,
              f"{where}: {name} Port is {props.get('Port')}, the BFF listens on {bff_port}")
        path = props.get("HealthCheckPath", "/")
        bff_routes = routes(SRC / "bff.rs")
        check(path in bff_routes,
              f"{where}: {name} HealthCheckPath {path} is not a route of the BFF "
              f"(bff.rs serves {sorted(bff_routes)})")
        never = [r["Properties"]["SamplingRule"] for r in
                 resources_of(template, "AWS::XRay::SamplingRule").values()
                 if r["Properties"]["SamplingRule"]["FixedRate"] == 0]
        check(any(fnmatch.fnmatchcase(path, r["URLPath"]) for r in never),
              f"{where}: no sampling rule with FixedRate 0 matches the health check path {path}")
    for name, svc in resources_of(template, "AWS::ECS::Service").items():
        for lb in svc["Properties"].get("LoadBalancers", []):
            check(lb["ContainerName"] in port_of and lb["ContainerPort"] == port_of[lb["ContainerName"]],
                  f"{where}: {name} sends the load balancer to {lb['ContainerName']}:"
                  f"{lb['ContainerPort']}, which is not that service's port")

    def covered(rules, port):
        return any(r.get("IpProtocol") == "tcp" and r["FromPort"] <= port <= r["ToPort"] for r in rules)

    ingress = res["ServiceSecurityGroup"]["Properties"].get("SecurityGroupIngress", [])
    check(covered(ingress, bff_port),
          f"{where}: ServiceSecurityGroup does not let the load balancer reach port {bff_port}")
    internal = [r["Properties"] for r in resources_of(template, "AWS::EC2::SecurityGroupIngress").values()]
    for rid, port in port_of.items():
        if rid != "bff":
            check(covered(internal, port),
                  f"{where}: no SecurityGroupIngress lets the BFF reach {rid} on port {port}")

    # /debug/ routes stay inside the VPC.
    debug = sorted(r for f in ("lib.rs", "bff.rs") for r in routes(SRC / f) if r.startswith("/debug/"))
    blocked = []
    for rule in resources_of(template, "AWS::ElasticLoadBalancingV2::ListenerRule").values():
        props = rule["Properties"]
        fixed_404 = any(a["Type"] == "fixed-response"
                        and str(a["FixedResponseConfig"]["StatusCode"]) == "404"
                        for a in props["Actions"])
        if fixed_404:
            for cond in props["Conditions"]:
                if cond.get("Field") == "path-pattern":
                    blocked += cond.get("PathPatternConfig", {}).get("Values", cond.get("Values", []))
    for route in debug:
        check(any(fnmatch.fnmatchcase(route, p) for p in blocked),
              f"{where}: {route} (served by every service) is not answered 404 by a listener rule "
              f"(fixed-response path patterns: {blocked})")

    # IAM: exactly the DynamoDB operations of the code.
    functions = blocks(read(SRC / "dynamo.rs"), r"^pub (?:async )?fn (\w+)")
    backend_ops, via = dynamo_calls(SRC / "backend.rs", functions)
    bff_ops, _ = dynamo_calls(SRC / "bff.rs", functions)

    def granted(role_name):
        actions = set()
        for policy in res[role_name]["Properties"].get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                actions |= {a for a in acts if a.startswith("dynamodb:")}
        return actions

    for role_name, ops, who in (("BackendTaskRole", backend_ops, "backend.rs"),
                                ("BffTaskRole", bff_ops, "bff.rs")):
        want = {action_name(o) for o in ops}
        have = granted(role_name)
        check(have == want,
              f"{where}: {role_name} allows {sorted(have) or 'no DynamoDB action'}, but {who}"
              f"{' (through dynamo::' + ', dynamo::'.join(sorted(via)) + ')' if who == 'backend.rs' and via else ''}"
              f" calls {sorted(want) or 'no DynamoDB operation'}: missing {sorted(want - have)}, "
              f"extra {sorted(have - want)}")

    # The table's key: what dynamo.rs creates locally and writes.
    dynamo_rs = read(SRC / "dynamo.rs")
    key = re.search(r"KeySchemaElement::builder\(\)\s*\.attribute_name\(\"(\w+)\"\)\s*"
                    r"\.key_type\(KeyType::Hash\)", dynamo_rs)
    key_type = re.search(r"AttributeDefinition::builder\(\)\s*\.attribute_name\(\"(\w+)\"\)\s*"
                         r"\.attribute_type\(ScalarAttributeType::(\w+)\)", dynamo_rs)
    if check(key is not None and key_type is not None,
             f"{rel(SRC / 'dynamo.rs')}: cannot find the key schema of ensure_table"):
        name, scalar = key.group(1), key_type.group(2)
        table = res["Table"]["Properties"]
        hash_keys = [k["AttributeName"] for k in table["KeySchema"] if k["KeyType"] == "HASH"]
        check(hash_keys == [name] and len(table["KeySchema"]) == 1,
              f"{where}: Table KeySchema is {table['KeySchema']}, the code's key is {name} (HASH)")
        types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
        check(types.get(name) == scalar,
              f"{where}: Table attribute {name} has type {types.get(name)}, the code's is {scalar}")
        written = {}
        for fn in via:
            written.update(dict(re.findall(r"\.item\(\"(\w+)\",\s*AttributeValue::(\w+)\(",
                                           functions[fn])))
        check(written.get(name) == scalar,
              f"{rel(SRC / 'dynamo.rs')}: the backends write {written}, without the key "
              f"{name} of type {scalar}")
        check(f"AttributeName={name},KeyType=HASH" in read(COMPOSE)
              and f"AttributeName={name},AttributeType={scalar}" in read(COMPOSE),
              f"{rel(COMPOSE)}: table-init does not create the key {name} ({scalar})")

    if errors:
        for e in errors:
            print(f"check-app-drift: error: {e}", file=sys.stderr)
        print(f"check-app-drift: {len(errors)} of {checks} checks failed: app.yaml no longer "
              f"matches examples/reference", file=sys.stderr)
        return 1
    print(f"check-app-drift: app.yaml matches examples/reference ({checks} checks)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
        print(f"check-app-drift: error: the template or the code no longer has the shape this "
              f"check reads ({type(e).__name__}: {e}); update scripts/check-app-drift.py",
              file=sys.stderr)
        sys.exit(1)
