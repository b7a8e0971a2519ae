//! Unit tests of `scenario::check`.
use serde_json::json;

use super::*;

fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, http::HeaderValue::from_static(value));
    }
    map
}

/// Runs `checks` against a response and returns the failure reason, if any.
fn run(checks: &[Check], status: u16, body: &str) -> Result<(), ErrorKind> {
    let map = headers(&[("x-request-id", "abc")]);
    run_checks(checks, &ResponseView::new(status, &map, body.as_bytes()))
}

fn reason(text: &str) -> Result<(), ErrorKind> {
    Err(ErrorKind::Check(text.to_owned()))
}

fn json_eq_check(pointer: &str, expected: serde_json::Value) -> Vec<Check> {
    vec![Check::JsonEquals {
        pointer: pointer.to_owned(),
        expected,
    }]
}

#[test]
fn no_checks_fail_only_on_error_statuses() {
    assert_eq!(run(&[], 200, ""), Ok(()));
    assert_eq!(run(&[], 302, ""), Ok(()));
    assert_eq!(run(&[], 399, ""), Ok(()));
    assert_eq!(run(&[], 400, ""), Err(ErrorKind::Status(400)));
    assert_eq!(run(&[], 503, ""), Err(ErrorKind::Status(503)));
}

#[test]
fn status_check_with_one_code() {
    let checks = [Check::Status(vec![200])];
    assert_eq!(run(&checks, 200, ""), Ok(()));
    assert_eq!(run(&checks, 503, ""), reason("status 503 expected 200"));
    // An explicit status check replaces the default: 404 may be what we want.
    assert_eq!(run(&[Check::Status(vec![404])], 404, ""), Ok(()));
}

#[test]
fn status_check_with_a_set() {
    let checks = [Check::Status(vec![200, 201])];
    assert_eq!(run(&checks, 201, ""), Ok(()));
    assert_eq!(
        run(&checks, 404, ""),
        reason("status 404 expected one of 200, 201")
    );
}

#[test]
fn empty_status_set_means_below_400() {
    let checks = [Check::Status(vec![])];
    assert_eq!(run(&checks, 204, ""), Ok(()));
    assert_eq!(run(&checks, 500, ""), reason("status 500 expected < 400"));
}

#[test]
fn body_contains() {
    let checks = [Check::BodyContains("ok".to_owned())];
    assert_eq!(run(&checks, 200, "{\"status\":\"ok\"}"), Ok(()));
    assert_eq!(
        run(&checks, 200, "fine"),
        reason("body does not contain \"ok\"")
    );
    assert_eq!(
        run(&checks, 200, ""),
        reason("body does not contain \"ok\"")
    );
    assert_eq!(run(&[Check::BodyContains(String::new())], 200, ""), Ok(()));
}

#[test]
fn json_equals_passes_on_equal_values() {
    assert_eq!(
        run(
            &json_eq_check("/status", json!("ok")),
            200,
            r#"{"status":"ok"}"#
        ),
        Ok(())
    );
    assert_eq!(
        run(
            &json_eq_check("/user/id", json!(7)),
            200,
            r#"{"user":{"id":7}}"#
        ),
        Ok(())
    );
    assert_eq!(
        run(&json_eq_check("/n", json!(1)), 200, r#"{"n":1.0}"#),
        Ok(()),
        "numbers compare by value"
    );
    assert_eq!(
        run(
            &json_eq_check("/items/1", json!({"a": [true]})),
            200,
            r#"{"items":[0,{"a":[true]}]}"#
        ),
        Ok(())
    );
    assert_eq!(
        run(&json_eq_check("", json!([1, 2])), 200, "[1, 2]"),
        Ok(())
    );
}

#[test]
fn json_equals_reports_the_actual_value() {
    assert_eq!(
        run(
            &json_eq_check("/status", json!("ok")),
            200,
            r#"{"status":"down"}"#
        ),
        reason("json /status is \"down\" expected \"ok\"")
    );
    assert_eq!(
        run(&json_eq_check("/n", json!(1)), 200, r#"{"n":"1"}"#),
        reason("json /n is \"1\" expected 1")
    );
}

#[test]
fn json_equals_truncates_long_actual_values() {
    let long = "x".repeat(100);
    let body = format!(r#"{{"status":"{long}"}}"#);
    let expected = format!("json /status is \"{}… expected \"ok\"", "x".repeat(39));
    assert_eq!(
        run(&json_eq_check("/status", json!("ok")), 200, &body),
        reason(&expected)
    );
}

#[test]
fn json_equals_missing_and_not_json() {
    assert_eq!(
        run(
            &json_eq_check("/status", json!("ok")),
            200,
            r#"{"state":"ok"}"#
        ),
        reason("json /status missing expected \"ok\"")
    );
    assert_eq!(
        run(
            &json_eq_check("/status", json!("ok")),
            200,
            "<html>ok</html>"
        ),
        reason("body is not json (json /status expected \"ok\")")
    );
    assert_eq!(
        run(&json_eq_check("/status", json!("ok")), 200, ""),
        reason("body is not json (json /status expected \"ok\")")
    );
}

#[test]
fn header_present() {
    assert_eq!(
        run(&[Check::HeaderPresent("x-request-id".to_owned())], 200, ""),
        Ok(())
    );
    assert_eq!(
        run(&[Check::HeaderPresent("x-trace".to_owned())], 200, ""),
        reason("header x-trace missing")
    );
}

#[test]
fn first_failure_wins() {
    let checks = [
        Check::Status(vec![200]),
        Check::BodyContains("ok".to_owned()),
        Check::HeaderPresent("x-trace".to_owned()),
    ];
    assert_eq!(run(&checks, 200, "ok"), reason("header x-trace missing"));
    assert_eq!(
        run(&checks, 200, "no"),
        reason("body does not contain \"ok\"")
    );
    assert_eq!(run(&checks, 500, "no"), reason("status 500 expected 200"));
}

#[test]
fn json_is_parsed_lazily_and_cached() {
    let map = http::HeaderMap::new();
    let view = ResponseView::new(200, &map, br#"{"a":1}"#);
    assert!(view.json.get().is_none(), "nothing parsed before use");
    let first: *const serde_json::Value = view.json().expect("json");
    let second: *const serde_json::Value = view.json().expect("json");
    assert_eq!(first, second, "the same parsed value is returned");
    assert_eq!(view.status(), 200);
    assert_eq!(view.body(), br#"{"a":1}"#);
    assert!(view.headers().is_empty());

    let not_json = ResponseView::new(200, &map, b"{oops");
    assert_eq!(not_json.json(), None);
    assert_eq!(
        not_json.json.get(),
        Some(&None),
        "the failed parse is cached too"
    );
}

#[test]
fn pointers_are_validated() {
    assert_eq!(validate_pointer(""), Ok(()));
    assert_eq!(validate_pointer("/a~0b/c~1d/0"), Ok(()));
    assert_eq!(
        validate_pointer("token"),
        Err(
            "invalid json pointer \"token\": it must be empty or start with \"/\" (try \"/token\")"
                .to_owned()
        )
    );
    assert_eq!(
        validate_pointer("/a~2"),
        Err("invalid json pointer \"/a~2\": \"~\" must be followed by 0 or 1".to_owned())
    );
    assert!(validate_pointer("/a~").is_err());
}

#[test]
fn truncate_respects_char_boundaries() {
    assert_eq!(truncate("héllo", 2), "hé…");
    assert_eq!(truncate("héllo", 5), "héllo");
}
