//! The registry: counters per run, name and scope; bucket counts equal to
//! HdrHistogram's own; duplicates counted once; the final top-up; finished
//! runs evicted past the limit; the name cap; the page's syntax; the HTTP
//! answers.

use std::collections::BTreeMap;

use bfgg_protocol::mesh::{NodeHealth, NodeState};
use bfgg_protocol::{ErrorKind, IntervalSnapshot, LatencyHistogram, NameStats, NodeId, RunId};

use super::buckets::{BOUNDS_US, Counts};
use super::*;

const LIMITS: Limits = Limits {
    finished_runs: 2,
    live_runs: 3,
    names_per_run: 3,
};

fn metrics() -> Metrics {
    Metrics::new(&NodeId("12D3KooWme".into()), "n0", LIMITS)
}

fn run(r: &str) -> RunId {
    RunId(r.into())
}

/// `requests` requests of `name` in interval `index`, `errors` of them 503s,
/// each taking `micros`.
fn snap(index: u32, name: &str, requests: u64, errors: u64, micros: u64) -> IntervalSnapshot {
    let mut s = IntervalSnapshot::new(index);
    s.by_name
        .insert(name.into(), stats(requests, errors, micros));
    s
}

fn stats(requests: u64, errors: u64, micros: u64) -> NameStats {
    let mut response_time = LatencyHistogram::new();
    for _ in 0..requests {
        response_time.record(micros);
    }
    let mut errors_by = BTreeMap::new();
    if errors > 0 {
        errors_by.insert(ErrorKind::Status(503), errors);
    }
    NameStats {
        requests,
        errors: errors_by,
        response_time,
        ..NameStats::default()
    }
}

/// One sample of the page: its name, labels and value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses every sample line of the text format, checking its syntax: every
/// sample belongs to a family announced by `# TYPE` before it.
fn parse(page: &str) -> Vec<Sample> {
    let mut families: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            families.push((name.to_owned(), kind.to_owned()));
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        let mut parsed = BTreeMap::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (key, tail) = rest.split_once("=\"").expect("key=\"value\"");
            // The value, unescaped, up to its closing quote.
            let (mut value, mut chars, mut end) = (String::new(), tail.char_indices(), None);
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => panic!("dangling escape in {line}"),
                    },
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end.unwrap_or_else(|| panic!("unclosed value in {line}"));
            parsed.insert(key.to_owned(), value);
            rest = tail[end + 1..].trim_start_matches(',');
        }
        let (family, kind) = families.last().expect("a # TYPE first");
        let ok = match kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name == format!("{family}{s}")),
            _ => name == family,
        };
        assert!(ok, "{name} is not of family {family} ({kind})");
        out.push(Sample {
            name: name.to_owned(),
            labels: parsed,
            value,
        });
    }
    out
}

/// The value of `name` with exactly `labels`, if on the page.
fn value(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    parse(page)
        .into_iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

fn own<'a>(r: &'a str, name: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("run", r),
        ("name", name),
        ("scope", "agent"),
        ("agent", "n0"),
    ]
}

fn merged<'a>(r: &'a str, name: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("run", r), ("name", name), ("scope", "run")]
}

fn with<'a>(
    mut labels: Vec<(&'a str, &'a str)>,
    more: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    labels.extend_from_slice(more);
    labels
}

fn page(m: &Metrics) -> String {
    m.encode().expect("encodes")
}

