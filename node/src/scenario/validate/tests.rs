//! Base URLs, the `--target` override and string-offset mapping.

use std::path::Path;

use super::*;

fn url(text: &str) -> (Scheme, String, u16, String) {
    parse_base_url(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn url_error(text: &str) -> String {
    match parse_base_url(text) {
        Ok(parts) => panic!("{text} parsed as {parts:?}"),
        Err(e) => e,
    }
}

#[test]
fn base_urls_with_ports_paths_and_ipv6() {
    let cases: &[(&str, Scheme, &str, u16, &str)] = &[
        ("http://127.0.0.1:8080", Scheme::Http, "127.0.0.1", 8080, ""),
        ("http://example.com", Scheme::Http, "example.com", 80, ""),
        ("https://example.com", Scheme::Https, "example.com", 443, ""),
        (
            "HTTPS://Example.com:8443/",
            Scheme::Https,
            "Example.com",
            8443,
            "",
        ),
        ("http://h/api/v1/", Scheme::Http, "h", 80, "/api/v1"),
        ("http://h:1/a", Scheme::Http, "h", 1, "/a"),
        ("http://[::1]:8080/x", Scheme::Http, "::1", 8080, "/x"),
        (
            "https://[2001:db8::2]",
            Scheme::Https,
            "2001:db8::2",
            443,
            "",
        ),
    ];
    for (text, scheme, host, port, path) in cases {
        let parsed = url(text);
        assert_eq!(
            parsed,
            (*scheme, (*host).to_owned(), *port, (*path).to_owned()),
            "{text}"
        );
    }
}

#[test]
fn bad_base_urls_say_why() {
    for (text, message) in [
        (
            "localhost:8080",
            "`localhost:8080` has no scheme: write e.g. http://localhost:8080",
        ),
        (
            "ftp://h",
            "unsupported scheme `ftp`: expected http or https",
        ),
        ("http://", "`http://` has no host"),
        ("http://:80", "`http://:80` has no host"),
        (
            "http://h:0",
            "invalid port `0`: expected a number from 1 to 65535",
        ),
        (
            "http://h:",
            "invalid port ``: expected a number from 1 to 65535",
        ),
        (
            "http://h:http",
            "invalid port `http`: expected a number from 1 to 65535",
        ),
        (
            "http://::1:8080",
            "IPv6 addresses must be in brackets, e.g. http://[::1]:8080",
        ),
        (
            "http://[::1",
            "unclosed `[` in `[::1`: write IPv6 hosts as [::1]",
        ),
        ("http://[nope]:80", "invalid IPv6 address `nope`"),
        ("http://[::1]x", "unexpected `x` after the IPv6 address"),
        (
            "http://h/?q=1",
            "a base URL cannot have a query or fragment; put query strings in request paths",
        ),
        (
            "http://u:p@h",
            "credentials in the base URL are not supported; send an authorization header instead",
        ),
        ("http://h h", "`http://h h` contains whitespace"),
        ("http://h%20", "invalid host `h%20`"),
    ] {
        assert_eq!(url_error(text), message, "{text}");
    }
}

fn scenario() -> Scenario {
    crate::scenario::parse(
        "[target]\nbase_url = \"http://127.0.0.1:8080/api\"\nheaders = { a = \"b\" }\nhttp2 = true\n\
         [load]\nmodel = \"open\"\nrate = 1\nduration = \"1s\"\n[[request]]\npath = \"/\"\n",
        Path::new("t.toml"),
        Path::new("."),
    )
    .expect("valid")
}

#[test]
fn with_target_replaces_the_whole_base_url_only() {
    let s = scenario().with_target("https://[::1]:9443").expect("valid");
    let t = &s.target;
    assert_eq!(t.origin, "https://[::1]:9443");
    assert_eq!(t.scheme, Scheme::Https);
    assert_eq!((t.host.as_str(), t.port), ("::1", 9443));
    assert_eq!(t.base_path, "");
    assert!(t.http2);
    assert_eq!(t.headers.len(), 1);

    let s = scenario()
        .with_target("http://10.0.0.7/v2/")
        .expect("valid");
    assert_eq!(s.target.origin, "http://10.0.0.7");
    assert_eq!(s.target.port, 80);
    assert_eq!(s.target.base_path, "/v2");
}

#[test]
fn with_target_rejects_bad_urls() {
    assert_eq!(
        scenario().with_target("ws://h").err().as_deref(),
        Some("unsupported scheme `ws`: expected http or https")
    );
}

#[test]
fn origins_omit_default_ports() {
    assert_eq!(origin(Scheme::Http, "h", 80), "http://h");
    assert_eq!(origin(Scheme::Http, "h", 443), "http://h:443");
    assert_eq!(origin(Scheme::Https, "h", 443), "https://h");
    assert_eq!(
        origin(Scheme::Https, "fe80::1", 8443),
        "https://[fe80::1]:8443"
    );
}

#[test]
fn decoded_offsets_map_back_to_the_source() {
    // Basic string with escapes: `\t` is one decoded byte, `\u00e9` two.
    let text = r#"x = "a\t\u00e9{{""#;
    let span = 4..text.len();
    assert_eq!(&text[source_offset(text, &span, 0)..][..1], "a");
    assert_eq!(&text[source_offset(text, &span, 2)..][..2], r"\u");
    assert_eq!(&text[source_offset(text, &span, 4)..][..2], "{{");
    // Literal strings have no escapes.
    let text = "x = 'a\\t{{'";
    let span = 4..text.len();
    assert_eq!(&text[source_offset(text, &span, 3)..][..2], "{{");
    // Multi-line strings drop the newline right after the opening quotes.
    let text = "x = \"\"\"\nab{{\"\"\"";
    let span = 4..text.len();
    assert_eq!(&text[source_offset(text, &span, 2)..][..2], "{{");
    // A line-ending backslash swallows the newline and indentation.
    let text = "x = \"\"\"\na\\\n   b{{\"\"\"";
    let span = 4..text.len();
    assert_eq!(&text[source_offset(text, &span, 2)..][..2], "{{");
}
