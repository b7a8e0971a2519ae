//! Unit tests of `scenario::context`.
use std::collections::BTreeSet;

use super::*;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A pool of `n` rows: `id` is the row index, `email` is `u{index}@x.io`.
fn users(n: usize, strategy: Strategy, on_exhausted: OnExhausted) -> PoolSpec {
    PoolSpec::from_rows(
        "users",
        strings(&["id", "email"]),
        (0..n)
            .map(|i| vec![i.to_string(), format!("u{i}@x.io")])
            .collect(),
        strategy,
        on_exhausted,
    )
    .expect("valid rows")
}

fn render(ctx: &mut IterationContext, pools: &mut Pools, text: &str) -> Result<String, ErrorKind> {
    let t = Template::parse(text).expect("parses");
    let mut out = String::new();
    ctx.render(&t, pools, &mut out)?;
    Ok(out)
}

fn no_pools() -> Pools {
    Pools::new(&[], 0, 1)
}

#[test]
fn literal_renders_verbatim_and_appends() {
    let mut ctx = IterationContext::new(1, 1);
    let mut out = String::from("GET ");
    ctx.render(&Template::literal("/a{{b}}"), &mut no_pools(), &mut out)
        .expect("literal");
    assert_eq!(out, "GET /a{{b}}");
}

#[test]
fn variables_render_and_reset_each_iteration() {
    let mut ctx = IterationContext::new(1, 1);
    let mut pools = no_pools();
    ctx.begin(0);
    ctx.set_var("token", "abc".to_owned());
    ctx.set_var("id", "1".to_owned());
    ctx.set_var("id", "2".to_owned());
    assert_eq!(ctx.var("token"), Some("abc"));
    assert_eq!(
        render(&mut ctx, &mut pools, "Bearer {{ token }}/{{id}}").as_deref(),
        Ok("Bearer abc/2")
    );
    ctx.begin(1);
    assert_eq!(ctx.var("token"), None);
    assert_eq!(
        render(&mut ctx, &mut pools, "Bearer {{token}}"),
        Err(ErrorKind::Extract("no value for {{token}}".to_owned()))
    );
}

#[test]
fn missing_variable_error_names_the_placeholder() {
    let mut ctx = IterationContext::new(1, 1);
    let err = render(&mut ctx, &mut no_pools(), "/x/{{session-id}}").expect_err("unset");
    assert_eq!(
        err,
        ErrorKind::Extract("no value for {{session-id}}".to_owned())
    );
    assert_eq!(
        err.to_string(),
        "extract failed: no value for {{session-id}}"
    );
}

#[test]
fn pool_row_is_picked_once_per_iteration() {
    let specs = [users(3, Strategy::Circular, OnExhausted::Stop)];
    let mut pools = Pools::new(&specs, 0, 1);
    let mut ctx = IterationContext::new(1, 1);
    let mut rendered = Vec::new();
    for iteration in 0..4 {
        ctx.begin(iteration);
        let out = render(&mut ctx, &mut pools, "{{users.id}}:{{users.email}}").expect("renders");
        // A second template in the same iteration sees the same row.
        assert_eq!(
            render(&mut ctx, &mut pools, "{{users.id}}").expect("renders"),
            out[..1]
        );
        rendered.push(out);
    }
    assert_eq!(
        rendered,
        ["0:u0@x.io", "1:u1@x.io", "2:u2@x.io", "0:u0@x.io"]
    );
    assert_eq!(pools.cursors()[0].used(), 4);
}

#[test]
fn unknown_pool_or_column_has_no_value() {
    let specs = [users(3, Strategy::Circular, OnExhausted::Stop)];
    let mut pools = Pools::new(&specs, 0, 1);
    let mut ctx = IterationContext::new(1, 1);
    assert_eq!(
        render(&mut ctx, &mut pools, "{{users.phone}}"),
        Err(ErrorKind::Extract(
            "no value for {{users.phone}}".to_owned()
        ))
    );
    assert_eq!(
        render(&mut ctx, &mut pools, "{{orders.id}}"),
        Err(ErrorKind::Extract("no value for {{orders.id}}".to_owned()))
    );
    assert!(matches!(ctx.row(5, &mut pools), Err(ErrorKind::Extract(_))));
}

#[test]
fn unique_stop_pool_reports_exhaustion() {
    let specs = [users(2, Strategy::Unique, OnExhausted::Stop)];
    let mut pools = Pools::new(&specs, 0, 1);
    let mut ctx = IterationContext::new(1, 1);
    for iteration in 0..2 {
        ctx.begin(iteration);
        render(&mut ctx, &mut pools, "{{users.id}}").expect("rows left");
        assert_eq!(pools.exhausted(), None);
    }
    ctx.begin(2);
    assert_eq!(
        render(&mut ctx, &mut pools, "{{users.id}}"),
        Err(ErrorKind::DataExhausted("users".to_owned()))
    );
    assert_eq!(pools.exhausted(), Some("users"));
    assert_eq!(pools.cursors()[0].used(), 2);
}

#[test]
fn unique_skip_pool_errors_without_stopping() {
    let specs = [users(1, Strategy::Unique, OnExhausted::Skip)];
    let mut pools = Pools::new(&specs, 0, 1);
    let mut ctx = IterationContext::new(1, 1);
    ctx.begin(0);
    assert_eq!(
        render(&mut ctx, &mut pools, "{{users.id}}").as_deref(),
        Ok("0")
    );
    ctx.begin(1);
    assert_eq!(
        render(&mut ctx, &mut pools, "{{users.id}}"),
        Err(ErrorKind::DataExhausted("users".to_owned()))
    );
    assert_eq!(pools.exhausted(), None);
}

