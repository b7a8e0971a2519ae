//! Tests of `junit.xml`: counts, failures with actual values, the
//! no-threshold case, escaping, and well-formedness (checked by a minimal
//! XML reader here; the integration tests validate against the schema).

use bfgg_protocol::summary::{AgentSummary, RunSummary, ThresholdResult};

use super::*;

/// A minimal well-formedness check: one root, balanced and properly nested
/// tags, quoted and unique attributes, only the five predefined entities
/// or character references, no raw `<` or `&` in text or values. Returns
/// the element names in document order.
fn well_formed(xml: &str) -> Result<Vec<String>, String> {
    fn check_text(t: &str) -> Result<(), String> {
        if t.contains('<') {
            return Err(format!("raw < in {t:?}"));
        }
        let mut rest = t;
        while let Some(i) = rest.find('&') {
            let tail = &rest[i + 1..];
            let end = tail
                .find(';')
                .ok_or_else(|| format!("unterminated & in {t:?}"))?;
            let entity = &tail[..end];
            let ok = matches!(entity, "amp" | "lt" | "gt" | "quot" | "apos")
                || entity
                    .strip_prefix('#')
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            if !ok {
                return Err(format!("bad entity &{entity};"));
            }
            rest = &tail[end + 1..];
        }
        if t.chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        {
            return Err(format!("control character in {t:?}"));
        }
        Ok(())
    }
    let is_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
    };
    let body = xml
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
        .ok_or("no XML declaration")?;
    let mut stack: Vec<String> = Vec::new();
    let mut names = Vec::new();
    let mut roots = 0;
    let mut rest = body;
    while !rest.is_empty() {
        let lt = rest.find('<').unwrap_or(rest.len());
        let text = &rest[..lt];
        if stack.is_empty() && !text.trim().is_empty() {
            return Err(format!("text outside the root: {text:?}"));
        }
        check_text(text)?;
        rest = &rest[lt..];
        if rest.is_empty() {
            break;
        }
        let gt = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or("close without open")?;
            if open != name.trim() {
                return Err(format!("</{name}> closes <{open}>"));
            }
            continue;
        }
        let (tag, empty) = match tag.strip_suffix('/') {
            Some(t) => (t, true),
            None => (tag, false),
        };
        let name_end = tag.find(char::is_whitespace).unwrap_or(tag.len());
        let name = &tag[..name_end];
        if !is_name(name) {
            return Err(format!("bad element name {name:?}"));
        }
        let mut attrs = tag[name_end..].trim();
        let mut seen = Vec::new();
        while !attrs.is_empty() {
            let eq = attrs.find('=').ok_or("attribute without value")?;
            let key = attrs[..eq].trim();
            if !is_name(key) || seen.contains(&key) {
                return Err(format!("bad or repeated attribute {key:?}"));
            }
            seen.push(key);
            let value = attrs[eq + 1..].trim_start();
            let value = value.strip_prefix('"').ok_or("unquoted attribute")?;
            let close = value.find('"').ok_or("unterminated attribute")?;
            check_text(&value[..close])?;
            attrs = value[close + 1..].trim_start();
        }
        if stack.is_empty() {
            roots += 1;
        }
        names.push(name.to_string());
        if !empty {
            stack.push(name.to_string());
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed {stack:?}"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(names)
}

fn summary() -> RunSummary {
    RunSummary {
        scenario: "checkout".into(),
        engine: "native".into(),
        model: "open".into(),
        target: "http://127.0.0.1:8080".into(),
        started_at_ms: 1_795_444_895_000,
        duration_s: 30.5,
        ..RunSummary::default()
    }
}

#[test]
fn one_testcase_per_threshold_with_failures_and_actual_values() {
    let mut s = summary();
    s.thresholds = vec![
        ThresholdResult {
            expression: "p99 < 250ms".into(),
            passed: false,
            actual: 312.5,
        },
        ThresholdResult {
            expression: "error_rate < 1%".into(),
            passed: true,
            actual: 0.001,
        },
    ];
    let xml = render_junit(&s);
    let names = well_formed(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert_eq!(names.iter().filter(|n| *n == "testcase").count(), 2);
    assert_eq!(names.iter().filter(|n| *n == "failure").count(), 1);
    assert!(xml.contains(
        "<testsuite name=\"bfgg: checkout\" tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\" time=\"30.500\" timestamp=\"2026-11-23T14:41:35\">"
    ), "{xml}");
    assert!(xml.contains(
        "<testcase classname=\"bfgg.thresholds\" name=\"p99 &lt; 250ms\" time=\"30.500\">\n    <failure message=\"p99 &lt; 250ms failed: actual 312.5 ms\" type=\"threshold\">actual value 312.5 ms (threshold: p99 &lt; 250ms)</failure>"
    ), "{xml}");
    assert!(xml.contains(
        "<testcase classname=\"bfgg.thresholds\" name=\"error_rate &lt; 1%\" time=\"30.500\"/>"
    ));
}

#[test]
fn a_run_without_thresholds_is_one_case_that_fails_only_when_partial() {
    let mut s = summary();
    let xml = render_junit(&s);
    well_formed(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert!(xml.contains("tests=\"1\" failures=\"0\""), "{xml}");
    assert!(xml.contains("name=\"run completed\" time=\"30.500\"/>"));
    s.stopped_early = true;
    s.stop_reason = Some("stopped by the user".into());
    assert!(
        render_junit(&s).contains("failures=\"0\""),
        "a stop is no failure"
    );
    s.partial = true;
    s.agents = vec![AgentSummary {
        name: "agent-2".into(),
        status: "lost".into(),
        ..AgentSummary::default()
    }];
    let xml = render_junit(&s);
    well_formed(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert!(xml.contains("tests=\"1\" failures=\"1\""), "{xml}");
    assert!(xml.contains(
        "<failure message=\"partial results: agent agent-2 lost; stopped early: stopped by the user\" type=\"partial\">"
    ), "{xml}");
}

#[test]
fn everything_is_escaped() {
    let evil = "<x a=\"1\">&amp;'\u{1}]]></x>";
    let mut s = summary();
    s.scenario = evil.into();
    s.target = evil.into();
    s.stop_reason = Some(evil.into());
    s.thresholds = vec![ThresholdResult {
        expression: format!("p99[{evil}] < 1ms"),
        passed: false,
        actual: f64::NAN,
    }];
    let xml = render_junit(&s);
    well_formed(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert!(
        xml.contains(
            "name=\"bfgg: &lt;x a=&quot;1&quot;&gt;&amp;amp;&#39;\u{FFFD}]]&gt;&lt;/x&gt;\""
        ),
        "{xml}"
    );
    assert!(xml.contains("actual none"), "{xml}");
}

#[test]
fn the_checker_rejects_broken_xml() {
    let decl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
    for bad in [
        "<a><b></a></b>",
        "<a x=\"<\"/>",
        "<a>&nbsp;</a>",
        "<a/><b/>",
        "<a x=1/>",
        "<a x=\"1\" x=\"2\"/>",
        "<a>",
        "<a>\u{1}</a>",
    ] {
        assert!(well_formed(&format!("{decl}{bad}")).is_err(), "{bad}");
    }
    assert!(well_formed(&format!("{decl}<a x=\"&#10;\"><b/>t&amp;</a>\n")).is_ok());
}

#[test]
fn write_junit_writes_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_junit(dir.path(), &summary()).expect("write");
    let text = std::fs::read_to_string(dir.path().join(JUNIT_FILE)).expect("read");
    assert_eq!(text, render_junit(&summary()));
    assert!(!dir.path().join(".junit.xml.tmp").exists());
}
