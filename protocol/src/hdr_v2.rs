//! A bounded decoder for HdrHistogram's V2 (and V2 + DEFLATE) encoding, the
//! format latency histograms travel in.
//!
//! `hdrhistogram`'s own `Deserializer` trusts the header: a hostile peer can
//! make it allocate gigabytes (the payload length and the histogram bounds
//! size buffers) or panic (a zig-zag count of `i64::MIN`). Histograms arrive
//! from the network, so this decoder accepts exactly the histograms bfgg
//! writes (the bounds of [`LatencyHistogram`]), caps every length by the
//! bytes actually present, inflates into a capped buffer, and returns the
//! non-empty slots: memory is bounded by the shared bounds, not by anything
//! the sender claims. Also the slot maths of those bounds, shared with
//! `stats::histogram`.

use std::io::Read;

use crate::stats::LatencyHistogram;

const V2_COOKIE: u32 = 0x1c84_9303 | 0x10;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9304 | 0x10;
const HEADER_LEN: usize = 40;

/// The largest V2 payload the shared bounds can produce: one 9-byte varint per
/// counts slot (a real one is a few hundred bytes).
const MAX_PAYLOAD: usize = counts_len() * 9;

/// `log2(sub_bucket_count / 2)` for 3 significant digits: `2 * 10^3` rounds up
/// to 2048 sub-buckets, half of which is 2^10.
const SUB_BUCKET_HALF_MAGNITUDE: u32 = 10;
const SUB_BUCKET_HALF_COUNT: usize = 1 << SUB_BUCKET_HALF_MAGNITUDE;

/// Number of counts slots of a histogram with the shared bounds (what
/// `hdrhistogram` computes for lowest 1, highest 3.6e9, 3 digits).
pub(crate) const fn counts_len() -> usize {
    // Smallest bucket count whose top value covers HIGHEST_US.
    let mut buckets = 1u32;
    let mut smallest_untrackable: u64 = (SUB_BUCKET_HALF_COUNT as u64) * 2;
    while smallest_untrackable <= LatencyHistogram::HIGHEST_US {
        smallest_untrackable <<= 1;
        buckets += 1;
    }
    (buckets as usize + 1) * SUB_BUCKET_HALF_COUNT
}

/// The lowest value counted at `index` (`hdrhistogram`'s `value_for` with a
/// unit magnitude of 0, as lowest discernible value 1 gives).
pub(crate) fn value_at(index: usize) -> u64 {
    let bucket = (index >> SUB_BUCKET_HALF_MAGNITUDE) as i64 - 1;
    let mut sub = (index & (SUB_BUCKET_HALF_COUNT - 1)) + SUB_BUCKET_HALF_COUNT;
    let mut bucket = bucket;
    if bucket < 0 {
        sub -= SUB_BUCKET_HALF_COUNT;
        bucket = 0;
    }
    (sub as u64) << bucket
}

/// The highest value counted at `index` (`hdrhistogram`'s
/// `highest_equivalent`).
pub(crate) fn highest_in_slot(index: usize) -> u64 {
    let bucket = ((index >> SUB_BUCKET_HALF_MAGNITUDE) as u32).saturating_sub(1);
    value_at(index) + (1u64 << bucket) - 1
}

/// The slot of `value` (inverse of [`value_at`] for values in range).
pub(crate) fn index_of(value: u64) -> usize {
    let bits = 64 - value.leading_zeros();
    if bits <= SUB_BUCKET_HALF_MAGNITUDE + 1 {
        return value as usize;
    }
    let bucket = bits - (SUB_BUCKET_HALF_MAGNITUDE + 1);
    (bucket as usize) * SUB_BUCKET_HALF_COUNT + (value >> bucket) as usize
}

