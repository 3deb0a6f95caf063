//! Property tests of report ingestion (issue 16): SARIF, JUnit and checkstyle as a tool — or whoever
//! controls its output — may write them. Well-formed reports with arbitrary text (escaped as XML requires)
//! come back finding for finding with their text intact; the same reports cut short or with bytes spliced
//! in, and arbitrary bytes, are refused or parsed, never a panic; SARIF logs with members of any type
//! (`ruleIndex: -1`, `startLine: 1e300`, strings for numbers) too. Fingerprints read the flagged line only
//! from inside the checkout: a report naming a file outside it (`../secret.txt`, an absolute path, a
//! symlink out) gets the same fingerprint whatever that file says.

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

use super::{Format, SourceContext, parse};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text a report may carry: printable ASCII (markup characters included) and some non-ASCII.
fn text() -> impl Strategy<Value = String> {
    "[ -~éß中😀]{0,24}"
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// A checkstyle report: files, each with errors (message, source, line); and the XML of it.
fn checkstyle() -> impl Strategy<Value = (Vec<(String, Option<u32>)>, String)> {
    proptest::collection::vec(
        (
            "[a-z]{1,8}\\.js",
            proptest::collection::vec((text(), text(), proptest::option::of(1u32..100_000)), 0..4),
        ),
        0..4,
    )
    .prop_map(|files| {
        let mut xml = String::from(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<checkstyle version=\"4.3\">",
        );
        let mut errors = Vec::new();
        for (name, file_errors) in files {
            xml.push_str(&format!("<file name=\"{}\">", escape(&name)));
            for (message, source, line) in file_errors {
                let line_attr = line.map(|l| format!(" line=\"{l}\"")).unwrap_or_default();
                xml.push_str(&format!(
                    "<error{line_attr} severity=\"warning\" message=\"{}\" source=\"{}\"/>",
                    escape(&message),
                    escape(&source)
                ));
                errors.push((message, line));
            }
            xml.push_str("</file>");
        }
        xml.push_str("</checkstyle>");
        (errors, xml)
    })
}

/// A JUnit report: test cases that pass, fail or error, with messages in attributes or text (CDATA).
fn junit() -> impl Strategy<Value = (usize, String)> {
    proptest::collection::vec(
        (
            "[a-z_]{1,10}",
            0u8..4,
            "[ -~]{1,20}".prop_filter("not blank", |m| !m.trim().is_empty()),
        ),
        0..6,
    )
    .prop_map(|cases| {
        let mut xml = String::from("<testsuites><testsuite name=\"suite\" file=\"tests/a.rs\">");
        let mut failing = 0;
        for (name, outcome, message) in cases {
            xml.push_str(&format!(
                "<testcase name=\"{}\" classname=\"c\">",
                escape(&name)
            ));
            match outcome {
                1 => xml.push_str(&format!("<failure message=\"{}\"/>", escape(&message))),
                2 => xml.push_str(&format!("<error>{}</error>", escape(&message))),
                3 if !message.contains("]]>") => {
                    xml.push_str(&format!("<failure><![CDATA[{message}]]></failure>"))
                }
                _ => {}
            }
            if (1..=2).contains(&outcome) || (outcome == 3 && !message.contains("]]>")) {
                failing += 1;
            }
            xml.push_str("</testcase>");
        }
        xml.push_str("</testsuite></testsuites>");
        (failing, xml)
    })
}

/// Any JSON value, a few levels deep, for members of the wrong type.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A SARIF log whose results carry numbers of every kind where indices and lines go, and sometimes a
/// member of the wrong type.
fn sarif() -> impl Strategy<Value = (usize, bool, Value)> {
    let number = prop_oneof![
        any::<i64>().prop_map(Value::from),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(1e300)),
        Just(json!(2.5)),
        Just(json!(u64::MAX)),
    ];
    let result = (
        proptest::option::of(text()),
        proptest::option::of(number.clone()),
        proptest::option::of(number),
        text(),
        proptest::option::of(json_value()),
    )
        .prop_map(|(rule_id, rule_index, line, message, stray)| {
            let mut result = json!({
                "message": {"text": message},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/a.rs"}, "region": {}}}],
            });
            if let Some(id) = rule_id {
                result["ruleId"] = id.into();
            }
            if let Some(index) = rule_index {
                result["ruleIndex"] = index;
            }
            if let Some(line) = line {
                result["locations"][0]["physicalLocation"]["region"]["startLine"] = line;
            }
            let typed = stray.is_none();
            if let Some(stray) = stray {
                result["level"] = stray;
            }
            (typed, result)
        });
    proptest::collection::vec(result, 0..5).prop_map(|results| {
        let typed = results.iter().all(|(typed, _)| *typed);
        let count = results.len();
        let results: Vec<Value> = results.into_iter().map(|(_, r)| r).collect();
        let log = json!({
            "version": "2.1.0",
            "runs": [{"tool": {"driver": {"name": "t", "rules": [{"id": "r0"}]}}, "results": results}],
        });
        (count, typed, log)
    })
}

