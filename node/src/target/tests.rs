//! Tests of the target server: the latency/stall syntax, sampling, and every
//! route, keep-alive, timing, stall and shutdown behaviour over real loopback
//! sockets on port 0, spoken to by the tiny HTTP/1.1 client below.
//!
//! Timing assertions are lower bounds only; upper bounds are the generous
//! per-request timeout of the client.

use std::collections::BTreeMap;
use std::time::Instant as StdInstant;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::*;

/// Every wait in these tests gives up after this long.
const TIMEOUT: Duration = Duration::from_secs(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The default config on `127.0.0.1:0`.
fn config() -> TargetConfig {
    TargetConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..TargetConfig::default()
    }
}

async fn start(config: TargetConfig) -> TargetServer {
    TargetServer::start(config).await.unwrap()
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
struct Resp {
    status: u16,
    /// Names lowercased, in arrival order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A minimal keep-alive HTTP/1.1 client over one TCP connection.
struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
            .await
            .unwrap()
            .unwrap();
        Client {
            stream: BufReader::new(stream),
        }
    }

    async fn get(&mut self, path: &str) -> Resp {
        self.send("GET", path, &[], b"").await
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        self.write_request(method, path, headers, body).await;
        self.read_response().await
    }

    async fn write_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: target\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.get_mut().write_all(&bytes).await.unwrap();
    }

    async fn read_response(&mut self) -> Resp {
        tokio::time::timeout(TIMEOUT, self.read_response_inner())
            .await
            .expect("no response within the timeout")
    }

    async fn read_response_inner(&mut self) -> Resp {
        let mut line = String::new();
        self.stream.read_line(&mut line).await.unwrap();
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("HTTP/1.1"), "status line {line:?}");
        let status = words.next().unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        assert_eq!(resp.header("transfer-encoding"), None, "{resp:?}");
        let len: usize = resp
            .header("content-length")
            .unwrap_or("0")
            .parse()
            .unwrap();
        resp.body = vec![0; len];
        self.stream.read_exact(&mut resp.body).await.unwrap();
        resp
    }

    /// Whether the server has closed the connection (EOF or reset).
    async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(TIMEOUT, self.stream.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) | Err(_) => false,
        }
    }
}

/// Sends `n` GETs of `path` on one connection and counts the statuses.
async fn statuses(addr: SocketAddr, path: &str, n: usize) -> BTreeMap<u16, usize> {
    let mut client = Client::connect(addr).await;
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        *seen.entry(client.get(path).await.status).or_default() += 1;
    }
    seen
}

// ---- syntax ----

