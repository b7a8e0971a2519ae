//! Decoding real `simulation.log` files (`../testdata`, made by real Gatling:
//! see its README.txt) whole, split at every byte and at random, cut short and
//! corrupted; plus hand-built binary records for the string cache's corners.

use std::collections::BTreeMap;

use super::*;

const BINARY_3_15: &[u8] = include_bytes!("../testdata/gatling-3.15.1-binary.log");
const BINARY_3_13: &[u8] = include_bytes!("../testdata/gatling-3.13.5-binary.log");
const TEXT_3_12: &[u8] = include_bytes!("../testdata/gatling-3.12.0-text.log");

/// What a fixture holds, counted from its records.
#[derive(Debug, Default, PartialEq, Eq)]
struct Summary {
    requests: u64,
    ok: u64,
    ko: u64,
    /// Requests per name: (total, KO).
    by_name: BTreeMap<String, (u64, u64)>,
    /// KO messages and how often each came.
    ko_messages: BTreeMap<String, u64>,
    users_started: u64,
    users_ended: u64,
    /// Group records per group path ("auth").
    groups: BTreeMap<String, u64>,
    /// Error records per message.
    errors: BTreeMap<String, u64>,
}

fn summarize(records: &[Record]) -> Summary {
    let mut s = Summary::default();
    for r in records {
        match r {
            Record::Run(_) => {}
            Record::User { start, .. } => {
                if *start {
                    s.users_started += 1;
                } else {
                    s.users_ended += 1;
                }
            }
            Record::Request(q) => {
                s.requests += 1;
                let e = s.by_name.entry(q.name.to_string()).or_default();
                e.0 += 1;
                if q.ok {
                    s.ok += 1;
                } else {
                    s.ko += 1;
                    e.1 += 1;
                    let m = q.message.as_deref().unwrap_or("<none>").to_owned();
                    *s.ko_messages.entry(m).or_default() += 1;
                }
            }
            Record::Group(g) => *s.groups.entry(g.groups.join("/")).or_default() += 1,
            Record::Error { message, .. } => *s.errors.entry(message.to_string()).or_default() += 1,
        }
    }
    s
}

/// The counts Gatling's own console printed for each run (README.txt).
fn expected(
    requests: u64,
    ko: u64,
    names: [(&str, u64, u64); 4],
    not_found: (&str, u64),
    no_token: (&str, u64),
    auth: u64,
) -> Summary {
    Summary {
        requests,
        ok: requests - ko,
        ko,
        by_name: names
            .iter()
            .map(|(n, t, k)| (n.to_string(), (*t, *k)))
            .collect(),
        ko_messages: [not_found, no_token]
            .iter()
            .map(|(m, c)| (m.to_string(), *c))
            .collect(),
        users_started: 210,
        users_ended: 210,
        groups: [("auth".to_owned(), auth)].into(),
        // Users who skip the login could not build "me stale token", once each.
        errors: [(
            "me stale token: No attribute named 'token' is defined".to_owned(),
            no_token.1,
        )]
        .into(),
    }
}

fn decode_all(bytes: &[u8]) -> Vec<Record> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    d.feed(bytes, &mut out).expect("a fixture decodes");
    assert_eq!(d.pending(), 0, "a finished log ends on a record boundary");
    assert_eq!(d.consumed(), bytes.len() as u64);
    assert_eq!(d.records(), out.len() as u64);
    out
}

/// Feeds `bytes` in chunks of the given sizes (the last chunk takes the rest).
fn decode_chunked(bytes: &[u8], sizes: impl IntoIterator<Item = usize>) -> (Vec<Record>, Decoder) {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    let mut at = 0;
    for n in sizes {
        let end = (at + n).min(bytes.len());
        d.feed(&bytes[at..end], &mut out)
            .expect("split input decodes");
        at = end;
    }
    d.feed(&bytes[at..], &mut out).expect("split input decodes");
    (out, d)
}

/// Byte offsets where records start, and the file's end. (A text log's
/// `ASSERTION` lines come before the first record and make none.)
fn boundaries(bytes: &[u8]) -> Vec<usize> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    let mut at = Vec::new();
    for b in bytes {
        let before = d.consumed() as usize;
        let n = out.len();
        d.feed(std::slice::from_ref(b), &mut out)
            .expect("fixture decodes");
        if out.len() > n {
            at.push(before);
        }
    }
    at.push(bytes.len());
    at
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

