//! Decoder fuzzing with proptest: `bfgg_protocol::decode` is fed bytes a
//! hostile or broken peer could send and must never panic (or allocate
//! without bound); valid messages must round-trip exactly.
//!
//! Four families: (a) arbitrary bytes, (b) random valid messages round-trip,
//! (c) mutations (bit flips, truncations, insertions, ...) of valid encodings,
//! (d) the committed corpus in `tests/corpus/`, replayed every run. Corpus files
//! are named `<expect>-<kind>-<what>.bin`: `ok-<kind>` must decode as that kind
//! (and, when [`generated_corpus`] makes it, to the same value: a golden test of
//! the wire format), `err-` must be refused by every decoder, `any-` must only
//! not panic. After an intended wire change (and a `PROTOCOL_VERSION` bump)
//! rewrite the generated files with
//! `BFGG_BLESS_CORPUS=1 cargo test -p bfgg-protocol --test fuzz_decode`; add an
//! input that once broke the decoder as a hand-named file. Failures proptest
//! finds are kept in `tests/proptest-regressions/` (commit them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bfgg_protocol::mesh::{
    AgentSelection, BundleFile, ControlRequest, ControlResponse, EngineInfo, Gossip, KnownNode,
    LogKind, Mandate, MovedShare, NodeHealth, NodeState, Order, Participant, RunEvent, RunPlan,
    RunRequest,
};
use bfgg_protocol::summary::{AgentSummary, RunSummary};
use bfgg_protocol::{
    ErrorKind, GeneratorStats, IntervalSnapshot, LatencyHistogram, NameStats, NodeId,
    PROTOCOL_VERSION, Pulse, RunId, decode, encode,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};

/// 512 cases per property keeps the whole file at a few seconds in debug.
/// Failures are saved where the module doc says (proptest's default looks for
/// a `lib.rs` beside `tests/` and finds none).
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/proptest-regressions/fuzz_decode.txt"
        )))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Decoding every kind

/// The four message kinds a node decodes from the network.
#[derive(Clone, Debug, PartialEq)]
enum Msg {
    Snapshot(IntervalSnapshot),
    Gossip(Gossip),
    Request(ControlRequest),
    Response(ControlResponse),
}

impl Msg {
    fn kind(&self) -> &'static str {
        match self {
            Msg::Snapshot(_) => "snapshot",
            Msg::Gossip(_) => "gossip",
            Msg::Request(_) => "request",
            Msg::Response(_) => "response",
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Msg::Snapshot(m) => encode(m),
            Msg::Gossip(m) => encode(m),
            Msg::Request(m) => encode(m),
            Msg::Response(m) => encode(m),
        }
        .expect("a valid message encodes")
    }

    /// Decodes `bytes` as `kind`, `None` when the decoder refuses them.
    fn decode(kind: &str, bytes: &[u8]) -> Option<Msg> {
        match kind {
            "snapshot" => decode(bytes).ok().map(Msg::Snapshot),
            "gossip" => decode(bytes).ok().map(Msg::Gossip),
            "request" => decode(bytes).ok().map(Msg::Request),
            "response" => decode(bytes).ok().map(Msg::Response),
            other => panic!("unknown message kind {other:?}"),
        }
    }
}

const KINDS: [&str; 4] = ["snapshot", "gossip", "request", "response"];

/// Feeds `bytes` to every decoder. A panic fails the test; whatever decodes
/// must encode again (no value the decoder accepts is unrepresentable).
fn decode_all(bytes: &[u8]) -> Vec<Msg> {
    let decoded: Vec<Msg> = KINDS
        .iter()
        .filter_map(|kind| Msg::decode(kind, bytes))
        .collect();
    for m in &decoded {
        m.encode();
    }
    decoded
}

// ---------------------------------------------------------------------------
// Strategies for valid messages

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9/._-]{0,12}",
        // Any Unicode, including multi-byte and control characters.
        ".{0,8}",
    ]
}

fn node_id() -> impl Strategy<Value = NodeId> {
    "12D3KooW[1-9A-HJ-NP-Za-km-z]{8,44}".prop_map(NodeId)
}

fn run_id() -> impl Strategy<Value = RunId> {
    "[0-9]{8}-[0-9]{6}-[a-z]{1,8}-[0-9a-f]{4}".prop_map(RunId)
}

/// Floats that equal themselves (NaN breaks `PartialEq`, not the codec).
fn f32_eq() -> impl Strategy<Value = f32> {
    any::<f32>().prop_filter("NaN != NaN", |f| !f.is_nan())
}

fn f64_eq() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan())
}

/// Counters: small ones and ones needing bincode's 8-byte varint, but at most
/// `u64::MAX / 2` so that two of them add (`+=` is not saturating).
fn count() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..1_000, 0..=u64::MAX / 2]
}

fn latency_us() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..1_000,
        1_000u64..10_000_000,
        // Beyond the one-hour range: clamped, still counted.
        Just(LatencyHistogram::HIGHEST_US),
        any::<u64>(),
    ]
}

fn histogram() -> impl Strategy<Value = LatencyHistogram> {
    prop::collection::vec(latency_us(), 0..40).prop_map(|values| {
        let mut h = LatencyHistogram::new();
        for v in values {
            h.record(v);
        }
        h
    })
}

fn error_kind() -> impl Strategy<Value = ErrorKind> {
    prop_oneof![
        Just(ErrorKind::ConnectRefused),
        Just(ErrorKind::ConnectTimeout),
        text().prop_map(ErrorKind::Connect),
        Just(ErrorKind::RequestTimeout),
        text().prop_map(ErrorKind::Tls),
        text().prop_map(ErrorKind::Io),
        any::<u16>().prop_map(ErrorKind::Status),
        text().prop_map(ErrorKind::Check),
        text().prop_map(ErrorKind::Extract),
        text().prop_map(ErrorKind::DataExhausted),
        text().prop_map(ErrorKind::Engine),
    ]
}

