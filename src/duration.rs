//! Prometheus-style durations as written in the configuration (`30s`, `5m`, `1h30m`).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer};

/// Parses a Prometheus-style duration: one or more `<number><unit>` with units
/// `ms`, `s`, `m`, `h`, `d`, `w`, `y`, e.g. `30s`, `5m`, `1h30m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    parse(text).map_err(|why| format!("invalid duration {text:?}: {why}"))
}

/// [`parse_duration`], the error being only what is wrong with `text`.
fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("it is empty".into());
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_ms: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("expected a number at {rest:?}"));
        }
        let number: u128 = rest[..digits]
            .parse()
            .map_err(|_| "the number is too large".to_owned())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms: u128 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            "" => return Err(format!("{number} needs a unit ({UNITS})")),
            unit => return Err(format!("unknown unit {unit:?} (units: {UNITS})")),
        };
        rest = &rest[unit_len..];
        total_ms = total_ms
            .checked_add(number.saturating_mul(unit_ms))
            .ok_or_else(|| TOO_LARGE.to_owned())?;
    }
    u64::try_from(total_ms)
        .map(Duration::from_millis)
        .map_err(|_| TOO_LARGE.to_owned())
}

const UNITS: &str = "ms, s, m, h, d, w, y";
const TOO_LARGE: &str = "it is too large";
/// What a duration in the configuration looks like, for error messages.
pub(crate) const EXPECTED: &str = "a duration such as 30s, 5m or 1h30m";

/// Formats a duration the way it is written in the config (`5m`, `1h30m`, `250ms`).
pub(crate) fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// A duration in a config file. A visitor rather than "read a string, then parse it", so
/// that an error carries the position of the value itself.
pub(crate) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    d.deserialize_any(DurationVisitor).map(Some)
}

struct DurationVisitor;

impl de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(|why| E::custom(format!("expected {EXPECTED}, found {v:?}: {why}")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        match v {
            0 => Ok(Duration::ZERO),
            _ => Err(E::custom(format!(
                "expected {EXPECTED}, found {v}: a number needs a unit ({UNITS}), e.g. {v}s"
            ))),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        Err(E::custom(format!("expected {EXPECTED}, found {v}")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "expected {EXPECTED}, found {v}: write fractions with a smaller unit, e.g. 1m30s or 1500ms"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_prometheus_style() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(
            parse_duration("5").unwrap_err(),
            "invalid duration \"5\": 5 needs a unit (ms, s, m, h, d, w, y)"
        );
        assert!(parse_duration("5 minutes")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration("-5s").is_err());
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }
}
