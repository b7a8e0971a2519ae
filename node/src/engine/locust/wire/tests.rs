//! Decoding the plugin's frames: whole, split at every byte, and broken.

use super::*;

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn record(r: Record) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&r.name.to_le_bytes());
    out.extend_from_slice(&r.error.to_le_bytes());
    out.extend_from_slice(&r.end_us.to_le_bytes());
    out.extend_from_slice(&r.response_time_us.to_le_bytes());
    out.extend_from_slice(&r.length.to_le_bytes());
    out
}

fn stream() -> (Vec<u8>, Vec<Frame>) {
    let hello = br#"{"token":"t","pid":42,"role":"worker","locust":"2.47.0","python":"3.11.7"}"#;
    let r1 = Record {
        name: 1,
        error: 0,
        end_us: 1_795_444_895_123_456,
        response_time_us: 1_234,
        length: 512,
    };
    let r2 = Record {
        name: 1,
        error: 1,
        end_us: 1_795_444_895_223_456,
        response_time_us: u32::MAX,
        length: 0,
    };
    let mut batch = 7u32.to_le_bytes().to_vec();
    batch.extend(record(r1));
    batch.extend(record(r2));
    let mut name = 1u16.to_le_bytes().to_vec();
    name.extend_from_slice("me ✓".as_bytes());
    let mut error = 1u16.to_le_bytes().to_vec();
    error.extend_from_slice(b"expected user u1");
    let mut bytes = frame(1, hello);
    bytes.extend(frame(2, &name));
    bytes.extend(frame(3, &error));
    bytes.extend(frame(4, &batch));
    bytes.extend(frame(4, &NO_USERS.to_le_bytes()));
    let frames = vec![
        Frame::Hello(Hello {
            token: "t".into(),
            pid: 42,
            role: "worker".into(),
            locust: "2.47.0".into(),
            python: "3.11.7".into(),
        }),
        Frame::Name {
            id: 1,
            name: "me ✓".into(),
        },
        Frame::Error {
            id: 1,
            message: "expected user u1".into(),
        },
        Frame::Batch {
            users: 7,
            records: vec![r1, r2],
        },
        Frame::Batch {
            users: NO_USERS,
            records: vec![],
        },
    ];
    (bytes, frames)
}

#[test]
fn a_stream_decodes_whole() {
    let (bytes, want) = stream();
    let d = decode(&bytes);
    assert_eq!(d.error, None);
    assert_eq!(d.frames, want);
    assert_eq!(d.used, bytes.len());
}

#[test]
fn a_stream_split_anywhere_decodes_the_same() {
    let (bytes, want) = stream();
    for cut in 0..=bytes.len() {
        let first = decode(&bytes[..cut]);
        assert_eq!(first.error, None);
        assert!(first.used <= cut);
        let mut frames = first.frames;
        let mut rest = bytes[first.used..cut].to_vec();
        rest.extend_from_slice(&bytes[cut..]);
        let second = decode(&rest);
        assert_eq!(second.error, None);
        assert_eq!(second.used, rest.len(), "cut at {cut}");
        frames.extend(second.frames);
        assert_eq!(frames, want, "cut at {cut}");
    }
}

#[test]
fn broken_frames_are_named() {
    let cases: Vec<(Vec<u8>, WireError)> = vec![
        (frame(9, b""), WireError::UnknownKind(9)),
        (
            frame(4, &[0, 0, 0]),
            WireError::Malformed {
                kind: "batch",
                len: 3,
            },
        ),
        (
            // users and a record cut one byte short
            frame(4, &[0u8; 4 + RECORD_BYTES - 1]),
            WireError::Malformed {
                kind: "batch",
                len: 4 + RECORD_BYTES - 1,
            },
        ),
        (
            frame(2, &[1]),
            WireError::Malformed {
                kind: "name",
                len: 1,
            },
        ),
        (
            // id 0 is "no error" and never a name or message
            frame(3, &[0, 0, b'x']),
            WireError::Malformed {
                kind: "error",
                len: 3,
            },
        ),
        (
            frame(2, &[1, 0, 0xff, 0xfe]),
            WireError::Utf8 { kind: "name" },
        ),
    ];
    for (bytes, want) in cases {
        let d = decode(&bytes);
        assert_eq!(d.error, Some(want), "{bytes:?}");
        assert!(d.frames.is_empty());
    }
    assert!(matches!(
        decode(&frame(1, b"{\"token\": 1}")).error,
        Some(WireError::Hello(_))
    ));
    let mut huge = vec![4u8];
    huge.extend_from_slice(&((MAX_FRAME + 1) as u32).to_le_bytes());
    assert_eq!(
        decode(&huge).error,
        Some(WireError::TooLarge { len: MAX_FRAME + 1 })
    );
}

#[test]
fn frames_before_a_broken_one_still_count() {
    let (mut bytes, want) = stream();
    let good = bytes.len();
    bytes.extend(frame(200, b"junk"));
    let d = decode(&bytes);
    assert_eq!(d.frames, want);
    assert_eq!(d.used, good);
    assert_eq!(d.error, Some(WireError::UnknownKind(200)));
}