/// Encodes `h` as plain V2 (header and zig-zag LEB128 counts, runs of empty
/// slots as one negative number). The wire codec compresses whole messages,
/// so histograms go uncompressed inside them. `hdrhistogram`'s serializer
/// walks the counts array directly (its iterators are an order of magnitude
/// slower); one per thread keeps its scratch buffer.
pub(crate) fn encode_dense(h: &hdrhistogram::Histogram<u64>) -> Vec<u8> {
    use hdrhistogram::serialization::{Serializer, V2Serializer};
    thread_local! {
        static SERIALIZER: std::cell::RefCell<V2Serializer> =
            std::cell::RefCell::new(V2Serializer::new());
    }
    let mut out = Vec::with_capacity(64);
    SERIALIZER.with(|s| {
        s.borrow_mut()
            .serialize(h, &mut out)
            .expect("a histogram with the shared bounds serializes into a Vec")
    });
    out
}

/// The same encoding from a sparse histogram's slots (strictly increasing).
pub(crate) fn encode_slots(slots: &[(u32, u64)]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(slots.len() * 3);
    let mut next = 0usize;
    for &(slot, count) in slots {
        let slot = slot as usize;
        // One empty slot is written as a zero count, a longer run as its
        // negated length: byte for byte what hdrhistogram's serializer does.
        match slot - next {
            0 => {}
            1 => put_varint(&mut payload, 0),
            run => put_varint(&mut payload, -(run as i64)),
        }
        put_varint(&mut payload, count.min(i64::MAX as u64) as i64);
        next = slot + 1;
    }
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend(V2_COOKIE.to_be_bytes());
    out.extend((payload.len() as u32).to_be_bytes());
    out.extend(0u32.to_be_bytes());
    out.extend(u32::from(LatencyHistogram::SIGFIG).to_be_bytes());
    out.extend(LatencyHistogram::LOWEST_US.to_be_bytes());
    out.extend(LatencyHistogram::HIGHEST_US.to_be_bytes());
    out.extend(1.0f64.to_be_bytes());
    out.extend(payload);
    out
}

/// Appends `n` zig-zag encoded in HdrHistogram's LEB128 variant.
fn put_varint(out: &mut Vec<u8>, n: i64) {
    let mut v = ((n << 1) ^ (n >> 63)) as u64;
    for _ in 0..8 {
        if v < 0x80 {
            out.push(v as u8);
            return;
        }
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Calls `f(slot, count)` for every non-empty slot of a plain V2 encoding
/// made by [`encode_dense`] or [`encode_slots`].
pub(crate) fn for_each_count(v2: &[u8], mut f: impl FnMut(u32, u64)) {
    let mut index = 0usize;
    let mut at = HEADER_LEN;
    while let Some((zz, used)) = v2.get(at..).and_then(varint) {
        at += used;
        let n = (zz >> 1) as i64 ^ -((zz & 1) as i64);
        if n < 0 {
            index = index.saturating_add(usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX));
        } else {
            if n > 0 && index < counts_len() {
                f(index as u32, n as u64);
            }
            index += 1;
        }
    }
}

/// Decodes `bytes` (V2 or V2 + DEFLATE) of a histogram with the shared
/// bounds into its non-empty slots, in order. Errors name what was wrong.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<(u32, u64)>, String> {
    let cookie = be_u32(bytes, 0).ok_or("histogram shorter than its cookie")?;
    match cookie {
        V2_COOKIE => decode_plain(bytes),
        V2_COMPRESSED_COOKIE => {
            let len = be_u32(bytes, 4).ok_or("compressed histogram without a length")? as usize;
            let body = bytes
                .get(8..)
                .filter(|b| b.len() >= len)
                .ok_or("compressed histogram shorter than its stated length")?;
            let mut inflated = Vec::new();
            flate2::read::ZlibDecoder::new(&body[..len])
                .take((HEADER_LEN + MAX_PAYLOAD + 1) as u64)
                .read_to_end(&mut inflated)
                .map_err(|e| format!("histogram does not inflate: {e}"))?;
            if inflated.len() > HEADER_LEN + MAX_PAYLOAD {
                return Err("inflated histogram larger than any histogram bfgg writes".into());
            }
            if be_u32(&inflated, 0) != Some(V2_COOKIE) {
                return Err("inflated histogram has no V2 cookie".into());
            }
            decode_plain(&inflated)
        }
        other => Err(format!("not a V2 histogram (cookie {other:#010x})")),
    }
}

