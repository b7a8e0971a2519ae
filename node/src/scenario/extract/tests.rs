//! Unit tests of `scenario::extract`.
use crate::scenario::check::{Check, run_checks};

use super::*;

const BODY: &str = r#"{"token":"abc","n":42,"ok":true,"none":null,"user":{"id":7,"tags":["a","b"]},"html":"id=123; id=456"}"#;

/// Extracts with `extractor` from a 200 response with `body` and one header.
fn extract(extractor: &Extractor, body: &[u8]) -> Option<String> {
    let mut map = http::HeaderMap::new();
    map.append("x-token", http::HeaderValue::from_static("t1"));
    map.append("x-token", http::HeaderValue::from_static("t2"));
    map.append(
        "x-bin",
        http::HeaderValue::from_bytes(b"caf\xe9").expect("opaque header value"),
    );
    extractor.extract(&ResponseView::new(200, &map, body))
}

fn json(pointer: &str) -> Extractor {
    Extractor::json(pointer).expect("valid pointer")
}

#[test]
fn json_values_extract_as_text() {
    let body = BODY.as_bytes();
    assert_eq!(extract(&json("/token"), body).as_deref(), Some("abc"));
    assert_eq!(extract(&json("/n"), body).as_deref(), Some("42"));
    assert_eq!(extract(&json("/ok"), body).as_deref(), Some("true"));
    assert_eq!(extract(&json("/user/id"), body).as_deref(), Some("7"));
    assert_eq!(extract(&json("/user/tags/1"), body).as_deref(), Some("b"));
    assert_eq!(
        extract(&json("/user"), body).as_deref(),
        Some(r#"{"id":7,"tags":["a","b"]}"#)
    );
    assert_eq!(
        extract(&json("/user/tags"), body).as_deref(),
        Some(r#"["a","b"]"#)
    );
}

#[test]
fn json_missing_null_and_non_json_extract_nothing() {
    assert_eq!(extract(&json("/missing"), BODY.as_bytes()), None);
    assert_eq!(extract(&json("/none"), BODY.as_bytes()), None);
    assert_eq!(extract(&json("/token"), b"<html>token</html>"), None);
    assert_eq!(extract(&json("/token"), b""), None);
}

#[test]
fn json_pointer_is_validated() {
    assert_eq!(
        Extractor::json("").map(|e| e.describe()),
        Ok("json ".to_owned())
    );
    let err = Extractor::json("token").expect_err("no leading slash");
    assert!(err.starts_with("invalid json pointer \"token\""), "{err}");
}

#[test]
fn header_takes_the_first_value() {
    let x = Extractor::header("X-Token").expect("valid name");
    assert_eq!(x, Extractor::Header("x-token".to_owned()));
    assert_eq!(extract(&x, b""), Some("t1".to_owned()));
    let bin = Extractor::header("x-bin").expect("valid name");
    assert_eq!(extract(&bin, b"").as_deref(), Some("caf\u{fffd}"));
}

#[test]
fn missing_header_extracts_nothing() {
    let x = Extractor::header("x-missing").expect("valid name");
    assert_eq!(extract(&x, BODY.as_bytes()), None);
}

#[test]
fn header_name_is_validated() {
    assert_eq!(
        Extractor::header("bad name"),
        Err("invalid header name \"bad name\"".to_owned())
    );
    assert!(Extractor::header("").is_err());
}

#[test]
fn regex_with_a_group_takes_group_one() {
    let x = Extractor::regex(r"id=(\d+)").expect("valid regex");
    assert!(matches!(x, Extractor::Regex { group: 1, .. }));
    assert_eq!(extract(&x, BODY.as_bytes()).as_deref(), Some("123"));
}

#[test]
fn regex_without_a_group_takes_the_whole_match() {
    let x = Extractor::regex(r"id=\d+").expect("valid regex");
    assert!(matches!(x, Extractor::Regex { group: 0, .. }));
    assert_eq!(extract(&x, BODY.as_bytes()).as_deref(), Some("id=123"));
}

#[test]
fn regex_over_invalid_utf8_and_no_match() {
    let x = Extractor::regex(r"id=(\d+)").expect("valid regex");
    assert_eq!(extract(&x, b"\xff\xfe id=9 \xff").as_deref(), Some("9"));
    assert_eq!(extract(&x, b"nothing here"), None);
    let optional = Extractor::regex(r"a(b)?").expect("valid regex");
    assert_eq!(
        extract(&optional, b"ac"),
        None,
        "unmatched group yields nothing"
    );
}

#[test]
fn regex_compile_errors_are_reported() {
    let err = Extractor::regex(r"id=(\d+").expect_err("unclosed group");
    assert!(err.starts_with("invalid regex: "), "{err}");
    assert!(err.contains("unclosed group"), "{err}");
}

#[test]
fn describe_names_the_source() {
    assert_eq!(json("/token").describe(), "json /token");
    assert_eq!(
        Extractor::header("x-token").expect("valid").describe(),
        "header x-token"
    );
    assert_eq!(
        Extractor::regex(r"id=(\d+)").expect("valid").describe(),
        r"regex id=(\d+)"
    );
}

#[test]
fn equality_compares_regex_patterns() {
    let a = Extractor::regex("a(b)").expect("valid");
    assert_eq!(a, Extractor::regex("a(b)").expect("valid"));
    assert_ne!(a, Extractor::regex("a(c)").expect("valid"));
    assert_ne!(json("/a"), Extractor::Header("/a".to_owned()));
    assert_eq!(json("/a"), json("/a"));
}

#[test]
fn checks_and_extraction_share_one_parse() {
    let map = http::HeaderMap::new();
    let view = ResponseView::new(200, &map, BODY.as_bytes());
    let checks = [Check::JsonEquals {
        pointer: "/n".to_owned(),
        expected: serde_json::json!(42),
    }];
    assert_eq!(run_checks(&checks, &view), Ok(()));
    let parsed: *const serde_json::Value = view.json().expect("parsed by the check");
    assert_eq!(json("/token").extract(&view).as_deref(), Some("abc"));
    let after: *const serde_json::Value = view.json().expect("still parsed");
    assert_eq!(parsed, after, "extraction reused the check's parse");
}
