//! `psim report DIR`: one self-contained HTML page with every figure and
//! table of an output directory — SVG plots inlined, CSVs as tables, the
//! terminal report, `summary.json` and `config.toml` — readable offline
//! (no scripts, fonts, styles or images fetched from anywhere).

use std::fmt::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Rows of a CSV shown in the page; the rest is summarised in a note.
pub const MAX_TABLE_ROWS: usize = 200;

/// Why a report could not be built.
#[derive(Debug, Error)]
pub enum ReportError {
    /// The directory could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Nothing psim writes was found.
    #[error("`{0}` holds no psim output (no config.toml, report.txt, .svg or .csv files); pass a directory written by `psim run`, `sweep` or `reproduce`")]
    Empty(PathBuf),
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn read(path: &Path) -> Result<String, ReportError> {
    std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Removes an XML prolog / doctype so an SVG file can be inlined in HTML,
/// and prefixes its ids with `prefix` so that several inlined figures'
/// internal references (`url(#…)`, `href="#…"`) stay distinct.
fn inline_svg(text: &str, prefix: &str) -> String {
    let body = text.find("<svg").map_or(text, |i| &text[i..]);
    body.replace("id=\"", &format!("id=\"{prefix}-"))
        .replace("url(#", &format!("url(#{prefix}-"))
        .replace("href=\"#", &format!("href=\"#{prefix}-"))
}

/// Why an SVG file is not safe to inline: active content (`<script`, an
/// `on…=` event attribute, a `javascript:` URL, `<foreignObject`, an
/// external entity) that psim's own plots never hold.
fn unsafe_svg(text: &str) -> Option<&'static str> {
    let lower = text.to_ascii_lowercase();
    for (needle, why) in [
        ("<script", "a <script> element"),
        ("javascript:", "a javascript URL"),
        ("foreignobject", "a <foreignObject> element"),
        ("<!entity", "an entity declaration"),
        ("<iframe", "an <iframe> element"),
    ] {
        if lower.contains(needle) {
            return Some(why);
        }
    }
    // An event-handler attribute: whitespace, `on`, letters, `=`.
    let b = lower.as_bytes();
    for i in 1..b.len().saturating_sub(2) {
        if b[i - 1].is_ascii_whitespace() && b[i] == b'o' && b[i + 1] == b'n' {
            let mut j = i + 2;
            while j < b.len() && b[j].is_ascii_alphabetic() {
                j += 1;
            }
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if j > i + 2 && j < b.len() && b[j] == b'=' {
                return Some("an on… event attribute");
            }
        }
    }
    None
}

fn csv_table(text: &str, out: &mut String) {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let _ = writeln!(out, "<div class=\"scroll\"><table>");
    if let Ok(h) = rdr.headers() {
        let _ = write!(out, "<tr>");
        for c in h {
            let _ = write!(out, "<th>{}</th>", esc(c));
        }
        let _ = writeln!(out, "</tr>");
    }
    let mut n = 0usize;
    for rec in rdr.records().flatten() {
        n += 1;
        if n > MAX_TABLE_ROWS {
            continue;
        }
        let _ = write!(out, "<tr>");
        for c in rec.iter() {
            let shown = match c.parse::<f64>() {
                Ok(v) if c.len() > 10 && v.is_finite() => format!("{v:.6}"),
                _ => c.to_string(),
            };
            let _ = write!(out, "<td>{}</td>", esc(&shown));
        }
        let _ = writeln!(out, "</tr>");
    }
    let _ = writeln!(out, "</table></div>");
    if n > MAX_TABLE_ROWS {
        let _ = writeln!(
            out,
            "<p class=\"note\">first {MAX_TABLE_ROWS} of {n} rows; the full table is in the CSV file.</p>"
        );
    }
}

/// Builds the HTML page for output directory `dir`.
pub fn render(dir: &Path) -> Result<String, ReportError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ReportError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    // Only the files psim writes: anything else a user (or anyone) put in
    // the directory stays out of the page.
    let with_ext = |ext: &str| -> Vec<&PathBuf> {
        files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| crate::output::PSIM_FILES.contains(&n))
            })
            .filter(|p| p.is_file())
            .collect()
    };
    let (svgs, csvs) = (with_ext("svg"), with_ext("csv"));
    let report = dir.join("report.txt");
    let config = dir.join("config.toml");
    let summary = dir.join("summary.json");
    if svgs.is_empty() && csvs.is_empty() && !report.exists() && !config.exists() {
        return Err(ReportError::Empty(dir.to_path_buf()));
    }
    let title = dir
        .file_name()
        .map_or("psim".into(), |n| n.to_string_lossy().to_string());
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    );
    let _ = writeln!(h, "<title>psim report: {}</title>", esc(&title));
    let _ = writeln!(h, "<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}h1{{font-size:1.6em}}h2{{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}}pre{{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em;line-height:1.25}}table{{border-collapse:collapse;font-size:.8em}}td,th{{border:1px solid #ddd;padding:2px 6px;text-align:right}}th{{background:#eee;position:sticky;top:0}}.scroll{{max-height:420px;overflow:auto;margin-bottom:.5em}}.fig{{margin:1em 0}}.fig svg{{max-width:100%;height:auto}}.note{{color:#666;font-size:.85em}}nav a{{margin-right:1em}}</style>");
    let _ = writeln!(h, "</head><body>");
    let _ = writeln!(h, "<h1>psim report: {}</h1>", esc(&title));
    let _ = writeln!(
        h,
        "<p class=\"note\">generated by psim {} from <code>{}</code>; self-contained, no external resources.</p>",
        env!("CARGO_PKG_VERSION"),
        esc(&dir.display().to_string())
    );
    let _ = writeln!(h, "<nav><a href=\"#headline\">headline</a><a href=\"#figures\">figures</a><a href=\"#tables\">tables</a><a href=\"#config\">configuration</a></nav>");
    let _ = writeln!(h, "<h2 id=\"headline\">Headline</h2>");
    if report.exists() {
        let _ = writeln!(h, "<pre>{}</pre>", esc(&read(&report)?));
    } else {
        let _ = writeln!(h, "<p class=\"note\">no report.txt in this directory.</p>");
    }
    let _ = writeln!(h, "<h2 id=\"figures\">Figures</h2>");
    for (k, p) in svgs.iter().enumerate() {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        let text = read(p)?;
        match unsafe_svg(&text) {
            None => {
                let _ = writeln!(
                    h,
                    "<div class=\"fig\"><p class=\"note\">{}</p>{}</div>",
                    esc(&name),
                    inline_svg(&text, &format!("fig{k}"))
                );
            }
            Some(why) => {
                tracing::warn!(file = %name, why, "SVG left out of the report");
                let _ = writeln!(
                    h,
                    "<p class=\"note\">{} left out: it holds {} (not a figure psim wrote).</p>",
                    esc(&name),
                    esc(why)
                );
            }
        }
    }
    let _ = writeln!(h, "<h2 id=\"tables\">Tables</h2>");
    for p in &csvs {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        let _ = writeln!(h, "<h3>{}</h3>", esc(&name));
        csv_table(&read(p)?, &mut h);
    }
    let _ = writeln!(h, "<h2 id=\"config\">Configuration and summary</h2>");
    for p in [&config, &summary] {
        if p.exists() {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            let _ = writeln!(
                h,
                "<details><summary>{}</summary><pre>{}</pre></details>",
                esc(&name),
                esc(&read(p)?)
            );
        }
    }
    let _ = writeln!(h, "</body></html>");
    Ok(h)
}

