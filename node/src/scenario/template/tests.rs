//! Unit tests of `scenario::template`.
use super::*;

fn refs(text: &str) -> Vec<VarRef> {
    Template::parse(text)
        .expect("parses")
        .refs()
        .cloned()
        .collect()
}

fn var(name: &str) -> VarRef {
    VarRef::Var(name.to_owned())
}

fn pool(pool: &str, column: &str) -> VarRef {
    VarRef::Pool {
        pool: pool.to_owned(),
        column: column.to_owned(),
    }
}

/// Asserts that `text` fails to parse with `message` at `offset`.
fn check_err(text: &str, offset: usize, message: &str) {
    let err = Template::parse(text).expect_err(text);
    assert_eq!(
        err,
        TemplateError {
            offset,
            message: message.to_owned()
        },
        "{text}"
    );
}

#[test]
fn text_without_placeholders_is_literal() {
    for text in ["", "/health", "{\"a\": {\"b\": 1}}", "a } b }} c {"] {
        let t = Template::parse(text).expect("parses");
        assert_eq!(t.as_literal(), Some(text));
        assert_eq!(t.source(), text);
        assert_eq!(t.refs().count(), 0);
        assert_eq!(t, Template::literal(text));
    }
}

#[test]
fn literal_constructor_does_not_parse() {
    let t = Template::literal("{{not a placeholder");
    assert_eq!(t.as_literal(), Some("{{not a placeholder"));
    assert_eq!(t.refs().count(), 0);
}

#[test]
fn variables_and_pool_refs_are_found_in_order() {
    let t = Template::parse("/users/{{users.id}}?t={{token}}&n={{ token }}").expect("parses");
    assert_eq!(t.as_literal(), None);
    assert_eq!(
        t.refs().cloned().collect::<Vec<_>>(),
        vec![pool("users", "id"), var("token"), var("token")]
    );
    assert_eq!(
        t.segments().collect::<Vec<_>>(),
        vec![
            Segment::Literal("/users/"),
            Segment::Ref(&pool("users", "id")),
            Segment::Literal("?t="),
            Segment::Ref(&var("token")),
            Segment::Literal("&n="),
            Segment::Ref(&var("token")),
        ]
    );
    assert_eq!(t.source(), "/users/{{users.id}}?t={{token}}&n={{ token }}");
}

#[test]
fn names_allow_underscores_digits_and_dashes() {
    assert_eq!(refs("{{_a-b_9}}"), vec![var("_a-b_9")]);
    assert_eq!(refs("{{my-pool.col_2}}"), vec![pool("my-pool", "col_2")]);
    assert_eq!(refs("{{\t token\n}}"), vec![var("token")]);
}

#[test]
fn builtins_parse() {
    assert_eq!(
        refs(
            "{{$uuid}}{{ $iteration }}{{$timestamp_ms}}{{$user}}{{$rand(1, 100)}}{{$rand( -5 ,-5 )}}"
        ),
        vec![
            VarRef::Builtin(Builtin::Uuid),
            VarRef::Builtin(Builtin::Iteration),
            VarRef::Builtin(Builtin::TimestampMs),
            VarRef::Builtin(Builtin::User),
            VarRef::Builtin(Builtin::RandInt(1, 100)),
            VarRef::Builtin(Builtin::RandInt(-5, -5)),
        ]
    );
}

#[test]
fn adjacent_placeholders_have_no_empty_literals() {
    let t = Template::parse("{{a}}{{b}}").expect("parses");
    assert_eq!(
        t.segments().collect::<Vec<_>>(),
        vec![Segment::Ref(&var("a")), Segment::Ref(&var("b"))]
    );
}

#[test]
fn display_is_canonical() {
    assert_eq!(var("token").to_string(), "token");
    assert_eq!(pool("users", "email").to_string(), "users.email");
    assert_eq!(
        VarRef::Builtin(Builtin::RandInt(1, 100)).to_string(),
        "$rand(1, 100)"
    );
    assert_eq!(Builtin::TimestampMs.to_string(), "$timestamp_ms");
}

#[test]
fn unclosed_placeholder_points_at_its_braces() {
    check_err("abc{{token", 3, "unclosed \"{{\"");
    check_err("{{a}} {{b} }", 6, "unclosed \"{{\"");
}

#[test]
fn empty_placeholder_points_at_its_braces() {
    check_err("x{{}}", 1, "empty \"{{}}\"");
    check_err("ab{{   }}", 2, "empty \"{{}}\"");
}

#[test]
fn bad_names_point_at_the_name() {
    let msg =
        |n: &str| format!("invalid name \"{n}\" (expected a variable, pool.column or $builtin)");
    check_err("/{{  9lives }}", 5, &msg("9lives"));
    check_err("{{a b}}", 2, &msg("a b"));
    check_err("{{a.b.c}}", 2, &msg("a.b.c"));
    check_err("{{.col}}", 2, &msg(".col"));
    check_err("{{pool.}}", 2, &msg("pool."));
    check_err("{{é}}", 2, &msg("é"));
}

#[test]
fn unknown_builtins_are_rejected() {
    let err = Template::parse("id={{$guid}}").expect_err("unknown");
    assert_eq!(err.offset, 5);
    assert_eq!(
        err.message,
        "unknown builtin \"$guid\" (expected $uuid, $rand(lo, hi), $iteration, $timestamp_ms or $user)"
    );
    assert!(
        Template::parse("{{$random(1, 2)}}")
            .expect_err("unknown")
            .message
            .starts_with("unknown builtin \"$random(1, 2)\"")
    );
    assert!(
        Template::parse("{{$}}")
            .expect_err("unknown")
            .message
            .starts_with("unknown builtin \"$\"")
    );
}

#[test]
fn bad_rand_arguments_are_rejected() {
    let msg =
        |t: &str| format!("invalid arguments in \"{t}\" (expected $rand(lo, hi) with integers)");
    check_err("{{$rand}}", 2, &msg("$rand"));
    check_err("{{ $rand(1) }}", 3, &msg("$rand(1)"));
    check_err("{{$rand(1, 2}}", 2, &msg("$rand(1, 2"));
    check_err("{{$rand(a, 2)}}", 2, &msg("$rand(a, 2)"));
    check_err("{{$rand(1, 2, 3)}}", 2, &msg("$rand(1, 2, 3)"));
    check_err("{{$rand(1.5, 2)}}", 2, &msg("$rand(1.5, 2)"));
    check_err(
        "{{$rand(10, 1)}}",
        2,
        "$rand lower bound 10 is greater than upper bound 1",
    );
}

#[test]
fn error_display_names_the_offset() {
    let err = Template::parse("abc{{").expect_err("unclosed");
    assert_eq!(err.to_string(), "unclosed \"{{\" at offset 3");
}