#[test]
fn latency_parses_every_form() {
    let cases = [
        ("0", Latency::Fixed(Duration::ZERO)),
        ("0ms", Latency::Fixed(Duration::ZERO)),
        ("5ms", Latency::Fixed(ms(5))),
        (" 250us ", Latency::Fixed(Duration::from_micros(250))),
        ("1.5s", Latency::Fixed(ms(1500))),
        ("5 ms", Latency::Fixed(ms(5))),
        ("2m", Latency::Fixed(Duration::from_secs(120))),
        ("10ns", Latency::Fixed(Duration::from_nanos(10))),
        ("1ms..20ms", Latency::Uniform(ms(1), ms(20))),
        ("0..1s", Latency::Uniform(Duration::ZERO, ms(1000))),
        (
            "5ms|100ms@10%",
            Latency::Bimodal {
                fast: ms(5),
                slow: ms(100),
                slow_fraction: 0.1,
            },
        ),
        (
            "1ms|1s@0.5%",
            Latency::Bimodal {
                fast: ms(1),
                slow: ms(1000),
                slow_fraction: 0.005,
            },
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(text.parse::<Latency>(), Ok(expected), "{text}");
    }
}

#[test]
fn latency_display_parses_back() {
    for text in [
        "0",
        "5ms",
        "1500ms",
        "250us",
        "1ms..20ms",
        "5ms|100ms@10%",
        "1ms|2s@7%",
    ] {
        let latency: Latency = text.parse().unwrap();
        assert_eq!(latency.to_string(), text);
        assert_eq!(latency.to_string().parse::<Latency>(), Ok(latency));
    }
}

#[test]
fn latency_errors_say_what_was_expected() {
    let cases = [
        ("", "empty"),
        ("5", "has no unit"),
        ("5 parsecs", "not a number followed by a unit"),
        ("fast", "has no unit"),
        ("-5ms", "not a number"),
        ("5.3.1ms", "not a number"),
        ("20ms..1ms", "reversed"),
        ("1ms..", "empty"),
        ("5ms|100ms", "@PERCENT%"),
        ("5ms|100ms@10", "percentage like"),
        ("5ms|100ms@150%", "outside 0%..=100%"),
    ];
    for (text, reason) in cases {
        let err = text.parse::<Latency>().unwrap_err().to_string();
        assert!(err.contains(reason), "{text:?}: {err}");
        assert!(err.contains(&format!("{text:?}")), "{text:?}: {err}");
        assert!(
            err.contains("expected \"0\", a duration like \"5ms\""),
            "{err}"
        );
    }
}

#[test]
fn stall_parses_and_prints() {
    let stall: Stall = "500ms@10s".parse().unwrap();
    assert_eq!(
        stall,
        Stall {
            at: Duration::from_secs(10),
            duration: ms(500),
        }
    );
    assert_eq!(stall.to_string(), "500ms@10s");
    for (text, reason) in [
        ("500ms", "missing \"@\""),
        ("500@10s", "no unit"),
        ("1s@", "empty"),
    ] {
        let err = text.parse::<Stall>().unwrap_err().to_string();
        assert!(err.contains(reason), "{text:?}: {err}");
        assert!(err.contains("expected DURATION@START"), "{err}");
    }
}

#[test]
fn uniform_latency_stays_in_range() {
    let mut rng = SmallRng::seed_from_u64(7);
    let latency = Latency::Uniform(ms(10), ms(20));
    let draws: Vec<_> = (0..2000).map(|_| latency.sample(&mut rng)).collect();
    assert!(draws.iter().all(|d| (ms(10)..=ms(20)).contains(d)));
    assert!(draws.iter().any(|d| *d < ms(12)) && draws.iter().any(|d| *d > ms(18)));
    assert_eq!(Latency::Fixed(ms(3)).sample(&mut rng), ms(3));
}

#[test]
fn bimodal_latency_takes_the_slow_mode_at_its_fraction() {
    let mut rng = SmallRng::seed_from_u64(7);
    let latency: Latency = "1ms|100ms@25%".parse().unwrap();
    let slow = (0..10_000)
        .filter(|_| latency.sample(&mut rng) == ms(100))
        .count();
    assert!((2000..=3000).contains(&slow), "{slow} slow of 10000");
}

#[tokio::test]
async fn start_rejects_bad_configs() {
    let bad = [
        TargetConfig {
            error_rate: 1.5,
            ..config()
        },
        TargetConfig {
            error_status: 99,
            ..config()
        },
        TargetConfig {
            workers: 0,
            ..config()
        },
        TargetConfig {
            latency: Latency::Uniform(ms(5), ms(1)),
            ..config()
        },
        TargetConfig {
            latency: Latency::Bimodal {
                fast: ms(1),
                slow: ms(2),
                slow_fraction: -0.1,
            },
            ..config()
        },
    ];
    for config in bad {
        assert!(
            TargetServer::start(config.clone()).await.is_err(),
            "{config:?}"
        );
    }
}

#[test]
fn default_config_is_loopback_8080() {
    let config = TargetConfig::default();
    assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.latency, Latency::Fixed(Duration::ZERO));
    assert_eq!((config.error_status, config.response_size), (503, 2));
    assert_eq!(config.workers, 1);
}