#[test]
fn pools_partition_unique_pools_only() {
    let specs = [
        users(10, Strategy::Unique, OnExhausted::Stop),
        users(10, Strategy::Circular, OnExhausted::Stop),
        users(10, Strategy::Random, OnExhausted::Stop),
    ];
    let workers: Vec<_> = (0..4).map(|w| Pools::new(&specs, w, 4)).collect();
    let unique_lens: Vec<_> = workers
        .iter()
        .map(|p| p.cursors()[0].spec().len())
        .collect();
    assert_eq!(unique_lens, [3, 3, 2, 2]);
    for pools in &workers {
        assert_eq!(pools.cursors()[1].spec().len(), 10);
        assert_eq!(pools.cursors()[2].spec().len(), 10);
        assert_eq!(pools.len(), 3);
        assert_eq!(pools.index_of("users"), Some(0));
    }

    // Unique rows never repeat across workers, and all are handed out.
    let mut seen = Vec::new();
    for (w, mut pools) in workers.into_iter().enumerate() {
        let mut ctx = IterationContext::new(w as u64, w as u64);
        while let Ok(row) = ctx.row(0, &mut pools) {
            seen.push(row);
            ctx.begin(0);
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
}

#[test]
fn circular_pools_start_spread_across_workers() {
    let specs = [users(10, Strategy::Circular, OnExhausted::Stop)];
    let firsts: Vec<_> = (0..4)
        .map(|w| {
            let mut pools = Pools::new(&specs, w, 4);
            IterationContext::new(0, 0)
                .row(0, &mut pools)
                .expect("circular never runs out")
        })
        .collect();
    assert_eq!(firsts, [0, 2, 5, 7]);
}

#[test]
fn random_pool_rows_stay_in_range() {
    let specs = [users(5, Strategy::Random, OnExhausted::Stop)];
    let mut pools = Pools::new(&specs, 1, 2);
    let mut ctx = IterationContext::new(0, 42);
    let mut seen = BTreeSet::new();
    for i in 0..200 {
        ctx.begin(i);
        let id: usize = render(&mut ctx, &mut pools, "{{users.id}}")
            .expect("renders")
            .parse()
            .expect("number");
        seen.insert(id);
    }
    assert_eq!(seen, (0..5).collect());
}

#[test]
fn builtins_render() {
    let mut ctx = IterationContext::new(17, 3);
    let mut pools = no_pools();
    ctx.begin(42);
    assert_eq!(ctx.iteration(), 42);
    assert_eq!(ctx.user(), 17);
    assert_eq!(
        render(&mut ctx, &mut pools, "u{{$user}}-i{{$iteration}}").as_deref(),
        Ok("u17-i42")
    );
    assert_eq!(
        render(&mut ctx, &mut pools, "{{$rand(5, 5)}}").as_deref(),
        Ok("5")
    );
    for _ in 0..200 {
        let n: i64 = render(&mut ctx, &mut pools, "{{$rand(-3, 3)}}")
            .expect("renders")
            .parse()
            .expect("integer");
        assert!((-3..=3).contains(&n), "{n}");
    }
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after epoch")
        .as_millis();
    let ms: u128 = render(&mut ctx, &mut pools, "{{$timestamp_ms}}")
        .expect("renders")
        .parse()
        .expect("integer");
    assert!(ms >= before && ms < before + 60_000, "{ms} vs {before}");
}

#[test]
fn uuids_are_v4_and_distinct() {
    let mut ctx = IterationContext::new(0, 9);
    let mut pools = no_pools();
    let mut seen = BTreeSet::new();
    for _ in 0..100 {
        let id = render(&mut ctx, &mut pools, "{{$uuid}}").expect("renders");
        assert_eq!(id.len(), 36, "{id}");
        let groups: Vec<_> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
        assert!(
            id.chars()
                .all(|c| c == '-' || matches!(c, '0'..='9' | 'a'..='f')),
            "{id}"
        );
        assert_eq!(&id[14..15], "4", "version nibble of {id}");
        assert!(
            matches!(&id[19..20], "8" | "9" | "a" | "b"),
            "variant of {id}"
        );
        seen.insert(id);
    }
    assert_eq!(seen.len(), 100);
}

#[test]
fn same_seed_same_randomness() {
    let mut pools = no_pools();
    let mut a = IterationContext::new(0, 5);
    let mut b = IterationContext::new(1, 5);
    let text = "{{$uuid}} {{$rand(0, 1000000)}}";
    assert_eq!(
        render(&mut a, &mut pools, text),
        render(&mut b, &mut pools, text)
    );
    let mut c = IterationContext::new(0, 6);
    assert_ne!(
        render(&mut a, &mut pools, text),
        render(&mut c, &mut pools, text)
    );
}

#[test]
fn mixed_template_renders_everything() {
    let specs = [users(2, Strategy::Circular, OnExhausted::Stop)];
    let mut pools = Pools::new(&specs, 0, 1);
    let mut ctx = IterationContext::new(3, 1);
    ctx.begin(8);
    ctx.set_var("token", "t".to_owned());
    assert_eq!(
        render(
            &mut ctx,
            &mut pools,
            r#"{"email":"{{users.email}}","t":"{{token}}","it":{{$iteration}}}"#
        )
        .as_deref(),
        Ok(r#"{"email":"u0@x.io","t":"t","it":8}"#)
    );
}
