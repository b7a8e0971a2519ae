//! S3 URLs, the files of a results directory, and the status kept in
//! `summary.json` (the uploads themselves are tested against real
//! S3-compatible servers in tests/it/s3.rs).

use super::*;

#[test]
fn s3_urls_parse_and_print_back() {
    let u: S3Url = "s3://results/team/perf/".parse().unwrap();
    assert_eq!(u.bucket, "results");
    assert_eq!(u.prefix, "team/perf");
    assert_eq!(u.to_string(), "s3://results/team/perf");
    let bare: S3Url = "s3://results".parse().unwrap();
    assert_eq!(bare.prefix, "");
    assert_eq!(bare.to_string(), "s3://results");
    for bad in ["results/x", "s3://", "s3://UPPER", "s3://ab", "https://x/y"] {
        let err = bad.parse::<S3Url>().unwrap_err();
        assert!(!err.is_empty(), "{bad}");
    }
}

#[test]
fn every_file_is_listed_sorted_with_its_size_but_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("summary.json"), "{}").unwrap();
    std::fs::write(dir.path().join(".summary.json.tmp"), "x").unwrap();
    std::fs::create_dir(dir.path().join("locust")).unwrap();
    std::fs::write(dir.path().join("locust/stderr.log"), "abc").unwrap();
    std::fs::write(dir.path().join("intervals.log"), vec![0u8; 10]).unwrap();
    let files = files_of(dir.path()).unwrap();
    assert_eq!(
        files,
        vec![
            ("intervals.log".to_owned(), 10),
            ("locust/stderr.log".to_owned(), 3),
            ("summary.json".to_owned(), 2),
        ]
    );
    assert!(files_of(&dir.path().join("missing")).is_err());
}

#[test]
fn the_status_goes_into_summary_json_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("summary.json"),
        r#"{"scenario": "demo", "total": {"requests": 3}}"#,
    )
    .unwrap();
    assert_eq!(status_of(dir.path()), None);
    let failed = UploadStatus {
        state: "failed".into(),
        url: "s3://b/p/run/".into(),
        error: Some("bucket `b` does not exist".into()),
    };
    record_status(dir.path(), &failed).unwrap();
    assert_eq!(status_of(dir.path()), Some(failed));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(v["total"]["requests"], 3, "the rest is kept");
    let ok = UploadStatus {
        state: "uploaded".into(),
        url: "s3://b/p/run/".into(),
        error: None,
    };
    record_status(dir.path(), &ok).unwrap();
    assert_eq!(status_of(dir.path()), Some(ok));
    // No summary (a run that never finished): nothing to record into.
    let empty = tempfile::tempdir().unwrap();
    record_status(
        empty.path(),
        &UploadStatus {
            state: "failed".into(),
            url: String::new(),
            error: None,
        },
    )
    .unwrap();
    assert!(!empty.path().join("summary.json").exists());
}

#[test]
fn multipart_etags_are_the_md5_of_the_parts_md5s() {
    // The form S3 gives a multipart object: md5(md5(p1) || md5(p2)) "-2".
    let (_, a) = md5_base64(b"part one");
    let (_, b) = md5_base64(b"part two");
    let mut both = a.to_vec();
    both.extend_from_slice(&b);
    let (_, of) = md5_base64(&both);
    assert_eq!(hex(&of).len(), 32);
    assert_eq!(hex(&[0xab, 0x01]), "ab01");
}
