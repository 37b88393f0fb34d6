//! The header grammar: parsing, formatting and the bounds on hostile input.

use super::*;

const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

fn root() -> TraceId {
    TraceId::parse(ROOT).unwrap()
}

/// (input, root?, parent?, sampled, extra, formatted)
#[allow(clippy::type_complexity)]
const CASES: &[(&str, bool, Option<&str>, SamplingFlag, Option<&str>, &str)] = &[
    // The documented examples.
    (
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
        true,
        None,
        SamplingFlag::Sampled,
        None,
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
    ),
    (
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        true,
        Some("53995c3f42cd8ad8"),
        SamplingFlag::Sampled,
        None,
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    ),
    // ALB sends Root only.
    (
        "Root=1-5759e988-bd862e3fe1be46a994272793",
        true,
        None,
        SamplingFlag::Unknown,
        None,
        "Root=1-5759e988-bd862e3fe1be46a994272793",
    ),
    // ALB with Self: dropped.
    (
        "Self=1-67891234-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793",
        true,
        None,
        SamplingFlag::Unknown,
        None,
        "Root=1-5759e988-bd862e3fe1be46a994272793",
    ),
    // Sampling requested.
    (
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?",
        true,
        None,
        SamplingFlag::Requested,
        None,
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?",
    ),
    (
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
        true,
        Some("53995c3f42cd8ad8"),
        SamplingFlag::NotSampled,
        None,
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
    ),
    // Whitespace (GO test vector style), trailing ';'.
    (
        "Root=1-5759e988-bd862e3fe1be46a994272793; Parent=53995c3f42cd8ad8; Sampled=1;",
        true,
        Some("53995c3f42cd8ad8"),
        SamplingFlag::Sampled,
        None,
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    ),
    // Lambda-style malformed separators.
    (
        ";;Root=1-5759e988-bd862e3fe1be46a994272793;;Parent=53995c3f42cd8ad8;;;Sampled=1;;;",
        true,
        Some("53995c3f42cd8ad8"),
        SamplingFlag::Sampled,
        None,
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    ),
    // Lineage and unknown keys kept, in order.
    (
        "Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=10:1234abcd:3;Foo=bar",
        true,
        None,
        SamplingFlag::Unknown,
        Some("Lineage=10:1234abcd:3;Foo=bar"),
        "Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=10:1234abcd:3;Foo=bar",
    ),
    (
        "Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=1234abcd:4|3456abcd:6",
        true,
        None,
        SamplingFlag::Unknown,
        Some("Lineage=1234abcd:4|3456abcd:6"),
        "Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=1234abcd:4|3456abcd:6",
    ),
    // Key case (Node SDK), order does not matter.
    (
        "sampled=1;parent=53995c3f42cd8ad8;root=1-5759e988-bd862e3fe1be46a994272793",
        true,
        Some("53995c3f42cd8ad8"),
        SamplingFlag::Sampled,
        None,
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    ),
    // Invalid root: new trace; the rest still parsed.
    (
        "Root=garbage;Parent=53995c3f42cd8ad8;Sampled=1",
        false,
        Some("53995c3f42cd8ad8"),
        SamplingFlag::Sampled,
        None,
        "Parent=53995c3f42cd8ad8;Sampled=1",
    ),
    (
        "Root=0-57ff426a-80c11c39b0c928905eb0828d;Sampled=1",
        false,
        None,
        SamplingFlag::Sampled,
        None,
        "Sampled=1",
    ),
    // Invalid parent and sampled values are absent.
    (
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=xyz;Sampled=yes",
        true,
        None,
        SamplingFlag::Unknown,
        None,
        "Root=1-5759e988-bd862e3fe1be46a994272793",
    ),
    // Parts without '=' skipped; value keeps everything after the first '='.
    (
        "Root=1-5759e988-bd862e3fe1be46a994272793;junk;a=b=c",
        true,
        None,
        SamplingFlag::Unknown,
        Some("a=b=c"),
        "Root=1-5759e988-bd862e3fe1be46a994272793;a=b=c",
    ),
    // Duplicates: last wins.
    (
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0;Sampled=1;k=1;k=2",
        true,
        None,
        SamplingFlag::Sampled,
        Some("k=2"),
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1;k=2",
    ),
    // Control characters and spaces inside values never reach the output.
    (
        "Root=1-5759e988-bd862e3fe1be46a994272793;evil=a\r\nSet-Cookie: x;ok=1;sp=a b",
        true,
        None,
        SamplingFlag::Unknown,
        Some("ok=1"),
        "Root=1-5759e988-bd862e3fe1be46a994272793;ok=1",
    ),
    ("", false, None, SamplingFlag::Unknown, None, ""),
    (";;;", false, None, SamplingFlag::Unknown, None, ""),
    ("=", false, None, SamplingFlag::Unknown, None, ""),
];

#[test]
fn canonical_fast_path() {
    let full = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    for input in [
        full,
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0;",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?",
        "Root=1-5759e988-bd862e3fe1be46a994272793",
        "Root=1-5759E988-BD862E3FE1BE46A994272793;Parent=53995C3F42CD8AD8",
    ] {
        let fast = TraceHeader::parse_canonical(input.as_bytes());
        assert!(fast.is_some(), "{input:?} takes the fast path");
        assert_eq!(fast, Some(TraceHeader::parse_lenient(input)), "{input:?}");
    }
    // Everything else is left to the lenient parser.
    for input in [
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a:1",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=x",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=",
        "Root=1-5759e988-bd862e3fe1be46a994272793; Parent=53995c3f42cd8ad8",
        "Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;;",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Self=1-5759e988-bd862e3fe1be46a994272793",
        "root=1-5759e988-bd862e3fe1be46a994272793",
        &full[..full.len() - 1],
    ] {
        assert_eq!(
            TraceHeader::parse_canonical(input.as_bytes()),
            None,
            "{input:?}"
        );
    }
}