// ---- routes ----

#[tokio::test]
async fn root_and_unlisted_paths_answer_ok() {
    let server = start(config()).await;
    assert!(server.local_addr().ip().is_loopback());
    assert_ne!(server.local_addr().port(), 0);
    let mut client = Client::connect(server.local_addr()).await;
    for path in ["/", "/anything/else?q=1", "/statusx"] {
        let resp = client.get(path).await;
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.header("content-type"), Some("text/plain"));
        assert_eq!(resp.text(), "ok");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn response_size_pads_the_body() {
    for (size, body) in [(0, ""), (1, "o"), (2, "ok"), (10, "ok........")] {
        let server = start(TargetConfig {
            response_size: size,
            ..config()
        })
        .await;
        let resp = Client::connect(server.local_addr()).await.get("/").await;
        assert_eq!(resp.text(), body);
        assert_eq!(
            resp.header("content-length"),
            Some(size.to_string().as_str())
        );
        server.shutdown().await;
    }
}

#[tokio::test]
async fn status_route_answers_the_asked_status() {
    let server = start(config()).await;
    let mut client = Client::connect(server.local_addr()).await;
    for code in [200, 201, 404, 429, 500, 503, 599] {
        let resp = client.get(&format!("/status/{code}")).await;
        assert_eq!(resp.status, code);
        assert_eq!(resp.text(), format!("status {code}"));
    }
    let resp = client.get("/status/204").await;
    assert_eq!((resp.status, resp.body.len()), (204, 0));
    for bad in ["abc", "99", "100", "1000", "", "-1", "4040404040404"] {
        let resp = client.get(&format!("/status/{bad}")).await;
        assert_eq!(resp.status, 400, "{bad}");
        assert!(resp.text().contains("expected 200..=999"));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn delay_route_waits_exactly_its_time_and_ignores_configured_behaviour() {
    // The configured latency and error rate would break this test if applied.
    let server = start(TargetConfig {
        latency: Latency::Fixed(Duration::from_secs(60)),
        error_rate: 1.0,
        ..config()
    })
    .await;
    let mut client = Client::connect(server.local_addr()).await;
    let started = StdInstant::now();
    let resp = client.get("/delay/80").await;
    assert!(started.elapsed() >= ms(80));
    assert_eq!((resp.status, resp.text()), (200, "ok"));
    let resp = client.get("/delay/0").await;
    assert_eq!(resp.status, 200);
    let resp = client.get("/delay/soon").await;
    assert_eq!(resp.status, 400);
    assert!(resp.text().contains("whole milliseconds"));
    server.shutdown().await;
}

#[tokio::test]
async fn json_route_gives_random_tokens_and_counting_ids() {
    let server = start(config()).await;
    let mut client = Client::connect(server.local_addr()).await;
    let first = client.get("/json").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-type"), Some("application/json"));
    let second = client.send("POST", "/json", &[], b"").await;
    let (first, second) = (first.json(), second.json());
    assert_eq!(first["status"], "ok");
    assert_eq!(
        (first["id"].as_u64(), second["id"].as_u64()),
        (Some(1), Some(2))
    );
    let token = first["token"].as_str().unwrap();
    assert_eq!(token.len(), 16);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(first["token"], second["token"]);
    server.shutdown().await;
}

#[tokio::test]
async fn echo_route_returns_body_content_type_and_selected_headers() {
    let server = start(config()).await;
    let mut client = Client::connect(server.local_addr()).await;
    for method in ["POST", "PUT"] {
        let resp = client
            .send(
                method,
                "/echo",
                &[
                    ("content-type", "application/xml"),
                    ("authorization", "Bearer abc"),
                    ("x-tenant", "acme"),
                    ("cookie", "sid=alice"),
                    ("x-other", "not echoed"),
                ],
                b"<hello/>",
            )
            .await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), "<hello/>");
        assert_eq!(resp.header("content-type"), Some("application/xml"));
        assert_eq!(resp.header("x-echo-authorization"), Some("Bearer abc"));
        assert_eq!(resp.header("x-echo-x-tenant"), Some("acme"));
        assert_eq!(resp.header("x-echo-cookie"), Some("sid=alice"));
        assert_eq!(resp.header("x-echo-x-other"), None);
    }
    let resp = client.get("/echo").await;
    assert_eq!((resp.status, resp.body.len()), (200, 0));
    assert_eq!(resp.header("content-type"), None);
    server.shutdown().await;
}

#[tokio::test]
async fn login_gives_a_token_and_cookie_and_me_knows_the_user() {
    let server = start(config()).await;
    let mut client = Client::connect(server.local_addr()).await;
    let resp = client
        .send(
            "POST",
            "/login",
            &[("content-type", "application/json")],
            br#"{"user":"alice","password":"s3cret"}"#,
        )
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), serde_json::json!({"token": "tok-alice"}));
    assert_eq!(resp.header("set-cookie"), Some("sid=alice"));

    let resp = client
        .send("GET", "/me", &[("authorization", "Bearer tok-alice")], b"")
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), serde_json::json!({"user": "alice"}));
    for auth in [
        None,
        Some("Bearer nope"),
        Some("Basic tok-alice"),
        Some("Bearer tok-"),
    ] {
        let headers: Vec<_> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let resp = client.send("GET", "/me", &headers, b"").await;
        assert_eq!(resp.status, 401, "{auth:?}");
        assert_eq!(resp.header("www-authenticate"), Some("Bearer"));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn login_rejects_wrong_or_missing_fields() {
    let server = start(config()).await;
    let mut client = Client::connect(server.local_addr()).await;
    let bodies: [&[u8]; 8] = [
        b"",
        b"not json",
        br#"{"user":"alice"}"#,
        br#"{"password":"x"}"#,
        br#"{"user":"alice","password":""}"#,
        br#"{"user":"","password":"x"}"#,
        br#"{"user":"a;b","password":"x"}"#,
        br#"{"user":7,"password":"x"}"#,
    ];
    for body in bodies {
        let resp = client.send("POST", "/login", &[], body).await;
        assert_eq!(resp.status, 400, "{:?}", String::from_utf8_lossy(body));
        assert_eq!(resp.header("set-cookie"), None);
    }
    let resp = client.get("/login").await;
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("POST"));
    server.shutdown().await;
}