fn name_stats() -> impl Strategy<Value = NameStats> {
    (
        count(),
        prop::collection::btree_map(error_kind(), count(), 0..4),
        count(),
        count(),
        histogram(),
        histogram(),
    )
        .prop_map(
            |(requests, errors, bytes_in, bytes_out, response_time, service_time)| NameStats {
                requests,
                errors,
                bytes_in,
                bytes_out,
                response_time,
                service_time,
            },
        )
}

fn generator_stats() -> impl Strategy<Value = GeneratorStats> {
    (
        count(),
        count(),
        count(),
        histogram(),
        count(),
        any::<u32>(),
    )
        .prop_map(
            |(scheduled, late_starts, missed, schedule_lag, active, cpu_busy_permille)| {
                GeneratorStats {
                    scheduled,
                    late_starts,
                    missed,
                    schedule_lag,
                    active,
                    cpu_busy_permille,
                }
            },
        )
}

fn snapshot() -> impl Strategy<Value = IntervalSnapshot> {
    (
        any::<u32>(),
        prop::collection::btree_map(text(), name_stats(), 0..4),
        generator_stats(),
    )
        .prop_map(|(index, by_name, generator)| IntervalSnapshot {
            index,
            by_name,
            generator,
        })
}

fn node_state() -> impl Strategy<Value = NodeState> {
    prop_oneof![
        Just(NodeState::Idle),
        run_id().prop_map(NodeState::Preparing),
        run_id().prop_map(NodeState::Running),
        run_id().prop_map(NodeState::Finishing),
    ]
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(text(), text(), 0..3)
}

fn health() -> impl Strategy<Value = NodeHealth> {
    (
        (node_id(), text(), labels(), node_state()),
        prop::collection::vec(
            (text(), text()).prop_map(|(name, version)| EngineInfo { name, version }),
            0..3,
        ),
        (f32_eq(), any::<u64>(), any::<bool>(), any::<u64>()),
        (text(), any::<u16>(), any::<u64>()),
        prop::collection::vec(text(), 0..3),
        (any::<u32>(), any::<u32>()),
    )
        .prop_map(
            |(
                (node, name, labels, state),
                engines,
                (cpu_pct, mem_bytes, keeping_schedule, sent_at_ms),
                (bfgg_version, protocol_version, dropped_messages),
                listen_addrs,
                (period_ms, revision),
            )| NodeHealth {
                node,
                name,
                labels,
                state,
                engines,
                cpu_pct,
                mem_bytes,
                keeping_schedule,
                sent_at_ms,
                bfgg_version,
                protocol_version,
                dropped_messages,
                listen_addrs,
                period_ms,
                revision,
            },
        )
}

fn bundle_file() -> impl Strategy<Value = BundleFile> {
    (text(), "[0-9a-f]{64}", any::<u64>()).prop_map(|(path, sha256, size)| BundleFile {
        path,
        sha256,
        size,
    })
}

fn plan() -> impl Strategy<Value = RunPlan> {
    (
        (run_id(), node_id()),
        prop::collection::vec(
            (node_id(), text(), any::<u32>()).prop_map(|(node, name, index)| Participant {
                node,
                name,
                index,
            }),
            0..4,
        ),
        any::<u64>(),
        prop::collection::vec(bundle_file(), 0..3),
        (
            prop::option::of(text()),
            prop::option::of(any::<u64>()),
            any::<bool>(),
            any::<u64>(),
            prop::option::of(text()),
            prop::option::of(mandate().prop_map(Box::new)),
        ),
    )
        .prop_map(
            |(
                (run, coordinator),
                participants,
                start_at_ms,
                files,
                (target, duration_ms, rebalance, load_ms, source_commit, mandate),
            )| RunPlan {
                run,
                coordinator,
                participants,
                start_at_ms,
                files,
                target,
                duration_ms,
                rebalance,
                load_ms,
                source_commit,
                mandate,
            },
        )
}

