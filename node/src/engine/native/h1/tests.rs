//! The HTTP/1.1 codec against scripted servers on 127.0.0.1: framing by
//! length, chunks and close; interim responses; keep-alive and closes.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A server that answers each request (read up to the blank line) with the
/// next canned response, then closes after the last one.
async fn scripted(responses: Vec<&'static [u8]>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut buf = Vec::new();
        for r in responses {
            loop {
                if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    buf.drain(..pos + 4);
                    break;
                }
                let mut chunk = [0u8; 1024];
                let n = s.read(&mut chunk).await.expect("read");
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            // Write in two parts to exercise partial reads.
            let mid = r.len() / 2;
            s.write_all(&r[..mid]).await.expect("write");
            s.flush().await.expect("flush");
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            s.write_all(&r[mid..]).await.expect("write");
        }
    });
    addr
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

async fn conn(addr: std::net::SocketAddr) -> H1<TcpStream> {
    H1::new(TcpStream::connect(addr).await.expect("connect"))
}

fn all() -> Want {
    Want {
        body: true,
        headers: true,
        head_request: false,
    }
}

#[tokio::test]
async fn content_length_chunked_and_keep_alive() {
    let addr = scripted(vec![
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1\r\n\r\nhello",
        b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\ntrailer: x\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
    ])
    .await;
    let mut c = conn(addr).await;
    let r = c.round_trip(GET, all()).await.expect("first");
    assert_eq!((r.status, &r.body[..], r.bytes_in), (200, &b"hello"[..], 5));
    assert_eq!(r.headers.get("x-a").map(|v| v.as_bytes()), Some(&b"1"[..]));
    assert!(c.is_usable());
    let r = c.round_trip(GET, all()).await.expect("chunked");
    assert_eq!(
        (r.status, &r.body[..], r.bytes_in),
        (503, &b"abcdefg"[..], 7)
    );
    let r = c.round_trip(GET, all()).await.expect("interim then 204");
    assert_eq!((r.status, r.bytes_in), (204, 0));
    let r = c.round_trip(GET, Want::default()).await.expect("close");
    assert_eq!((r.status, r.bytes_in), (200, 2));
    assert!(r.body.is_empty(), "body not kept unless wanted");
    assert!(r.headers.is_empty(), "headers not built unless wanted");
    assert!(!c.is_usable(), "connection: close ends reuse");
}

#[tokio::test]
async fn body_until_close_for_http10() {
    let addr = scripted(vec![b"HTTP/1.0 200 OK\r\n\r\nall of it"]).await;
    let mut c = conn(addr).await;
    let r = c.round_trip(GET, all()).await.expect("response");
    assert_eq!(&r.body[..], b"all of it");
    assert!(!c.is_usable());
}

#[tokio::test]
async fn a_reused_connection_closed_before_the_response_is_retryable() {
    let addr = scripted(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]).await;
    let mut c = conn(addr).await;
    c.round_trip(GET, all()).await.expect("first");
    match c.round_trip(GET, all()).await {
        Err(H1Error::ClosedBeforeResponse) => {}
        other => panic!("expected a retryable close, got {other:?}"),
    }
}

#[tokio::test]
async fn truncated_and_garbage_responses_are_errors() {
    let addr = scripted(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"]).await;
    let mut c = conn(addr).await;
    match c.round_trip(GET, all()).await {
        Err(H1Error::Failed(ErrorKind::Io(m))) => assert!(m.contains("closed"), "{m}"),
        other => panic!("expected an i/o error, got {other:?}"),
    }
    let addr = scripted(vec![b"SMTP ready\r\n\r\n"]).await;
    let mut c = conn(addr).await;
    match c.round_trip(GET, all()).await {
        Err(H1Error::Failed(ErrorKind::Io(m))) => {
            assert!(m.starts_with("invalid http response"), "{m}")
        }
        other => panic!("expected invalid response, got {other:?}"),
    }
}

#[tokio::test]
async fn head_requests_have_no_body() {
    let addr = scripted(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n"]).await;
    let mut c = conn(addr).await;
    let r = c
        .round_trip(
            b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n",
            Want {
                head_request: true,
                ..all()
            },
        )
        .await
        .expect("head");
    assert_eq!((r.status, r.bytes_in), (200, 0));
    assert!(c.is_usable());
}
