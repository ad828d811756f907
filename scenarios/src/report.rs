//! `psim report DIR`: one self-contained HTML page with every figure and
//! table of an output directory — SVG plots embedded as images, CSVs as
//! tables, the terminal report, `summary.json` and `config.toml` — readable
//! offline (no scripts, fonts, styles or images fetched from anywhere).
//!
//! The page cannot run script, whatever the directory holds:
//! - figures are `<img src="data:image/svg+xml;base64,…">`: an SVG shown as
//!   an image never runs script nor loads anything external;
//! - a `Content-Security-Policy` meta allows no script, no external
//!   resource, only `data:` images and the page's own inline style;
//! - every text (file names, CSV cells, report, config) is HTML-escaped;
//! - only psim's own file names are read ([`crate::output::PSIM_FILES`]),
//!   only as regular files and never through a symlink (a FIFO, a device or
//!   a link is refused by name), so nothing outside the directory enters the
//!   page and nothing blocks;
//! - `report.html` is written through the output directory's atomic path,
//!   under its lock (a `report.html` symlink is replaced, not followed).

use std::fmt::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Rows of a CSV shown in the page; the rest is summarised in a note.
pub const MAX_TABLE_ROWS: usize = 200;

/// Why a report could not be built.
#[derive(Debug, Error)]
pub enum ReportError {
    /// The directory could not be read.
    #[error("cannot read `{path}`: {cause}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A file psim would read is not a regular file.
    #[error("`{path}` is {what}; psim reads its own files only as regular files (never through a link, never a FIFO or device): remove it")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// Writing report.html failed.
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    /// Nothing psim writes was found.
    #[error("`{0}` holds no psim output (no config.toml, report.txt, .svg or .csv files); pass a directory written by `psim run`, `sweep` or `reproduce`")]
    Empty(PathBuf),
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page's Content-Security-Policy: no script, nothing external; only
/// `data:` images and the inline style block.
pub const CSP: &str = "default-src 'none'; script-src 'none'; object-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

/// What `path` is if it exists and is not a regular file (not following a link).
fn irregular(path: &Path) -> Option<&'static str> {
    let m = std::fs::symlink_metadata(path).ok()?;
    (!m.file_type().is_file()).then(|| psim_common::fs::describe(&m.file_type()))
}