#[tokio::test]
async fn stats_count_what_was_sent_but_not_themselves() {
    let server = start(config()).await;
    let mut client = Client::connect(server.local_addr()).await;
    for path in [
        "/",
        "/",
        "/x",
        "/status/404",
        "/status/404",
        "/status/503",
        "/json",
    ] {
        client.get(path).await;
    }
    let expected = TargetStats {
        total: 7,
        errors: 3,
        by_status: BTreeMap::from([(200, 4), (404, 2), (503, 1)]),
    };
    assert_eq!(server.stats(), expected);
    for _ in 0..2 {
        let resp = client.get("/stats").await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let reported: TargetStats = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(reported, expected);
    }
    assert_eq!(server.stats(), expected);
    let resp = client.send("POST", "/stats", &[], b"").await;
    assert_eq!(resp.status, 405);
    server.shutdown().await;
}

#[test]
fn target_stats_merge_with_add_assign() {
    let mut a = TargetStats {
        total: 3,
        errors: 1,
        by_status: BTreeMap::from([(200, 2), (500, 1)]),
    };
    a += &TargetStats {
        total: 2,
        errors: 1,
        by_status: BTreeMap::from([(200, 1), (404, 1)]),
    };
    assert_eq!(
        a,
        TargetStats {
            total: 5,
            errors: 2,
            by_status: BTreeMap::from([(200, 3), (404, 1), (500, 1)]),
        }
    );
}

