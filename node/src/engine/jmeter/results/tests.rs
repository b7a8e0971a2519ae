//! Tests of the results decoder on real JMeter files (`../testdata`, see its
//! README.txt): counts equal JMeter's own, any chunking gives the same
//! records, cut and corrupted copies lose only the rows they break, the
//! header is checked by name, and failures are grouped like the native
//! engine's.

use std::collections::BTreeMap;

use super::csv::{MAX_FIELDS, MAX_ROW, Next, Rows};
use super::*;

const FORCED: &[u8] = include_bytes!("../testdata/jmeter-5.6.3-forced.csv");
const DEFAULT: &[u8] = include_bytes!("../testdata/jmeter-5.6.3-default.csv");
const FORCED_SUMMARY: &str = include_str!("../testdata/jmeter-5.6.3-forced.summary.txt");
const DEFAULT_SUMMARY: &str = include_str!("../testdata/jmeter-5.6.3-default.summary.txt");
/// The label with a comma, quotes and a line break.
const ODD_LABEL: &str = "GET /a, \"b\"\nc";

/// Decodes `bytes` in one call: records, broken rows, pending bytes.
fn decode(bytes: &[u8]) -> (Vec<Record>, Result<(), ResultsError>, u64, usize) {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    let result = decoder.feed(bytes, &mut out);
    (out, result, decoder.broken(), decoder.pending())
}

/// Decodes `bytes` fed in `chunks` pieces at the given split points.
fn decode_split(bytes: &[u8], splits: &[usize]) -> Vec<Record> {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    let mut from = 0;
    for &at in splits.iter().chain([&bytes.len()]) {
        decoder.feed(&bytes[from..at], &mut out).expect("decodes");
        from = at;
    }
    out
}

/// JMeter's own count at the end of a run: `summary = 400 in ... Err: 329`.
fn summary_counts(summary: &str) -> (u64, u64) {
    let words: Vec<&str> = summary.split_whitespace().collect();
    let after = |key: &str| -> u64 {
        let i = words.iter().position(|w| *w == key).expect(key);
        words[i + 1].parse().expect("a count")
    };
    (after("="), after("Err:"))
}

/// The byte offsets where each row of `bytes` ends (after its newline),
/// found by feeding one byte at a time.
fn row_ends(bytes: &[u8]) -> Vec<usize> {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    let mut ends = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        let before = out.len();
        decoder
            .feed(std::slice::from_ref(b), &mut out)
            .expect("decodes");
        if out.len() > before {
            ends.push(i + 1);
        }
    }
    ends
}

/// Whole records of `whole` that `got` lacks (a record changed by a
/// corruption counts as lacking), and records of `got` not in `whole`.
fn difference(whole: &[Record], got: &[Record]) -> (usize, usize) {
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for r in whole {
        *counts.entry(format!("{r:?}")).or_default() += 1;
    }
    let mut extra = 0;
    for r in got {
        match counts.get_mut(&format!("{r:?}")) {
            Some(n) if *n > 0 => *n -= 1,
            _ => extra += 1,
        }
    }
    (counts.values().sum::<i64>() as usize, extra)
}

