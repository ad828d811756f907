//! Numbers as psim prints them: the shortest text that parses back to the
//! same `f64`, in plain notation for ordinary magnitudes and in exponent
//! notation otherwise (a denormal prints as `5e-324`, not 324 digits).

/// `v` as the shortest round-trip text: plain for 1e-4 ≤ |v| < 1e15 (and
/// 0), exponent notation (`1.5e-7`, `2e300`) otherwise; `NaN`, `inf` as Rust prints them.
pub fn show(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || !v.is_finite() || (1e-4..1e15).contains(&a) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::show;

    #[test]
    fn short_and_round_trips() {
        for (v, s) in [
            (0.9, "0.9"),
            (5e-4, "0.0005"),
            (1.0, "1"),
            (5e-324, "5e-324"),
            (1e300, "1e300"),
            (-2.5e-7, "-2.5e-7"),
        ] {
            assert_eq!(show(v), s);
        }
        for v in [f64::MIN_POSITIVE, 1e-310, f64::MAX, 0.1 + 0.2, 123456.789] {
            assert_eq!(show(v).parse::<f64>().unwrap(), v);
            assert!(show(v).len() <= 24, "{}", show(v));
        }
    }
}