fn mandate() -> impl Strategy<Value = Mandate> {
    (
        node_id(),
        prop_oneof![
            "[0-9a-f]{64}".prop_map(|digest| Order::Run { digest }),
            run_id().prop_map(|run| Order::Stop { run }),
        ],
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(|(operator, order, signed_at_ms, signature)| Mandate {
            operator,
            order,
            signed_at_ms,
            signature,
        })
}

fn agent_summary() -> impl Strategy<Value = AgentSummary> {
    (
        (node_id(), text(), any::<u32>(), any::<u64>(), any::<u64>()),
        (
            f64_eq(),
            any::<u64>(),
            prop_oneof![Just("complete".to_string()), Just("lost".to_string())],
        ),
        (
            prop::option::of(any::<u64>()),
            f64_eq(),
            prop::option::of(any::<u64>()),
        ),
        prop::collection::vec(any::<u32>(), 0..4),
    )
        .prop_map(
            |(
                (node, name, index, requests, errors),
                (clock_offset_ms, started_at_ms, status),
                (last_heard_ms, mesh_bytes_per_s, rebalanced_at_ms),
                missing_intervals,
            )| AgentSummary {
                node: node.0,
                name,
                index,
                requests,
                errors,
                clock_offset_ms,
                started_at_ms,
                status,
                last_heard_ms,
                missing_intervals,
                mesh_bytes_per_s,
                rebalanced_at_ms,
            },
        )
}

fn summary() -> impl Strategy<Value = RunSummary> {
    (
        (text(), f64_eq(), any::<bool>(), prop::option::of(text())),
        prop::collection::vec(agent_summary(), 0..3),
        any::<bool>(),
    )
        .prop_map(
            |((scenario, duration_s, stopped_early, stop_reason), agents, partial)| RunSummary {
                scenario,
                duration_s,
                stopped_early,
                stop_reason,
                agents,
                partial,
                ..RunSummary::default()
            },
        )
}

fn run_event() -> impl Strategy<Value = RunEvent> {
    prop_oneof![
        plan().prop_map(RunEvent::Planned),
        text().prop_map(|reason| RunEvent::Stopping { reason }),
        (node_id(), any::<u64>()).prop_map(|(node, last_heard_ms)| RunEvent::AgentLost {
            node,
            last_heard_ms
        }),
        node_id().prop_map(|node| RunEvent::CoordinatorChanged { node }),
        (
            node_id(),
            any::<u64>(),
            prop::collection::vec((node_id(), any::<u64>(), any::<u64>()), 0..4),
        )
            .prop_map(|(lost, from_ms, shares)| RunEvent::Rebalanced {
                lost,
                from_ms,
                shares: shares
                    .into_iter()
                    .map(|(node, offset, stride)| MovedShare {
                        node,
                        offset,
                        stride,
                    })
                    .collect(),
            }),
        summary().prop_map(|s| RunEvent::Finished {
            summary: Box::new(s)
        }),
        (
            (node_id(), any::<u32>(), any::<u64>()),
            (
                any::<i64>(),
                prop::option::of(text()),
                any::<u64>(),
                any::<u64>(),
            ),
        )
            .prop_map(
                |(
                    (node, intervals, started_at_ms),
                    (clock_offset_us, stop_reason, load_ms, mesh_bytes),
                )| {
                    RunEvent::AgentFinished {
                        node,
                        intervals,
                        started_at_ms,
                        clock_offset_us,
                        stop_reason,
                        load_ms,
                        mesh_bytes,
                    }
                },
            ),
    ]
}

fn gossip() -> impl Strategy<Value = Gossip> {
    prop_oneof![
        health().prop_map(Gossip::Health),
        health().prop_map(|h| Gossip::Beat(h.beat())),
        (run_id(), snapshot(), any::<u32>()).prop_map(|(run, snapshot, agents)| {
            Gossip::Pulse {
                run,
                pulse: Pulse::of(&snapshot),
                agents,
            }
        }),
        (run_id(), run_event()).prop_map(|(run, event)| Gossip::Run { run, event }),
    ]
}

fn selection() -> impl Strategy<Value = AgentSelection> {
    prop_oneof![
        Just(AgentSelection::All),
        any::<u32>().prop_map(AgentSelection::Count),
        labels().prop_map(AgentSelection::Labels),
    ]
}

fn run_request() -> impl Strategy<Value = RunRequest> {
    (
        prop::collection::vec(bundle_file(), 0..3),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..3),
        prop::option::of(text()),
        prop::option::of(any::<u64>()),
        selection(),
        any::<bool>(),
        prop::option::of(mandate()),
    )
        .prop_map(
            |(files, contents, target, duration_ms, selection, rebalance, mandate)| RunRequest {
                files,
                contents,
                target,
                duration_ms,
                selection,
                rebalance,
                mandate,
            },
        )
}

fn control_request() -> impl Strategy<Value = ControlRequest> {
    prop_oneof![
        run_request().prop_map(ControlRequest::Submit),
        plan().prop_map(ControlRequest::Prepare),
        "[0-9a-f]{64}".prop_map(|sha256| ControlRequest::FetchFile { sha256 }),
        (run_id(), prop::option::of(mandate()))
            .prop_map(|(run, mandate)| ControlRequest::Stop { run, mandate }),
        (run_id(), any::<bool>(), any::<u64>(), any::<u32>()).prop_map(
            |(run, merged, offset, max)| ControlRequest::FetchLog {
                run,
                log: if merged {
                    LogKind::Merged
                } else {
                    LogKind::Own
                },
                offset,
                max
            }
        ),
        run_id().prop_map(|run| ControlRequest::ConfirmResults { run }),
        any::<u64>().prop_map(|sent_us| ControlRequest::Clock { sent_us }),
        run_id().prop_map(|run| ControlRequest::Status { run }),
        (run_id(), any::<u64>())
            .prop_map(|(run, start_at_ms)| ControlRequest::Start { run, start_at_ms }),
        (run_id(), snapshot())
            .prop_map(|(run, snapshot)| ControlRequest::Interval { run, snapshot }),
        run_id().prop_map(|run| ControlRequest::Subscribe { run }),
        (run_id(), run_event()).prop_map(|(run, event)| ControlRequest::Report { run, event }),
        Just(ControlRequest::Nodes),
        node_id().prop_map(|operator| ControlRequest::Rights { operator }),
        node_id().prop_map(|node| ControlRequest::Health { node }),
    ]
}

