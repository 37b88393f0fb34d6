use std::time::Instant;

use serde_json::{Value, json};

use super::{Facts, Filter, MAX_DEPTH, MAX_LEN};
use crate::state::store::Store;

const T: &str = "1-5759e988-bd862e3fe1be46a994272793";

fn ingest(s: &mut Store, v: Value) {
    let raw = v.to_string();
    let node = crate::document::parse(raw.as_bytes()).unwrap_or_default();
    s.ingest(node, raw.into(), vec![], 0.0, Instant::now());
}

/// api (root, 200, 1.5 s) calls db-svc (500, 0.5 s) and DynamoDB (throttled);
/// the trace lasts 2 s because of an async subsegment.
fn store() -> Store {
    let mut s = Store::new(10, 1 << 20);
    ingest(
        &mut s,
        json!({"trace_id": T, "id": "a000000000000001", "name": "api", "start_time": 10.0,
               "end_time": 11.5, "user": "alice", "annotations": {"order": "o-17", "n": 3, "vip": true},
               "http": {"request": {"method": "GET", "url": "http://shop/api/orders/17",
                                    "user_agent": "curl/8", "client_ip": "10.0.0.9"},
                        "response": {"status": 200}},
               "subsegments": [
                 {"id": "c000000000000001", "name": "db-svc", "namespace": "remote",
                  "start_time": 10.1, "end_time": 10.7, "fault": true,
                  "http": {"request": {"method": "POST", "url": "http://db/q"}, "response": {"status": 500}}},
                 {"id": "c000000000000002", "name": "DynamoDB", "namespace": "aws",
                  "start_time": 10.8, "end_time": 10.9, "error": true, "throttle": true,
                  "http": {"response": {"status": 400}}},
                 {"id": "c000000000000003", "name": "async", "start_time": 11.0, "end_time": 12.0,
                  "annotations": {"deep": "yes"}}]}),
    );
    ingest(
        &mut s,
        json!({"trace_id": T, "id": "b000000000000001", "name": "db-svc", "parent_id": "c000000000000001",
               "origin": "AWS::ECS::Container", "start_time": 10.15, "end_time": 10.65, "fault": true,
               "user": "bob",
               "http": {"request": {"method": "POST", "url": "http://db/q"}, "response": {"status": 500}}}),
    );
    s
}

fn matches(s: &Store, expr: &str) -> bool {
    let f = Filter::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let t = s.get(T).expect("trace");
    f.matches(&Facts::new(t, f.needs_graph()))
}

#[test]
fn expressions_match_as_on_the_service() {
    let s = store();
    let table: &[(&str, bool)] = &[
        // The root answered 200: a downstream fault does not make the trace fault.
        ("ok", true),
        ("fault", false),
        ("!fault", true),
        ("fault = false", true),
        ("error = true", false),
        ("OK = TRUE", true),
        ("throttle", false),
        ("responsetime = 1.5", true),
        ("responsetime > 1.4 AND responsetime < 1.6", true),
        ("duration >= 2", true),
        ("duration > 2", false),
        ("http.status = 200", true),
        ("http.status != 200", false),
        ("http.status >= 500", false),
        ("http.url CONTAINS \"/orders/\"", true),
        ("http.url BEGINSWITH \"http://shop\"", true),
        ("http.url ENDSWITH \"17\"", true),
        ("http.url = \"http://db/q\"", false),
        ("http.method = \"GET\"", true),
        ("http.method = \"get\"", false),
        ("http.useragent contains \"curl\"", true),
        ("http.clientip = \"10.0.0.9\"", true),
        // user: any segment of the trace.
        ("user = \"alice\"", true),
        ("user = \"bob\"", true),
        ("user = \"carol\"", false),
        ("annotation.order = \"o-17\"", true),
        ("annotation.order BEGINSWITH \"o-\"", true),
        ("annotation.n = 3", true),
        ("annotation.n > 3", false),
        ("annotation.vip", true),
        ("annotation.vip = false", false),
        ("annotation.deep = \"yes\"", true),
        ("annotation.missing = 1", false),
        ("annotation.missing != 1", false),
        ("service(\"api\")", true),
        ("service(\"db-svc\") { fault }", true),
        ("service(\"db-svc\") { fault = false }", false),
        ("service(\"api\") { fault }", false),
        (
            "service(\"db-svc\") { http.status = 500 AND responsetime < 0.6 }",
            true,
        ),
        ("service(\"db-svc\") { user = \"bob\" }", true),
        ("service(\"nope\")", false),
        ("service() { fault }", true),
        ("service() { throttle }", true),
        (
            "service(id(name: \"DynamoDB\", type: \"AWS::DynamoDB::Table\")) { throttle }",
            true,
        ),
        ("service(id(type: \"AWS::ECS::Container\"))", true),
        ("service(id(name: \"db-svc\", type: \"service\"))", false),
        (
            "service(id(name: \"api\", account.id: \"123456789012\"))",
            false,
        ),
        ("service(\"api\") { annotation.deep = \"yes\" }", true),
        ("edge(\"api\", \"db-svc\")", true),
        ("edge(\"api\", \"db-svc\") { fault }", true),
        ("edge(\"db-svc\", \"api\")", false),
        (
            "edge(\"api\", id(name: \"DynamoDB\")) { error AND throttle }",
            true,
        ),
        ("edge(id(type: \"client\"), \"api\") { ok }", true),
        ("ok AND (fault OR service(\"db-svc\") { fault })", true),
        ("fault OR error OR throttle", false),
        ("!(fault OR error) AND service() { fault }", true),
        ("!!ok", true),
    ];
    let mut wrong = Vec::new();
    for (expr, want) in table {
        if matches(&s, expr) != *want {
            wrong.push(*expr);
        }
    }
    assert!(wrong.is_empty(), "wrong answers for {wrong:#?}");
}