fn check_fixture(bytes: &[u8], format: Format, version: &str, expect: Summary) {
    let records = decode_all(bytes);
    let mut d = Decoder::new();
    d.feed(bytes, &mut Vec::new()).expect("a fixture decodes");
    assert_eq!(d.format(), Some(format));
    let Record::Run(run) = &records[0] else {
        panic!("first record is {:?}", records[0]);
    };
    assert_eq!(run.simulation, "example.DemoSimulation");
    assert_eq!(run.gatling_version, version);
    assert_eq!(run.description, "");
    assert_eq!(
        run.assertions, 1,
        "the fixtures run with -DmaxFailedPercent"
    );
    if format == Format::Binary {
        assert_eq!(run.scenarios, vec![Arc::<str>::from("journey")]);
    }
    assert_eq!(summarize(&records), expect);

    for r in &records[1..] {
        match r {
            Record::Run(_) => panic!("a second run header"),
            Record::User {
                scenario, at_ms, ..
            } => {
                assert_eq!(&**scenario, "journey");
                assert!(*at_ms >= run.start_ms);
            }
            Record::Request(q) => {
                assert!(
                    q.start_ms >= run.start_ms && q.end_ms >= q.start_ms,
                    "{q:?}"
                );
                assert!(q.end_ms - q.start_ms < 5_000, "{q:?}");
                assert_eq!(
                    q.ok,
                    q.message.is_none(),
                    "KO requests, and only they, have a message: {q:?}"
                );
                let in_auth = matches!(&*q.name, "login" | "me");
                assert_eq!(
                    q.groups,
                    if in_auth {
                        vec![Arc::from("auth")]
                    } else {
                        vec![]
                    }
                );
            }
            Record::Group(g) => {
                assert!(g.end_ms >= g.start_ms && g.ok && g.cumulated_response_time_ms >= 0);
            }
            Record::Error { at_ms, .. } => assert!(*at_ms >= run.start_ms),
        }
    }
}

#[test]
fn gatling_3_15_binary_fixture_matches_gatlings_own_counts() {
    check_fixture(
        BINARY_3_15,
        Format::Binary,
        "3.15.1",
        expected(
            593,
            79,
            [
                ("home", 210, 42),
                ("login", 173, 0),
                ("me", 173, 0),
                ("me anonymous", 37, 37),
            ],
            ("status.find.is(200), found 503", 42),
            ("status.find.is(200), found 401", 37),
            173,
        ),
    );
}

#[test]
fn gatling_3_13_binary_fixture_matches_gatlings_own_counts() {
    check_fixture(
        BINARY_3_13,
        Format::Binary,
        "3.13.5",
        expected(
            589,
            81,
            [
                ("home", 210, 40),
                ("login", 169, 0),
                ("me", 169, 0),
                ("me anonymous", 41, 41),
            ],
            ("status.find.is(200), but actually found 503", 40),
            ("status.find.is(200), but actually found 401", 41),
            169,
        ),
    );
}

#[test]
fn gatling_3_12_text_fixture_matches_gatlings_own_counts() {
    check_fixture(
        TEXT_3_12,
        Format::Text,
        "3.12.0",
        expected(
            585,
            84,
            [
                ("home", 210, 39),
                ("login", 165, 0),
                ("me", 165, 0),
                ("me anonymous", 45, 45),
            ],
            ("status.find.is(200), but actually found 503", 39),
            ("status.find.is(200), but actually found 401", 45),
            165,
        ),
    );
}