#[test]
fn own_intervals_add_up_per_name_with_errors_by_kind_and_a_histogram() {
    let m = metrics();
    m.own_interval(&run("r1"), &snap(0, "home", 10, 2, 3_000));
    let mut second = snap(1, "home", 5, 1, 700);
    second.by_name.insert("login".into(), stats(4, 0, 120_000));
    m.own_interval(&run("r1"), &second);
    let p = page(&m);
    assert_eq!(
        value(&p, "bfgg_requests_total", &own("r1", "home")),
        Some(15.0)
    );
    assert_eq!(
        value(&p, "bfgg_requests_total", &own("r1", "login")),
        Some(4.0)
    );
    assert_eq!(
        value(
            &p,
            "bfgg_errors_total",
            &with(own("r1", "home"), &[("kind", "http 5xx")])
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &p,
            "bfgg_errors_total",
            &with(own("r1", "login"), &[("kind", "http 5xx")])
        ),
        None,
        "no series for an error that never happened"
    );
    let h = "bfgg_response_time_seconds";
    assert_eq!(
        value(&p, &format!("{h}_count"), &own("r1", "home")),
        Some(15.0)
    );
    let bucket = |le: &str| {
        value(
            &p,
            &format!("{h}_bucket"),
            &with(own("r1", "home"), &[("le", le)]),
        )
    };
    assert_eq!(bucket("0.0005"), Some(0.0));
    assert_eq!(bucket("0.001"), Some(5.0), "the 700 µs ones");
    assert_eq!(bucket("0.0025"), Some(5.0));
    assert_eq!(bucket("0.005"), Some(15.0), "and the 3 ms ones");
    assert_eq!(bucket("+Inf"), Some(15.0));
    let sum = value(&p, &format!("{h}_sum"), &own("r1", "home")).expect("sum");
    assert!((sum - (10.0 * 0.003 + 5.0 * 0.0007)).abs() < 1e-4, "{sum}");
    // Nothing in the merged view: this node coordinates nothing.
    assert_eq!(
        value(&p, "bfgg_requests_total", &merged("r1", "home")),
        None
    );
}

#[test]
fn bucket_counts_are_hdrhistograms_own_count_at_or_below_each_bound() {
    let mut h = LatencyHistogram::new();
    // Around every bound, where slots are wide and where they are exact,
    // and beyond the last one.
    for &b in BOUNDS_US.iter() {
        for v in [b.saturating_sub(b / 500), b - 1, b, b + 1, b + b / 500 + 1] {
            h.record(v);
        }
    }
    for v in [1, 7, 99, 3_599_000_000, 70_000_000] {
        h.record(v);
    }
    for sample in [h.clone(), h.coarsened()] {
        let dense = sample.dense();
        let counts = Counts::of(&sample);
        let cumulative = counts.cumulative();
        for (i, &b) in BOUNDS_US.iter().enumerate() {
            assert_eq!(cumulative[i], dense.count_between(0, b), "bound {b} µs");
        }
        assert_eq!(counts.count(), sample.len());
        assert_eq!(cumulative[BOUNDS_US.len()], sample.len());
    }
}

#[test]
fn an_interval_counts_once_however_often_it_arrives() {
    let m = metrics();
    let r = run("r1");
    let (a, b) = (NodeId("a".into()), NodeId("b".into()));
    for _ in 0..3 {
        m.own_interval(&r, &snap(0, "home", 10, 0, 1_000));
        m.agent_interval(&r, &a, &snap(0, "home", 10, 0, 1_000));
    }
    // Another agent's interval 0 is not a duplicate; late and out of order
    // intervals count once each.
    m.agent_interval(&r, &b, &snap(0, "home", 7, 0, 1_000));
    m.agent_interval(&r, &a, &snap(2, "home", 1, 0, 1_000));
    m.agent_interval(&r, &a, &snap(1, "home", 2, 0, 1_000));
    m.agent_interval(&r, &a, &snap(2, "home", 1, 0, 1_000));
    m.agent_interval(&r, &a, &snap(1, "home", 2, 0, 1_000));
    let p = page(&m);
    assert_eq!(
        value(&p, "bfgg_requests_total", &own("r1", "home")),
        Some(10.0)
    );
    assert_eq!(
        value(&p, "bfgg_requests_total", &merged("r1", "home")),
        Some(20.0)
    );
    assert_eq!(
        value(
            &p,
            "bfgg_response_time_seconds_count",
            &merged("r1", "home")
        ),
        Some(20.0)
    );
}

