//! Human durations as scenario files write them: `500ms`, `10s`, `1m30s`, and
//! think-time ranges `100ms..500ms`.
//!
//! Pure string parsing; error messages are lowercase and end-user facing, and
//! [`HELP`] is the line the loader prints under them.

use std::time::Duration;

use crate::scenario::model::ThinkTime;

/// The help line shown under every duration error.
pub const HELP: &str = "write e.g. 500ms, 10s, 2m, 1h";

/// Units a duration may use, longest first so `ms` wins over `m`.
const UNITS: [(&str, f64); 7] = [
    ("ms", 1e-3),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("h", 3600.0),
    ("m", 60.0),
    ("s", 1.0),
    ("", 0.0),
];

/// Parses `10s`, `500ms`, `1.5s`, `2m`, `1h`, `250us` (or `µs`), and sums of
/// them such as `1m30s`. A space between number and unit is accepted
/// (`10 s`); a bare number, an unknown unit (`10 sec`) or a negative value is
/// an error naming what was written.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let invalid = |why: &str| format!("invalid duration `{text}`: {why}");
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    if trimmed.starts_with('-') {
        return Err(invalid("durations cannot be negative"));
    }
    let mut rest = trimmed;
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(invalid("expected a number followed by a unit"));
        }
        let number: f64 = rest[..number_len]
            .parse()
            .map_err(|_| invalid("expected a number followed by a unit"))?;
        rest = rest[number_len..].trim_start();
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(invalid(&format!(
                "unknown unit `{unit}` (expected us, ms, s, m or h)"
            )));
        };
        if unit.is_empty() {
            return Err(invalid("a unit is missing"));
        }
        total += number * scale;
        rest = rest[unit_len..].trim_start();
    }
    if !total.is_finite() || total > 1e12 {
        return Err(invalid("it is too long"));
    }
    // Round to whole nanoseconds so `0.1s` is exactly 100ms.
    Ok(Duration::from_nanos((total * 1e9).round() as u64))
}

/// Parses a think time: one duration (`250ms`) or a uniform range
/// (`100ms..500ms`) whose lower end is not above its upper end.
pub fn parse_think_time(text: &str) -> Result<ThinkTime, String> {
    match text.split_once("..") {
        None => parse_duration(text).map(ThinkTime::Fixed),
        Some((lo, hi)) => {
            let lo_d = parse_duration(lo)?;
            let hi_d = parse_duration(hi)?;
            if lo_d > hi_d {
                return Err(format!(
                    "invalid think time `{text}`: the minimum {} is above the maximum {}",
                    lo.trim(),
                    hi.trim()
                ));
            }
            Ok(ThinkTime::Uniform(lo_d, hi_d))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_every_unit() {
        for (text, expected) in [
            ("500ms", ms(500)),
            ("10s", ms(10_000)),
            ("2m", ms(120_000)),
            ("1h", ms(3_600_000)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("1.5s", ms(1500)),
            ("0.1s", ms(100)),
            ("1m30s", ms(90_000)),
            ("10 s", ms(10_000)),
            (" 3s ", ms(3_000)),
            ("0s", Duration::ZERO),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn rejects_bad_durations_with_reasons() {
        for (text, message) in [
            (
                "10 sec",
                "invalid duration `10 sec`: unknown unit `sec` (expected us, ms, s, m or h)",
            ),
            ("10", "invalid duration `10`: a unit is missing"),
            ("", "invalid duration ``: it is empty"),
            (
                "-5s",
                "invalid duration `-5s`: durations cannot be negative",
            ),
            (
                "fast",
                "invalid duration `fast`: expected a number followed by a unit",
            ),
            (
                "1..2s",
                "invalid duration `1..2s`: expected a number followed by a unit",
            ),
        ] {
            assert_eq!(parse_duration(text), Err(message.to_owned()), "{text}");
        }
    }

    #[test]
    fn parses_think_times() {
        assert_eq!(parse_think_time("100ms"), Ok(ThinkTime::Fixed(ms(100))));
        assert_eq!(
            parse_think_time("100ms..1s"),
            Ok(ThinkTime::Uniform(ms(100), ms(1000)))
        );
        assert_eq!(
            parse_think_time("1s..1s"),
            Ok(ThinkTime::Uniform(ms(1000), ms(1000)))
        );
        assert_eq!(
            parse_think_time("500ms..100ms"),
            Err(
                "invalid think time `500ms..100ms`: the minimum 500ms is above the maximum 100ms"
                    .to_owned()
            )
        );
        assert_eq!(
            parse_think_time("1s..x"),
            Err("invalid duration `x`: expected a number followed by a unit".to_owned())
        );
    }
}