fn control_response() -> impl Strategy<Value = ControlResponse> {
    prop_oneof![
        (run_id(), node_id(), plan()).prop_map(|(run, coordinator, plan)| {
            ControlResponse::Accepted {
                run,
                coordinator,
                plan,
            }
        }),
        text().prop_map(|reason| ControlResponse::Rejected { reason }),
        run_id().prop_map(|run| ControlResponse::Busy { run }),
        any::<i64>().prop_map(|clock_offset_us| ControlResponse::Prepared { clock_offset_us }),
        prop::collection::vec(any::<u8>(), 0..256)
            .prop_map(|contents| ControlResponse::File { contents }),
        Just(ControlResponse::Done),
        (
            prop::collection::vec(any::<u8>(), 0..256),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(|(frames, next_offset, complete)| ControlResponse::LogPage {
                frames,
                next_offset,
                complete
            }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(sent_us, now_us)| ControlResponse::Clock { sent_us, now_us }),
        (prop::option::of(summary().prop_map(Box::new)), node_id()).prop_map(
            |(finished, coordinator)| ControlResponse::Status {
                finished,
                coordinator
            }
        ),
        plan().prop_map(ControlResponse::Plan),
        prop::collection::vec(
            (health(), any::<u64>())
                .prop_map(|(health, silent_ms)| KnownNode { health, silent_ms }),
            0..3
        )
        .prop_map(|nodes| ControlResponse::Nodes { nodes }),
        (any::<bool>(), any::<bool>())
            .prop_map(|(enforced, operator)| ControlResponse::Rights { enforced, operator }),
        health().prop_map(|h| ControlResponse::Health(Box::new(h))),
    ]
}

fn message() -> impl Strategy<Value = Msg> {
    prop_oneof![
        snapshot().prop_map(Msg::Snapshot),
        gossip().prop_map(Msg::Gossip),
        control_request().prop_map(Msg::Request),
        control_response().prop_map(Msg::Response),
    ]
}

// ---------------------------------------------------------------------------
// Hand-built histogram bytes: the part of a message no derive checks

/// HdrHistogram V2 cookies (uncompressed, DEFLATE-compressed).
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;

/// A V2 histogram header; `payload` follows it verbatim.
#[derive(Clone, Debug)]
struct V2 {
    payload_len: u32,
    normalizing_offset: u32,
    digits: u32,
    low: u64,
    high: u64,
    ratio: f64,
    payload: Vec<u8>,
}

impl V2 {
    fn bytes(&self) -> Vec<u8> {
        let mut out = V2_COOKIE.to_be_bytes().to_vec();
        out.extend(self.payload_len.to_be_bytes());
        out.extend(self.normalizing_offset.to_be_bytes());
        out.extend(self.digits.to_be_bytes());
        out.extend(self.low.to_be_bytes());
        out.extend(self.high.to_be_bytes());
        out.extend(self.ratio.to_be_bytes());
        out.extend(&self.payload);
        out
    }

    /// The V2+DEFLATE wrapping (with stored, uncompressed DEFLATE blocks).
    fn deflated(&self) -> Vec<u8> {
        let z = zlib_stored(&self.bytes());
        let mut out = V2_DEFLATE_COOKIE.to_be_bytes().to_vec();
        out.extend(u32::try_from(z.len()).expect("small").to_be_bytes());
        out.extend(z);
        out
    }
}

/// A zlib stream of stored blocks (no compression), with its Adler-32.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![data]
    } else {
        data.chunks(usize::from(u16::MAX)).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = u16::try_from(chunk.len()).expect("chunked");
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend(*chunk);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend(((b << 16) | a).to_be_bytes());
    out
}

