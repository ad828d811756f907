//! The README and the pages under docs/ link to each other with relative
//! paths; splitting or renaming a page must not leave a dead link. Every
//! relative link (inline, image or reference-style) of README.md and
//! docs/*.md must name an existing file, and a `#fragment` on a markdown
//! page must name one of its headings. The README's first screen must
//! hold the two set-up commands.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("readable docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The text of a page outside fenced code blocks and inline code spans,
/// line by line (code may show link-like text that is not a link).
fn prose(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop `code spans` (an odd backtick count leaves the rest as is).
        let mut kept = String::new();
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if !in_code {
                kept.push(c);
            }
        }
        out.push((i + 1, kept));
    }
    out
}

/// The link targets of a page: `[text](target)`, `![alt](target)` and
/// `[label]: target`, with their line numbers.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (line, s) in prose(text) {
        let mut rest = s.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            // `[text](target "title")`: the target is the first word.
            let target = after[..end].split_whitespace().next().unwrap_or("");
            out.push((line, target.trim_matches(['<', '>']).to_string()));
            rest = &after[end..];
        }
        let t = s.trim_start();
        if t.starts_with('[') {
            if let Some(i) = t.find("]:") {
                if let Some(target) = t[i + 2..].split_whitespace().next() {
                    out.push((line, target.to_string()));
                }
            }
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, letters, digits, `-` and `_`
/// kept, spaces made `-`, everything else dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a markdown page's headings.
fn anchors(page: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(page).unwrap_or_default();
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced && line.starts_with('#') {
            let heading = line.trim_start_matches('#');
            if heading.starts_with(' ') {
                out.insert(slug(&heading.replace('`', "")));
            }
        }
    }
    out
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

#[test]
fn every_relative_link_of_the_readme_and_docs_names_an_existing_file() {
    let mut dead = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("readable page");
        let dir = page.parent().expect("a page is in a directory");
        let name = page.strip_prefix(root()).unwrap_or(&page).display();
        for (line, target) in links(&text) {
            if target.is_empty() || is_external(&target) {
                continue;
            }
            checked += 1;
            let (path, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                page.clone()
            } else {
                dir.join(path)
            };
            if !file.exists() {
                dead.push(format!("{name}:{line}: `{target}`: no such file"));
                continue;
            }
            if let Some(fragment) = fragment {
                if file.extension().is_some_and(|x| x == "md") && !anchors(&file).contains(fragment)
                {
                    dead.push(format!(
                        "{name}:{line}: `{target}`: no heading with anchor `#{fragment}` in {}",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} relative links found");
    assert!(dead.is_empty(), "dead links:\n{}", dead.join("\n"));
}

#[test]
fn the_readme_first_screen_has_the_two_set_up_commands() {
    let text = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let first: Vec<&str> = text.lines().take(60).collect();
    for command in [
        "cargo run --release -- reproduce tradeoff",
        "scripts/test-all.sh",
    ] {
        assert!(
            first.iter().any(|l| l.trim_start().starts_with(command)),
            "README.md's first 60 lines lack a line starting with `{command}`"
        );
    }
    assert!(root().join("scripts/test-all.sh").is_file());
}

#[test]
fn the_link_parser_finds_inline_image_and_reference_links_but_not_code() {
    let text = "see [a](docs/a.md#x) and ![i](img/i.svg \"t\")\n`[no](code.md)`\n```\n[no](fenced.md)\n```\n[ref]: docs/r.md\n";
    let found: Vec<String> = links(text).into_iter().map(|(_, t)| t).collect();
    assert_eq!(found, ["docs/a.md#x", "img/i.svg", "docs/r.md"]);
    assert_eq!(
        slug("E1: the momentum–delay tradeoff"),
        "e1-the-momentumdelay-tradeoff"
    );
    assert_eq!(slug("The papers"), "the-papers");
}
