//! The `--latency` and `--stall` mini-languages of `bfgg target`: parsing,
//! printing (so a parsed value prints back to text that parses to it) and
//! latency sampling. No I/O here.
//!
//! Durations are a number and a unit: `ns`, `us` (or `µs`), `ms`, `s` or `m`,
//! with an optional fraction (`1.5ms`); a bare `0` also means zero.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;

/// What `--latency` accepts, quoted in error messages; for help text too.
pub const LATENCY_SYNTAX: &str = "\"0\", a duration like \"5ms\", a range like \"1ms..20ms\" \
     or a bimodal mix like \"5ms|100ms@10%\" (10% of requests take 100ms)";

/// What `--stall` accepts, quoted in error messages; for help text too.
pub const STALL_SYNTAX: &str =
    "DURATION@START like \"500ms@10s\" (stall for 500ms, 10s after the server starts)";

/// How long the server waits before answering a request to a configured route.
///
/// Parsed from `"0"`, `"5ms"` ([`Latency::Fixed`]), `"1ms..20ms"`
/// ([`Latency::Uniform`], both ends included) or `"5ms|100ms@10%"`
/// ([`Latency::Bimodal`]: 10% of requests take 100ms, the rest 5ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// Every request waits exactly this long.
    Fixed(Duration),
    /// Each request waits a duration drawn uniformly from `lo..=hi`.
    Uniform(Duration, Duration),
    /// Each request takes `slow` with probability `slow_fraction`, else `fast`.
    Bimodal {
        /// The common case.
        fast: Duration,
        /// The tail.
        slow: Duration,
        /// Probability of `slow`, in `0.0..=1.0`.
        slow_fraction: f64,
    },
}

impl Default for Latency {
    fn default() -> Self {
        Latency::Fixed(Duration::ZERO)
    }
}

impl Latency {
    /// Draws one request's delay. Never panics, even for an unvalidated
    /// `slow_fraction` or a reversed range.
    pub(super) fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform(lo, hi) => {
                let (lo, hi) = (saturating_nanos(lo), saturating_nanos(hi));
                if hi <= lo {
                    return Duration::from_nanos(lo);
                }
                Duration::from_nanos(rng.random_range(lo..=hi))
            }
            Latency::Bimodal {
                fast,
                slow,
                slow_fraction,
            } => {
                if rng.random::<f64>() < slow_fraction {
                    slow
                } else {
                    fast
                }
            }
        }
    }

    /// Checks what the type can't: a range's ends are in order and a
    /// fraction lies in `0.0..=1.0`. Describes the problem on failure.
    pub(super) fn validate(&self) -> Result<(), String> {
        match *self {
            Latency::Fixed(_) => Ok(()),
            Latency::Uniform(lo, hi) if lo > hi => Err(format!(
                "latency range {} is reversed: the low end comes first",
                self
            )),
            Latency::Uniform(..) => Ok(()),
            Latency::Bimodal { slow_fraction, .. } if !(0.0..=1.0).contains(&slow_fraction) => Err(
                format!("latency slow fraction {slow_fraction} is outside 0.0..=1.0"),
            ),
            Latency::Bimodal { .. } => Ok(()),
        }
    }
}

impl FromStr for Latency {
    type Err = SpecError;

    fn from_str(input: &str) -> Result<Self, SpecError> {
        let fail = |reason: String| SpecError {
            kind: "latency",
            input: input.to_owned(),
            reason,
            expected: LATENCY_SYNTAX,
        };
        let s = input.trim();
        if let Some((fast, rest)) = s.split_once('|') {
            let (slow, pct) = rest.split_once('@').ok_or_else(|| {
                fail("a bimodal latency needs \"@PERCENT%\" after the slow duration".into())
            })?;
            let latency = Latency::Bimodal {
                fast: parse_duration(fast).map_err(fail)?,
                slow: parse_duration(slow).map_err(fail)?,
                slow_fraction: parse_percent(pct).map_err(fail)?,
            };
            return Ok(latency);
        }
        if let Some((lo, hi)) = s.split_once("..") {
            let lo = parse_duration(lo).map_err(fail)?;
            let hi = parse_duration(hi.strip_prefix('=').unwrap_or(hi)).map_err(fail)?;
            let latency = Latency::Uniform(lo, hi);
            latency.validate().map_err(fail)?;
            return Ok(latency);
        }
        parse_duration(s).map(Latency::Fixed).map_err(fail)
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Latency::Fixed(d) => write!(f, "{}", DisplayDuration(d)),
            Latency::Uniform(lo, hi) => {
                write!(f, "{}..{}", DisplayDuration(lo), DisplayDuration(hi))
            }
            Latency::Bimodal {
                fast,
                slow,
                slow_fraction,
            } => {
                // Rounded so "7%" (0.07) prints as 7, not 7.000000000000001.
                let pct = (slow_fraction * 100.0 * 1e9).round() / 1e9;
                write!(
                    f,
                    "{}|{}@{pct}%",
                    DisplayDuration(fast),
                    DisplayDuration(slow)
                )
            }
        }
    }
}