/// Whether `path` exists (as anything, a dangling link included).
fn present(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn read(path: &Path) -> Result<String, ReportError> {
    if let Some(what) = irregular(path) {
        return Err(ReportError::NotRegular {
            path: path.to_path_buf(),
            what,
        });
    }
    let bytes = psim_common::fs::read_regular_bytes(path, psim_common::fs::Links::Refuse).map_err(
        |cause| ReportError::Io {
            path: path.to_path_buf(),
            cause,
        },
    )?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Standard base64 (RFC 4648, with padding).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// The text of the first `<text>` element of a psim plot (its title), for
/// the caption; tags inside are dropped and the result is escaped by the caller.
fn svg_title(svg: &str) -> Option<String> {
    let start = svg.find("<text")?;
    let body = &svg[start..];
    let open = body.find('>')? + 1;
    let close = body.find("</text>")?;
    if close < open {
        return None;
    }
    let raw = &body[open..close];
    let t = raw
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let t: String = t.chars().take(300).collect();
    Some(t)
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
    let entries = std::fs::read_dir(dir).map_err(|cause| ReportError::Io {
        path: dir.to_path_buf(),
        cause,
    })?;
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    // Only the files psim writes: anything else a user (or anyone) put in
    // the directory stays out of the page; psim's names that are not
    // regular files are refused by name (read).
    let with_ext = |ext: &str| -> Vec<&PathBuf> {
        files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| crate::output::PSIM_FILES.contains(&n))
            })
            .collect()
    };
    let (svgs, csvs) = (with_ext("svg"), with_ext("csv"));
    let report = dir.join("report.txt");
    let config = dir.join("config.toml");
    let summary = dir.join("summary.json");
    for p in svgs
        .iter()
        .chain(&csvs)
        .copied()
        .chain([&report, &config, &summary])
    {
        if let Some(what) = irregular(p) {
            return Err(ReportError::NotRegular {
                path: p.clone(),
                what,
            });
        }
    }
    if svgs.is_empty() && csvs.is_empty() && !present(&report) && !present(&config) {
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
    let _ = writeln!(
        h,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
    );
    let _ = writeln!(h, "<title>psim report: {}</title>", esc(&title));
    let _ = writeln!(h, "<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}h1{{font-size:1.6em}}h2{{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}}pre{{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em;line-height:1.25}}table{{border-collapse:collapse;font-size:.8em}}td,th{{border:1px solid #ddd;padding:2px 6px;text-align:right}}th{{background:#eee;position:sticky;top:0}}.scroll{{max-height:420px;overflow:auto;margin-bottom:.5em}}.fig{{margin:1em 0}}.fig img{{max-width:100%;height:auto}}.note{{color:#666;font-size:.85em}}nav a{{margin-right:1em}}</style>");
    let _ = writeln!(h, "</head><body>");
    let _ = writeln!(h, "<h1>psim report: {}</h1>", esc(&title));
    let _ = writeln!(
        h,
        "<p class=\"note\">generated by psim {} from <code>{}</code>; self-contained, no external resources, no script.</p>",
        env!("CARGO_PKG_VERSION"),
        esc(&dir.display().to_string())
    );
    let _ = writeln!(h, "<nav><a href=\"#headline\">headline</a><a href=\"#figures\">figures</a><a href=\"#tables\">tables</a><a href=\"#config\">configuration</a></nav>");
    let _ = writeln!(h, "<h2 id=\"headline\">Headline</h2>");
    if present(&report) {
        let _ = writeln!(h, "<pre>{}</pre>", esc(&read(&report)?));
    } else {
        let _ = writeln!(h, "<p class=\"note\">no report.txt in this directory.</p>");
    }
    let _ = writeln!(h, "<h2 id=\"figures\">Figures</h2>");
    for p in &svgs {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        let text = read(p)?;
        let caption = svg_title(&text).unwrap_or_default();
        let _ = writeln!(
            h,
            "<div class=\"fig\"><p class=\"note\">{}: {}</p><img alt=\"{}\" src=\"data:image/svg+xml;base64,{}\"></div>",
            esc(&name),
            esc(&caption),
            esc(&name),
            base64(text.as_bytes())
        );
    }
    let _ = writeln!(h, "<h2 id=\"tables\">Tables</h2>");
    for p in &csvs {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        let _ = writeln!(h, "<h3>{}</h3>", esc(&name));
        csv_table(&read(p)?, &mut h);
    }
    let _ = writeln!(h, "<h2 id=\"config\">Configuration and summary</h2>");
    for p in [&config, &summary] {
        if present(p) {
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

/// Renders `dir` and writes it to `dir/report.html` through the output
/// directory's atomic path, holding its lock; returns the path.
pub fn write(dir: &Path) -> Result<PathBuf, ReportError> {
    let out = crate::output::OutputDir::existing_any(dir)?;
    write_into(&out)
}

/// Renders the directory of `out` (whose lock the caller holds) and writes
/// its `report.html`; returns the path.
pub fn write_into(out: &crate::output::OutputDir) -> Result<PathBuf, ReportError> {
    let html = render(out.path())?;
    Ok(out.write("report.html", html)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }

    #[test]
    fn embeds_svg_as_images_tables_and_escapes_text() {
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
        assert!(html.contains(&format!(
            "src=\"data:image/svg+xml;base64,{}\"",
            base64(b"<?xml version=\"1.0\"?>\n<svg id=\"p\"></svg>")
        )));
        assert!(html.contains("Content-Security-Policy") && !html.contains("<svg"));
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
        for bad in [
            "<script",
            "alert(",
            "secret",
            "onload",
            "<foreignObject",
            "<svg",
        ] {
            assert!(!html.contains(bad), "{bad} in the page");
        }
        assert!(html.contains("<img alt=\"tradeoff.svg\""));
        // A psim name that is a symlink is refused by name, never followed.
        std::fs::remove_file(dir.join("runs.csv")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("runs.csv")).unwrap();
        let err = render(&dir).unwrap_err().to_string();
        assert!(
            err.contains("runs.csv") && err.contains("symbolic link"),
            "{err}"
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
