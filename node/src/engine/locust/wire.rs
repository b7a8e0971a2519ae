//! The records bfgg's Locust plugin (`plugin.py`) sends to the node: frame
//! decoding, pure and bounded. A frame is a 1-byte kind, a 4-byte
//! little-endian length and the payload; anything malformed (unknown kind,
//! oversized frame, truncated record, bad UTF-8 or JSON) is an error naming
//! what was wrong, and the caller drops that connection (what it already
//! recorded is kept).

use serde::Deserialize;

/// Largest frame accepted (the plugin flushes at 64 KiB of records).
pub(crate) const MAX_FRAME: usize = 1 << 20;
/// Bytes of one request record.
pub(crate) const RECORD_BYTES: usize = 20;
/// The plugin's "users running" for a process that runs none (a master).
pub(crate) const NO_USERS: u32 = u32::MAX;

const HELLO: u8 = 1;
const NAME: u8 = 2;
const ERROR: u8 = 3;
const BATCH: u8 = 4;

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Hello {
    /// Must equal the token the node gave the process.
    pub(crate) token: String,
    /// The Locust process.
    pub(crate) pid: u32,
    /// `local`, `master` or `worker`.
    pub(crate) role: String,
    /// Locust's version.
    pub(crate) locust: String,
    /// Python's version.
    pub(crate) python: String,
}

/// One request as Locust reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    /// Id from an earlier [`Frame::Name`].
    pub(crate) name: u16,
    /// Id from an earlier [`Frame::Error`]; 0 when the request succeeded.
    pub(crate) error: u16,
    /// When it ended, Unix time in µs.
    pub(crate) end_us: u64,
    /// Locust's response time, µs.
    pub(crate) response_time_us: u32,
    /// Locust's response length, bytes.
    pub(crate) length: u32,
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame {
    /// The first frame of a connection.
    Hello(Hello),
    /// A request name and its id.
    Name { id: u16, name: String },
    /// A failure message and its id.
    Error { id: u16, message: String },
    /// Records, and the users running in the process ([`NO_USERS`] for none).
    Batch { users: u32, records: Vec<Record> },
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    /// The length field exceeds [`MAX_FRAME`].
    #[error("frame of {len} bytes (more than {MAX_FRAME})")]
    TooLarge { len: usize },
    /// A kind byte this node does not know.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The payload is shorter than its kind needs, or records are cut.
    #[error("{kind} frame of {len} bytes is malformed")]
    Malformed { kind: &'static str, len: usize },
    /// A name or message is not UTF-8.
    #[error("{kind} frame holds invalid UTF-8")]
    Utf8 { kind: &'static str },
    /// The hello is not the JSON the plugin writes.
    #[error("hello frame is not valid: {0}")]
    Hello(String),
}

/// What one [`decode`] call found.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    /// Complete frames, in order.
    pub(crate) frames: Vec<Frame>,
    /// Bytes those frames used; the rest of the buffer is an incomplete
    /// frame, kept for the next read.
    pub(crate) used: usize,
    /// A broken frame after them: the connection is done, the frames before
    /// it still count.
    pub(crate) error: Option<WireError>,
}

/// Splits complete frames off the front of `buf`.
pub(crate) fn decode(buf: &[u8]) -> Decoded {
    let mut out = Decoded::default();
    while buf.len() - out.used >= 5 {
        let at = out.used;
        let kind = buf[at];
        let len = u32::from_le_bytes([buf[at + 1], buf[at + 2], buf[at + 3], buf[at + 4]]) as usize;
        if len > MAX_FRAME {
            out.error = Some(WireError::TooLarge { len });
            break;
        }
        if buf.len() - at - 5 < len {
            break;
        }
        match frame(kind, &buf[at + 5..at + 5 + len]) {
            Ok(f) => out.frames.push(f),
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
        out.used = at + 5 + len;
    }
    out
}

fn frame(kind: u8, p: &[u8]) -> Result<Frame, WireError> {
    match kind {
        HELLO => serde_json::from_slice(p)
            .map(Frame::Hello)
            .map_err(|e| WireError::Hello(e.to_string())),
        NAME => {
            let (id, text) = id_and_text(p, "name")?;
            Ok(Frame::Name { id, name: text })
        }
        ERROR => {
            let (id, text) = id_and_text(p, "error")?;
            Ok(Frame::Error { id, message: text })
        }
        BATCH => {
            let malformed = WireError::Malformed {
                kind: "batch",
                len: p.len(),
            };
            if p.len() < 4 || !(p.len() - 4).is_multiple_of(RECORD_BYTES) {
                return Err(malformed);
            }
            let users = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
            let records = p[4..]
                .chunks_exact(RECORD_BYTES)
                .map(|r| Record {
                    name: u16::from_le_bytes([r[0], r[1]]),
                    error: u16::from_le_bytes([r[2], r[3]]),
                    end_us: u64::from_le_bytes(r[4..12].try_into().expect("8 bytes")),
                    response_time_us: u32::from_le_bytes(r[12..16].try_into().expect("4 bytes")),
                    length: u32::from_le_bytes(r[16..20].try_into().expect("4 bytes")),
                })
                .collect();
            Ok(Frame::Batch { users, records })
        }
        other => Err(WireError::UnknownKind(other)),
    }
}

fn id_and_text(p: &[u8], kind: &'static str) -> Result<(u16, String), WireError> {
    if p.len() < 2 {
        return Err(WireError::Malformed { kind, len: p.len() });
    }
    let id = u16::from_le_bytes([p[0], p[1]]);
    if id == 0 {
        return Err(WireError::Malformed { kind, len: p.len() });
    }
    let text = std::str::from_utf8(&p[2..]).map_err(|_| WireError::Utf8 { kind })?;
    Ok((id, text.to_owned()))
}

#[cfg(test)]
mod tests;