#[test]
fn the_format_comes_from_the_first_bytes() {
    for (bytes, format) in [(BINARY_3_15, Format::Binary), (TEXT_3_12, Format::Text)] {
        let mut d = Decoder::new();
        d.feed(&bytes[..0], &mut Vec::new()).expect("nothing yet");
        assert_eq!(d.format(), None);
        d.feed(&bytes[..1], &mut Vec::new()).expect("one byte");
        let after_one = d.format();
        d.feed(&bytes[1..12], &mut Vec::new())
            .expect("twelve bytes");
        assert_eq!(d.format(), Some(format));
        // A binary log says so in its first byte; "A" could still be text.
        assert_eq!(
            after_one,
            (format == Format::Binary).then_some(Format::Binary)
        );
    }
    // A prefix of "RUN\t" waits; anything else is refused at once.
    let mut d = Decoder::new();
    d.feed(b"RU", &mut Vec::new()).expect("could be a run line");
    assert_eq!((d.format(), d.pending()), (None, 2));
    let e = d.feed(b"X", &mut Vec::new()).expect_err("not a log");
    assert_eq!(e.kind, LogErrorKind::UnknownFormat("RUX".into()));
    let e = Decoder::new()
        .feed(b"{\"json\": 1}\n", &mut Vec::new())
        .expect_err("not a log");
    assert_eq!(
        e.to_string(),
        "simulation.log byte 0 (record 0): not a Gatling simulation.log: it starts with \"{\\\"json\\\": 1}\\n\""
    );
}

#[test]
fn every_split_of_the_first_kilobytes_decodes_the_same() {
    for bytes in [BINARY_3_15, BINARY_3_13, TEXT_3_12] {
        // A prefix keeps this fast; its last record is (likely) cut, which
        // must leave the same pending bytes whatever the split.
        let prefix = &bytes[..6000];
        let (whole, wd) = decode_chunked(prefix, []);
        assert!(whole.len() > 20);
        for split in 0..prefix.len() {
            let (records, d) = decode_chunked(prefix, [split]);
            assert_eq!(records, whole, "split at {split}");
            assert_eq!(d.pending(), wd.pending(), "split at {split}");
        }
    }
}

#[test]
fn byte_by_byte_and_random_chunks_decode_the_same() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for bytes in [BINARY_3_15, BINARY_3_13, TEXT_3_12] {
        let whole = decode_all(bytes);
        let (records, d) = decode_chunked(bytes, std::iter::repeat_n(1, bytes.len()));
        assert_eq!((records == whole, d.pending()), (true, 0), "byte by byte");
        for round in 0..100 {
            // Mostly small chunks (a record is 20 to 100 bytes), some large.
            let max = if round % 3 == 0 { 9000 } else { 64 };
            let sizes: Vec<usize> = (0..bytes.len()).map(|_| 1 + rng.below(max)).collect();
            let (records, d) = decode_chunked(bytes, sizes.iter().copied());
            assert_eq!(records, whole, "round {round}");
            assert_eq!(d.pending(), 0);
        }
    }
}

#[test]
fn a_log_cut_mid_record_waits_for_the_rest() {
    for bytes in [BINARY_3_15, BINARY_3_13, TEXT_3_12] {
        let whole = decode_all(bytes);
        let at = boundaries(bytes);
        assert_eq!(at.len(), whole.len() + 1);
        // Records near the start, the middle and the end; cut one byte in,
        // half-way and one byte short of each.
        for i in [0, 1, 5, 17, at.len() / 2, at.len() - 3, at.len() - 2] {
            let (start, end) = (at[i], at[i + 1]);
            for cut in [start + 1, (start + end) / 2, end - 1] {
                let mut d = Decoder::new();
                let mut out = Vec::new();
                d.feed(&bytes[..cut], &mut out)
                    .expect("a cut is not an error");
                assert_eq!(out, whole[..i], "cut at {cut} inside record {i}");
                assert_eq!(
                    d.pending(),
                    cut - start,
                    "cut at {cut} inside record {i} ({start}..{end}) of {}",
                    at.len()
                );
                d.feed(&bytes[cut..], &mut out).expect("the rest decodes");
                assert_eq!(out, whole, "cut at {cut} then the rest");
            }
        }
    }
}