#[test]
fn seen_remembers_out_of_order_indices_compactly() {
    let mut s = Seen::default();
    assert!(s.insert(1));
    assert!(s.insert(0));
    assert_eq!((s.below, s.above.len()), (2, 0));
    assert!(s.insert(5));
    assert!(!s.insert(5));
    assert!(!s.insert(0));
    assert!(s.insert(u32::MAX));
    assert!(!s.insert(u32::MAX));
}

#[test]
fn reconciling_raises_the_merged_view_to_the_results_and_never_lowers_it() {
    let m = metrics();
    let r = run("r1");
    let a = NodeId("a".into());
    m.agent_interval(&r, &a, &snap(0, "home", 10, 1, 2_000));
    // The results hold one more interval, never delivered live.
    let mut totals = BTreeMap::new();
    let mut home = stats(10, 1, 2_000);
    home += &stats(6, 2, 40_000);
    totals.insert("home".to_string(), home);
    m.reconcile(&r, &totals);
    let p = page(&m);
    assert_eq!(
        value(&p, "bfgg_requests_total", &merged("r1", "home")),
        Some(16.0)
    );
    assert_eq!(
        value(
            &p,
            "bfgg_errors_total",
            &with(merged("r1", "home"), &[("kind", "http 5xx")])
        ),
        Some(3.0)
    );
    let bucket = |p: &str, le: &str| {
        value(
            p,
            "bfgg_response_time_seconds_bucket",
            &with(merged("r1", "home"), &[("le", le)]),
        )
    };
    assert_eq!(bucket(&p, "0.0025"), Some(10.0));
    assert_eq!(bucket(&p, "0.05"), Some(16.0));
    assert_eq!(
        value(
            &p,
            "bfgg_response_time_seconds_count",
            &merged("r1", "home")
        ),
        Some(16.0)
    );
    // Smaller totals (they cannot be; but if) lower nothing.
    let mut less = BTreeMap::new();
    less.insert("home".to_string(), stats(1, 0, 1_000_000));
    m.reconcile(&r, &less);
    let again = page(&m);
    assert_eq!(
        value(&again, "bfgg_requests_total", &merged("r1", "home")),
        Some(16.0)
    );
    assert_eq!(bucket(&again, "0.0025"), Some(10.0));
    assert_eq!(bucket(&again, "0.05"), Some(16.0));
}

#[test]
fn raising_keeps_cumulative_buckets_monotonic() {
    let mut low = LatencyHistogram::new();
    low.record(200);
    low.record(200);
    let mut high = LatencyHistogram::new();
    high.record(300);
    high.record(300);
    high.record(30_000_000);
    let mut c = Counts::of(&low);
    c.raise_to(&Counts::of(&high));
    let cum = c.cumulative();
    assert!(cum.windows(2).all(|w| w[0] <= w[1]), "{cum:?}");
    assert_eq!(cum[1], 2, "le 250 µs: the two 200 µs kept");
    assert_eq!(c.count(), 3, "raised to the larger total");
}

#[test]
fn finished_runs_are_kept_up_to_the_limit_then_the_first_finished_goes() {
    let m = metrics();
    for r in ["r1", "r2", "r3"] {
        m.own_interval(&run(r), &snap(0, "home", 1, 0, 1_000));
    }
    m.finish(&run("r2"));
    m.finish(&run("r1"));
    let p = page(&m);
    for r in ["r1", "r2", "r3"] {
        assert_eq!(
            value(&p, "bfgg_requests_total", &own(r, "home")),
            Some(1.0),
            "{r}"
        );
    }
    // A late interval of a finished run changes nothing.
    m.own_interval(&run("r1"), &snap(1, "home", 5, 0, 1_000));
    assert_eq!(
        value(&page(&m), "bfgg_requests_total", &own("r1", "home")),
        Some(1.0)
    );
    // A third finished run: r2, the first to finish, goes with every series.
    m.finish(&run("r3"));
    let p = page(&m);
    assert!(!p.contains("run=\"r2\""), "{p}");
    for r in ["r1", "r3"] {
        assert_eq!(
            value(&p, "bfgg_requests_total", &own(r, "home")),
            Some(1.0),
            "{r}"
        );
    }
    // Nor does it come back.
    m.own_interval(&run("r2"), &snap(3, "home", 1, 0, 1_000));
    assert!(!page(&m).contains("run=\"r2\""));
    // Finishing a run never seen keeps nothing.
    m.finish(&run("r9"));
    assert_eq!(lock(&m.inner).entries.len(), 2);
}

