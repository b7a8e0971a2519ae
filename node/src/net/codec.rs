//! The request-response codec of control requests (`CONTROL_PROTOCOL`).
//!
//! A frame is a `u32` big-endian length followed by that many bytes of
//! `bfgg_protocol::encode` output. A length above `MAX_CONTROL_BYTES` is
//! refused before anything is allocated ([`read_frame`] fails with
//! `io::ErrorKind::InvalidData`), and a frame that is refused or doesn't
//! decode is read as [`ControlMsg::Malformed`], which the event loop counts
//! as a dropped message. It is not an `io::Error` because libp2p 0.57
//! (request-response 0.30) reports a failed `read_request` only in a debug
//! log, never as an `InboundFailure` event.

use std::io;

use bfgg_protocol::mesh::{ControlRequest, ControlResponse, MAX_CONTROL_BYTES};
use libp2p::StreamProtocol;
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use serde::de::DeserializeOwned;

/// A control message on its way through the codec: outgoing messages are
/// encoded before they reach the codec (so encoding errors surface to the
/// caller, and the test hooks can send arbitrary bytes); incoming ones are
/// always decoded.
#[derive(Debug)]
pub(crate) enum ControlMsg<T> {
    /// A decoded message (what reading yields).
    Decoded(T),
    /// The body of a frame, sent as is.
    Encoded(Vec<u8>),
    /// A frame that was refused or did not decode (what was wrong). Never
    /// written.
    Malformed(String),
}

/// The codec: stateless, cloned by libp2p for every stream.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ControlCodec;

/// Reads one frame, refusing a length above `max` before allocating it.
pub(crate) async fn read_frame<R>(io: &mut R, max: usize) -> io::Result<Vec<u8>>
where
    R: AsyncRead + Unpin + Send,
{
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {max}-byte limit"),
        ));
    }
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    Ok(body)
}

/// Writes one frame (length prefix and body) and flushes.
pub(crate) async fn write_frame<W>(io: &mut W, body: &[u8]) -> io::Result<()>
where
    W: AsyncWrite + Unpin + Send,
{
    let len = u32::try_from(body.len())
        .ok()
        .filter(|_| body.len() <= MAX_CONTROL_BYTES)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "message of {} bytes exceeds the {MAX_CONTROL_BYTES}-byte limit",
                    body.len()
                ),
            )
        })?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(body).await?;
    io.flush().await
}

async fn read_msg<R, T>(io: &mut R) -> io::Result<ControlMsg<T>>
where
    R: AsyncRead + Unpin + Send,
    T: DeserializeOwned,
{
    match read_frame(io, MAX_CONTROL_BYTES).await {
        Ok(body) => Ok(match bfgg_protocol::decode::<T>(&body) {
            Ok(msg) => ControlMsg::Decoded(msg),
            Err(e) => ControlMsg::Malformed(e.to_string()),
        }),
        // The stream is left unread; it is dropped with the message.
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            Ok(ControlMsg::Malformed(e.to_string()))
        }
        Err(e) => Err(e),
    }
}

async fn write_msg<W, T>(io: &mut W, msg: ControlMsg<T>) -> io::Result<()>
where
    W: AsyncWrite + Unpin + Send,
    T: serde::Serialize,
{
    let body = match msg {
        ControlMsg::Encoded(body) => body,
        ControlMsg::Decoded(msg) => bfgg_protocol::encode(&msg)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        ControlMsg::Malformed(reason) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to send a malformed message ({reason})"),
            ));
        }
    };
    write_frame(io, &body).await
}

impl request_response::Codec for ControlCodec {
    type Protocol = StreamProtocol;
    type Request = ControlMsg<ControlRequest>;
    type Response = ControlMsg<ControlResponse>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Self::Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_msg(io).await
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Self::Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_msg(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Self::Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_msg(io, req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Self::Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_msg(io, res).await
    }
}