#[test]
fn the_fixtures_decode_to_what_jmeter_counted() {
    for (bytes, summary, failed) in [
        (FORCED, FORCED_SUMMARY, 329),
        (DEFAULT, DEFAULT_SUMMARY, 326),
    ] {
        let (records, result, broken, pending) = decode(bytes);
        result.expect("decodes");
        assert_eq!((broken, pending), (0, 0));
        let failures = records.iter().filter(|r| !r.success).count() as u64;
        // JMeter's summariser: 400 samples, each file's own failures.
        assert_eq!((records.len() as u64, failures), (400, failed));
        assert_eq!(summary_counts(summary), (400, failed));
        let mut by_label: BTreeMap<&str, u64> = BTreeMap::new();
        for r in &records {
            *by_label.entry(&r.label).or_default() += 1;
        }
        let labels = ["GET /", ODD_LABEL, "GET /status/404", "closed port", "slow"];
        assert_eq!(by_label.len(), labels.len(), "{by_label:?}");
        for label in labels {
            assert_eq!(by_label[label], 80, "{label:?}");
        }
        assert!(records.iter().all(|r| r.end_ms() >= r.start_ms));
        assert!(
            records
                .iter()
                .all(|r| r.all_threads <= 2 && r.group_threads <= 2)
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("results.csv");
    std::fs::write(&path, FORCED).expect("write");
    let counts = count_file(&path).expect("counts");
    assert_eq!(
        counts,
        ResultsCounts {
            records: 400,
            failed: 329,
            broken: 0,
            pending: 0
        }
    );
}

#[test]
fn the_forced_properties_make_the_forced_fixture_header() {
    // If this fails, FORCED_PROPERTIES changed: regenerate the fixtures.
    let header = FORCED.split(|&b| b == b'\n').next().expect("a header");
    assert_eq!(
        std::str::from_utf8(header).expect("utf-8"),
        "timeStamp,elapsed,label,responseCode,responseMessage,threadName,success,failureMessage,\
         bytes,sentBytes,grpThreads,allThreads,Latency,IdleTime,Connect"
    );
    let args: Vec<String> = forced_arguments().collect();
    assert_eq!(args.len(), FORCED_PROPERTIES.len());
    assert!(args.contains(&"-Jsampleresult.timestamp.start=true".to_owned()));
    assert!(args.contains(&"-Jjmeter.save.saveservice.default_delimiter=,".to_owned()));
    // Every column a record needs is switched on by a forced property.
    for (_, property) in REQUIRED {
        let (name, value) = property.split_once('=').expect("name=value");
        assert!(
            FORCED_PROPERTIES.contains(&(name, value)),
            "{property} is not forced"
        );
    }
}

#[test]
fn both_fixtures_read_the_same_columns_whatever_else_they_hold() {
    let (forced, ..) = decode(FORCED);
    let (default, ..) = decode(DEFAULT);
    // Two runs: the same samplers, the same codes, other times.
    let shape = |r: &Record| {
        (
            r.label.clone(),
            r.response_code.clone(),
            r.failure_message.clone(),
        )
    };
    let mut a: Vec<_> = forced
        .iter()
        .filter(|r| &*r.label != "GET /")
        .map(shape)
        .collect();
    let mut b: Vec<_> = default
        .iter()
        .filter(|r| &*r.label != "GET /")
        .map(shape)
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn a_row_carries_every_column_by_its_name() {
    let csv = "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect\n\
               1796222449336,110,GET /,200,OK,users 1-1,text,true,,103,118,2,3,http://127.0.0.1:18080/,93,0,62\n";
    let (records, result, ..) = decode(csv.as_bytes());
    result.expect("decodes");
    let want = Record {
        start_ms: 1_796_222_449_336,
        elapsed_ms: 110,
        label: "GET /".into(),
        response_code: "200".into(),
        response_message: "OK".into(),
        success: true,
        failure_message: "".into(),
        bytes: 103,
        sent_bytes: 118,
        group_threads: 2,
        all_threads: 3,
        latency_ms: 93,
        connect_ms: 62,
    };
    assert_eq!(records, std::slice::from_ref(&want));
    assert_eq!(records[0].end_ms(), 1_796_222_449_446);
    assert_eq!((records[0].message(), records[0].error()), (None, None));
    // The same row with its columns in another order, CRLF line endings
    // and a column bfgg does not know: the same record.
    let moved = "Connect,Latency,allThreads,grpThreads,sentBytes,bytes,failureMessage,success,responseMessage,responseCode,label,elapsed,timeStamp,extra\r\n\
                 62,93,3,2,118,103,,true,OK,200,GET /,110,1796222449336,\"x,y\"\r\n";
    let (records, result, ..) = decode(moved.as_bytes());
    result.expect("decodes");
    assert_eq!(records, [want]);
}

#[test]
fn a_label_and_a_message_spanning_lines_are_read_whole() {
    let (records, ..) = decode(FORCED);
    let odd = records
        .iter()
        .find(|r| &*r.label == ODD_LABEL)
        .expect("the odd label");
    assert!(!odd.success);
    assert_eq!(&*odd.response_code, "200");
    assert_eq!(
        &*odd.failure_message,
        "Test failed: code expected to equal /\n\n****** received  : 2[[[00]]]\n\n****** comparison: 2[[[99]]]\n\n/"
    );
    assert_eq!(odd.message(), Some(&*odd.failure_message));
    assert_eq!(
        odd.error(),
        Some(ErrorKind::Check(odd.failure_message.to_string()))
    );
}

#[test]
fn failures_are_grouped_like_the_native_engines() {
    let (records, ..) = decode(FORCED);
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for r in &records {
        if let Some(kind) = r.error() {
            *kinds.entry(kind.class().to_owned()).or_default() += 1;
        }
    }
    let want: BTreeMap<String, u64> = [
        ("check failed", 80),
        ("connect refused", 80),
        ("request timeout", 80),
        ("http 4xx", 80),
        ("http 5xx", 9),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(kinds, want);
    let refused = records
        .iter()
        .find(|r| &*r.label == "closed port")
        .expect("refused");
    assert_eq!(
        refused.message(),
        Some(
            "Non HTTP response message: Connect to 127.0.0.1:1 [/127.0.0.1] failed: Connection refused"
        )
    );
    // What the fixtures do not hold, by JMeter's exception classes.
    let failed = |code: &str, message: &str| Record {
        response_code: code.into(),
        response_message: message.into(),
        success: false,
        ..records[0].clone()
    };
    let non_http = |class: &str, message: &str| {
        failed(
            &format!("Non HTTP response code: {class}"),
            &format!("Non HTTP response message: {message}"),
        )
        .error()
    };
    assert_eq!(
        non_http("java.net.SocketTimeoutException", "connect timed out"),
        Some(ErrorKind::ConnectTimeout)
    );
    assert_eq!(
        non_http(
            "org.apache.http.conn.ConnectTimeoutException",
            "Connect to 10.0.0.1:80 [/10.0.0.1] failed: Read timed out"
        ),
        Some(ErrorKind::ConnectTimeout)
    );
    assert_eq!(
        non_http("java.net.UnknownHostException", "nowhere.invalid"),
        Some(ErrorKind::Connect(
            "UnknownHostException: nowhere.invalid".into()
        ))
    );
    assert_eq!(
        non_http(
            "javax.net.ssl.SSLHandshakeException",
            "PKIX path building failed"
        ),
        Some(ErrorKind::Tls("PKIX path building failed".into()))
    );
    assert_eq!(
        non_http("java.net.SocketException", "Connection reset"),
        Some(ErrorKind::Io("SocketException: Connection reset".into()))
    );
    let long = "x".repeat(500);
    let Some(ErrorKind::Io(cut)) = non_http("java.io.IOException", &long) else {
        panic!("an i/o error");
    };
    assert_eq!(
        cut.chars().count(),
        MAX_TRANSPORT_MESSAGE + 1,
        "cut, with …"
    );
    // Statuses below 400 that failed, and samplers that are not HTTP.
    assert_eq!(
        failed("302", "Found").error(),
        Some(ErrorKind::Engine("302 Found".into()))
    );
    assert_eq!(
        failed("", "javax.script.ScriptException: boom").error(),
        Some(ErrorKind::Engine(
            "javax.script.ScriptException: boom".into()
        ))
    );
    assert_eq!(
        failed("", "").error(),
        Some(ErrorKind::Engine("failed".into()))
    );
    assert_eq!(
        failed("503", "Service Unavailable").error(),
        Some(ErrorKind::Status(503))
    );
    // A failed assertion wins over the status it saw.
    let mut both = failed("503", "Service Unavailable");
    both.failure_message = "Test failed: code expected to equal /200/".into();
    assert_eq!(
        both.error(),
        Some(ErrorKind::Check(
            "Test failed: code expected to equal /200/".into()
        ))
    );
}

#[test]
fn any_split_of_the_bytes_gives_the_same_records() {
    // The header and the first dozen rows (two of them spanning lines).
    let ends = row_ends(FORCED);
    let part = &FORCED[..ends[11]];
    assert!(
        part.windows(2).any(|w| w == b"\"\n" || w == b"\nc"),
        "a multi-line row"
    );
    let whole = decode(part).0;
    assert_eq!(whole.len(), 12);
    for at in 0..=part.len() {
        assert_eq!(decode_split(part, &[at]), whole, "split at {at}");
    }
    let all: Vec<usize> = (1..part.len()).collect();
    assert_eq!(decode_split(part, &all), whole, "one byte at a time");
    // The whole file in uneven chunks.
    let splits: Vec<usize> = (1..FORCED.len())
        .filter(|i| i % 977 == 0 || i % 4099 == 1)
        .collect();
    assert_eq!(decode_split(FORCED, &splits), decode(FORCED).0);
}

#[test]
fn a_cut_file_keeps_every_whole_row_and_waits_for_the_rest() {
    let whole = decode(FORCED).0;
    let ends = row_ends(FORCED);
    assert_eq!(ends.len(), whole.len());
    // Every cut point in the first rows, then a spread over the file (a cut
    // inside a quoted line break included).
    let cuts = (0..ends[12]).chain((ends[12]..FORCED.len()).step_by(97));
    for cut in cuts {
        let (got, result, broken, pending) = decode(&FORCED[..cut]);
        result.expect("decodes");
        let complete = ends.iter().filter(|&&e| e <= cut).count();
        assert_eq!(got[..], whole[..complete], "cut at {cut}");
        assert_eq!(broken, 0, "cut at {cut}");
        let last_end = ends[..complete].last().copied();
        // The header counts as decoded once its line is complete.
        let header_end = FORCED.iter().position(|&b| b == b'\n').expect("header") + 1;
        let consumed = last_end.unwrap_or(if cut >= header_end { header_end } else { 0 });
        assert_eq!(pending, cut - consumed, "cut at {cut}");
    }
    // The last newline missing: the last row waits for it, then counts.
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    decoder
        .feed(&FORCED[..FORCED.len() - 1], &mut out)
        .expect("decodes");
    assert_eq!((out.len(), decoder.pending() > 0), (399, true));
    decoder.feed(b"\n", &mut out).expect("decodes");
    assert_eq!((out.len(), decoder.pending()), (400, 0));
}

#[test]
fn corrupted_copies_never_panic_and_lose_only_the_rows_they_break() {
    let header_end = FORCED.iter().position(|&b| b == b'\n').expect("header") + 1;
    let check = |whole: &[Record], bytes: &[u8], what: &str| {
        let (got, result, broken, _) = decode(bytes);
        if result.is_err() {
            return;
        }
        let (lost, extra) = difference(whole, &got);
        assert!(lost <= 2, "{what}: {lost} records lost");
        assert!(extra <= 1, "{what}: {extra} records changed");
        assert!(
            lost == 0 || broken > 0 || extra > 0,
            "{what}: lost without a trace"
        );
    };
    // Every bit of the header and the first rows (two spanning lines), in
    // a copy of the first 40 rows.
    let ends = row_ends(FORCED);
    let part = &FORCED[..ends[39]];
    let whole = decode(part).0;
    let mut copy = part.to_vec();
    for at in 0..ends[11] {
        for bit in 0..8 {
            copy[at] ^= 1 << bit;
            if at < header_end {
                // A header that lost a column is refused; nothing panics.
                let _ = decode(&copy);
            } else {
                check(&whole, &copy, &format!("bit {bit} of byte {at}"));
            }
            copy[at] ^= 1 << bit;
        }
    }
    // Bits spread over the whole file by a fixed pseudo-random walk.
    let whole = decode(FORCED).0;
    let mut copy = FORCED.to_vec();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..100 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = header_end + (x as usize) % (FORCED.len() - header_end);
        let bit = (x >> 40) % 8;
        copy[at] ^= 1 << bit;
        check(&whole, &copy, &format!("bit {bit} of byte {at}"));
        copy[at] ^= 1 << bit;
    }
    // Bytes dropped mid-file (quotes among them, so quoting shifts).
    let odd = FORCED
        .windows(6)
        .position(|w| w == b"\"GET /")
        .expect("the odd label");
    let closing = odd
        + FORCED[odd..]
            .windows(3)
            .position(|w| w == b"/\",")
            .expect("its end");
    for at in [odd, odd + 1, odd + 12, closing + 1, header_end + 5] {
        let mut cut = FORCED.to_vec();
        cut.remove(at);
        check(&whole, &cut, &format!("byte {at} dropped"));
    }
}

#[test]
fn an_overlong_line_is_skipped_and_counted_within_the_bound() {
    let ends = row_ends(FORCED);
    let header_end = FORCED.iter().position(|&b| b == b'\n').expect("header") + 1;
    let at = ends[2];
    // A line without a line break for longer than the bound.
    let mut long = FORCED[..at].to_vec();
    long.extend(std::iter::repeat_n(b'7', MAX_ROW + 10));
    long.push(b'\n');
    long.extend_from_slice(&FORCED[at..]);
    // A quoted field whose line breaks run past the bound.
    let mut quoted = FORCED[..at].to_vec();
    quoted.extend_from_slice(b"1796222972606,80,\"");
    for _ in 0..(MAX_ROW / 50) + 10 {
        quoted.extend_from_slice(&[b'y'; 49]);
        quoted.push(b'\n');
    }
    quoted.extend_from_slice(b"\",200,OK,t,true,,1,1,1,1,1,0,1\n");
    quoted.extend_from_slice(&FORCED[at..]);
    for (name, bytes) in [("one long line", &long), ("long quoted lines", &quoted)] {
        let mut decoder = Decoder::new();
        let mut out = Vec::new();
        for chunk in bytes.chunks(4096) {
            decoder.feed(chunk, &mut out).expect("decodes");
            assert!(decoder.pending() <= MAX_ROW + 4096, "{name}: bounded");
        }
        assert_eq!(out.len(), 400, "{name}: no real row lost");
        assert!(decoder.broken() >= 1, "{name}: counted");
        let (whole, ..) = decode(bytes);
        assert_eq!(whole, out, "{name}: as in one piece");
    }
    let mut decoder = Decoder::new();
    decoder.feed(&long, &mut Vec::new()).expect("decodes");
    assert_eq!((decoder.broken(), decoder.overlong()), (1, 1));
    // Nothing at all after the header: still bounded while it grows.
    let mut decoder = Decoder::new();
    decoder
        .feed(&FORCED[..header_end], &mut Vec::new())
        .expect("decodes");
    for _ in 0..40 {
        decoder
            .feed(&[b'7'; 4096], &mut Vec::new())
            .expect("decodes");
        assert!(decoder.pending() <= MAX_ROW + 4096);
    }
    assert_eq!(
        decoder.overlong(),
        1,
        "skipped up to a line break never seen"
    );
}

#[test]
fn the_header_is_read_by_name_and_checked() {
    let (_, result, ..) = decode(b"timeStamp,elapsed,label,responseCode,responseMessage,success,failureMessage,bytes,grpThreads,allThreads\n1,2,3\n");
    let e = result.expect_err("columns missing");
    assert_eq!(
        e,
        ResultsError::MissingColumns {
            columns: vec!["sentBytes", "Latency", "Connect"],
            properties: vec![
                "jmeter.save.saveservice.sent_bytes=true",
                "jmeter.save.saveservice.latency=true",
                "jmeter.save.saveservice.connect_time=true"
            ],
        }
    );
    let text = e.to_string();
    assert!(
        text.contains("no column sentBytes, Latency, Connect")
            && text.contains("-Jjmeter.save.saveservice.latency=true"),
        "{text}"
    );
    // Without a header (print_field_names=false), the data line is shown.
    let (records, result, ..) = decode(b"1796222449336,110,GET /,200,OK\n");
    assert!(records.is_empty());
    let e = result.expect_err("no header");
    assert!(
        matches!(&e, ResultsError::NoHeader(first) if first.starts_with("1796222449336,110")),
        "{e}"
    );
    // Refused for good: later bytes decode nothing.
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    let first = decoder.feed(b"a,b\n", &mut out).expect_err("no header");
    assert_eq!(decoder.feed(&FORCED[..2000], &mut out), Err(first));
    assert!(out.is_empty());
    // A header cut anywhere waits; a broken first line is no header.
    let (_, result, _, pending) = decode(&FORCED[..30]);
    assert_eq!((result, pending), (Ok(()), 30));
    let (_, result, ..) = decode(b"\"timeStamp\"x,elapsed\n");
    assert!(matches!(result, Err(ResultsError::NoHeader(_))));
}

#[test]
fn rows_split_strictly_and_within_bounds() {
    let fields = |line: &[u8]| -> Option<Vec<String>> {
        let mut rows = Rows::default();
        rows.push(line);
        match rows.next() {
            Next::Row => Some(
                (0..rows.len())
                    .map(|i| String::from_utf8_lossy(rows.field(i)).into_owned())
                    .collect(),
            ),
            _ => None,
        }
    };
    assert_eq!(
        fields(b"a,\"b\"\"c\",\n"),
        Some(vec!["a".into(), "b\"c".into(), "".into()])
    );
    assert_eq!(
        fields(b"\"\",\"x\ny\"\n"),
        Some(vec!["".into(), "x\ny".into()])
    );
    assert_eq!(fields(b"\"a\"b\n"), None, "text after a closing quote");
    assert_eq!(fields(b"a\"b\n"), None, "a quote inside a bare field");
    let wide = vec!["1"; MAX_FIELDS].join(",") + "\n";
    assert_eq!(fields(wide.as_bytes()).map(|f| f.len()), Some(MAX_FIELDS));
    let wider = vec!["1"; MAX_FIELDS + 1].join(",") + "\n";
    assert_eq!(fields(wider.as_bytes()), None, "too many fields");
    // Blank lines are no rows; a row without its newline waits.
    let mut rows = Rows::default();
    rows.push(b"\n\r\na,b");
    assert_eq!(rows.next(), Next::Wait);
    assert_eq!(rows.pending(), 3);
    rows.push(b"\n");
    assert_eq!(rows.next(), Next::Row);
    assert_eq!(
        (rows.len(), rows.field(1), rows.field(9)),
        (2, &b"b"[..], &b""[..])
    );
}
