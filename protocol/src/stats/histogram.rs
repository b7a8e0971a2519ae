//! [`LatencyHistogram`]: an HdrHistogram with fixed bounds that is sparse
//! until it needs to be dense.
//!
//! A dense HdrHistogram over 1 µs-1 h at 3 digits is a 24,576-slot counts
//! array (196 KiB), and adding two walks every slot. Recorders want exactly
//! that (recording is an array increment), but the mesh moves and merges
//! thousands of snapshots whose histograms hold a few hundred non-empty
//! slots. So a histogram decoded from the wire, or built empty, is a sorted
//! list of `(slot, count)`; merging sparse histograms costs per non-empty
//! slot; the first `record` (or a merge that grows past [`DENSE_FROM`]
//! slots) turns it dense. Both forms hold the same samples in the same
//! slots, so every query answers exactly as HdrHistogram would.

use std::borrow::Cow;
use std::fmt;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use crate::hdr_v2::{self, highest_in_slot, index_of, value_at};

/// A sparse histogram with more non-empty slots than this turns dense.
const DENSE_FROM: usize = 2048;

/// A latency histogram in microseconds: 1 µs to 1 hour at 3 significant digits.
///
/// All instances share these bounds, so [`LatencyHistogram::add`] never fails.
/// Values above one hour are clamped to one hour (and still counted).
#[derive(Clone)]
pub struct LatencyHistogram(Repr);

#[derive(Clone)]
enum Repr {
    /// Non-empty slots in increasing slot order, and their total.
    Sparse {
        slots: Vec<(u32, u64)>,
        len: u64,
    },
    Dense(Box<Histogram<u64>>),
}

fn dense_empty() -> Box<Histogram<u64>> {
    Box::new(
        Histogram::new_with_bounds(
            LatencyHistogram::LOWEST_US,
            LatencyHistogram::HIGHEST_US,
            LatencyHistogram::SIGFIG,
        )
        .expect("constant histogram bounds are valid"),
    )
}

fn record_slots(h: &mut Histogram<u64>, slots: &[(u32, u64)]) {
    for &(slot, count) in slots {
        h.saturating_record_n(value_at(slot as usize), count);
    }
}

impl LatencyHistogram {
    /// Smallest discernible value, µs.
    pub const LOWEST_US: u64 = 1;
    /// Largest trackable value, µs (one hour).
    pub const HIGHEST_US: u64 = 3_600_000_000;
    /// Significant decimal digits kept.
    pub const SIGFIG: u8 = 3;
    /// Significant bits kept by [`Self::coarsened`].
    pub const LIVE_BITS: u32 = 7;

    /// An empty histogram with the shared bounds (allocates nothing).
    pub fn new() -> Self {
        Self(Repr::Sparse {
            slots: Vec::new(),
            len: 0,
        })
    }

    /// A histogram of `slots` (strictly increasing, in range, counts > 0).
    pub(crate) fn from_slots(slots: Vec<(u32, u64)>) -> Self {
        let len = slots.iter().fold(0u64, |a, s| a.saturating_add(s.1));
        let mut h = Self(Repr::Sparse { slots, len });
        h.densify_if_large();
        h
    }

    fn densify_if_large(&mut self) {
        if let Repr::Sparse { slots, .. } = &self.0
            && slots.len() > DENSE_FROM
        {
            self.make_dense();
        }
    }

    fn make_dense(&mut self) -> &mut Histogram<u64> {
        if let Repr::Sparse { slots, .. } = &self.0 {
            let mut d = dense_empty();
            record_slots(&mut d, slots);
            self.0 = Repr::Dense(d);
        }
        match &mut self.0 {
            Repr::Dense(d) => d,
            Repr::Sparse { .. } => unreachable!("made dense above"),
        }
    }

    /// Records one latency in µs; values beyond the range are clamped.
    #[inline]
    pub fn record(&mut self, micros: u64) {
        let v = micros.min(Self::HIGHEST_US);
        match &mut self.0 {
            Repr::Dense(d) => d.saturating_record(v),
            Repr::Sparse { .. } => self.make_dense().saturating_record(v),
        }
    }