/// A window during which the server holds every response.
///
/// Any response whose send time falls inside `[at, at + duration)` (measured
/// from server start) is held until `at + duration`, whether its request
/// arrived during the window or earlier. Parsed from `"500ms@10s"`: stall for
/// 500ms, starting 10s after the server starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// When the stall starts, measured from server start.
    pub at: Duration,
    /// How long it lasts.
    pub duration: Duration,
}

impl FromStr for Stall {
    type Err = SpecError;

    fn from_str(input: &str) -> Result<Self, SpecError> {
        let fail = |reason: String| SpecError {
            kind: "stall",
            input: input.to_owned(),
            reason,
            expected: STALL_SYNTAX,
        };
        let (duration, at) = input
            .trim()
            .split_once('@')
            .ok_or_else(|| fail("missing \"@\" between the duration and the start".into()))?;
        Ok(Stall {
            at: parse_duration(at).map_err(fail)?,
            duration: parse_duration(duration).map_err(fail)?,
        })
    }
}

impl fmt::Display for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}",
            DisplayDuration(self.duration),
            DisplayDuration(self.at)
        )
    }
}

/// Why a `--latency` or `--stall` value was rejected; the message quotes the
/// input, says what is wrong with it and what the syntax is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {input:?}: {reason}; expected {expected}")]
pub struct SpecError {
    /// `"latency"` or `"stall"`.
    kind: &'static str,
    /// The text as given.
    input: String,
    /// What is wrong with it.
    reason: String,
    /// The accepted syntax.
    expected: &'static str,
}

/// Nanoseconds per unit, longest suffix first so `ms` wins over `s`.
const UNITS: [(&str, u128); 7] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses `"0"` or a number with a unit (`"1.5ms"`); the error is a reason.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("a duration is empty".into());
    }
    if text.bytes().all(|b| b == b'0') {
        return Ok(Duration::ZERO);
    }
    let Some((number, per_unit)) = UNITS
        .iter()
        .find_map(|&(unit, ns)| text.strip_suffix(unit).map(|n| (n.trim_end(), ns)))
    else {
        return Err(format!(
            "duration {text:?} has no unit (use ns, us, ms, s, m or h)"
        ));
    };
    let bad = || format!("{text:?} is not a number followed by a unit");
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !is_digits(whole) || !is_digits(fraction) {
        return Err(bad());
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let mut nanos = whole.checked_mul(per_unit).ok_or_else(bad)?;
    // Digits beyond nanosecond precision are dropped.
    let mut scale = per_unit;
    for digit in fraction.bytes() {
        scale /= 10;
        nanos += u128::from(digit - b'0') * scale;
    }
    let nanos = u64::try_from(nanos).map_err(|_| format!("duration {text:?} is too long"))?;
    Ok(Duration::from_nanos(nanos))
}

/// Parses `"10%"` or `"12.5%"` into a fraction in `0.0..=1.0`.
fn parse_percent(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let number = text
        .strip_suffix('%')
        .ok_or_else(|| format!("{text:?} is not a percentage like \"10%\""))?;
    let pct: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a percentage like \"10%\""))?;
    if !(0.0..=100.0).contains(&pct) {
        return Err(format!("percentage {text:?} is outside 0%..=100%"));
    }
    Ok(pct / 100.0)
}

/// Durations over 584 years are clamped; nobody waits that long.
fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Prints a duration in the largest unit that keeps it whole, so the text
/// parses back to the same value.
struct DisplayDuration(Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0");
        }
        let (unit, per_unit) = [
            ("h", 3_600_000_000_000),
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
            ("ms", 1_000_000),
            ("us", 1_000),
        ]
        .into_iter()
        .find(|&(_, per_unit)| nanos.is_multiple_of(per_unit))
        .unwrap_or(("ns", 1));
        write!(f, "{}{unit}", nanos / per_unit)
    }
}