/// HdrHistogram's LEB128 variant (at most 9 bytes, the 9th keeps all 8 bits)
/// of a zig-zag encoded count (>= 0) or run of zeros (< 0).
fn hdr_varint(n: i64) -> Vec<u8> {
    let mut v = ((n << 1) ^ (n >> 63)) as u64;
    let mut out = Vec::new();
    for _ in 0..8 {
        if v < 0x80 {
            out.push(v as u8);
            return out;
        }
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// Wire mirrors of the snapshot types with histograms as raw bytes. bincode
/// writes `serialize_bytes` and a `Vec<u8>` identically (length, then bytes),
/// so these encode exactly like the real types
/// (`raw_mirror_encodes_like_the_real_snapshot` checks).
mod raw {
    use std::collections::BTreeMap;

    use bfgg_protocol::ErrorKind;
    use serde::Serialize;

    #[derive(Clone, Debug, Serialize)]
    pub(crate) struct NameStats {
        pub(crate) requests: u64,
        pub(crate) errors: BTreeMap<ErrorKind, u64>,
        pub(crate) bytes_in: u64,
        pub(crate) bytes_out: u64,
        pub(crate) response_time: Vec<u8>,
        pub(crate) service_time: Vec<u8>,
    }

    #[derive(Clone, Debug, Serialize)]
    pub(crate) struct GeneratorStats {
        pub(crate) scheduled: u64,
        pub(crate) late_starts: u64,
        pub(crate) missed: u64,
        pub(crate) schedule_lag: Vec<u8>,
        pub(crate) active: u64,
        pub(crate) cpu_busy_permille: u32,
    }

    #[derive(Clone, Debug, Serialize)]
    pub(crate) struct Snapshot {
        pub(crate) index: u32,
        pub(crate) by_name: BTreeMap<String, NameStats>,
        pub(crate) generator: GeneratorStats,
    }

    impl Snapshot {
        /// One name ("home") whose response time is `histogram`; every other
        /// histogram is a valid empty one.
        pub(crate) fn with_histogram(histogram: Vec<u8>) -> Snapshot {
            let empty = bfgg_protocol::LatencyHistogram::new().to_v2();
            let name = NameStats {
                requests: 1,
                errors: BTreeMap::new(),
                bytes_in: 0,
                bytes_out: 0,
                response_time: histogram,
                service_time: empty.clone(),
            };
            Snapshot {
                index: 0,
                by_name: [("home".to_string(), name)].into(),
                generator: GeneratorStats {
                    scheduled: 0,
                    late_starts: 0,
                    missed: 0,
                    schedule_lag: empty,
                    active: 0,
                    cpu_busy_permille: 0,
                },
            }
        }
    }
}

/// V2 headers around the edges hdrhistogram's deserializer checks (and
/// doesn't): payload lengths beyond the bytes present, bounds far beyond one
/// hour, digits out of range, counts that don't fit an i64.
fn v2_header() -> impl Strategy<Value = V2> {
    let payload_len = prop_oneof![
        Just(None),
        Just(Some(0u32)),
        (1u32..64).prop_map(Some),
        Just(Some(1 << 20)),
        Just(Some(u32::MAX)),
    ];
    let count = prop_oneof![
        0i64..16,
        -64i64..0,
        Just(i64::MIN),
        Just(i64::MAX),
        Just(-(1i64 << 40)),
        any::<i64>(),
    ];
    (
        payload_len,
        prop_oneof![Just(0u32), any::<u32>()],
        prop_oneof![0u32..=6, any::<u32>()],
        prop_oneof![Just(1u64), 0u64..4, any::<u64>()],
        prop_oneof![
            Just(LatencyHistogram::HIGHEST_US),
            Just(u64::MAX),
            0u64..100,
            any::<u64>()
        ],
        prop_oneof![Just(1.0f64), any::<f64>()],
        prop::collection::vec(count, 0..16),
        any::<bool>(),
    )
        .prop_map(
            |(payload_len, normalizing_offset, digits, low, high, ratio, counts, pad)| {
                let mut payload: Vec<u8> = counts.into_iter().flat_map(hdr_varint).collect();
                if pad {
                    // The fast decode loop of hdrhistogram reads 9-byte windows.
                    payload.extend([0u8; 9]);
                }
                V2 {
                    payload_len: payload_len
                        .unwrap_or_else(|| u32::try_from(payload.len()).expect("small")),
                    normalizing_offset,
                    digits,
                    low,
                    high,
                    ratio,
                    payload,
                }
            },
        )
}

// ---------------------------------------------------------------------------
// Mutations

#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Truncate { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Remove { at: usize, len: usize },
    Duplicate { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Bytes that mean something to bincode's varints (250..=254 are the
    // 2/4/8/16-byte markers) and to lengths.
    let interesting = prop_oneof![
        Just(0u8),
        Just(1),
        Just(0x7f),
        Just(0x80),
        Just(0xfa),
        Just(0xfb),
        Just(0xfc),
        Just(0xfd),
        Just(0xfe),
        Just(0xff),
        any::<u8>(),
    ];
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        2 => (any::<usize>(), interesting).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Remove { at, len }),
        1 => (any::<usize>(), 1usize..32).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    let pos = |at: usize, len: usize| if len == 0 { 0 } else { at % len };
    match m {
        Mutation::Flip { at, bit } => {
            if !bytes.is_empty() {
                let i = pos(*at, bytes.len());
                bytes[i] ^= 1 << bit;
            }
        }
        Mutation::Set { at, byte } => {
            if !bytes.is_empty() {
                let i = pos(*at, bytes.len());
                bytes[i] = *byte;
            }
        }
        Mutation::Truncate { at } => bytes.truncate(pos(*at, bytes.len() + 1)),
        Mutation::Insert { at, bytes: new } => {
            let i = pos(*at, bytes.len() + 1);
            bytes.splice(i..i, new.iter().copied());
        }
        Mutation::Remove { at, len } => {
            let i = pos(*at, bytes.len() + 1);
            let end = (i + len).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Duplicate { at, len } => {
            let i = pos(*at, bytes.len() + 1);
            let end = (i + len).min(bytes.len());
            let copy = bytes[i..end].to_vec();
            bytes.splice(end..end, copy);
        }
    }
}

// ---------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config())]

    /// (a) Whatever arrives, every decoder returns; nothing panics.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        decode_all(&bytes);
    }

    /// (a) The same behind a valid version, so the bytes reach the body decoders.
    #[test]
    fn arbitrary_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..4096)) {
        let mut bytes = encode(&()).expect("the envelope alone");
        bytes.extend(body);
        decode_all(&bytes);
    }

    /// (b) Every valid message round-trips exactly, and the decoders of the
    /// other kinds don't panic on it.
    #[test]
    fn valid_messages_round_trip(msg in message()) {
        let bytes = msg.encode();
        prop_assert_eq!(Msg::decode(msg.kind(), &bytes), Some(msg.clone()));
        decode_all(&bytes);
    }

    /// (c) Mutated valid encodings decode to something or are refused.
    #[test]
    fn mutations_of_valid_encodings_never_panic(
        msg in message(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut bytes = msg.encode();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        decode_all(&bytes);
    }

    /// (c) Histogram bytes a hostile peer could put in a snapshot: every
    /// header field at its edges, plain and DEFLATE-wrapped, never panic.
    #[test]
    fn hostile_histogram_headers_never_panic(v2 in v2_header(), deflate in any::<bool>()) {
        let histogram = if deflate { v2.deflated() } else { v2.bytes() };
        let bytes = encode(&raw::Snapshot::with_histogram(histogram)).expect("encodes");
        decode_all(&bytes);
    }
}

proptest! {
    // Each case encodes, decodes and merges ~36 histograms (slow in debug).
    #![proptest_config(ProptestConfig { cases: 64, ..config() })]

    /// (b) Snapshots in particular, with their merge: decoding commutes with `+=`.
    #[test]
    fn snapshots_round_trip_and_merge(a in snapshot(), b in snapshot()) {
        let b = IntervalSnapshot { index: a.index, ..b };
        for s in [&a, &b] {
            let back: IntervalSnapshot = decode(&encode(s).expect("encodes")).expect("decodes");
            prop_assert_eq!(&back, s);
        }
        let mut merged = a.clone();
        merged += &b;
        let mut merged_back: IntervalSnapshot = decode(&encode(&a).expect("a")).expect("a");
        merged_back += &decode::<IntervalSnapshot>(&encode(&b).expect("b")).expect("b");
        prop_assert_eq!(merged_back, merged);
    }

}

#[test]
fn raw_mirror_encodes_like_the_real_snapshot() {
    let mut real = IntervalSnapshot::new(0);
    let name = real.by_name.entry("home".into()).or_default();
    name.requests = 1;
    name.response_time.record(1234);
    let raw = raw::Snapshot::with_histogram(name.response_time.to_v2());
    assert_eq!(encode(&raw).expect("raw"), encode(&real).expect("real"));
}

#[test]
fn hand_built_histograms_decode_like_hdrhistogram_ones() {
    // A valid header with counts 1 at index 0 and 2 at index 3, plain and
    // DEFLATE-wrapped: the helpers above build what the real decoder accepts,
    // so the hostile variants test the checks, not the helpers.
    let payload: Vec<u8> = [1, -2, 2].into_iter().flat_map(hdr_varint).collect();
    let v2 = V2 {
        payload_len: u32::try_from(payload.len()).expect("small"),
        normalizing_offset: 0,
        digits: u32::from(LatencyHistogram::SIGFIG),
        low: LatencyHistogram::LOWEST_US,
        high: LatencyHistogram::HIGHEST_US,
        ratio: 1.0,
        payload,
    };
    for bytes in [v2.bytes(), v2.deflated()] {
        let h = LatencyHistogram::from_v2(&bytes).expect("decodes");
        assert_eq!(h.len(), 3);
        assert_eq!(h.max_us(), 3);
    }
}