// ---- connections ----

#[tokio::test]
async fn keep_alive_serves_many_requests_on_one_connection() {
    let server = start(config()).await;
    let mut client = Client::connect(server.local_addr()).await;
    for i in 0..50 {
        // Request bodies on the configured route are ignored, and must not
        // break the connection.
        let resp = if i % 2 == 0 {
            client.get("/").await
        } else {
            client.send("POST", "/", &[], b"ignored body").await
        };
        assert_eq!((resp.status, resp.text()), (200, "ok"));
        assert_eq!(resp.header("connection"), None);
    }
    assert_eq!(server.stats().total, 50);
    server.shutdown().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let server = start(config()).await;
    let mut client = Client::connect(server.local_addr()).await;
    let paths = [
        "/status/201",
        "/",
        "/status/404",
        "/delay/10",
        "/status/202",
    ];
    let mut burst = Vec::new();
    for path in paths {
        burst.extend_from_slice(format!("GET {path} HTTP/1.1\r\nhost: t\r\n\r\n").as_bytes());
    }
    client.stream.get_mut().write_all(&burst).await.unwrap();
    let mut got = Vec::new();
    for _ in paths {
        got.push(client.read_response().await.status);
    }
    assert_eq!(got, [201, 200, 404, 200, 202]);
    server.shutdown().await;
}