/// Decodes `bytes`, a corrupted copy of `original`, expecting an error at
/// record `record` (starting at byte `offset`), every record before it kept
/// and the same error on any later feed.
fn corrupted(original: &[u8], bytes: &[u8], record: usize, offset: usize) -> LogErrorKind {
    let whole = decode_all(original);
    let mut d = Decoder::new();
    let mut out = Vec::new();
    // Feed it in two parts: the error must come out whichever part holds it.
    let e = d
        .feed(&bytes[..offset + 3], &mut out)
        .and_then(|()| d.feed(&bytes[offset + 3..], &mut out))
        .expect_err("corruption is an error");
    assert_eq!((e.offset, e.record), (offset as u64, record as u64), "{e}");
    assert_eq!(out, whole[..record]);
    let again = d.feed(b"\x01\x02", &mut out).expect_err("stays failed");
    assert_eq!((again, out.len()), (e.clone(), record));
    e.kind
}

/// `bytes` with `patch` written at `at`.
fn patched(bytes: &[u8], at: usize, patch: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at..at + patch.len()].copy_from_slice(patch);
    b
}

#[test]
fn a_corrupted_binary_log_is_an_error_naming_what_was_wrong() {
    let bytes = BINARY_3_15;
    let whole = decode_all(bytes);
    let at = boundaries(bytes);
    let first = |pred: fn(&Record) -> bool| whole.iter().position(pred).expect("such a record");
    // The first request introduces its name as cache entry 1 and its empty
    // message as entry 2: header 1, 0 groups, index 1, length 4, "home", coder 0.
    let req = first(|r| matches!(r, Record::Request(_)));
    let r = at[req];
    assert_eq!(&bytes[r..r + 18], b"\x01\0\0\0\0\0\0\0\x01\0\0\0\x04home\0");

    let unknown = patched(bytes, r, &[9]);
    assert_eq!(
        corrupted(bytes, &unknown, req, r),
        LogErrorKind::UnknownHeader(9)
    );
    let length = patched(bytes, r + 9, &[0x7f]);
    assert_eq!(
        corrupted(bytes, &length, req, r),
        LogErrorKind::OutOfRange {
            what: "string length",
            value: 0x7f00_0004
        }
    );
    let groups = patched(bytes, r + 1, &[0x80]);
    assert_eq!(
        corrupted(bytes, &groups, req, r),
        LogErrorKind::OutOfRange {
            what: "group count",
            value: i64::from(i32::MIN)
        }
    );
    let coder = patched(bytes, r + 17, &[2]);
    assert_eq!(corrupted(bytes, &coder, req, r), LogErrorKind::Coder(2));
    let skipped = patched(bytes, r + 8, &[2]);
    assert_eq!(
        corrupted(bytes, &skipped, req, r),
        LogErrorKind::CacheIndex {
            index: 2,
            entries: 0
        }
    );

    // The second request refers to "home" as -1; make it -100.
    let req2 = req
        + 1
        + whole[req + 1..]
            .iter()
            .position(|r| matches!(r, Record::Request(_)))
            .expect("two");
    let r2 = at[req2];
    assert_eq!(&bytes[r2 + 5..r2 + 9], &(-1i32).to_be_bytes());
    let dangling = patched(bytes, r2 + 5, &(-100i32).to_be_bytes());
    assert_eq!(
        corrupted(bytes, &dangling, req2, r2),
        LogErrorKind::CacheIndex {
            index: -100,
            entries: 2
        }
    );
    let zero = patched(bytes, r2 + 5, &[0, 0, 0, 0]);
    assert_eq!(
        corrupted(bytes, &zero, req2, r2),
        LogErrorKind::CacheIndex {
            index: 0,
            entries: 2
        }
    );

    // A user record: header 2, scenario index, start flag, time.
    let user = first(|r| matches!(r, Record::User { .. }));
    let u = at[user];
    assert_eq!(&bytes[u..u + 6], b"\x02\0\0\0\0\x01");
    let scenario = patched(bytes, u + 4, &[1]);
    assert_eq!(
        corrupted(bytes, &scenario, user, u),
        LogErrorKind::Scenario { index: 1, count: 1 }
    );
    let flag = patched(bytes, u + 5, &[7]);
    assert_eq!(
        corrupted(bytes, &flag, user, u),
        LogErrorKind::Boolean {
            what: "user start",
            value: 7
        }
    );

    // The run header itself.
    let second_run = patched(bytes, u, &[0]);
    assert_eq!(
        corrupted(bytes, &second_run, user, u),
        LogErrorKind::RunHeader("a second run header")
    );
    let version = patched(bytes, 1, &[0xff]);
    assert_eq!(
        corrupted(bytes, &version, 0, 0),
        LogErrorKind::OutOfRange {
            what: "string length",
            value: i64::from(0xff00_0006_u32 as i32)
        }
    );
}

