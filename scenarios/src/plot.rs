//! A small SVG line-plot writer: lines, shaded bands, linear or log axes,
//! a legend. Self-contained SVG text with no fonts to load, so plots render
//! the same in any browser and embed directly in an HTML report.
//!
//! Hand-written rather than `plotters`: plotters lays out text with system
//! fonts (font-kit/freetype), which a fresh machine may not have.

use std::fmt::Write;

/// One series: a polyline and an optional band (lo, hi) around it.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points (x, y); non-finite values break the line.
    pub points: Vec<(f64, f64)>,
    /// Band as (x, lo, hi).
    pub band: Vec<(f64, f64, f64)>,
    /// Draw markers at the points.
    pub markers: bool,
    /// Dashed line: a theory curve, drawn with `class="theory"` (so a test
    /// or a stylesheet can find it).
    pub dashed: bool,
    /// Draw in the colour of series `i` (a theory line beside its
    /// measurement) instead of this series' own.
    pub color: Option<usize>,
}

/// A line chart.
#[derive(Debug, Clone, Default)]
pub struct Plot {
    /// Title above the chart.
    pub title: String,
    /// X-axis label.
    pub x_label: String,
    /// Y-axis label.
    pub y_label: String,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Series.
    pub series: Vec<Series>,
    /// Vertical marker lines (x, label).
    pub vlines: Vec<(f64, String)>,
}

