//! Durations and byte sizes as people write them on a command line or in a
//! config file: `1s`, `250ms`, `2m`, `32MiB`, `1GB`, and their printing.

use std::time::Duration;

/// A duration or size that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnitError {
    /// Not a number followed by a known unit.
    #[error("`{input}` is not a duration: use a number with a unit, e.g. 500ms, 1s, 2m, 1h")]
    Duration {
        /// What was given.
        input: String,
    },
    /// Not a number followed by a known unit.
    #[error("`{input}` is not a size: use a number with a unit, e.g. 512KiB, 32MiB, 1GiB")]
    Size {
        /// What was given.
        input: String,
    },
}

fn split_number(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let num: f64 = num.replace('_', "").parse().ok()?;
    (num.is_finite() && num >= 0.0).then_some((num, unit.trim()))
}

/// Parses `500ms`, `1s`, `1.5s`, `2m`, `1h`, `100us`; a bare number is seconds.
pub fn parse_duration(input: &str) -> Result<Duration, UnitError> {
    let err = || UnitError::Duration {
        input: input.to_owned(),
    };
    let (num, unit) = split_number(input).ok_or_else(err)?;
    let secs = match unit {
        "" | "s" | "sec" | "secs" => num,
        "ms" => num / 1e3,
        "us" | "µs" => num / 1e6,
        "ns" => num / 1e9,
        "m" | "min" | "mins" => num * 60.0,
        "h" => num * 3600.0,
        _ => return Err(err()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| err())
}

/// Parses `32MiB`, `64MB`, `1GiB`, `512KiB`, `4096B`; a bare number is bytes.
/// Decimal units (KB, MB, GB) are powers of 1000, binary ones (KiB…) of 1024.
pub fn parse_size(input: &str) -> Result<u64, UnitError> {
    let err = || UnitError::Size {
        input: input.to_owned(),
    };
    let (num, unit) = split_number(input).ok_or_else(err)?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(err()),
    };
    let bytes = (num * scale).round();
    if bytes > u64::MAX as f64 {
        return Err(err());
    }
    Ok(bytes as u64)
}

/// Prints a byte count the short way: `512 B`, `1.5 KiB`, `32 MiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Prints a duration the short way: `850µs`, `12.3ms`, `1.50s`.
pub fn format_duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 1000 {
        format!("{micros}µs")
    } else if micros < 1_000_000 {
        format!("{:.1}ms", micros as f64 / 1e3)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("32mib"), Ok(32 << 20));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1_024KiB"), Ok(1 << 20));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1MiB").is_err());
    }

    #[test]
    fn printing() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(32 << 20), "32 MiB");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_duration(Duration::from_micros(850)), "850µs");
        assert_eq!(format_duration(Duration::from_micros(12_300)), "12.3ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.50s");
    }
}