#[test]
fn a_corrupted_text_log_is_an_error_naming_what_was_wrong() {
    let bytes = TEXT_3_12;
    let text = std::str::from_utf8(bytes).expect("fixture is UTF-8");
    let whole = decode_all(bytes);
    let at = boundaries(bytes);
    let req = whole
        .iter()
        .position(|r| matches!(r, Record::Request(_)))
        .expect("a request");
    let r = at[req];
    assert!(
        text[r..].starts_with("REQUEST\t\thome\t"),
        "{}",
        &text[r..r + 40]
    );

    let kind = patched(bytes, r + 6, b"X");
    assert_eq!(
        corrupted(bytes, &kind, req, r),
        LogErrorKind::UnknownRecord("REQUESX".into())
    );
    let start = patched(bytes, r + 14, b"x");
    let LogErrorKind::Field {
        field, expected, ..
    } = corrupted(bytes, &start, req, r)
    else {
        panic!("not a field error");
    };
    assert_eq!((field, expected), ("request start", "a whole number"));
    let tab = patched(bytes, r + 13, b" "); // "home 1796..."
    assert_eq!(
        corrupted(bytes, &tab, req, r),
        LogErrorKind::FieldCount {
            record: "REQUEST",
            found: 6,
            expected: 7
        }
    );
    let line = &text[r..at[req + 1]];
    let status = line
        .rfind("\tOK\t")
        .or(line.rfind("\tKO\t"))
        .expect("a status field");
    let bad_status = patched(bytes, r + status + 1, b"NO");
    let LogErrorKind::Field { field, value, .. } = corrupted(bytes, &bad_status, req, r) else {
        panic!("not a field error");
    };
    assert_eq!((field, value.as_str()), ("request status", "NO"));

    // A user line before the run line.
    let no_run = text.replacen("RUN\t", "USER\t", 1);
    assert_eq!(
        corrupted(bytes, no_run.as_bytes(), 0, at[0]),
        LogErrorKind::RunHeader("the first record is not the run header")
    );
}

#[test]
fn a_text_line_without_its_newline_is_bounded() {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    d.feed(
        b"RUN\tS\tid\t1000\t \t3.12.0\nUSER\tjourney\tSTART\t",
        &mut out,
    )
    .expect("waits");
    assert_eq!((out.len(), d.pending()), (1, 19));
    let e = d
        .feed(&vec![b'1'; MAX_FIELD], &mut out)
        .expect_err("no newline in 1 MiB");
    assert_eq!(e.kind, LogErrorKind::LineTooLong);
    assert_eq!(e.offset, 23);
}

#[test]
fn text_records_decode_field_by_field() {
    let log = "RUN\tmy.Sim\tmysim\t1700000000000\tnightly\t3.11.5\r\n\
               USER\tbrowse\tSTART\t1700000000100\r\n\
               REQUEST\tshop,cart\tadd\t1700000000200\t1700000000250\tKO\tjsonPath($.id).find.exists, found nothing\r\n\
               REQUEST\t\thome\t1700000000300\t1700000000301\tOK\t \r\n\
               GROUP\tshop,cart\t1700000000150\t1700000000260\t50\tKO\r\n\
               ERROR\tadd: bad\tthing \t1700000000400\r\n\
               USER\tbrowse\tEND\t1700000000500\r\n";
    let records = decode_all(log.as_bytes());
    let shop_cart = vec![Arc::<str>::from("shop"), Arc::from("cart")];
    assert_eq!(
        records,
        vec![
            Record::Run(Run {
                simulation: "my.Sim".into(),
                start_ms: 1_700_000_000_000,
                gatling_version: "3.11.5".into(),
                description: "nightly".into(),
                scenarios: vec![],
                assertions: 0,
            }),
            Record::User {
                scenario: "browse".into(),
                start: true,
                at_ms: 1_700_000_000_100
            },
            Record::Request(Request {
                groups: shop_cart.clone(),
                name: "add".into(),
                start_ms: 1_700_000_000_200,
                end_ms: 1_700_000_000_250,
                ok: false,
                message: Some("jsonPath($.id).find.exists, found nothing".into()),
            }),
            Record::Request(Request {
                groups: vec![],
                name: "home".into(),
                start_ms: 1_700_000_000_300,
                end_ms: 1_700_000_000_301,
                ok: true,
                message: None,
            }),
            Record::Group(Group {
                groups: shop_cart,
                start_ms: 1_700_000_000_150,
                end_ms: 1_700_000_000_260,
                cumulated_response_time_ms: 50,
                ok: false,
            }),
            Record::Error {
                message: "add: bad thing".into(),
                at_ms: 1_700_000_000_400
            },
            Record::User {
                scenario: "browse".into(),
                start: false,
                at_ms: 1_700_000_000_500
            },
        ]
    );
}

