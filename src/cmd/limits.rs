//! Limits read from the environment, validated before use.

use anyhow::{bail, Result};

/// Largest `PSIM_MEMORY_LIMIT`: 2⁶⁰ bytes (1 EiB), far above any machine,
/// well below `u64::MAX`.
pub const MAX_MEMORY_LIMIT: u64 = 1 << 60;

/// Parses `PSIM_MEMORY_LIMIT`: bytes, or a number with a K, M, G or T
/// suffix (powers of 1024, e.g. `4G`, `500M`, `1.5G`). Refuses, naming the
/// variable and the range: a negative, zero, non-finite or non-numeric
/// value, and one above [`MAX_MEMORY_LIMIT`] (`-5` used to read as 0 GiB).
pub fn parse_memory_limit(v: &str) -> Result<u64> {
    let bad = || {
        anyhow::anyhow!(
            "invalid PSIM_MEMORY_LIMIT={v}: must be a number of bytes in [1, 2⁶⁰], optionally with a K, M, G or T suffix (e.g. 4G or 500M)"
        )
    };
    let t = v.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&t[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&t[..i], 1 << 30),
        Some((i, 'T' | 't')) => (&t[..i], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    let bytes = n * mul as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes <= MAX_MEMORY_LIMIT as f64) {
        bail!(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limits_are_validated() {
        assert_eq!(parse_memory_limit("4G").unwrap(), 4 << 30);
        assert_eq!(parse_memory_limit(" 500m ").unwrap(), 500 << 20);
        assert_eq!(parse_memory_limit("1.5K").unwrap(), 1536);
        assert_eq!(parse_memory_limit("123").unwrap(), 123);
        for bad in [
            "-5", "0", "0.1", "nan", "inf", "-inf", "1e300", "x", "", "G", "5Q",
        ] {
            let e = parse_memory_limit(bad).unwrap_err().to_string();
            assert!(
                e.contains("PSIM_MEMORY_LIMIT") && e.contains("[1, 2⁶⁰]"),
                "{bad}: {e}"
            );
        }
    }
}