    /// Adds every sample of `other` to `self` (exact merge). Costs per
    /// non-empty slot of `other` when it is sparse.
    pub fn add(&mut self, other: &LatencyHistogram) {
        match (&mut self.0, &other.0) {
            (_, Repr::Sparse { slots, .. }) if slots.is_empty() => {}
            (Repr::Dense(d), Repr::Dense(o)) => {
                // Identical bounds by construction: this cannot fail.
                d.add(&**o)
                    .expect("histograms with identical bounds always add");
            }
            (Repr::Dense(d), Repr::Sparse { slots, .. }) => record_slots(d, slots),
            (Repr::Sparse { slots, .. }, Repr::Dense(o)) => {
                let mut d = o.clone();
                record_slots(&mut d, slots);
                self.0 = Repr::Dense(d);
            }
            (
                Repr::Sparse { slots, len },
                Repr::Sparse {
                    slots: theirs,
                    len: l,
                },
            ) => {
                *slots = merge_sorted(slots, theirs);
                *len = len.saturating_add(*l);
                self.densify_if_large();
            }
        }
    }

    /// The HdrHistogram itself (built on the spot when sparse), for
    /// statistics this type does not answer and for log writers.
    pub fn dense(&self) -> Cow<'_, Histogram<u64>> {
        match &self.0 {
            Repr::Dense(d) => Cow::Borrowed(&**d),
            Repr::Sparse { slots, .. } => {
                let mut d = dense_empty();
                record_slots(&mut d, slots);
                Cow::Owned(*d)
            }
        }
    }

    /// Number of recorded samples.
    pub fn len(&self) -> u64 {
        match &self.0 {
            Repr::Dense(d) => d.len(),
            Repr::Sparse { len, .. } => *len,
        }
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value at quantile `q` (0.0..=1.0) in µs, as HdrHistogram answers it
    /// (the highest value of the slot reached); 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        match &self.0 {
            Repr::Dense(d) if d.is_empty() => 0,
            Repr::Dense(d) => d.value_at_quantile(q),
            Repr::Sparse { slots, len } => {
                if slots.is_empty() {
                    return 0;
                }
                let q = q.min(1.0);
                let want = ((q * *len as f64).ceil() as u64).max(1);
                let mut seen = 0u64;
                for &(slot, count) in slots {
                    seen = seen.saturating_add(count);
                    if seen >= want {
                        return if q == 0.0 {
                            value_at(slot as usize)
                        } else {
                            highest_in_slot(slot as usize)
                        };
                    }
                }
                slots.last().map_or(0, |s| highest_in_slot(s.0 as usize))
            }
        }
    }

    /// The largest recorded value (the top of its slot), µs; 0 when empty.
    pub fn max_us(&self) -> u64 {
        match &self.0 {
            Repr::Dense(d) => d.max(),
            Repr::Sparse { slots, .. } => slots.last().map_or(0, |s| highest_in_slot(s.0 as usize)),
        }
    }

    /// Every non-empty slot as `(lowest value, highest value, count)`, µs,
    /// in increasing order: what a histogram chart draws.
    pub fn counts(&self) -> Vec<(u64, u64, u64)> {
        self.slots()
            .iter()
            .map(|&(slot, count)| {
                (
                    value_at(slot as usize),
                    highest_in_slot(slot as usize),
                    count,
                )
            })
            .collect()
    }

    /// Forgets every sample (a dense histogram keeps its allocation).
    pub fn reset(&mut self) {
        match &mut self.0 {
            Repr::Dense(d) => d.reset(),
            Repr::Sparse { slots, len } => {
                slots.clear();
                *len = 0;
            }
        }
    }

    /// The non-empty slots, in order.
    pub(crate) fn slots(&self) -> Cow<'_, [(u32, u64)]> {
        match &self.0 {
            Repr::Sparse { slots, .. } => Cow::Borrowed(slots),
            Repr::Dense(d) => {
                let mut out = Vec::new();
                hdr_v2::for_each_count(&hdr_v2::encode_dense(d), |slot, count| {
                    out.push((slot, count));
                });
                Cow::Owned(out)
            }
        }
    }

    /// Serializes as HdrHistogram V2 + DEFLATE (the format of `.hlog` files).
    pub fn to_v2_deflate(&self) -> Vec<u8> {
        let mut out = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&*self.dense(), &mut out)
            .expect("serializing into a Vec cannot fail for an in-range histogram");
        out
    }

    /// Serializes as plain HdrHistogram V2 (what travels inside messages,
    /// which the codec compresses as a whole).
    pub fn to_v2(&self) -> Vec<u8> {
        match &self.0 {
            Repr::Dense(d) => hdr_v2::encode_dense(d),
            Repr::Sparse { slots, .. } => hdr_v2::encode_slots(slots),
        }
    }

    /// Parses a V2 or V2+DEFLATE histogram with the shared bounds. Bounded in
    /// memory and time whatever the bytes claim (see `hdr_v2`).
    pub fn from_v2(bytes: &[u8]) -> Result<Self, String> {
        hdr_v2::decode(bytes).map(Self::from_slots)
    }

    /// A copy at live precision: every sample moved to the middle of its bin
    /// of [`Self::LIVE_BITS`] significant bits (within 0.8 % of the truth,
    /// about 2 significant decimal digits). Counts are unchanged, so merges of
    /// coarsened histograms stay exact; their encoding is several times
    /// smaller, which is what live gossip needs (see `IntervalSnapshot::live`).
    pub fn coarsened(&self) -> Self {
        self.coarsened_to(Self::LIVE_BITS)
    }

    #[doc(hidden)]
    pub fn coarsened_to(&self, bits: u32) -> Self {
        let mut out: Vec<(u32, u64)> = Vec::new();
        for &(slot, count) in self.slots().iter() {
            // Coarse bins are unions of whole slots, so the mapping is
            // monotonic: equal targets are adjacent.
            let target = index_of(coarse(value_at(slot as usize), bits)) as u32;
            match out.last_mut() {
                Some((s, c)) if *s == target => *c = c.saturating_add(count),
                _ => out.push((target, count)),
            }
        }
        Self::from_slots(out)
    }
}