/// Writes records the way Gatling 3.13+'s `LogFileDataWriter` does.
#[derive(Default)]
struct BinaryLog {
    bytes: Vec<u8>,
    cache: Vec<String>,
}

impl BinaryLog {
    fn i32(&mut self, v: i32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes.push(v);
        self
    }
    /// Latin-1 when every char fits a byte, else UTF-16LE, as Java stores it.
    fn string(&mut self, s: &str) -> &mut Self {
        if s.is_empty() {
            return self.i32(0);
        }
        let (bytes, coder): (Vec<u8>, u8) = if s.chars().all(|c| u32::from(c) < 256) {
            (s.chars().map(|c| u32::from(c) as u8).collect(), 0)
        } else {
            (s.encode_utf16().flat_map(u16::to_le_bytes).collect(), 1)
        };
        self.i32(bytes.len() as i32);
        self.bytes.extend_from_slice(&bytes);
        self.u8(coder)
    }
    fn cached(&mut self, s: &str) -> &mut Self {
        match self.cache.iter().position(|c| c == s) {
            Some(i) => self.i32(-(i as i32 + 1)),
            None => {
                self.cache.push(s.to_owned());
                self.i32(self.cache.len() as i32).string(s)
            }
        }
    }
    fn run(&mut self, start_ms: i64, scenarios: &[&str]) -> &mut Self {
        self.u8(0).string("3.15.1").string("x.Sim");
        self.bytes.extend_from_slice(&start_ms.to_be_bytes());
        self.string("").i32(scenarios.len() as i32);
        for s in scenarios {
            self.string(s);
        }
        // One assertion of 3 opaque bytes.
        self.i32(1).i32(3).u8(7).u8(8).u8(9)
    }
    fn request(
        &mut self,
        groups: &[&str],
        name: &str,
        start: i32,
        end: i32,
        ok: bool,
        msg: &str,
    ) -> &mut Self {
        self.u8(1).i32(groups.len() as i32);
        for g in groups {
            self.cached(g);
        }
        self.cached(name)
            .i32(start)
            .i32(end)
            .u8(ok.into())
            .cached(msg)
    }
}