#[test]
fn runs_alive_at_once_are_bounded_too() {
    let m = metrics();
    for r in ["r1", "r2", "r3", "r4"] {
        m.own_interval(&run(r), &snap(0, "home", 1, 0, 1_000));
    }
    let p = page(&m);
    assert!(!p.contains("run=\"r1\""), "the oldest live run went");
    for r in ["r2", "r3", "r4"] {
        assert!(p.contains(&format!("run=\"{r}\"")), "{r}");
    }
    // For good: its next interval pushes no other run out.
    m.own_interval(&run("r1"), &snap(1, "home", 1, 0, 1_000));
    let p = page(&m);
    assert!(!p.contains("run=\"r1\""));
    assert!(p.contains("run=\"r2\""));
}

#[test]
fn names_past_the_cap_are_counted_as_other() {
    let m = metrics();
    let r = run("r1");
    let mut s = IntervalSnapshot::new(0);
    for (i, name) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        s.by_name
            .insert((*name).into(), stats(i as u64 + 1, 1, 1_000));
    }
    m.own_interval(&r, &s);
    // Names first seen later also overflow; names already exported do not.
    let mut later = IntervalSnapshot::new(1);
    later.by_name.insert("a".into(), stats(10, 0, 1_000));
    later.by_name.insert("z".into(), stats(100, 0, 1_000));
    m.own_interval(&r, &later);
    let p = page(&m);
    let requests = |name| value(&p, "bfgg_requests_total", &own("r1", name));
    assert_eq!(requests("a"), Some(11.0));
    assert_eq!(requests("b"), Some(2.0));
    assert_eq!(requests("c"), Some(3.0));
    assert_eq!(requests("d"), None);
    assert_eq!(requests("z"), None);
    assert_eq!(requests(OTHER_NAME), Some(4.0 + 5.0 + 100.0));
    assert_eq!(
        value(
            &p,
            "bfgg_errors_total",
            &with(own("r1", OTHER_NAME), &[("kind", "http 5xx")])
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &p,
            "bfgg_response_time_seconds_count",
            &own("r1", OTHER_NAME)
        ),
        Some(109.0)
    );
    let names: std::collections::BTreeSet<String> = parse(&p)
        .into_iter()
        .filter(|s| s.name == "bfgg_requests_total")
        .filter_map(|s| s.labels.get("name").cloned())
        .collect();
    assert_eq!(names.len(), LIMITS.names_per_run + 1, "{names:?}");
}

fn health(state: NodeState, dropped: u64) -> NodeHealth {
    NodeHealth {
        node: NodeId("12D3KooWme".into()),
        name: "n0".into(),
        labels: BTreeMap::new(),
        state,
        engines: Vec::new(),
        cpu_pct: 12.5,
        mem_bytes: 42 << 20,
        keeping_schedule: true,
        sent_at_ms: 0,
        bfgg_version: "0".into(),
        protocol_version: bfgg_protocol::PROTOCOL_VERSION,
        dropped_messages: dropped,
        listen_addrs: Vec::new(),
        period_ms: 1_000,
        revision: 1,
    }
}