/// The middle of `v`'s bin of `keep` significant bits.
fn coarse(v: u64, keep: u32) -> u64 {
    let bits = 64 - v.leading_zeros();
    if bits <= keep {
        return v;
    }
    let shift = bits - keep;
    (((v >> shift) << shift) + (1 << (shift - 1))).min(LatencyHistogram::HIGHEST_US)
}

fn merge_sorted(a: &[(u32, u64)], b: &[(u32, u64)]) -> Vec<(u32, u64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((a[i].0, a[i].1.saturating_add(b[j].1)));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for LatencyHistogram {
    /// Same samples in the same slots, whatever the representation.
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Dense(a), Repr::Dense(b)) => a == b,
            _ => self.len() == other.len() && self.slots() == other.slots(),
        }
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("len", &self.len())
            .field("p50_us", &self.quantile_us(0.5))
            .field("max_us", &self.max_us())
            .finish()
    }
}

impl Serialize for LatencyHistogram {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.to_v2())
    }
}

impl<'de> Deserialize<'de> for LatencyHistogram {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: serde_bytes_compat::ByteBuf = Deserialize::deserialize(d)?;
        Self::from_v2(&bytes.0).map_err(serde::de::Error::custom)
    }
}

/// A tiny owned-bytes visitor so histograms round-trip through both bincode
/// (as bytes) and self-describing formats (as a sequence of u8).
mod serde_bytes_compat {
    use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
    use std::fmt;

    pub(super) struct ByteBuf(pub(super) Vec<u8>);

    impl<'de> Deserialize<'de> for ByteBuf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = ByteBuf;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("histogram bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v.to_vec()))
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
                    let mut out = Vec::new();
                    while let Some(b) = seq.next_element::<u8>()? {
                        out.push(b);
                    }
                    Ok(ByteBuf(out))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }
}