// ---------------------------------------------------------------------------
// The corpus

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// A corpus entry: a valid message (`ok-<kind>-<name>.bin`) or bytes every
/// decoder must refuse (`err-...`) or merely survive (`any-...`).
enum Entry {
    Ok(Box<Msg>),
    Bytes(Vec<u8>),
}

fn sample_snapshot() -> IntervalSnapshot {
    let mut s = IntervalSnapshot::new(7);
    let home = s.by_name.entry("home".into()).or_default();
    home.requests = 1000;
    home.bytes_in = 123_456;
    home.bytes_out = 78_900;
    for v in [150, 900, 1_200, 1_250, 48_000, 2_000_000] {
        home.response_time.record(v);
        home.service_time.record(v / 2);
    }
    home.errors.insert(ErrorKind::Status(503), 3);
    home.errors
        .insert(ErrorKind::Check("status 503 expected 200".into()), 2);
    home.errors.insert(ErrorKind::ConnectRefused, 1);
    let search = s.by_name.entry("search ü?q={{term}}".into()).or_default();
    search.requests = 1;
    search.response_time.record(u64::MAX);
    s.generator = GeneratorStats {
        scheduled: 1001,
        late_starts: 4,
        missed: 1,
        active: 12,
        cpu_busy_permille: 730,
        ..GeneratorStats::default()
    };
    s.generator.schedule_lag.record(15);
    s
}

fn sample_plan() -> RunPlan {
    RunPlan {
        run: RunId("20261123-120000-demo-abcd".into()),
        coordinator: NodeId("12D3KooWcoordinator".into()),
        participants: vec![
            Participant {
                node: NodeId("12D3KooWagentA".into()),
                name: "a".into(),
                index: 0,
            },
            Participant {
                node: NodeId("12D3KooWagentB".into()),
                name: "b".into(),
                index: 1,
            },
        ],
        start_at_ms: 1_795_444_895_000,
        files: vec![BundleFile {
            path: "demo.toml".into(),
            sha256: "ab".repeat(32),
            size: 321,
        }],
        target: Some("http://10.0.0.1:8080".into()),
        duration_ms: Some(30_000),
        rebalance: true,
        load_ms: 32_000,
        source_commit: Some("cd".repeat(20)),
        mandate: Some(Box::new(sample_mandate(Order::Run {
            digest: "ef".repeat(32),
        }))),
    }
}

fn sample_mandate(order: Order) -> Mandate {
    Mandate {
        operator: NodeId("12D3KooWoperator".into()),
        order,
        signed_at_ms: 1_795_444_890_000,
        signature: vec![7; 64],
    }
}

fn sample_health() -> NodeHealth {
    NodeHealth {
        node: NodeId("12D3KooWnode".into()),
        name: "gen-1".into(),
        labels: [("zone".to_string(), "a".to_string())].into(),
        state: NodeState::Running(RunId("20261123-120000-demo-abcd".into())),
        engines: vec![EngineInfo {
            name: "native".into(),
            version: "0.1.0".into(),
        }],
        cpu_pct: 37.5,
        mem_bytes: 48 << 20,
        keeping_schedule: true,
        sent_at_ms: 1_795_444_895_123,
        bfgg_version: "0.1.0".into(),
        protocol_version: PROTOCOL_VERSION,
        dropped_messages: 2,
        listen_addrs: vec!["/ip4/10.0.0.2/tcp/7700/p2p/12D3KooWnode".into()],
        period_ms: 5_000,
        revision: 1,
    }
}

fn sample_summary() -> RunSummary {
    RunSummary {
        scenario: "demo".into(),
        engine: "native".into(),
        model: "open".into(),
        target: "http://10.0.0.1:8080".into(),
        started_at_ms: 1_795_444_895_000,
        duration_s: 30.0,
        agents: vec![AgentSummary {
            node: "12D3KooWagentA".into(),
            name: "a".into(),
            requests: 1500,
            status: "lost".into(),
            last_heard_ms: Some(1_795_444_905_000),
            missing_intervals: vec![10, 11],
            ..AgentSummary::default()
        }],
        partial: true,
        ..RunSummary::default()
    }
}

