//! The hot path: a minimal HTTP/1.1 client connection.
//!
//! One request at a time on a kept-alive stream: the request arrives fully
//! serialized (usually one `write`), the response head is parsed in place by
//! `httparse` from a reused buffer, and the body is framed by Content-Length,
//! chunked encoding or end of stream; it is copied out only when a check or
//! an extraction needs it. No task hand-off, no header map unless asked for.
//! hyper remains the client for HTTP/2 (see `client.rs`).

use bfgg_protocol::ErrorKind;
use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Most response headers parsed.
const MAX_HEADERS: usize = 96;

/// What the caller needs from the response beyond status and size.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Want {
    /// Keep the body bytes.
    pub(crate) body: bool,
    /// Build a header map.
    pub(crate) headers: bool,
    /// The request was HEAD: the response has no body whatever its headers say.
    pub(crate) head_request: bool,
}

/// A parsed response.
#[derive(Debug)]
pub(crate) struct H1Response {
    pub(crate) status: u16,
    /// Empty unless `Want::headers`.
    pub(crate) headers: HeaderMap,
    /// Empty unless `Want::body`.
    pub(crate) body: Bytes,
    /// Body bytes received.
    pub(crate) bytes_in: u64,
}

/// Why a round trip failed.
#[derive(Debug)]
pub(crate) enum H1Error {
    /// The peer closed a reused connection before sending any byte of the
    /// response: the request was most likely never seen, so it may be retried
    /// once on a fresh connection (what browsers and hyper do).
    ClosedBeforeResponse,
    /// Anything else, as counted.
    Failed(ErrorKind),
}

/// One HTTP/1.1 connection over any byte stream (TCP or TLS).
pub(crate) struct H1<S> {
    io: S,
    buf: BytesMut,
    reusable: bool,
    /// Completed round trips on this connection.
    pub(crate) used: u64,
}

fn io_error(e: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as K;
    ErrorKind::Io(
        match e.kind() {
            K::ConnectionReset => "connection reset",
            K::BrokenPipe => "broken pipe",
            K::ConnectionAborted => "connection aborted",
            K::UnexpectedEof => "connection closed before the response completed",
            _ => return ErrorKind::Io(e.to_string().chars().take(80).collect()),
        }
        .into(),
    )
}

fn invalid(what: &str) -> H1Error {
    H1Error::Failed(ErrorKind::Io(format!("invalid http response: {what}")))
}

impl<S: AsyncRead + AsyncWrite + Unpin> H1<S> {
    pub(crate) fn new(io: S) -> Self {
        Self {
            io,
            buf: BytesMut::with_capacity(16 * 1024),
            reusable: true,
            used: 0,
        }
    }

    /// False once the server asked to close, or the framing required it.
    pub(crate) fn is_usable(&self) -> bool {
        self.reusable
    }

