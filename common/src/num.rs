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

/// `text` with every number written in more than 24 characters (a float
/// formatted with `{}`: `1e308` as 309 digits, `1e-300` as 302) rewritten
/// by [`show`]. A number is a run of digits, `.`, and an exponent, not
/// preceded by a letter, digit, `_`, `-`, `.` or `/` (so names and paths
/// keep theirs). psim passes every message and printed table through it, so
/// no value prints in hundreds of digits whatever formatted it.
pub fn shorten(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit()
            && (i == 0 || {
                let p = b[i - 1];
                !(p.is_ascii_alphanumeric() || matches!(p, b'_' | b'.' | b'/' | b'-'))
                    || (p == b'-'
                        && (i < 2 || !(b[i - 2].is_ascii_alphanumeric() || b[i - 2] == b'_')))
            });
        if !starts {
            i += 1;
            continue;
        }
        let mut end = i;
        while end < b.len()
            && (b[end].is_ascii_digit()
                || b[end] == b'.'
                || (matches!(b[end], b'e' | b'E')
                    && end + 1 < b.len()
                    && (b[end + 1].is_ascii_digit() || matches!(b[end + 1], b'-' | b'+')))
                || (matches!(b[end], b'-' | b'+') && matches!(b[end - 1], b'e' | b'E')))
        {
            end += 1;
        }
        let token = &text[i..end];
        let followed_by_name = end < b.len() && (b[end].is_ascii_alphabetic() || b[end] == b'_');
        if token.len() > 24 && !followed_by_name {
            if let Ok(v) = token.trim_end_matches('.').parse::<f64>() {
                out.push_str(&text[copied..i]);
                out.push_str(&show(v));
                copied = end;
            }
        }
        i = end.max(i + 1);
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::{shorten, show};

    #[test]
    fn long_numbers_are_shortened_and_names_kept() {
        let huge = format!("{}", 1e308);
        let tiny = format!("{}", 1e-300);
        let t = format!("invalid `x` = {huge}: must be ≤ {tiny}; -{huge} at out/123456789012345678901234567/f.csv v2_{huge}");
        let s = shorten(&t);
        assert!(s.contains("invalid `x` = 1e308: must be ≤ 1e-300; -1e308 at out/123456789012345678901234567/f.csv"), "{s}");
        assert!(s.ends_with(&format!("v2_{huge}")), "{s}");
        assert_eq!(
            shorten("τ = 0.5, 12 steps, 1e-7"),
            "τ = 0.5, 12 steps, 1e-7"
        );
    }

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