#[test]
fn binary_strings_and_the_cache_decode_exactly() {
    let mut log = BinaryLog::default();
    log.run(1_800_000_000_000, &["Käse", "ünïcode ✓"])
        .u8(2)
        .i32(1)
        .u8(1)
        .i32(5)
        .request(
            &["g1", "g✓"],
            "café",
            10,
            20,
            false,
            "expected 200\tbut\nfound 500",
        )
        .request(&["g1", "g✓"], "café", 30, 31, true, "")
        .request(&[], "ünï ✓", 40, 45, false, "expected 200\tbut\nfound 500")
        // A group record: groups, start, end, cumulated time, status.
        .u8(3)
        .i32(2)
        .cached("g1")
        .cached("g✓")
        .i32(9)
        .i32(32)
        .i32(6)
        .u8(0)
        // An error record: message, time.
        .u8(4)
        .cached("café: no attribute 'x' ")
        .i32(50)
        .u8(2)
        .i32(0)
        .u8(0)
        .i32(60);

    let records = decode_all(&log.bytes);
    let g = vec![Arc::<str>::from("g1"), Arc::from("g✓")];
    let msg: Arc<str> = Arc::from("expected 200 but found 500");
    assert_eq!(
        records[1..],
        [
            Record::User {
                scenario: "ünïcode ✓".into(),
                start: true,
                at_ms: 1_800_000_000_005
            },
            Record::Request(Request {
                groups: g.clone(),
                name: "café".into(),
                start_ms: 1_800_000_000_010,
                end_ms: 1_800_000_000_020,
                ok: false,
                message: Some(msg.clone()),
            }),
            Record::Request(Request {
                groups: g.clone(),
                name: "café".into(),
                start_ms: 1_800_000_000_030,
                end_ms: 1_800_000_000_031,
                ok: true,
                message: None,
            }),
            Record::Request(Request {
                groups: vec![],
                name: "ünï ✓".into(),
                start_ms: 1_800_000_000_040,
                end_ms: 1_800_000_000_045,
                ok: false,
                message: Some(msg),
            }),
            Record::Group(Group {
                groups: g,
                start_ms: 1_800_000_000_009,
                end_ms: 1_800_000_000_032,
                cumulated_response_time_ms: 6,
                ok: false,
            }),
            Record::Error {
                message: "café: no attribute 'x'".into(),
                at_ms: 1_800_000_000_050
            },
            Record::User {
                scenario: "Käse".into(),
                start: false,
                at_ms: 1_800_000_000_060
            },
        ]
    );
    let Record::Run(run) = &records[0] else {
        panic!("no run header")
    };
    assert_eq!(
        (
            run.assertions,
            run.scenarios.len(),
            run.gatling_version.as_str()
        ),
        (1, 2, "3.15.1")
    );

    // Every split, so a cache entry introduced by a cut record is read
    // again with it and numbered once.
    for split in 0..log.bytes.len() {
        assert_eq!(
            decode_chunked(&log.bytes, [split]).0,
            records,
            "split at {split}"
        );
    }
}

#[test]
fn a_utf16_string_of_odd_length_is_refused() {
    let mut log = BinaryLog::default();
    log.u8(0).i32(3).u8(b'a').u8(b'b').u8(b'c');
    let mut d = Decoder::new();
    d.feed(&log.bytes, &mut Vec::new())
        .expect("waits for the coder");
    let e = d.feed(&[1], &mut Vec::new()).expect_err("odd UTF-16");
    assert_eq!(
        e.kind,
        LogErrorKind::OutOfRange {
            what: "UTF-16 string length",
            value: 3
        }
    );
}

#[test]
fn random_corruption_never_panics_and_keeps_what_came_before() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for bytes in [BINARY_3_15, TEXT_3_12] {
        let whole = decode_all(bytes);
        let at = boundaries(bytes);
        for _ in 0..300 {
            let mut b = bytes.to_vec();
            let mut first = b.len();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(b.len());
                b[i] = rng.below(256) as u8;
                first = first.min(i);
            }
            let mut d = Decoder::new();
            let mut out = Vec::new();
            let result = d.feed(&b, &mut out);
            // Whatever the flips do (an error, a changed value, a record that
            // now waits for more), every record that ends before the first
            // of them is decoded as in the original.
            let intact = at[1..].iter().take_while(|&&end| end <= first).count();
            assert!(out.len() >= intact, "{result:?}");
            assert_eq!(out[..intact], whole[..intact]);
            if let Err(e) = result {
                assert_eq!(out.len() as u64, e.record, "{e}");
            }
        }
    }
}

#[test]
fn count_file_counts_whole_files_and_refuses_cut_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("simulation.log");
    std::fs::write(&path, BINARY_3_15).expect("write");
    let counts = count_file(&path).expect("counts");
    // Gatling's own console: 593 requests, 79 KO (testdata/README.txt).
    assert_eq!((counts.requests, counts.ko), (593, 79));
    std::fs::write(&path, TEXT_3_12).expect("write");
    assert!(count_file(&path).expect("counts").requests > 0);
    std::fs::write(&path, &BINARY_3_15[..BINARY_3_15.len() - 3]).expect("write");
    let err = count_file(&path).expect_err("cut").to_string();
    assert!(err.contains("ends in the middle of a record"), "{err}");
}