#[test]
fn health_gauges_follow_the_last_tick_and_dropped_messages_only_grow() {
    let m = metrics();
    let peers = PeerCounts {
        alive: 2,
        unresponsive: 1,
        dead: 0,
    };
    m.health(&health(NodeState::Running(run("r1")), 3), peers);
    let p = page(&m);
    assert_eq!(value(&p, "bfgg_node_cpu_percent", &[]), Some(12.5));
    assert_eq!(
        value(&p, "bfgg_node_resident_memory_bytes", &[]),
        Some((42u64 << 20) as f64)
    );
    assert_eq!(
        value(&p, "bfgg_node_state", &[("state", "running")]),
        Some(1.0)
    );
    assert_eq!(
        value(&p, "bfgg_node_state", &[("state", "idle")]),
        Some(0.0)
    );
    assert_eq!(
        value(&p, "bfgg_node_peers", &[("liveness", "alive")]),
        Some(2.0)
    );
    assert_eq!(
        value(&p, "bfgg_node_peers", &[("liveness", "unresponsive")]),
        Some(1.0)
    );
    assert_eq!(
        value(&p, "bfgg_node_dropped_messages_total", &[]),
        Some(3.0)
    );
    let info = parse(&p)
        .into_iter()
        .find(|s| s.name == "bfgg_node_info")
        .expect("info");
    assert_eq!(info.value, 1.0);
    assert_eq!(info.labels["name"], "n0");
    assert_eq!(info.labels["id"], "12D3KooWme");
    assert_eq!(info.labels["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        info.labels["protocol"],
        bfgg_protocol::PROTOCOL_VERSION.to_string()
    );
    m.health(&health(NodeState::Idle, 7), PeerCounts::default());
    m.health(&health(NodeState::Idle, 5), PeerCounts::default());
    let p = page(&m);
    assert_eq!(
        value(&p, "bfgg_node_state", &[("state", "running")]),
        Some(0.0)
    );
    assert_eq!(
        value(&p, "bfgg_node_state", &[("state", "idle")]),
        Some(1.0)
    );
    assert_eq!(
        value(&p, "bfgg_node_dropped_messages_total", &[]),
        Some(7.0)
    );
}

#[test]
fn the_page_is_the_text_format_with_every_family_typed() {
    let m = metrics();
    m.health(&health(NodeState::Idle, 0), PeerCounts::default());
    let r = run("r \"quoted\"\\run");
    m.own_interval(&r, &snap(0, "home", 3, 1, 1_000));
    m.agent_interval(&r, &NodeId("a".into()), &snap(0, "home", 3, 1, 1_000));
    let p = page(&m);
    for family in [
        "# TYPE bfgg_requests_total counter",
        "# TYPE bfgg_errors_total counter",
        "# TYPE bfgg_response_time_seconds histogram",
        "# TYPE bfgg_node_info gauge",
        "# TYPE bfgg_node_dropped_messages_total counter",
    ] {
        assert!(p.contains(family), "{family} in\n{p}");
    }
    // Label values are escaped.
    assert!(p.contains(r#"run="r \"quoted\"\\run""#), "{p}");
    let buckets = p
        .lines()
        .filter(|l| {
            l.starts_with("bfgg_response_time_seconds_bucket{") && l.contains("scope=\"run\"")
        })
        .count();
    assert_eq!(buckets, BOUNDS_US.len() + 1, "every bound and +Inf");
    let quoted = parse(&p)
        .into_iter()
        .find(|s| s.name == "bfgg_requests_total")
        .expect("a request counter");
    assert_eq!(quoted.labels["run"], "r \"quoted\"\\run");
}

#[test]
fn the_endpoint_serves_get_metrics_and_nothing_else() {
    use http_body_util::BodyExt as _;
    let m = metrics();
    m.own_interval(&run("r1"), &snap(0, "home", 3, 0, 1_000));
    let req = |method: &str, path: &str| {
        hyper::Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .expect("request")
    };
    let body = |r: hyper::Response<http_body_util::Full<bytes::Bytes>>| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let bytes = rt
            .block_on(r.into_body().collect())
            .expect("body")
            .to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    };
    let ok = serve::respond(&m, &req("GET", "/metrics?x=1"));
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(body(ok).contains("bfgg_requests_total{run=\"r1\""));
    assert_eq!(serve::respond(&m, &req("HEAD", "/metrics")).status(), 200);
    for (method, path) in [("GET", "/"), ("GET", "/metrics/x"), ("POST", "/metrics")] {
        assert_eq!(
            serve::respond(&m, &req(method, path)).status(),
            404,
            "{method} {path}"
        );
    }
}