/// The generated part of the corpus (deterministic).
fn generated_corpus() -> Vec<(String, Entry)> {
    let run = RunId("20261123-120000-demo-abcd".into());
    let ok: Vec<(&str, Msg)> = vec![
        ("snapshot-empty", Msg::Snapshot(IntervalSnapshot::new(0))),
        ("snapshot-sample", Msg::Snapshot(sample_snapshot())),
        (
            "gossip-health",
            Msg::Gossip(Gossip::Health(sample_health())),
        ),
        (
            "gossip-pulse",
            Msg::Gossip(Gossip::Pulse {
                run: run.clone(),
                pulse: Pulse::of(&sample_snapshot()),
                agents: 100,
            }),
        ),
        (
            "gossip-planned",
            Msg::Gossip(Gossip::Run {
                run: run.clone(),
                event: RunEvent::Planned(sample_plan()),
            }),
        ),
        (
            "gossip-agent-lost",
            Msg::Gossip(Gossip::Run {
                run: run.clone(),
                event: RunEvent::AgentLost {
                    node: NodeId("12D3KooWagentB".into()),
                    last_heard_ms: 1_795_444_905_000,
                },
            }),
        ),
        (
            "gossip-rebalanced",
            Msg::Gossip(Gossip::Run {
                run: run.clone(),
                event: RunEvent::Rebalanced {
                    lost: NodeId("12D3KooWagentB".into()),
                    from_ms: 1_795_444_906_000,
                    shares: vec![MovedShare {
                        node: NodeId("12D3KooWagentA".into()),
                        offset: 1,
                        stride: 2,
                    }],
                },
            }),
        ),
        (
            "gossip-finished",
            Msg::Gossip(Gossip::Run {
                run: run.clone(),
                event: RunEvent::Finished {
                    summary: Box::new(sample_summary()),
                },
            }),
        ),
        (
            "request-submit",
            Msg::Request(ControlRequest::Submit(RunRequest {
                files: sample_plan().files,
                contents: vec![b"[scenario]\nname = \"demo\"\n".to_vec()],
                target: None,
                duration_ms: None,
                selection: AgentSelection::Labels(
                    [("role".to_string(), "agent".to_string())].into(),
                ),
                rebalance: false,
                mandate: Some(sample_mandate(Order::Run {
                    digest: "ef".repeat(32),
                })),
            })),
        ),
        (
            "request-prepare",
            Msg::Request(ControlRequest::Prepare(sample_plan())),
        ),
        (
            "request-fetch-log",
            Msg::Request(ControlRequest::FetchLog {
                run: run.clone(),
                log: LogKind::Own,
                offset: 1 << 40,
                max: 200,
            }),
        ),
        (
            "request-clock",
            Msg::Request(ControlRequest::Clock { sent_us: u64::MAX }),
        ),
        (
            "request-start",
            Msg::Request(ControlRequest::Start {
                run: run.clone(),
                start_at_ms: 1_795_444_895_000,
            }),
        ),
        (
            "request-interval",
            Msg::Request(ControlRequest::Interval {
                run: run.clone(),
                snapshot: sample_snapshot(),
            }),
        ),
        (
            "request-subscribe",
            Msg::Request(ControlRequest::Subscribe { run: run.clone() }),
        ),
        (
            "response-plan",
            Msg::Response(ControlResponse::Plan(sample_plan())),
        ),
        ("request-nodes", Msg::Request(ControlRequest::Nodes)),
        (
            "request-stop",
            Msg::Request(ControlRequest::Stop {
                run: run.clone(),
                mandate: Some(sample_mandate(Order::Stop { run: run.clone() })),
            }),
        ),
        (
            "request-rights",
            Msg::Request(ControlRequest::Rights {
                operator: NodeId("12D3KooWoperator".into()),
            }),
        ),
        (
            "response-rights",
            Msg::Response(ControlResponse::Rights {
                enforced: true,
                operator: false,
            }),
        ),
        (
            "request-health",
            Msg::Request(ControlRequest::Health {
                node: NodeId("12D3KooWnode".into()),
            }),
        ),
        (
            "response-health",
            Msg::Response(ControlResponse::Health(Box::new(sample_health()))),
        ),
        (
            "gossip-beat",
            Msg::Gossip(Gossip::Beat(sample_health().beat())),
        ),
        (
            "response-nodes",
            Msg::Response(ControlResponse::Nodes {
                nodes: vec![KnownNode {
                    health: sample_health(),
                    silent_ms: 1_250,
                }],
            }),
        ),
        (
            "response-accepted",
            Msg::Response(ControlResponse::Accepted {
                run: run.clone(),
                coordinator: NodeId("12D3KooWcoordinator".into()),
                plan: sample_plan(),
            }),
        ),
        ("response-done", Msg::Response(ControlResponse::Done)),
        (
            "response-log-page",
            Msg::Response(ControlResponse::LogPage {
                frames: {
                    let mut frames = Vec::new();
                    for snap in [IntervalSnapshot::new(0), sample_snapshot()] {
                        let bytes = encode(&snap).expect("encodes");
                        frames.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                        frames.extend_from_slice(&bytes);
                    }
                    frames
                },
                next_offset: 1 << 33,
                complete: true,
            }),
        ),
        (
            "response-file",
            Msg::Response(ControlResponse::File {
                contents: (0..=255u8).collect(),
            }),
        ),
        (
            "response-status-finished",
            Msg::Response(ControlResponse::Status {
                finished: Some(Box::new(sample_summary())),
                coordinator: NodeId("12D3KooWcoordinator".into()),
            }),
        ),
    ];

    let snapshot = Msg::Snapshot(sample_snapshot()).encode();
    let gossip = Msg::Gossip(Gossip::Health(sample_health())).encode();
    let request = Msg::Request(ControlRequest::Prepare(sample_plan())).encode();
    let envelope = encode(&()).expect("envelope");
    let with_body = |body: &[u8]| {
        let mut b = envelope.clone();
        b.extend(body);
        b
    };
    let mut wrong_version = snapshot.clone();
    wrong_version[0] = (PROTOCOL_VERSION as u8).wrapping_add(1);
    const {
        assert!(
            PROTOCOL_VERSION < 250,
            "the version is one varint byte here"
        )
    };
    let mut trailing = gossip.clone();
    trailing.push(0);
    // Gossip::Pulse, then a run id claiming 2^64-1 bytes (bincode's 0xFD marker
    // = a u64 follows).
    let hostile_len = with_body(&[1, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    // Snapshot index 0, then a map claiming 2^60 names.
    let hostile_map = with_body(&[
        0, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10, 4, b'h', b'o', b'm', b'e',
    ]);
    // A version varint that does not fit a u16 (0xfc = a u32 follows).
    let version_overflow = vec![0xfc, 0xff, 0xff, 0xff, 0xff, 0];
    let valid_v2 = V2 {
        payload_len: 0,
        normalizing_offset: 0,
        digits: 3,
        low: 1,
        high: LatencyHistogram::HIGHEST_US,
        ratio: 1.0,
        payload: Vec::new(),
    };
    let histogram = |v2: V2, deflate: bool| {
        let h = if deflate { v2.deflated() } else { v2.bytes() };
        encode(&raw::Snapshot::with_histogram(h)).expect("encodes")
    };
    let i64_min_count: Vec<u8> = hdr_varint(i64::MIN);

    let bytes: Vec<(&str, Vec<u8>)> = vec![
        ("err-empty", Vec::new()),
        ("err-envelope-only", envelope.clone()),
        ("err-wrong-version", wrong_version),
        ("err-version-overflows-u16", version_overflow),
        (
            "err-truncated-snapshot-half",
            snapshot[..snapshot.len() / 2].to_vec(),
        ),
        (
            "err-truncated-snapshot-last-byte",
            snapshot[..snapshot.len() - 1].to_vec(),
        ),
        ("err-truncated-gossip", gossip[..gossip.len() - 7].to_vec()),
        (
            "err-truncated-request",
            request[..request.len() / 3].to_vec(),
        ),
        ("err-trailing-byte", trailing),
        ("err-hostile-string-length", hostile_len),
        ("err-hostile-map-length", hostile_map),
        ("err-unknown-variant", with_body(&[99, 0, 0, 0])),
        ("err-invalid-utf8-name", with_body(&[0, 1, 2, 0xc3, 0x28])),
        // LogPage { frames: [], next_offset: 0, complete: 2 }
        ("err-invalid-bool", with_body(&[6, 0, 0, 2])),
        (
            "err-histogram-garbage",
            histogram(
                V2 {
                    ratio: 2.0,
                    ..valid_v2.clone()
                },
                false,
            ),
        ),
        (
            "err-histogram-bad-cookie",
            encode(&raw::Snapshot::with_histogram(vec![0xde, 0xad, 0xbe, 0xef])).expect("encodes"),
        ),
        (
            "err-histogram-payload-len-4gib",
            histogram(
                V2 {
                    payload_len: u32::MAX,
                    ..valid_v2.clone()
                },
                false,
            ),
        ),
        (
            "err-histogram-deflated-payload-len-4gib",
            histogram(
                V2 {
                    payload_len: u32::MAX,
                    ..valid_v2.clone()
                },
                true,
            ),
        ),
        (
            "err-histogram-count-i64-min",
            histogram(
                V2 {
                    payload_len: u32::try_from(i64_min_count.len()).expect("9"),
                    payload: i64_min_count.clone(),
                    ..valid_v2.clone()
                },
                false,
            ),
        ),
        (
            "err-histogram-zero-run-i64-min-padded",
            histogram(
                V2 {
                    payload_len: 18,
                    payload: [i64_min_count.clone(), vec![0; 9]].concat(),
                    ..valid_v2.clone()
                },
                true,
            ),
        ),
        (
            "any-histogram-bounds-u64-max",
            histogram(
                V2 {
                    digits: 5,
                    high: u64::MAX,
                    ..valid_v2.clone()
                },
                false,
            ),
        ),
    ];

    ok.into_iter()
        .map(|(name, msg)| (format!("ok-{name}"), Entry::Ok(Box::new(msg))))
        .chain(
            bytes
                .into_iter()
                .map(|(name, b)| (name.to_string(), Entry::Bytes(b))),
        )
        .collect()
}

/// `BFGG_BLESS_CORPUS=1` rewrites the generated files; otherwise every one
/// must be present (a missing file means someone forgot to bless).
#[test]
fn generated_corpus_is_committed() {
    let dir = corpus_dir();
    let bless = std::env::var("BFGG_BLESS_CORPUS").is_ok_and(|v| v == "1");
    for (name, entry) in generated_corpus() {
        let path = dir.join(format!("{name}.bin"));
        if bless {
            std::fs::create_dir_all(&dir).expect("corpus dir");
            let bytes = match &entry {
                Entry::Ok(msg) => msg.encode(),
                Entry::Bytes(b) => b.clone(),
            };
            std::fs::write(&path, bytes).expect("write corpus file");
        }
        assert!(
            path.is_file(),
            "{} is missing: run BFGG_BLESS_CORPUS=1 cargo test -p bfgg-protocol --test fuzz_decode",
            path.display()
        );
    }
}

/// (d) Every committed input replays: nothing panics, `ok-` files decode (to
/// the generated value when there is one) and `err-` files are refused.
#[test]
fn corpus_replays() {
    let generated: BTreeMap<String, Entry> = generated_corpus().into_iter().collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "corpus too small: {files:?}");
    for path in files {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 file name")
            .to_string();
        let bytes = std::fs::read(&path).expect("read corpus file");
        let decoded = decode_all(&bytes);
        let (expect, rest) = stem.split_once('-').expect("<expect>-<kind>-<what>.bin");
        match expect {
            "ok" => {
                let kind = rest.split('-').next().expect("kind");
                let msg = Msg::decode(kind, &bytes).unwrap_or_else(|| {
                    panic!("{stem}: no longer decodes as {kind} (wire change? see the module doc)")
                });
                if let Some(Entry::Ok(want)) = generated.get(&stem) {
                    assert_eq!(&msg, &**want, "{stem}: decodes to another value");
                }
                assert_eq!(
                    Msg::decode(kind, &msg.encode()),
                    Some(msg),
                    "{stem}: re-encoding"
                );
            }
            "err" => assert!(decoded.is_empty(), "{stem}: decoded as {decoded:?}"),
            "any" => {}
            other => panic!("{stem}: unknown expectation {other:?} (ok, err or any)"),
        }
    }
}

/// Peak resident memory of this process (Linux), bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A hostile length must be refused, not allocated: decoding every hostile
/// corpus input leaves the peak memory of the process almost where it was.
#[test]
fn hostile_inputs_allocate_little() {
    let Some(before) = peak_rss() else {
        eprintln!("no /proc/self/status: peak memory not checked");
        return;
    };
    for (name, entry) in generated_corpus() {
        if let Entry::Bytes(bytes) = entry {
            decode_all(&bytes);
            let grown = peak_rss().unwrap_or(0).saturating_sub(before);
            assert!(
                grown < 256 << 20,
                "{name}: peak memory grew by {} MiB",
                grown >> 20
            );
        }
    }
}