    /// Reads more bytes into the buffer; `Ok(0)` is end of stream.
    async fn fill(&mut self) -> Result<usize, H1Error> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        self.io
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| H1Error::Failed(io_error(&e)))
    }

    /// Sends one complete serialized request and reads its response.
    /// Dropping the future mid-way leaves the connection unusable: callers
    /// drop the connection then (a timeout does exactly that).
    pub(crate) async fn round_trip(
        &mut self,
        request: &[u8],
        want: Want,
    ) -> Result<H1Response, H1Error> {
        self.reusable = false; // until this exchange completes cleanly
        self.io
            .write_all(request)
            .await
            .map_err(|e| H1Error::Failed(io_error(&e)))?;
        self.io
            .flush()
            .await
            .map_err(|e| H1Error::Failed(io_error(&e)))?;
        let mut received_any = !self.buf.is_empty();
        // The head, skipping any 1xx interim responses.
        let (status, head_len, framing, close, headers) = loop {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut slots);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = resp.code.unwrap_or(0);
                    if (100..200).contains(&status) && status != 101 {
                        self.buf.advance(n);
                        continue;
                    }
                    let http10 = resp.version == Some(0);
                    let mut framing = Framing::UntilClose;
                    let mut close = http10;
                    let mut map = HeaderMap::new();
                    for h in resp.headers.iter() {
                        let name = h.name;
                        if name.eq_ignore_ascii_case("content-length") {
                            if matches!(framing, Framing::UntilClose) {
                                let text = std::str::from_utf8(h.value)
                                    .map_err(|_| invalid("content-length"))?;
                                framing = Framing::Length(
                                    text.trim().parse().map_err(|_| invalid("content-length"))?,
                                );
                            }
                        } else if name.eq_ignore_ascii_case("transfer-encoding") {
                            if h.value
                                .windows(7)
                                .any(|w| w.eq_ignore_ascii_case(b"chunked"))
                            {
                                framing = Framing::Chunked;
                            }
                        } else if name.eq_ignore_ascii_case("connection") {
                            if h.value.windows(5).any(|w| w.eq_ignore_ascii_case(b"close")) {
                                close = true;
                            } else if h
                                .value
                                .windows(10)
                                .any(|w| w.eq_ignore_ascii_case(b"keep-alive"))
                            {
                                close = false;
                            }
                        }
                        if want.headers
                            && let (Ok(n), Ok(v)) = (
                                HeaderName::from_bytes(name.as_bytes()),
                                HeaderValue::from_bytes(h.value),
                            )
                        {
                            map.append(n, v);
                        }
                    }
                    if want.head_request || status == 204 || status == 304 {
                        framing = Framing::Length(0);
                    }
                    break (status, n, framing, close, map);
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > MAX_HEAD {
                        return Err(invalid("head too large"));
                    }
                }
                Err(e) => return Err(invalid(&e.to_string())),
            }
            let n = self.fill().await?;
            if n == 0 {
                return Err(if !received_any && self.used > 0 {
                    H1Error::ClosedBeforeResponse
                } else {
                    H1Error::Failed(ErrorKind::Io(
                        "connection closed before the response completed".into(),
                    ))
                });
            }
            received_any = true;
        };
        self.buf.advance(head_len);
        let mut body = BytesMut::new();
        let bytes_in = match framing {
            Framing::Length(len) => self.read_exact_body(len, want.body, &mut body).await?,
            Framing::Chunked => self.read_chunked(want.body, &mut body).await?,
            Framing::UntilClose => {
                let mut total = 0u64;
                loop {
                    total += self.buf.len() as u64;
                    if want.body {
                        body.extend_from_slice(&self.buf);
                    }
                    self.buf.clear();
                    if self.fill().await? == 0 {
                        break;
                    }
                }
                return Ok(H1Response {
                    status,
                    headers,
                    body: body.freeze(),
                    bytes_in: total,
                });
            }
        };
        self.used += 1;
        self.reusable = !close;
        Ok(H1Response {
            status,
            headers,
            body: body.freeze(),
            bytes_in,
        })
    }

    async fn read_exact_body(
        &mut self,
        len: u64,
        keep: bool,
        out: &mut BytesMut,
    ) -> Result<u64, H1Error> {
        let mut remaining = len;
        loop {
            let take = remaining.min(self.buf.len() as u64) as usize;
            if keep {
                out.extend_from_slice(&self.buf[..take]);
            }
            self.buf.advance(take);
            remaining -= take as u64;
            if remaining == 0 {
                return Ok(len);
            }
            if self.fill().await? == 0 {
                return Err(H1Error::Failed(ErrorKind::Io(
                    "connection closed before the response completed".into(),
                )));
            }
        }
    }

    async fn read_chunked(&mut self, keep: bool, out: &mut BytesMut) -> Result<u64, H1Error> {
        let mut total = 0u64;
        loop {
            // Chunk size line.
            let (consumed, size) = loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete(v)) => break v,
                    Ok(httparse::Status::Partial) => {
                        if self.buf.len() > MAX_HEAD {
                            return Err(invalid("chunk size line too long"));
                        }
                        self.fill_or_eof().await?;
                    }
                    Err(_) => return Err(invalid("chunk size")),
                }
            };
            self.buf.advance(consumed);
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        let empty = pos == 0;
                        self.buf.advance(pos + 2);
                        if empty {
                            return Ok(total);
                        }
                    } else {
                        self.fill_or_eof().await?;
                    }
                }
            }
            total += size;
            self.read_exact_body(size, keep, out).await?;
            // The CRLF after the chunk data.
            while self.buf.len() < 2 {
                self.fill_or_eof().await?;
            }
            if &self.buf[..2] != b"\r\n" {
                return Err(invalid("chunk not terminated by CRLF"));
            }
            self.buf.advance(2);
        }
    }

    async fn fill_or_eof(&mut self) -> Result<(), H1Error> {
        if self.fill().await? == 0 {
            return Err(H1Error::Failed(ErrorKind::Io(
                "connection closed before the response completed".into(),
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

#[cfg(test)]
mod tests;