#[test]
fn malformed_expressions_name_the_position() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 1, "empty"),
        ("   ", 1, "empty"),
        ("fault AND", 10, "ends"),
        ("AND fault", 1, "before `AND`"),
        ("(ok", 4, "close the `(` at position 1"),
        ("ok)", 3, "closes nothing"),
        ("responsetime", 13, "needs a comparison"),
        ("responsetime > \"x\"", 16, "a number"),
        ("http.url > \"x\"", 10, "does not compare strings"),
        ("http.url CONTAINS 5", 19, "a string in double quotes"),
        ("fault < true", 7, "takes = or !="),
        ("bogus = 1", 1, "unknown keyword `bogus`"),
        ("group.name = \"x\"", 1, "not supported"),
        ("service(api)", 9, "service name in double quotes"),
        (
            "service(\"a\") { service(\"b\") }",
            16,
            "cannot be used inside",
        ),
        ("service(\"a\") { ok", 18, "close the `{` at position 14"),
        ("edge(\"a\")", 9, "`,`"),
        ("edge()", 6, "source and a destination"),
        ("service(id(nom: \"a\"))", 12, "name, type or account.id"),
        ("service(id(name: \"a\", name: \"b\"))", 23, "twice"),
        ("ok fault", 4, "expected AND, OR"),
        ("annotation. = 1", 1, "annotation keys"),
        ("http.status = 5s", 15, "followed by a space"),
        ("user = \"open", 8, "not closed"),
        ("ok && fault", 4, "AND and OR"),
    ];
    for (expr, position, words) in cases {
        let e = Filter::parse(expr).expect_err(expr);
        assert_eq!(e.position, *position, "{expr:?}: {e}");
        assert!(e.message.contains(words), "{expr:?}: {e}");
        assert!(e.to_string().contains(&format!("position {position}")));
    }
}

#[test]
fn limits_hold() {
    let deep = format!(
        "{}ok{}",
        "(".repeat(MAX_DEPTH + 5),
        ")".repeat(MAX_DEPTH + 5)
    );
    let e = Filter::parse(&deep).expect_err("too deep");
    assert!(e.message.contains("nested deeper"), "{e}");
    let bangs = format!("{}ok", "!".repeat(10_000));
    assert!(Filter::parse(&bangs).is_err());
    let long = "ok OR ".repeat(MAX_LEN);
    let e = Filter::parse(&long).expect_err("too long");
    assert_eq!(e.position, MAX_LEN + 1);
    let nested = format!(
        "{}ok{}",
        "(".repeat(MAX_DEPTH - 1),
        ")".repeat(MAX_DEPTH - 1)
    );
    assert!(Filter::parse(&nested).is_ok());
}

#[test]
fn selectors() {
    use super::Selector;
    let key = |n: &str, t: &str| (n.to_string(), t.to_string());
    let f = Filter::parse("service(\"api\")").expect("valid");
    let Some(Selector::Service(t)) = f.selector() else {
        panic!("service selector")
    };
    assert!(t.matches(&key("api", "service")) && !t.matches(&key("db", "service")));
    let f = Filter::parse("edge(\"a\", id(type: \"remote\"))").expect("valid");
    assert!(matches!(f.selector(), Some(Selector::Edge(..))));
    assert_eq!(
        Filter::parse("service(\"a\") { ok }")
            .expect("valid")
            .selector(),
        None
    );
    assert_eq!(Filter::parse("ok").expect("valid").selector(), None);
}
