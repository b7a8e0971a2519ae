//! Unit tests of `scenario::data`.
use std::collections::BTreeSet;
use std::io::Write as _;

use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::*;

/// Writes `contents` to a temporary CSV file that lives as long as the result.
fn csv_file(contents: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".csv")
        .tempfile()
        .expect("temp file");
    file.write_all(contents).expect("write");
    file
}

fn load(contents: &[u8]) -> Result<PoolSpec, DataError> {
    let file = csv_file(contents);
    PoolSpec::load("users", file.path(), Strategy::Circular, OnExhausted::Stop)
}

/// A pool of `n` rows whose single column `id` holds the row index.
fn numbered(n: usize, strategy: Strategy) -> PoolSpec {
    PoolSpec::from_rows(
        "ids",
        vec!["id".to_owned()],
        (0..n).map(|i| vec![i.to_string()]).collect(),
        strategy,
        OnExhausted::Skip,
    )
    .expect("valid rows")
}

/// Every global row index of a partition, in order.
fn indices(spec: &PoolSpec) -> Vec<usize> {
    (0..spec.len()).map(|i| spec.row_index(i)).collect()
}

fn rng() -> SmallRng {
    SmallRng::seed_from_u64(7)
}

#[test]
fn loads_header_and_rows_with_quoted_fields() {
    let spec = load(b"id, email ,note\n1,a@x.io,plain\n2,b@x.io,\"with, comma and \"\"quotes\"\"\"\n\n3,c@x.io,\"multi\nline\"\n")
        .expect("loads");
    assert_eq!(spec.name, "users");
    assert_eq!(spec.columns, ["id", "email", "note"]);
    assert_eq!(spec.len(), 3);
    assert!(!spec.is_empty());
    assert_eq!(spec.column("email"), Some(1));
    assert_eq!(spec.column("nope"), None);
    assert_eq!(spec.rows[0], ["1", "a@x.io", "plain"]);
    assert_eq!(spec.rows[1][2], "with, comma and \"quotes\"");
    assert_eq!(spec.value(2, 2), Some("multi\nline"));
    assert_eq!(spec.value(3, 0), None);
    assert_eq!(spec.strategy, Strategy::Circular);
    assert_eq!(spec.on_exhausted, OnExhausted::Stop);
}

#[test]
fn header_only_is_an_empty_pool() {
    let spec = load(b"id,email\n").expect("loads");
    assert_eq!(spec.columns, ["id", "email"]);
    assert!(spec.is_empty());
}

