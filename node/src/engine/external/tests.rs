//! The interval clock of external engines, and process-group supervision
//! with real child processes.

use super::*;

const T0: u64 = 1_795_444_895_000_000;

fn req(name: &str, end_after_t0_ms: u64, error: Option<&'static str>) -> Request<'static> {
    Request {
        name: Box::leak(name.to_owned().into_boxed_str()),
        end_us: T0 + end_after_t0_ms * 1000,
        response_time_us: Some(1500),
        bytes_in: 10,
        error,
    }
}

#[test]
fn records_land_in_the_interval_they_ended_in_and_ship_once_settled() {
    let mut iv = Intervals::new(T0);
    iv.record(&req("a", 100, None));
    iv.record(&req("a", 999, Some("boom")));
    iv.record(&req("b", 1_000, None));
    iv.record(&req("a", 2_500, None));
    // 1.3 s after t0: interval 0 ended 0.3 s ago, not settled yet.
    assert!(iv.due(T0 + 1_300_000, 100).is_empty());
    iv.gauge(T0 + 900_000, 3);
    let shipped = iv.due(T0 + 1_400_000, 100);
    assert_eq!(shipped.len(), 1);
    let s0 = &shipped[0];
    assert_eq!(s0.index, 0);
    assert_eq!(s0.by_name["a"].requests, 2);
    assert_eq!(s0.by_name["a"].errors[&ErrorKind::Engine("boom".into())], 1);
    assert_eq!(s0.by_name["a"].bytes_in, 20);
    assert_eq!(s0.by_name["a"].response_time.len(), 2);
    assert_eq!(s0.generator.active, 3);
    assert_eq!(s0.generator.cpu_busy_permille, 100);
    assert!(!s0.by_name.contains_key("b"));
    // Much later: 1 and 2 ship in order, 2 with its record, nothing twice.
    let shipped = iv.due(T0 + 3_500_000, 0);
    let idx: Vec<u32> = shipped.iter().map(|s| s.index).collect();
    assert_eq!(idx, vec![1, 2]);
    assert_eq!(
        shipped[0].generator.active, 3,
        "no new gauge: the last one holds"
    );
    assert_eq!(shipped[0].by_name["b"].requests, 1);
    assert_eq!(shipped[1].by_name["a"].requests, 1);
    assert!(iv.due(T0 + 3_500_000, 0).is_empty());
}

#[test]
fn noted_cpu_and_untimed_requests_keep_to_their_interval() {
    let mut iv = Intervals::new(T0);
    iv.note_cpu(T0 + 500_000, 250);
    iv.note_cpu(T0 + 2_200_000, 700);
    let mut never_sent = req("a", 1_200, Some("no attribute `token`"));
    never_sent.response_time_us = None;
    iv.record(&never_sent);
    // Shipped together much later, each with the CPU of its own second;
    // the second without a note takes the value given at shipping.
    let shipped = iv.due(T0 + 9_000_000, 50);
    let cpu: Vec<u32> = shipped
        .iter()
        .map(|s| s.generator.cpu_busy_permille)
        .collect();
    assert_eq!(&cpu[..4], &[250, 50, 700, 50]);
    let a = &shipped[1].by_name["a"];
    assert_eq!(a.requests, 1);
    assert_eq!(a.error_count(), 1);
    assert_eq!(a.response_time.len(), 0, "no time for a request never sent");
}

#[test]
fn a_late_record_counts_in_the_next_interval_not_shipped() {
    let mut iv = Intervals::new(T0);
    assert_eq!(iv.due(T0 + 2_400_000, 0).len(), 2);
    iv.record(&req("a", 500, None));
    assert_eq!(iv.late, 1);
    let rest = iv.drain(T0 + 2_600_000, 0);
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].index, 2);
    assert_eq!(rest[0].by_name["a"].requests, 1);
}

#[test]
fn drain_ships_up_to_now_and_any_later_records() {
    let mut iv = Intervals::new(T0);
    // A record stamped before t0 counts in interval 0.
    iv.record(&Request {
        end_us: T0 - 5_000,
        ..req("early", 0, None)
    });
    iv.record(&req("a", 4_200, None));
    let all = iv.drain(T0 + 1_200_000, 0);
    let idx: Vec<u32> = all.iter().map(|s| s.index).collect();
    assert_eq!(idx, vec![0, 1, 2, 3, 4]);
    assert_eq!(all[0].by_name["early"].requests, 1);
    assert_eq!(all[4].by_name["a"].requests, 1);
    let total: u64 = all
        .iter()
        .flat_map(|s| s.by_name.values())
        .map(|n| n.requests)
        .sum();
    assert_eq!(total, 2);
}

#[tokio::test]
async fn dropping_a_supervised_group_kills_every_process_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!(
        "sleep 30 & echo $! > {}; echo started >&2; wait",
        pidfile.display()
    ));
    let sup = Supervised::spawn(cmd, dir.path()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let grandchild: i32 = loop {
        if let Ok(text) = std::fs::read_to_string(&pidfile)
            && let Ok(pid) = text.trim().parse()
        {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "no grandchild pid");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(Path::new(&format!("/proc/{grandchild}")).exists());
    drop(sup);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // Killed (a zombie until its parent, also killed, is reaped by init).
    while cpu_ticks(grandchild as u32).is_some()
        && std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
            .is_ok_and(|s| !s.contains(") Z "))
    {
        assert!(std::time::Instant::now() < deadline, "grandchild survived");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_child_failure_keeps_the_tail_of_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("for i in $(seq 1 30); do echo line $i >&2; done; exit 3");
    let mut sup = Supervised::spawn(cmd, dir.path()).unwrap();
    let exit = sup.exited().await;
    assert_eq!(exit.status.and_then(|s| s.code()), Some(3));
    assert!(sup.is_done());
    let tail = exit.stderr_tail.clone();
    assert!(
        exit.describe()
            .starts_with("exit status 3; its last output:\nline 11\n")
    );
    assert_eq!(tail.len(), STDERR_TAIL_LINES);
    assert_eq!(tail.last().map(String::as_str), Some("line 30"));
    assert_eq!(tail[0], "line 11");
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert_eq!(log.lines().count(), 30);
}

#[test]
fn cpu_ticks_reads_this_process() {
    assert!(cpu_ticks(std::process::id()).is_some());
    assert_eq!(cpu_ticks(u32::MAX), None);
}

#[test]
fn an_interval_reports_the_last_gauge_noted_while_it_lasted() {
    let mut iv = Intervals::new(T0);
    iv.gauge(T0 - 1, 1);
    iv.gauge(T0 + 100_000, 2);
    iv.gauge(T0 + 900_000, 4);
    iv.gauge(T0 + 2_100_000, 0);
    let active: Vec<u64> = iv
        .drain(T0 + 2_500_000, 0)
        .iter()
        .map(|s| s.generator.active)
        .collect();
    assert_eq!(active, vec![4, 4, 0]);
}

#[test]
fn past_its_cap_the_interner_still_returns_every_string() {
    let mut interner = Interner::default();
    let n = Interner::MAX + 10;
    for i in 0..n {
        let s = format!("name-{i}");
        assert_eq!(&*interner.get(&s), s.as_str());
    }
    assert_eq!(interner.map.len(), Interner::MAX, "bounded");
    // Interned strings are shared, later ones are not but stay correct.
    let first = interner.get("name-0");
    assert!(Arc::ptr_eq(&first, &interner.get("name-0")));
    assert_eq!(
        &*interner.get(&format!("name-{}", n - 1)),
        format!("name-{}", n - 1)
    );
}