#[tokio::test]
async fn http2_with_prior_knowledge_works() {
    let server = start(config()).await;
    let stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    for path in ["/", "/status/418"] {
        let req = http::Request::get(format!("http://target{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = tokio::time::timeout(TIMEOUT, sender.send_request(req))
            .await
            .unwrap()
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        if path == "/" {
            assert_eq!((status, &body[..]), (200, &b"ok"[..]));
        } else {
            assert_eq!((status, &body[..]), (418, &b"status 418"[..]));
        }
    }
    assert_eq!(server.stats().total, 2);
    server.shutdown().await;
}

// ---- configured behaviour ----

#[tokio::test]
async fn error_rate_one_fails_everything_and_zero_nothing() {
    let server = start(TargetConfig {
        error_rate: 1.0,
        error_status: 500,
        ..config()
    })
    .await;
    let seen = statuses(server.local_addr(), "/", 100).await;
    assert_eq!(seen, BTreeMap::from([(500, 100)]));
    let resp = Client::connect(server.local_addr()).await.get("/").await;
    assert_eq!(resp.text(), "status 500");
    server.shutdown().await;

    let server = start(config()).await;
    let seen = statuses(server.local_addr(), "/", 200).await;
    assert_eq!(seen, BTreeMap::from([(200, 200)]));
    server.shutdown().await;
}

#[tokio::test]
async fn error_rate_half_fails_about_half() {
    let server = start(TargetConfig {
        error_rate: 0.5,
        ..config()
    })
    .await;
    let seen = statuses(server.local_addr(), "/", 400).await;
    let errors = seen.get(&503).copied().unwrap_or(0);
    assert_eq!(
        errors + seen.get(&200).copied().unwrap_or(0),
        400,
        "{seen:?}"
    );
    assert!((140..=260).contains(&errors), "{errors} errors of 400");
    assert_eq!(server.stats().errors, errors as u64);
    server.shutdown().await;
}

#[tokio::test]
async fn fixed_latency_is_respected() {
    let server = start(TargetConfig {
        latency: Latency::Fixed(ms(50)),
        ..config()
    })
    .await;
    let mut client = Client::connect(server.local_addr()).await;
    for _ in 0..3 {
        let started = StdInstant::now();
        let resp = client.get("/").await;
        assert!(started.elapsed() >= ms(50), "{:?}", started.elapsed());
        assert_eq!(resp.status, 200);
    }
    // The fixed routes don't wait.
    assert_eq!(client.get("/status/200").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn uniform_latency_waits_at_least_its_low_end() {
    let server = start(TargetConfig {
        latency: "30ms..60ms".parse().unwrap(),
        ..config()
    })
    .await;
    let mut client = Client::connect(server.local_addr()).await;
    for _ in 0..3 {
        let started = StdInstant::now();
        client.get("/").await;
        assert!(started.elapsed() >= ms(30));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn stall_holds_responses_in_progress_and_arriving_until_its_end() {
    let stall = Stall {
        at: ms(300),
        duration: ms(500),
    };
    let before_start = StdInstant::now();
    let server = start(TargetConfig {
        stall: Some(stall),
        ..config()
    })
    .await;
    let after_start = tokio::time::Instant::now();
    // The server started in [before_start, after_start], so the stall ends
    // no earlier than this.
    let release = before_start + stall.at + stall.duration;
    let addr = server.local_addr();
    let mut in_progress = Client::connect(addr).await;
    let mut arriving = Client::connect(addr).await;

    // Sent before the stall; its 200ms delay ends inside the stall.
    let a = tokio::spawn(async move {
        tokio::time::sleep_until(after_start + ms(200)).await;
        let resp = in_progress.get("/delay/200").await;
        (resp.status, StdInstant::now())
    });
    // Sent during the stall.
    let b = tokio::spawn(async move {
        tokio::time::sleep_until(after_start + ms(450)).await;
        let resp = arriving.get("/").await;
        (resp.status, StdInstant::now())
    });
    for handle in [a, b] {
        let (status, done) = handle.await.unwrap();
        assert_eq!(status, 200);
        assert!(done >= release, "answered {:?} early", release - done);
    }
    // After the stall everything flows again.
    let resp = Client::connect(addr).await.get("/").await;
    assert_eq!(resp.status, 200);
    assert_eq!(server.stats().total, 3);
    server.shutdown().await;
}

// ---- shutdown ----

#[tokio::test]
async fn shutdown_stops_accepting_and_closes_idle_connections() {
    let server = start(config()).await;
    let addr = server.local_addr();
    let mut idle = Client::connect(addr).await;
    assert_eq!(idle.get("/").await.status, 200);
    tokio::time::timeout(TIMEOUT, server.shutdown())
        .await
        .unwrap();
    assert!(idle.is_closed().await);
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_response_finish() {
    let server = start(config()).await;
    let mut client = Client::connect(server.local_addr()).await;
    client.write_request("GET", "/delay/200", &[], b"").await;
    tokio::time::sleep(ms(50)).await;
    let shutdown = tokio::spawn(server.shutdown());
    let resp = client.read_response().await;
    assert_eq!(resp.status, 200);
    tokio::time::timeout(TIMEOUT, shutdown)
        .await
        .unwrap()
        .unwrap();
    assert!(client.is_closed().await);
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let server = start(config()).await;
    let addr = server.local_addr();
    let mut idle = Client::connect(addr).await;
    drop(server);
    assert!(idle.is_closed().await);
}

#[test]
fn run_until_serves_on_its_own_runtime_until_stopped() {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = TargetConfig {
        workers: 2,
        ..config()
    };
    let server = std::thread::spawn(move || {
        run_until(config, |addr| addr_tx.send(addr).unwrap(), async move {
            let _ = stop_rx.await;
            Ok(())
        })
    });
    let addr = addr_rx.recv_timeout(TIMEOUT).unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"GET /status/202 HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
    )
    .unwrap();
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    assert!(response.ends_with("status 202"), "{response}");
    stop_tx.send(()).unwrap();
    server.join().unwrap().unwrap();
}

#[test]
fn run_blocking_reports_a_bad_config_without_calling_ready() {
    let err = run_blocking(
        TargetConfig {
            error_rate: -1.0,
            ..config()
        },
        |_| panic!("ready called"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("error rate"), "{err}");
}
