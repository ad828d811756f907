//! `psim report` and `psim theory` as a user runs them, and (when chromium
//! is installed) a real headless-browser render of the E1 report.

use std::process::{Command, Output};

fn psim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_psim"))
        .args(args)
        .output()
        .expect("psim runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("psim-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A tiny E1 (2 μ × 3 delays × 4 runs) gives a page with the Figure-1-style
/// plot (error vs delay per μ) inlined, the headline and the tables.
#[test]
fn e1_report_is_self_contained_and_shows_figure_one() {
    let out = tmp("e1");
    let o = psim(&[
        "reproduce",
        "tradeoff",
        "--runs",
        "4",
        "--steps",
        "2000",
        "--momentum",
        "0.7,0.9",
        "--taus",
        "0:20:10",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = psim(&["report", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("mean error vs delay"),
        "Figure-1 plot title missing"
    );
    assert!(html.contains("src=\"data:image/svg+xml;base64,") && html.contains("<table>"));
    assert!(html.contains("Content-Security-Policy") && !html.contains("<svg"));
    assert!(
        html.contains("E1 · momentum–delay tradeoff"),
        "headline missing"
    );
    for external in [
        "<script",
        "<link",
        "src=\"http",
        "href=\"http",
        "@import",
        "url(http",
    ] {
        assert!(!html.contains(external), "external resource `{external}`");
    }
    if let Some(shot) = browser_screenshot(&out) {
        assert!(
            std::fs::metadata(&shot).unwrap().len() > 10_000,
            "blank screenshot"
        );
    }
    std::fs::remove_dir_all(&out).unwrap();
}

/// Renders with headless chromium when installed; CI without it skips this
/// part with a message (the page's content is asserted above either way).
fn browser_screenshot(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(browser) = browser else {
        eprintln!("chromium not installed: skipping the headless-browser render");
        return None;
    };
    let profile = dir.join("chromium-profile");
    let shot = dir.join("report.png");
    let page = format!(
        "file://{}",
        dir.join("report.html").canonicalize().unwrap().display()
    );
    let o = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(page)
        .output()
        .expect("chromium runs");
    assert!(shot.exists(), "no screenshot: {}", text(&o));
    Some(shot)
}

#[test]
fn report_of_a_non_output_directory_is_a_clear_error() {
    let d = tmp("empty");
    std::fs::create_dir_all(&d).unwrap();
    let o = psim(&["report", d.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("no psim output"), "{}", text(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn theory_prints_every_prediction_and_rejects_bad_input() {
    let o = psim(&[
        "theory",
        "--momentum",
        "0.9",
        "--step-size",
        "5e-4",
        "--delay",
        "10",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // The OU stationary error of E1/E3 at μ = 0.9: 5e-4·(12 + 4 + 4/3)/0.2.
    assert!(t.contains("stationary error (sum): 4.333333e-2"), "{t}");
    for needle in [
        "T₁",
        "T₂",
        "delay conditions",
        "largest stable constant delay",
        "saddle escape",
    ] {
        assert!(t.contains(needle), "missing {needle}: {t}");
    }
    let o = psim(&["theory", "--momentum", "1.5"]);
    assert!(
        !o.status.success() && text(&o).contains("momentum"),
        "{}",
        text(&o)
    );
}
