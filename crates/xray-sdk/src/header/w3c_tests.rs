//! The `traceparent` grammar, its conversion with the X-Ray header, and `tracestate`.

use super::*;

const VALID: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

#[test]
fn the_specification_example() {
    let tp = TraceParent::parse(VALID).unwrap();
    assert_eq!(
        tp.trace_id().to_string(),
        "1-0af76519-16cd43dd8448eb211c80319c"
    );
    assert_eq!(tp.parent_id().to_string(), "b7ad6b7169203331");
    assert!(tp.sampled());
    assert!(!tp.random_trace_id());
    assert_eq!(tp.to_string(), VALID);
    assert_eq!(tp.to_bytes().len(), TraceParent::LEN);
    assert_eq!(VALID.parse::<TraceParent>(), Ok(tp));
}

#[test]
fn flags() {
    let parse = |flags: &str| {
        TraceParent::parse(&format!(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{flags}"
        ))
        .unwrap()
    };
    assert!(!parse("00").sampled());
    assert!(parse("03").sampled() && parse("03").random_trace_id());
    // Reserved bits are not an error, and are written back as zero.
    let reserved = parse("fd");
    assert_eq!(reserved.flags(), 0x01);
    assert!(reserved.to_string().ends_with("-01"));
    assert_eq!(
        parse("02").to_string(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-02"
    );
}

#[test]
fn invalid_values_are_refused_with_their_reason() {
    let cases: &[(&str, TraceParentError)] = &[
        ("", TraceParentError::Length { found: 0 }),
        (&VALID[..54], TraceParentError::Length { found: 54 }),
        (
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            TraceParentError::Version,
        ),
        (
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            TraceParentError::ZeroTraceId,
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            TraceParentError::ZeroParentId,
        ),
        (
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            TraceParentError::NotLowerHex { field: "trace-id" },
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-B7AD6B7169203331-01",
            TraceParentError::NotLowerHex { field: "parent-id" },
        ),
        (
            "0A-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            TraceParentError::NotLowerHex { field: "version" },
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
            TraceParentError::NotLowerHex {
                field: "trace-flags",
            },
        ),
        (
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            TraceParentError::Separator,
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319cb-7ad6b7169203331-01",
            TraceParentError::Separator,
        ),
        // Version 00 is exactly 55 characters.
        (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",
            TraceParentError::Length { found: 56 },
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
            TraceParentError::Length { found: 56 },
        ),
        // A later version: after the flags, the end or a dash.
        (
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
            TraceParentError::Separator,
        ),
        (
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
            TraceParentError::Length { found: 54 },
        ),
        // Signs and spaces inside fields.
        (
            "00-+af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            TraceParentError::NotLowerHex { field: "trace-id" },
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333 -01",
            TraceParentError::NotLowerHex { field: "parent-id" },
        ),
    ];
    for (value, error) in cases {
        assert_eq!(TraceParent::parse(value), Err(*error), "{value:?}");
        assert!(!error.to_string().is_empty());
    }
    // Multi-byte characters at the checked positions are refused, never a panic.
    assert!(TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333é-01").is_err());
}

#[test]
fn later_versions_are_read_forward_compatibly() {
    let base = "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    for value in [
        format!("01-{base}"),
        format!("cc-{base}-what-the-future-adds"),
        format!("fe-{base}-"),
    ] {
        let tp = TraceParent::parse(&value).unwrap();
        assert_eq!(tp.to_string(), VALID, "{value}");
    }
}

#[test]
fn surrounding_whitespace_is_ignored() {
    assert!(TraceParent::parse(&format!(" \t{VALID} ")).is_ok());
}

#[test]
fn conversion_with_the_xray_header() {
    let header = TraceHeader::parse(
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    );
    let tp = TraceParent::from_trace_header(&header).unwrap();
    assert_eq!(
        tp.to_string(),
        "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
    );
    assert_eq!(tp.to_trace_header(), header);
    for (sampled, flags) in [("0", "00"), ("?", "00")] {
        let h = TraceHeader::parse(&format!(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled={sampled}"
        ));
        let tp = TraceParent::from_trace_header(&h).unwrap();
        assert!(tp.to_string().ends_with(flags), "{sampled}");
    }
    // No parent, or an ID W3C forbids: no traceparent.
    let no_parent = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");
    assert_eq!(TraceParent::from_trace_header(&no_parent), None);
    let zero_parent = TraceHeader::parse(
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000;Sampled=1",
    );
    assert_eq!(TraceParent::from_trace_header(&zero_parent), None);
    let zero_root =
        TraceHeader::parse("Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8");
    assert_eq!(TraceParent::from_trace_header(&zero_root), None);
}

#[test]
fn tracestate_is_normalized_and_bounded() {
    let n = |lines: &[&str]| normalize_tracestate(lines.iter().map(|l| l.as_bytes()));
    assert_eq!(n(&["a=1,b=2"]).as_deref(), Some("a=1,b=2"));
    assert_eq!(
        n(&[" a=1 ,\t, b=2 ", "c=3"]).as_deref(),
        Some("a=1,b=2,c=3")
    );
    assert_eq!(n(&["", " , "]), None);
    // Values may hold spaces and `=`; members must be key=value in printable ASCII.
    assert_eq!(n(&["k=a b=c"]).as_deref(), Some("k=a b=c"));
    assert_eq!(n(&["a=1,novalue"]), None);
    assert_eq!(n(&["=1"]), None);
    assert_eq!(n(&["a=\u{e9}"]), None);
    assert_eq!(n(&["a=1\r\nSet-Cookie: x=1"]), None);
    // 32 members pass, 33 do not.
    let members: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    assert!(n(&[&members[..32].join(",")]).is_some());
    assert_eq!(n(&[&members.join(",")]), None);
    // Over 512: members over 128 characters go first, then members from the end.
    let long = format!("big={}", "x".repeat(200));
    let small: Vec<String> = (0..20)
        .map(|i| format!("k{i:02}={}", "y".repeat(20)))
        .collect();
    let value = format!("{},{long},{}", small[..10].join(","), small[10..].join(","));
    let out = n(&[&value]).unwrap();
    assert!(out.len() <= MAX_TRACESTATE_LEN, "{}", out.len());
    assert!(!out.contains("big="));
    assert!(out.starts_with("k00="));
    assert_eq!(out.split(',').count(), 20);
    let many: Vec<String> = (0..30)
        .map(|i| format!("k{i:02}={}", "z".repeat(30)))
        .collect();
    let out = n(&[&many.join(",")]).unwrap();
    assert!(out.len() <= MAX_TRACESTATE_LEN);
    assert!(out.starts_with("k00=") && !out.contains("k29="));
    // A header value of one long member alone is dropped.
    assert_eq!(n(&[&format!("a={}", "x".repeat(600))]), None);
}

#[test]
fn tracestate_on_a_header() {
    let h = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=1:a:2")
        .with_tracestate(Some(" congo=t61rcWkgMzE "));
    assert_eq!(h.tracestate(), Some("congo=t61rcWkgMzE"));
    assert_eq!(h.extra(), Some("Lineage=1:a:2"));
    // Not part of the X-Ray text.
    assert_eq!(
        h.to_string(),
        "Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=1:a:2"
    );
    let h = h.with_extra(None).with_tracestate(None);
    assert_eq!(h.tracestate(), None);
    assert!(h.carried().is_none());
}