const W: f64 = 760.0;
const H: f64 = 460.0;
const L: f64 = 78.0;
const R: f64 = 215.0;
const T: f64 = 40.0;
const B: f64 = 56.0;
const COLORS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-300);
    let raw = span / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e6 || v.abs() < 1e-3 {
        let t = format!("{v:.1e}");
        t.replace(".0e", "e")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

impl Plot {
    /// Renders the chart as an SVG document.
    pub fn to_svg(&self) -> String {
        let tx = |v: f64| if self.log_x { v.log10() } else { v };
        let ty = |v: f64| if self.log_y { v.log10() } else { v };
        let ok = |x: f64, y: f64| {
            x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0) && (!self.log_y || y > 0.0)
        };
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for s in &self.series {
            for &(x, y) in &s.points {
                if ok(x, y) {
                    xs.push(tx(x));
                    ys.push(ty(y));
                }
            }
            for &(x, lo, hi) in &s.band {
                for y in [lo, hi] {
                    if ok(x, y) {
                        xs.push(tx(x));
                        ys.push(ty(y));
                    }
                }
            }
        }
        let (mut x0, mut x1) = xs
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let (mut y0, mut y1) = ys
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if !x0.is_finite() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 - x0 < 1e-12 {
            x0 -= 0.5;
            x1 += 0.5;
        }
        if y1 - y0 < 1e-12 {
            y0 -= 0.5;
            y1 += 0.5;
        }
        let pad = (y1 - y0) * 0.05;
        let (y0, y1) = (y0 - pad, y1 + pad);
        let px = |x: f64| L + (tx(x) - x0) / (x1 - x0) * (W - L - R);
        let py = |y: f64| H - B - (ty(y) - y0) / (y1 - y0) * (H - T - B);
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = write!(
            s,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
            (L + W - R) / 2.0,
            esc(&self.title)
        );
        // Axes and ticks.
        let _ = write!(
            s,
            r##"<rect x="{L}" y="{T}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
            W - L - R,
            H - T - B
        );
        let xticks = if self.log_x {
            (x0.ceil() as i64..=x1.floor() as i64)
                .map(|e| e as f64)
                .collect()
        } else {
            nice_ticks(x0, x1, 8)
        };
        for t in xticks {
            let v = if self.log_x { 10f64.powf(t) } else { t };
            let x = px(v);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                T,
                H - B,
                H - B + 16.0,
                fmt_tick(v)
            );
        }
        let yticks = if self.log_y {
            (y0.ceil() as i64..=y1.floor() as i64)
                .map(|e| e as f64)
                .collect()
        } else {
            nice_ticks(y0, y1, 6)
        };
        for t in yticks {
            let v = if self.log_y { 10f64.powf(t) } else { t };
            let y = py(v);
            let _ = write!(
                s,
                r##"<line x1="{L}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                W - R,
                L - 6.0,
                y + 4.0,
                fmt_tick(v)
            );
        }
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (L + W - R) / 2.0,
            H - 14.0,
            esc(&self.x_label)
        );
        let _ = write!(
            s,
            r#"<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (T + H - B) / 2.0,
            esc(&self.y_label)
        );
        let _ = write!(
            s,
            r#"<clipPath id="plotarea"><rect x="{L}" y="{T}" width="{}" height="{}"/></clipPath><g clip-path="url(#plotarea)">"#,
            W - L - R,
            H - T - B
        );
        for (x, label) in &self.vlines {
            if ok(*x, 1.0) {
                let xp = px(*x);
                let _ = write!(
                    s,
                    r##"<line x1="{xp:.1}" y1="{T}" x2="{xp:.1}" y2="{}" stroke="#999" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" font-size="10" fill="#666">{}</text>"##,
                    H - B,
                    xp + 3.0,
                    T + 12.0,
                    esc(label)
                );
            }
        }
        for (i, ser) in self.series.iter().enumerate() {
            let c = COLORS[ser.color.unwrap_or(i) % COLORS.len()];
            let band: Vec<_> = ser
                .band
                .iter()
                .filter(|(x, lo, hi)| ok(*x, *lo) && ok(*x, *hi))
                .collect();
            if band.len() >= 2 {
                let mut d = String::new();
                for (k, (x, _, hi)) in band.iter().enumerate() {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1} ",
                        if k == 0 { "M" } else { "L" },
                        px(*x),
                        py(*hi)
                    );
                }
                for (x, lo, _) in band.iter().rev() {
                    let _ = write!(d, "L{:.1},{:.1} ", px(*x), py(*lo));
                }
                let _ = write!(
                    s,
                    r#"<path d="{d}Z" fill="{c}" fill-opacity="0.15" stroke="none"/>"#
                );
            }
            let mut d = String::new();
            let mut pen = false;
            for &(x, y) in &ser.points {
                if ok(x, y) {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1} ",
                        if pen { "L" } else { "M" },
                        px(x),
                        py(y)
                    );
                    pen = true;
                } else {
                    pen = false;
                }
            }
            let dash = if ser.dashed {
                r#" class="theory" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = write!(
                s,
                r#"<path d="{d}" fill="none" stroke="{c}" stroke-width="1.8"{dash}/>"#
            );
            if ser.markers {
                for &(x, y) in ser.points.iter().filter(|(x, y)| ok(*x, *y)) {
                    let _ = write!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2.6" fill="{c}"/>"#,
                        px(x),
                        py(y)
                    );
                }
            }
        }
        s.push_str("</g>");
        for (i, ser) in self.series.iter().enumerate() {
            let c = COLORS[ser.color.unwrap_or(i) % COLORS.len()];
            let y = T + 10.0 + 18.0 * i as f64;
            let dash = if ser.dashed {
                r#" class="theory" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = write!(
                s,
                r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{c}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
                W - R + 12.0,
                W - R + 36.0,
                W - R + 42.0,
                y + 4.0,
                esc(&ser.label)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_lines_bands_and_escapes_labels() {
        let p = Plot {
            title: "a < b".into(),
            log_y: true,
            series: vec![Series {
                label: "μ=0.9".into(),
                points: vec![(0.0, 0.1), (10.0, 0.2), (20.0, f64::NAN)],
                band: vec![(0.0, 0.05, 0.2), (10.0, 0.1, 0.3)],
                markers: true,
                dashed: false,
                color: None,
            }],
            ..Default::default()
        };
        let svg = p.to_svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &lt; b"));
        assert!(svg.contains("μ=0.9"));
        assert_eq!(svg.matches("<circle").count(), 2, "NaN points are skipped");
        assert!(svg.contains("fill-opacity"), "band drawn");
    }
}