#[test]
fn parse_and_format_table() {
    for (input, has_root, parent, sampled, extra, formatted) in CASES {
        let h = TraceHeader::parse(input);
        // The fast path for the canonical form agrees with the lenient parser.
        assert_eq!(
            h,
            TraceHeader::parse_lenient(input),
            "fast path on {input:?}"
        );
        assert_eq!(h.root().is_some(), *has_root, "root of {input:?}");
        if *has_root {
            assert_eq!(h.root(), Some(root()), "root of {input:?}");
        }
        assert_eq!(
            h.parent().map(|p| p.to_string()).as_deref(),
            *parent,
            "parent of {input:?}"
        );
        assert_eq!(h.sampled(), *sampled, "sampled of {input:?}");
        assert_eq!(h.extra(), *extra, "extra of {input:?}");
        assert_eq!(h.to_string(), *formatted, "format of {input:?}");
        let value = h.to_header_value();
        assert_eq!(value, *formatted, "header value of {input:?}");
        assert_eq!(value.capacity(), value.len(), "sized exactly for {input:?}");
        // Formatting then parsing again is stable.
        assert_eq!(TraceHeader::parse(&h.to_string()).to_string(), *formatted);
    }
}

#[test]
fn invalid_root_is_flagged() {
    assert!(TraceHeader::parse("Root=nope").had_invalid_root());
    assert!(!TraceHeader::parse("Sampled=1").had_invalid_root());
    assert!(!TraceHeader::parse(&format!("Root={ROOT}")).had_invalid_root());
}

#[test]
fn extras_are_bounded() {
    let mut value = format!("Root={ROOT}");
    for i in 0..100 {
        value.push_str(&format!(";key{i}=value{i}"));
    }
    let h = TraceHeader::parse(&value);
    let extra = h.extra().unwrap();
    let payload: usize = extra
        .split(';')
        .map(|kv| kv.len() - 1) // minus '='
        .sum();
    assert!(payload <= MAX_EXTRA_LEN, "{payload}");
    assert!(extra.starts_with("key0=value0;key1=value1"));
}

/// A header of thousands of short distinct keys: only the first `MAX_EXTRA_PARTS` are
/// read (each new key used to be compared with every earlier one: quadratic work on the
/// request path), while the ID fields after them still count.
#[test]
fn extra_keys_are_read_up_to_a_count() {
    let mut value = format!("Root={ROOT}");
    for i in 0..1_300 {
        value.push_str(&format!(";{i:x}=v"));
    }
    value.push_str(";Sampled=1;0=last");
    assert!(value.len() < MAX_HEADER_LEN);
    let h = TraceHeader::parse(&value);
    let extra = h.extra().unwrap();
    assert_eq!(extra.split(';').count(), MAX_EXTRA_PARTS, "{extra}");
    assert!(extra.starts_with("0=v;1=v;2=v"), "{extra}");
    assert_eq!(h.sampled(), SamplingFlag::Sampled);
    assert_eq!(h.root(), Some(root()));
}

#[test]
fn oversized_header_is_cut_not_rejected() {
    let mut value = format!("Root={ROOT};Sampled=1");
    while value.len() < MAX_HEADER_LEN * 2 {
        value.push_str(";x=");
        value.push_str(&"y".repeat(100));
    }
    let h = TraceHeader::parse(&value);
    assert_eq!(h.root(), Some(root()));
    assert_eq!(h.sampled(), SamplingFlag::Sampled);
    // A huge single part is ignored rather than mis-parsed.
    let h = TraceHeader::parse(&format!("Root={ROOT}{}", "0".repeat(MAX_HEADER_LEN)));
    assert_eq!(h.root(), None);
    // The limit falling inside a multi-byte character: the parts before it still count.
    for pad in 0..4 {
        let mut value = format!(
            "Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1;k={}",
            "a".repeat(pad)
        );
        while value.len() <= MAX_HEADER_LEN + 4 {
            value.push('é');
        }
        let h = TraceHeader::parse(&value);
        assert_eq!(h.root(), Some(root()), "pad {pad}");
        assert_eq!(h.sampled(), SamplingFlag::Sampled, "pad {pad}");
    }
}

#[test]
fn never_panics_on_odd_bytes() {
    for s in [
        "Root=1-5759e988-bd862e3fe1be46a9942727é3",
        "Root=é",
        "\u{0}\u{1}=\u{2}",
        "Parent=ééééééééééééééé",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=\u{7f}",
    ] {
        let h = TraceHeader::parse(s);
        assert!(h.to_string().bytes().all(|b| (0x21..=0x7e).contains(&b)));
    }
}

#[test]
fn builders() {
    let h = TraceHeader::new(
        root(),
        Some(EntityId::from_u64(0xab)),
        SamplingFlag::NotSampled,
    )
    .with_extra(Some("Lineage=a:1;bad key=x"));
    assert_eq!(
        h.to_string(),
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=00000000000000ab;Sampled=0;Lineage=a:1"
    );
    assert_eq!(SamplingFlag::from_decision(true).decision(), Some(true));
    assert_eq!(SamplingFlag::Requested.decision(), None);
}