/// Renders `dir` and writes it to `dir/report.html`; returns the path.
pub fn write(dir: &Path) -> Result<PathBuf, ReportError> {
    let html = render(dir)?;
    let path = dir.join("report.html");
    std::fs::write(&path, html).map_err(|source| ReportError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inlines_svg_tables_and_escapes_text() {
        let dir = std::env::temp_dir().join(format!("psim-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("traces.svg"),
            "<?xml version=\"1.0\"?>\n<svg id=\"p\"></svg>",
        )
        .unwrap();
        std::fs::write(dir.join("runs.csv"), "x,y\n1,<b>\n").unwrap();
        std::fs::write(dir.join("report.txt"), "μ < 1 & τ").unwrap();
        let html = render(&dir).unwrap();
        assert!(html.contains("<svg id=\"fig0-p\"></svg>") && !html.contains("<?xml"));
        assert!(html.contains("<td>&lt;b&gt;</td>"));
        assert!(html.contains("μ &lt; 1 &amp; τ"));
        assert!(
            !html.contains("http://") && !html.contains("https://") && !html.contains("<script")
        );
        // Files psim did not write stay out; psim's names with active content too.
        std::fs::write(dir.join("evil.svg"), "<svg><script>alert(1)</script></svg>").unwrap();
        std::fs::write(dir.join("other.csv"), "secret\n1\n").unwrap();
        for (name, body) in [
            ("tradeoff.svg", "<svg><script>alert(2)</script></svg>"),
            ("spiky.svg", "<svg><rect onload=\"alert(3)\"/></svg>"),
            (
                "speedup.svg",
                "<svg><a href=\"JavaScript:alert(4)\">x</a></svg>",
            ),
            (
                "accuracy.svg",
                "<svg><foreignObject>x</foreignObject></svg>",
            ),
        ] {
            std::fs::write(dir.join(name), body).unwrap();
        }
        let html = render(&dir).unwrap();
        for bad in ["<script", "alert(", "secret", "onload", "<foreignObject"] {
            assert!(!html.contains(bad), "{bad} in the page");
        }
        assert!(
            html.contains("<svg id=\"fig"),
            "psim's clean figure is still there"
        );
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(render(&empty)
            .unwrap_err()
            .to_string()
            .contains("no psim output"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