#[test]
fn row_of_wrong_width_names_its_line() {
    let err = load(b"id,email\n1,a\n2,b\n\n3\n4,d\n").expect_err("bad row");
    match &err {
        DataError::RowWidth {
            line,
            expected,
            found,
            ..
        } => {
            assert_eq!((*line, *expected, *found), (5, 2, 1));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(
        err.to_string()
            .ends_with(":5: row has 1 fields, the header has 2"),
        "{err}"
    );
}

#[test]
fn line_numbers_count_blank_lines_crlf_and_multiline_fields() {
    let line = |contents: &[u8]| match load(contents) {
        Err(DataError::RowWidth { line, .. }) => line,
        other => panic!("unexpected result {other:?}"),
    };
    assert_eq!(line(b"id,e\r\n1,a\r\n\r\n2\r\n"), 4);
    assert_eq!(line(b"\n\nid,e\n\n1,a\n\n\n2\n"), 8);
    assert_eq!(line(b"id,e\n1,\"x\ny\"\n2\n"), 4);
    assert_eq!(line(b"id,e\n1"), 2);
}

#[test]
fn missing_file_names_its_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nope.csv");
    let err = PoolSpec::load("users", &path, Strategy::Unique, OnExhausted::Skip)
        .expect_err("missing file");
    assert!(matches!(err, DataError::Read { .. }));
    assert_eq!(
        err.to_string(),
        format!("cannot read data file {}", path.display())
    );
    let source = std::error::Error::source(&err).expect("has a source");
    assert!(source.downcast_ref::<std::io::Error>().is_some());
}

#[test]
fn empty_file_is_rejected() {
    for contents in [&b""[..], b"\n\n"] {
        let err = load(contents).expect_err("empty");
        assert!(matches!(err, DataError::Empty { .. }), "{err:?}");
        assert!(
            err.to_string()
                .ends_with(": data file is empty (expected a header line)")
        );
    }
}

#[test]
fn invalid_utf8_is_a_csv_error_with_its_line() {
    let err = load(b"id,name\n1,ok\n2,\xff\xfe\n").expect_err("bad utf-8");
    match &err {
        DataError::Csv { line, .. } => assert_eq!(*line, 3),
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().ends_with(":3: invalid csv"), "{err}");
}

#[test]
fn duplicate_columns_are_rejected() {
    let err = load(b"id,email,id\n1,a,1\n").expect_err("duplicate");
    assert!(
        matches!(&err, DataError::DuplicateColumn { column, .. } if column == "id"),
        "{err:?}"
    );
    assert!(err.to_string().ends_with(": duplicate column \"id\""));
}

#[test]
fn from_rows_validates_widths() {
    let err = PoolSpec::from_rows(
        "p",
        vec!["a".to_owned(), "b".to_owned()],
        vec![vec!["1".to_owned(), "2".to_owned()], vec!["3".to_owned()]],
        Strategy::Random,
        OnExhausted::Stop,
    )
    .expect_err("bad row");
    assert!(
        matches!(err, DataError::RowWidth { line: 3, .. }),
        "{err:?}"
    );
}

#[test]
fn circular_wraps_in_order_from_its_start() {
    let mut cursor = PoolCursor::new(numbered(3, Strategy::Circular), 4);
    let mut rng = rng();
    let drawn: Vec<_> = (0..7).map(|_| cursor.next_row(&mut rng)).collect();
    assert_eq!(
        drawn,
        [1, 2, 0, 1, 2, 0, 1].map(Some).to_vec(),
        "start 4 of 3 rows begins at row 1"
    );
    assert_eq!(cursor.used(), 7);
    assert_eq!(cursor.spec().len(), 3);
}

#[test]
fn random_stays_in_range_and_covers_every_row() {
    let mut cursor = PoolCursor::new(numbered(10, Strategy::Random), 0);
    let mut rng = rng();
    let mut seen = BTreeSet::new();
    for _ in 0..1000 {
        let row = cursor.next_row(&mut rng).expect("random never runs out");
        assert!(row < 10);
        seen.insert(row);
    }
    assert_eq!(seen.len(), 10);
    assert_eq!(cursor.used(), 1000);
}

#[test]
fn unique_hands_each_row_once_then_none() {
    let mut cursor = PoolCursor::new(numbered(4, Strategy::Unique), 2);
    let mut rng = rng();
    let drawn: Vec<_> = (0..4).map(|_| cursor.next_row(&mut rng)).collect();
    assert_eq!(drawn, [0, 1, 2, 3].map(Some).to_vec());
    assert_eq!(cursor.next_row(&mut rng), None);
    assert_eq!(cursor.next_row(&mut rng), None);
    assert_eq!(cursor.used(), 4);
}

#[test]
fn empty_pools_yield_nothing() {
    let mut rng = rng();
    for strategy in [Strategy::Circular, Strategy::Random, Strategy::Unique] {
        let mut cursor = PoolCursor::new(numbered(0, strategy), 3);
        assert_eq!(cursor.next_row(&mut rng), None, "{strategy:?}");
        assert_eq!(cursor.used(), 0);
    }
}

#[test]
fn partitions_are_disjoint_and_complete() {
    let spec = numbered(10, Strategy::Unique);
    let parts: Vec<_> = (0..3).map(|i| indices(&spec.partition(i, 3))).collect();
    assert_eq!(parts, vec![vec![0, 3, 6, 9], vec![1, 4, 7], vec![2, 5, 8]]);
    assert_eq!(spec.partition(1, 3).len(), 3);
    assert!(std::sync::Arc::ptr_eq(
        &spec.rows,
        &spec.partition(2, 3).rows
    ));
}

#[test]
fn nested_partitions_cover_every_row_exactly_once() {
    let spec = numbered(100, Strategy::Unique);
    let mut all = Vec::new();
    for node in 0..3 {
        let share = spec.partition(node, 3);
        let mut node_rows = Vec::new();
        for worker in 0..2 {
            let part = share.partition(worker, 2);
            // Every index a cursor hands out really belongs to this partition.
            let mut cursor = PoolCursor::new(part.clone(), 0);
            let mut rng = rng();
            let drawn: Vec<_> = std::iter::from_fn(|| cursor.next_row(&mut rng)).collect();
            assert_eq!(drawn, indices(&part));
            node_rows.extend(drawn);
        }
        node_rows.sort_unstable();
        assert_eq!(node_rows, indices(&share), "node {node}");
        all.extend(node_rows);
    }
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
}

#[test]
fn more_partitions_than_rows_leaves_some_empty() {
    let spec = numbered(3, Strategy::Unique);
    let lens: Vec<_> = (0..5).map(|i| spec.partition(i, 5).len()).collect();
    assert_eq!(lens, [1, 1, 1, 0, 0]);
    let mut all: Vec<_> = (0..5)
        .flat_map(|i| {
            let p = spec.partition(i, 5);
            (0..2).flat_map(move |w| indices(&p.partition(w, 2)))
        })
        .collect();
    all.sort_unstable();
    assert_eq!(all, [0, 1, 2]);
    assert!(spec.partition(4, 5).is_empty());
}

#[test]
fn partition_count_zero_is_the_whole_pool() {
    let spec = numbered(4, Strategy::Unique);
    assert_eq!(indices(&spec.partition(0, 0)), [0, 1, 2, 3]);
}