/// `bytes` cut at `cut` with `splice` inserted there.
fn damaged(bytes: &[u8], cut: usize, splice: &[u8]) -> Vec<u8> {
    let at = cut % (bytes.len() + 1);
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(splice);
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn checkstyle_reports_round_trip_and_damage_is_refused_or_parsed(
        (errors, xml) in checkstyle(),
        cut in any::<usize>(),
        splice in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let context = SourceContext::default();
        let found = parse(Format::Checkstyle, xml.as_bytes(), &context).unwrap();
        prop_assert_eq!(found.len(), errors.len());
        for (finding, (message, line)) in found.iter().zip(&errors) {
            prop_assert_eq!(&finding.message, message);
            prop_assert_eq!(finding.line, *line);
            prop_assert_eq!(finding.fingerprint.len(), 32);
        }
        let _ = parse(Format::Checkstyle, &damaged(xml.as_bytes(), cut, &splice), &context);
    }

    #[test]
    fn junit_reports_round_trip_and_damage_is_refused_or_parsed(
        (failing, xml) in junit(),
        cut in any::<usize>(),
        splice in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let context = SourceContext::default();
        let found = parse(Format::Junit, xml.as_bytes(), &context).unwrap();
        prop_assert_eq!(found.len(), failing);
        for finding in &found {
            prop_assert!(finding.message.starts_with("c::"), "{}", finding.message);
            prop_assert_eq!(finding.file.as_deref(), Some("tests/a.rs"));
        }
        let _ = parse(Format::Junit, &damaged(xml.as_bytes(), cut, &splice), &context);
    }

    #[test]
    fn sarif_logs_with_odd_members_are_refused_or_parsed(
        (count, typed, log) in sarif(),
        noise in json_value(),
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let context = SourceContext::default();
        match parse(Format::Sarif, log.to_string().as_bytes(), &context) {
            Ok(found) => {
                prop_assert_eq!(found.len(), count);
                for finding in &found {
                    prop_assert!(finding.line.is_none_or(|l| l >= 1), "{:?}", finding.line);
                }
            }
            Err(problem) => prop_assert!(!typed, "a well-typed log was refused: {}", problem),
        }
        let _ = parse(Format::Sarif, noise.to_string().as_bytes(), &context);
        for format in [Format::Sarif, Format::Junit, Format::Checkstyle] {
            let _ = parse(format, &bytes, &context);
        }
    }
}

/// The line text that goes into a fingerprint comes from inside the checkout only. (One checkout for every
/// case: building one per case cost more than the parse under test.)
#[test]
fn fingerprints_never_read_outside_the_checkout() {
    let base = tempfile::tempdir().unwrap();
    let checkout = base.path().join("checkout");
    std::fs::create_dir_all(checkout.join("src")).unwrap();
    std::fs::write(
        checkout.join("src/a.rs"),
        "fn inside() {}\nlet inside = 2;\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("../secret.txt", checkout.join("out")).unwrap();
    let context = SourceContext::checkout(&checkout);
    let segments = proptest::collection::vec(
        prop_oneof![
            Just(".."),
            Just("."),
            Just("src"),
            Just("a.rs"),
            Just("secret.txt"),
            Just("out"),
            Just("checkout"),
        ],
        1..5,
    );
    TestRunner::new(config())
        .run(&(segments, any::<bool>(), 1u32..3), |(segments, absolute, line)| {
            let mut path = segments.join("/");
            if absolute {
                path = format!("{}/{path}", checkout.display());
            }
            let report = format!(
                "<checkstyle><file name=\"{}\"><error line=\"{line}\" message=\"m\" source=\"r\"/></file></checkstyle>",
                escape(&path)
            );
            let fingerprint = |secret: &str| {
                std::fs::write(base.path().join("secret.txt"), secret).unwrap();
                parse(Format::Checkstyle, report.as_bytes(), &context).unwrap()[0]
                    .fingerprint
                    .clone()
            };
            prop_assert_eq!(
                fingerprint("SECRET ONE\nSECRET ONE\n"),
                fingerprint("SECRET TWO\nSECRET TWO\n"),
                "{} reads outside the checkout",
                path
            );
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
}
