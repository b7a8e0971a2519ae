//! Unit tests of the Gatling engine's pure parts: request names, records
//! into intervals, system properties, the split plan (shares themselves:
//! scenario/model.rs).

use super::*;
use bfgg_protocol::ErrorKind;

const T0_MS: i64 = 1_795_444_895_000;

fn request(groups: &[&str], name: &str, start: i64, end: i64, ko: Option<&str>) -> Record {
    Record::Request(log::Request {
        groups: groups.iter().map(|g| Arc::from(*g)).collect(),
        name: Arc::from(name),
        start_ms: T0_MS + start,
        end_ms: T0_MS + end,
        ok: ko.is_none(),
        message: ko.map(Arc::from),
    })
}

fn user(start: bool, at: i64) -> Record {
    Record::User {
        scenario: Arc::from("demo"),
        start,
        at_ms: T0_MS + at,
    }
}

fn demo() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/gatling/scenario.toml");
    crate::scenario::load(&path).expect("the Gatling example loads")
}

#[test]
fn request_names_carry_their_groups() {
    assert_eq!(request_name(&[], "home"), "home");
    let groups: Vec<Arc<str>> = vec![Arc::from("shop"), Arc::from("auth")];
    assert_eq!(request_name(&groups, "login"), "shop / auth / login");
}

#[test]
fn records_become_requests_errors_and_active_users() {
    let mut intervals = Intervals::new(T0_MS as u64 * 1000);
    let (mut active, mut watermark) = (0u64, 0u64);
    let mut feed = |r: Record, iv: &mut Intervals| apply(r, iv, &mut active, &mut watermark);
    feed(user(true, 10), &mut intervals);
    feed(user(true, 20), &mut intervals);
    feed(request(&[], "home", 100, 112, None), &mut intervals);
    feed(
        request(
            &["auth"],
            "login",
            200,
            250,
            Some("status.find.is(200), but actually found 500"),
        ),
        &mut intervals,
    );
    feed(user(false, 900), &mut intervals);
    // A request that was never built: counted failed, without a time.
    feed(
        Record::Error {
            message: Arc::from("me: No attribute named 'token' is defined"),
            at_ms: T0_MS + 1_500,
        },
        &mut intervals,
    );
    // Records outside any request change nothing.
    feed(
        Record::Group(log::Group {
            groups: vec![Arc::from("auth")],
            start_ms: T0_MS + 200,
            end_ms: T0_MS + 250,
            cumulated_response_time_ms: 50,
            ok: true,
        }),
        &mut intervals,
    );
    assert_eq!(watermark, (T0_MS as u64 + 1_500) * 1000);
    let shipped = intervals.drain((T0_MS as u64 + 2_000) * 1000, 0);
    assert_eq!(shipped.len(), 3);
    let s0 = &shipped[0];
    assert_eq!(s0.by_name["home"].requests, 1);
    assert_eq!(s0.by_name["home"].error_count(), 0);
    // Gatling logs milliseconds: 12 ms, within HDR's 3 significant digits.
    let within = |us: u64, want: u64| (want..=want + want / 1000).contains(&us);
    assert!(within(s0.by_name["home"].response_time.max_us(), 12_000));
    let login = &s0.by_name["auth / login"];
    assert_eq!(login.requests, 1);
    assert_eq!(
        login.errors[&ErrorKind::Engine("status.find.is(200), but actually found 500".into())],
        1
    );
    assert!(within(login.response_time.max_us(), 50_000));
    assert_eq!(s0.generator.active, 1, "two started, one ended");
    let me = &shipped[1].by_name["me"];
    assert_eq!((me.requests, me.error_count()), (1, 1));
    assert_eq!(me.response_time.len(), 0, "never sent: no time");
}

#[test]
fn system_properties_hand_each_agent_its_share() {
    let scenario = demo();
    let spec = scenario.gatling.clone().expect("[gatling]");
    let of = |index: u64, count: u64| system_properties(&scenario, &spec, index, count);
    let get = |props: &[(String, String)], k: &str| {
        props
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no -D{k}"))
    };
    // users = 10, rate = 6 over three agents: 4+3+3 and 2+2+2.
    let users: Vec<u64> = (0..3)
        .map(|i| get(&of(i, 3), "users").parse().expect("int"))
        .collect();
    assert_eq!(users, [4, 3, 3]);
    let rate: Vec<f64> = (0..3)
        .map(|i| get(&of(i, 3), "rate").parse().expect("num"))
        .collect();
    assert_eq!(rate, [2.0, 2.0, 2.0]);
    let props = of(1, 3);
    assert_eq!(get(&props, "duration"), "20");
    assert_eq!(get(&props, "bfgg.agent.index"), "1");
    assert_eq!(get(&props, "bfgg.agent.count"), "3");
    assert_eq!(get(&props, "bfgg.duration"), "40");
    assert_eq!(get(&props, "baseUrl"), "http://127.0.0.1:8080");
    // A baseUrl of the user's own wins.
    let mut own = spec.clone();
    own.properties
        .push(("baseUrl".into(), "http://127.0.0.2:9".into()));
    let props = system_properties(&scenario, &own, 0, 1);
    let urls: Vec<&str> = props
        .iter()
        .filter(|(k, _)| k == "baseUrl")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(urls, ["http://127.0.0.2:9"]);
}

#[test]
fn the_plan_says_who_gets_what_and_what_runs_whole() {
    let scenario = demo();
    let spec = scenario.gatling.clone().expect("[gatling]");
    assert_eq!(
        split_plan(&spec, &["a", "b", "c"]),
        [
            "split users = 10: a 4, b 3, c 3",
            "split rate = 6: a 2, b 2, c 2"
        ]
    );
    let mut whole = spec.clone();
    whole.split.clear();
    let lines = split_plan(&whole, &["a", "b"]);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("no split: every agent runs the whole simulation"),
        "{lines:?}"
    );
    // A split name the sources never read is called out.
    let mut unread = spec;
    unread.split.push(("vusers".into(), 4.0));
    let lines = split_plan(&unread, &["a", "b"]);
    assert_eq!(lines[2], "split vusers = 4: a 2, b 2");
    assert!(
        lines[3].starts_with("warning: the simulation's sources never mention \"vusers\""),
        "{lines:?}"
    );
}