fn decode_plain(bytes: &[u8]) -> Result<Vec<(u32, u64)>, String> {
    if bytes.len() < HEADER_LEN {
        return Err("histogram shorter than its header".into());
    }
    let payload_len = be_u32(bytes, 4).unwrap_or(0) as usize;
    let offset = be_u32(bytes, 8).unwrap_or(0);
    let digits = be_u32(bytes, 12).unwrap_or(0);
    let lowest = be_u64(bytes, 16).unwrap_or(0);
    let highest = be_u64(bytes, 24).unwrap_or(0);
    let ratio = f64::from_bits(be_u64(bytes, 32).unwrap_or(0));
    if offset != 0 || ratio != 1.0 {
        return Err("histogram uses normalizing offsets or double ratios".into());
    }
    if (lowest, highest, digits)
        != (
            LatencyHistogram::LOWEST_US,
            LatencyHistogram::HIGHEST_US,
            u32::from(LatencyHistogram::SIGFIG),
        )
    {
        return Err(format!(
            "histogram bounds {lowest}..{highest} with {digits} digits; bfgg uses {}..{} with {}",
            LatencyHistogram::LOWEST_US,
            LatencyHistogram::HIGHEST_US,
            LatencyHistogram::SIGFIG
        ));
    }
    let payload = bytes
        .get(HEADER_LEN..)
        .filter(|p| p.len() >= payload_len)
        .map(|p| &p[..payload_len])
        .ok_or("histogram payload shorter than its stated length")?;

    let mut out = Vec::new();
    let limit = counts_len();
    let mut index = 0usize;
    let mut at = 0usize;
    while at < payload.len() {
        let (zz, used) = varint(&payload[at..]).ok_or("truncated count in histogram")?;
        at += used;
        let n = (zz >> 1) as i64 ^ -((zz & 1) as i64);
        if n < 0 {
            // A run of `-n` empty slots.
            let zeros = usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX);
            index = index.saturating_add(zeros);
            if index > limit {
                return Err("histogram counts run past its bounds".into());
            }
        } else {
            if index >= limit {
                return Err("histogram counts run past its bounds".into());
            }
            if n > 0 {
                out.push((index as u32, n as u64));
            }
            index += 1;
        }
    }
    Ok(out)
}

