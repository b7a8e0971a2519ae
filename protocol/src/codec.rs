//! The wire codec: bincode 2 (serde mode) inside a versioned envelope.
//!
//! Every encoded message is `varint(PROTOCOL_VERSION) ++ flag ++ body`, the
//! body zlib-compressed (flag 1) when that pays, raw (flag 0) otherwise:
//! histograms travel as plain V2 inside, so one compression covers a whole
//! snapshot (its headers and similar histograms compress against each other).
//! Decoding checks the total size before touching the bytes, refuses other
//! versions before decoding the body, inflates into a buffer capped at the
//! same limit, limits every length prefix (so a hostile prefix cannot
//! allocate gigabytes) and refuses trailing bytes. This is the only module that
//! names bincode, so the codec can be swapped (postcard is the maintained
//! alternative, see ../shared/NOTES.md).

use std::io::{Read, Write};

use bincode::config::{self, Configuration, Limit, LittleEndian, Varint};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::PROTOCOL_VERSION;

/// Largest message [`decode`] accepts, in bytes (16 MiB).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

type Config = Configuration<LittleEndian, Varint, Limit<MAX_MESSAGE_BYTES>>;

fn config() -> Config {
    config::standard().with_limit::<MAX_MESSAGE_BYTES>()
}

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode message: {0}")]
pub struct EncodeError(String);

/// Why bytes could not be decoded. Callers drop the message and count it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The message is larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Size of the offered message.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The sender speaks another protocol version.
    #[error("protocol version {found} is not supported (this build speaks {expected})")]
    Version {
        /// Version found in the envelope.
        found: u16,
        /// Version this build speaks.
        expected: u16,
    },
    /// The body is not a valid message of the expected type.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The body decoded but bytes were left over.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

/// Bodies shorter than this go uncompressed.
const COMPRESS_FROM: usize = 128;
/// Bodies up to this size are compressed at zlib's best level.
const COMPRESS_BEST_UP_TO: usize = 32 * 1024;
const RAW: u8 = 0;
const ZLIB: u8 = 1;

/// Encodes `msg` in the versioned envelope.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = bincode::serde::encode_to_vec(PROTOCOL_VERSION, config())
        .map_err(|e| EncodeError(e.to_string()))?;
    let body =
        bincode::serde::encode_to_vec(msg, config()).map_err(|e| EncodeError(e.to_string()))?;
    if body.len() >= COMPRESS_FROM {
        // Gossip-sized bodies get the best ratio (one per agent per second);
        // big ones (result pages) the fastest level.
        let level = if body.len() <= COMPRESS_BEST_UP_TO {
            flate2::Compression::best()
        } else {
            flate2::Compression::fast()
        };
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), level);
        z.write_all(&body).map_err(|e| EncodeError(e.to_string()))?;
        let zipped = z.finish().map_err(|e| EncodeError(e.to_string()))?;
        if zipped.len() < body.len() {
            out.push(ZLIB);
            out.extend_from_slice(&zipped);
            return Ok(out);
        }
    }
    out.push(RAW);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a message produced by [`encode`]. Never panics on any input.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    let (found, used): (u16, usize) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| DecodeError::Malformed(format!("envelope: {e}")))?;
    if found != PROTOCOL_VERSION {
        return Err(DecodeError::Version {
            found,
            expected: PROTOCOL_VERSION,
        });
    }
    let inflated;
    let rest = match bytes.get(used) {
        Some(&RAW) => &bytes[used + 1..],
        Some(&ZLIB) => {
            let zipped = &bytes[used + 1..];
            let mut out = Vec::new();
            let mut z = flate2::bufread::ZlibDecoder::new(zipped);
            (&mut z)
                .take(MAX_MESSAGE_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| DecodeError::Malformed(format!("body does not inflate: {e}")))?;
            let consumed = usize::try_from(z.total_in()).unwrap_or(usize::MAX);
            if consumed < zipped.len() && out.len() <= MAX_MESSAGE_BYTES {
                return Err(DecodeError::Trailing(zipped.len() - consumed));
            }
            if out.len() > MAX_MESSAGE_BYTES {
                return Err(DecodeError::TooLarge {
                    len: out.len(),
                    max: MAX_MESSAGE_BYTES,
                });
            }
            inflated = out;
            &inflated[..]
        }
        Some(other) => {
            return Err(DecodeError::Malformed(format!(
                "unknown body encoding {other}"
            )));
        }
        None => return Err(DecodeError::Malformed("no body".into())),
    };
    let (msg, body_used): (T, usize) = bincode::serde::decode_from_slice(rest, config())
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if body_used != rest.len() {
        return Err(DecodeError::Trailing(rest.len() - body_used));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{ErrorKind, IntervalSnapshot};

    fn sample() -> IntervalSnapshot {
        let mut s = IntervalSnapshot::new(7);
        let n = s.by_name.entry("home".into()).or_default();
        n.requests = 3;
        n.errors
            .insert(ErrorKind::Check("status 503 expected 200".into()), 1);
        n.response_time.record(1_234);
        n.service_time.record(1_000);
        s.generator.schedule_lag.record(15);
        s
    }

    #[test]
    fn snapshot_round_trips() {
        let s = sample();
        let bytes = encode(&s).expect("encodes");
        assert_eq!(decode::<IntervalSnapshot>(&bytes).expect("decodes"), s);
    }

    #[test]
    fn an_empty_snapshot_is_small() {
        // Gossip has a 64 KiB limit; an idle interval must cost next to nothing.
        let bytes = encode(&IntervalSnapshot::new(1)).expect("encodes");
        assert!(bytes.len() < 200, "{} bytes", bytes.len());
        let bytes = encode(&sample()).expect("encodes");
        assert!(bytes.len() < 400, "{} bytes", bytes.len());
    }

    #[test]
    fn other_versions_are_refused_before_the_body() {
        let mut bytes = encode(&sample()).expect("encodes");
        bytes[0] = 9;
        assert_eq!(
            decode::<IntervalSnapshot>(&bytes),
            Err(DecodeError::Version {
                found: 9,
                expected: PROTOCOL_VERSION
            })
        );
    }

    #[test]
    fn truncated_trailing_and_hostile_inputs_are_errors() {
        let bytes = encode(&sample()).expect("encodes");
        for cut in 0..bytes.len() {
            assert!(
                decode::<IntervalSnapshot>(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            decode::<IntervalSnapshot>(&long),
            Err(DecodeError::Trailing(1))
        );
        // A length prefix claiming ~2^60 entries must be refused, not allocated.
        let mut hostile = encode(&IntervalSnapshot::new(1)).expect("encodes");
        hostile.truncate(2);
        hostile.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0xFF]);
        assert!(decode::<IntervalSnapshot>(&hostile).is_err());
        let huge = vec![0u8; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            decode::<IntervalSnapshot>(&huge),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn every_byte_flip_is_handled_without_panic() {
        let bytes = encode(&sample()).expect("encodes");
        let mut refused = 0;
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                // Either a clean error or a valid message (a flip in a field
                // the decoder re-derives, such as a histogram's declared
                // bounds, can even decode to the same value): never a panic.
                if decode::<IntervalSnapshot>(&b).is_err() {
                    refused += 1;
                }
            }
        }
        assert!(refused > bytes.len(), "most flips are refused: {refused}");
    }
}