/// HdrHistogram's LEB128 variant: up to 8 bytes of 7 bits, a 9th of 8.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for i in 0..9 {
        let b = *bytes.get(i)?;
        if i == 8 {
            return Some((value | (u64::from(b) << 56), 9));
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::Histogram;
    use hdrhistogram::serialization::{Serializer, V2DeflateSerializer, V2Serializer};

    fn reference() -> Histogram<u64> {
        Histogram::new_with_bounds(
            LatencyHistogram::LOWEST_US,
            LatencyHistogram::HIGHEST_US,
            LatencyHistogram::SIGFIG,
        )
        .expect("bounds")
    }

    #[test]
    fn counts_len_matches_hdrhistogram() {
        assert_eq!(counts_len(), reference().distinct_values());
    }

    #[test]
    fn every_slot_value_maps_back_to_its_slot() {
        let h = reference();
        for index in 0..counts_len() {
            let v = value_at(index);
            assert_eq!(h.lowest_equivalent(v), v, "slot {index}");
            if index + 1 < counts_len() {
                assert_eq!(
                    h.highest_equivalent(v) + 1,
                    value_at(index + 1),
                    "slot {index}"
                );
                assert_eq!(
                    highest_in_slot(index),
                    h.highest_equivalent(v),
                    "slot {index}"
                );
            }
        }
    }

    #[test]
    fn decodes_what_hdrhistogram_encodes_plain_and_deflated() {
        let mut h = reference();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Log-spread values from 1 µs to about an hour, plus repeats.
            let v = 1 + (x % 1_000) * (1 << (x >> 58).min(21));
            h.record_n(v.min(LatencyHistogram::HIGHEST_US), 1 + x % 3)
                .expect("in range");
        }
        h.record_n(LatencyHistogram::HIGHEST_US, u64::MAX / 4)
            .expect("big count");
        for deflate in [false, true] {
            let mut bytes = Vec::new();
            if deflate {
                V2DeflateSerializer::new()
                    .serialize(&h, &mut bytes)
                    .expect("ser");
            } else {
                V2Serializer::new().serialize(&h, &mut bytes).expect("ser");
            }
            let got = LatencyHistogram::from_slots(decode(&bytes).expect("decodes"));
            assert_eq!(&*got.dense(), &h, "deflate={deflate}");
            assert_eq!(got.len(), h.len());
        }
    }

    #[test]
    fn encodes_what_hdrhistogram_decodes() {
        let mut ours = reference();
        for v in [0, 1, 2, 1023, 2047, 2048, 2049, 4095, 123_456, 7_000_000] {
            ours.record(v).expect("in range");
        }
        ours.record_n(LatencyHistogram::HIGHEST_US, 5)
            .expect("in range");
        for index in [0, 1, 3000, counts_len() - 1] {
            assert_eq!(index_of(value_at(index)), index);
        }
        let dense = encode_dense(&ours);
        let slots = decode(&dense).expect("we read it");
        let sparse = encode_slots(&slots);
        assert_eq!(sparse, dense, "both encoders write the same bytes");
        let theirs: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut &sparse[..])
            .expect("hdrhistogram reads it");
        assert_eq!(theirs, ours);
        let mut seen = Vec::new();
        for_each_count(&dense, |slot, count| seen.push((slot, count)));
        assert_eq!(seen, slots);
        let empty = encode_slots(&[]);
        assert!(empty.len() <= HEADER_LEN + 2, "{} bytes", empty.len());
        assert!(decode(&empty).expect("empty").is_empty());
    }

    #[test]
    fn refuses_foreign_bounds_and_lying_lengths() {
        let mut other = Histogram::<u64>::new_with_bounds(1, 1 << 40, 2).expect("bounds");
        other.record(5).expect("record");
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(&other, &mut bytes)
            .expect("ser");
        assert!(decode(&bytes).expect_err("foreign").contains("bounds"));

        let mut h = reference();
        h.record(42).expect("record");
        let mut bytes = Vec::new();
        V2Serializer::new().serialize(&h, &mut bytes).expect("ser");
        bytes[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&bytes).expect_err("lying").contains("shorter"));

        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&h, &mut bytes)
            .expect("ser");
        bytes[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&bytes).expect_err("lying").contains("shorter"));
    }

    #[test]
    fn refuses_counts_past_the_bounds_and_i64_min() {
        let mut bytes = Vec::new();
        let mut h = reference();
        h.record(1).expect("record");
        V2Serializer::new().serialize(&h, &mut bytes).expect("ser");
        bytes.truncate(HEADER_LEN);
        // zig-zag(-(counts_len)) skips every slot, then one count: past the end.
        let skip = (counts_len() as u64) * 2 - 1;
        let mut payload = Vec::new();
        let mut v = skip;
        while v >= 0x80 {
            payload.push((v as u8) | 0x80);
            v >>= 7;
        }
        payload.push(v as u8);
        payload.push(2); // count 1
        bytes[4..8].copy_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&payload);
        assert!(
            decode(&bytes)
                .expect_err("past")
                .contains("past its bounds")
        );

        // i64::MIN as a zig-zag value is u64::MAX: a huge zero run, refused.
        bytes.truncate(HEADER_LEN);
        let payload = [0xffu8; 9];
        bytes[4..8].copy_from_slice(&9u32.to_be_bytes());
        bytes.extend_from_slice(&payload);
        assert!(decode(&bytes).is_err());
    }
}
