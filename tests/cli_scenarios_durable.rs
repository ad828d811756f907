//! Every named scenario is points plus an analysis, so durability comes
//! with it: for each scenario (and the tradeoff on virtual time), an run
//! interrupted with SIGINT and resumed, and the run split into two shards
//! and merged, write exactly the uninterrupted run's outputs (timings
//! aside). Also: Ctrl-C stops one long run within a second and says how to
//! resume.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_psim"));
    c.args(args);
    for v in [
        "SLURM_ARRAY_TASK_ID",
        "JOB_COMPLETION_INDEX",
        "HQ_TASK_ID",
        "PSIM_SHARD_COUNT",
    ] {
        c.env_remove(v);
    }
    c
}

fn psim(args: &[&str]) -> Output {
    cmd(args).output().expect("psim runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("psim-scen-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn done(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("points")).map_or(0, |d| {
        d.flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .count()
    })
}

/// A JSON value without its timing keys, at any depth.
fn untimed(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(o) => {
            for k in ["wall_seconds", "mean_wall_seconds", "threads"] {
                o.remove(k);
            }
            o.values_mut().for_each(untimed);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(untimed),
        _ => {}
    }
}

/// A file's content with its timings removed: JSON keys of timings, the
/// `wall_seconds` column of CSVs, and report lines that quote a wall time.
fn content(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy();
    if name.ends_with(".json") {
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        untimed(&mut v);
        return v.to_string();
    }
    if name.ends_with(".csv") {
        let mut lines = text.lines();
        let Some(header) = lines.next() else {
            return text;
        };
        let cols: Vec<&str> = header.split(',').collect();
        let Some(wall) = cols.iter().position(|c| *c == "wall_seconds") else {
            return text;
        };
        return std::iter::once(header.to_string())
            .chain(lines.map(|l| {
                let mut f: Vec<&str> = l.split(',').collect();
                f.remove(wall);
                f.join(",")
            }))
            .collect::<Vec<_>>()
            .join("\n");
    }
    text.lines()
        .filter(|l| !l.contains("ran in") && !l.contains("wall-clock"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts that `b` holds every output file of `a` with the same content
/// (timings aside), and no output file `a` lacks.
fn same_outputs(a: &Path, b: &Path, label: &str) {
    let files = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "shard.json" && !n.starts_with('.'))
            .collect();
        v.sort();
        v
    };
    assert_eq!(files(a), files(b), "{label}: output files");
    for f in files(a) {
        assert_eq!(
            content(&a.join(&f)),
            content(&b.join(&f)),
            "{label}: {f} differs"
        );
    }
}

/// The scenarios at sizes that take a second or two, on one thread so that
/// a SIGINT after the first point lands while later points still run.
const CASES: &[(&str, &[&str])] = &[
    (
        "three-phases",
        &[
            "reproduce",
            "three-phases",
            "--runs",
            "100",
            "--steps",
            "40000",
        ],
    ),
    (
        "escape-times",
        &["reproduce", "escape-times", "--runs", "60"],
    ),
    (
        "momentum-vs-workers",
        &[
            "reproduce",
            "momentum-vs-workers",
            "--runs",
            "2",
            "--steps",
            "300",
            "--workers",
            "4",
        ],
    ),
    (
        "tradeoff-vt",
        &[
            "reproduce",
            "tradeoff",
            "--engine",
            "virtual-time",
            "--runs",
            "4",
            "--steps",
            "500",
        ],
    ),
    ("spiky", &["reproduce", "spiky", "--runs", "40"]),
    (
        "saddle-escape",
        &["reproduce", "saddle-escape", "--runs", "60"],
    ),
    (
        "heterogeneous",
        &[
            "reproduce",
            "heterogeneous",
            "--runs",
            "1",
            "--steps",
            "200",
        ],
    ),
    (
        "phase-diagram",
        &[
            "reproduce",
            "phase-diagram",
            "--runs",
            "4",
            "--steps",
            "2000",
            "--momentum",
            "0,0.9",
        ],
    ),
    // A policy that cancels computations: its `cancelled` counts must
    // survive the point files (resumed and merged points read them back).
    (
        "sweep-rennala",
        &[
            "sweep",
            "--engine",
            "virtual-time",
            "--workers",
            "4,8",
            "--compute-time",
            "exp:1",
            "--consistency",
            "rennala:2,ksync:3",
            "--runs",
            "4",
            "--steps",
            "3000",
        ],
    ),
];

/// Scenarios left out of [`CASES`], and why.
const EXEMPT: &[(&str, &str)] = &[(
    "speedup",
    "measures wall-clock time to ε on real threads: a resumed run cannot equal an uninterrupted one",
)];

/// Every named scenario is resumed and merged above, or exempt with a reason.
#[test]
fn every_catalogued_scenario_is_a_case() {
    for s in psim_scenarios::catalogue::catalogue() {
        assert!(
            CASES
                .iter()
                .any(|(_, args)| args.len() > 1 && args[0] == "reproduce" && args[1] == s.name())
                || EXEMPT.iter().any(|(n, _)| *n == s.name()),
            "scenario {} is neither resumed and merged here nor exempt",
            s.name()
        );
    }
}

#[test]
fn cancelled_computations_survive_the_point_files() {
    let whole = tmp("cancel-whole");
    let args = [CASES.last().unwrap().1, &["--quiet", "--out", s(&whole)]].concat();
    let o = psim(&args);
    assert!(o.status.success(), "{}", text(&o));
    let runs = std::fs::read_to_string(whole.join("runs.csv")).unwrap();
    let header: Vec<&str> = runs.lines().next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "cancelled")
        .expect("a cancelled column");
    let total: u64 = runs
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(col).unwrap().parse::<u64>().unwrap())
        .sum();
    // Rennala and m-sync cancel the computations under way at every update.
    assert!(total > 0, "no cancelled computation counted");
    let _ = std::fs::remove_dir_all(&whole);
}

#[test]
fn every_scenario_resumes_and_merges_to_the_uninterrupted_outputs() {
    let mut interrupted = 0;
    for (label, args) in CASES {
        let common = [*args, &["--quiet", "--threads", "1"]].concat();
        let whole = tmp(&format!("{label}-whole"));
        let o = psim(&[&common[..], &["--out", s(&whole)]].concat());
        assert!(o.status.success(), "{label}: {}", text(&o));
        let total = done(&whole);
        assert!(total > 1, "{label}: {total} points");

        // SIGINT once the first point is on disk; then resume.
        let x = tmp(&format!("{label}-x"));
        let mut child = cmd(&[&common[..], &["--out", s(&x)]].concat())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while done(&x) < 1 && start.elapsed() < Duration::from_secs(60) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let out = child.wait_with_output().unwrap();
        let kept = done(&x);
        if kept < total {
            interrupted += 1;
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{label}: {err}");
            assert!(
                err.contains("interrupted") && err.contains("--resume"),
                "{label}: {err}"
            );
            assert!(kept >= 1, "{label}: the finished point was lost");
        }
        let o = psim(&["run", "--resume", s(&x), "--quiet"]);
        assert!(o.status.success(), "{label}: resume: {}", text(&o));
        same_outputs(&whole, &x, &format!("{label} resumed"));

        // Two shards and a merge.
        let shards: Vec<PathBuf> = (0..2)
            .map(|i| {
                let d = tmp(&format!("{label}-s{i}"));
                let o =
                    psim(&[&common[..], &["--shard", &format!("{i}/2"), "--out", s(&d)]].concat());
                assert!(o.status.success(), "{label}: shard {i}: {}", text(&o));
                d
            })
            .collect();
        let merged = tmp(&format!("{label}-merged"));
        let o = psim(&["merge", s(&shards[0]), s(&shards[1]), "--out", s(&merged)]);
        assert!(o.status.success(), "{label}: merge: {}", text(&o));
        same_outputs(&whole, &merged, &format!("{label} merged"));
        for d in [&whole, &x, &merged, &shards[0], &shards[1]] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    // The SIGINT must have landed mid-run for most scenarios, or the test
    // proves nothing about resuming.
    assert!(
        interrupted >= 3,
        "only {interrupted} runs were interrupted before their end"
    );
}

#[test]
fn ctrl_c_stops_a_long_run_within_a_second_and_says_how_to_resume() {
    let d = tmp("long");
    let child = cmd(&[
        "run",
        "--steps",
        "100000000",
        "--runs",
        "2",
        "--quiet",
        "--out",
        s(&d),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(took < Duration::from_secs(1), "stopped after {took:?}");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("psim run --resume {}", d.display())),
        "{err}"
    );
    // Nothing of the cancelled point was written.
    assert_eq!(done(&d), 0);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_point_is_on_disk_as_soon_as_its_own_runs_are_done() {
    // Point 0 diverges within a few steps; point 1 runs for minutes. Both
    // are in the first window of jobs: point 0 must not wait for it.
    let d = tmp("early");
    let mut child = cmd(&[
        "sweep",
        "--step-size",
        "0.5,0.0005",
        "--runs",
        "8",
        "--steps",
        "100000000",
        "--quiet",
        "--out",
        s(&d),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let start = Instant::now();
    while done(&d) < 1 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        d.join("points/0.json").is_file(),
        "point 0 was not written while point 1 ran"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn tampered_or_foreign_point_files_are_refused_by_resume_and_report() {
    let base = ["run", "--runs", "3", "--steps", "200", "--quiet"];
    // A row changed after it was written: report and resume name the file.
    let d = tmp("tamper");
    let o = psim(&[&base[..], &["--out", s(&d)]].concat());
    assert!(o.status.success(), "{}", text(&o));
    let rows = d.join("points/0.runs.csv");
    let t = std::fs::read_to_string(&rows).unwrap();
    std::fs::write(&rows, t.replacen("steps_reached", "steps_reached ", 1)).unwrap();
    let o = psim(&["report", s(&d)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("0.runs.csv") && text(&o).contains("checksum"),
        "{}",
        text(&o)
    );
    let o = psim(&["run", "--resume", s(&d), "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("checksum"), "{}", text(&o));
    // config.toml edited between an interrupted run and its resume: the
    // finished point was computed for another configuration.
    let d2 = tmp("edited");
    let o = psim(&[&base[..], &["--out", s(&d2)]].concat());
    assert!(o.status.success(), "{}", text(&o));
    let cfg = d2.join("config.toml");
    let t = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, t.replace("steps = 200", "steps = 300")).unwrap();
    std::fs::remove_file(d2.join("summary.json")).unwrap();
    let o = psim(&["run", "--resume", s(&d2), "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("another configuration"), "{}", text(&o));
    for x in [&d, &d2] {
        let _ = std::fs::remove_dir_all(x);
    }
}

/// Every figure a point file carries (its summary, trace and staleness
/// histogram) is covered by its checksum: an edit to any of them is refused
/// by resume, merge and report, naming the file.
#[test]
fn an_edited_figure_of_a_point_file_is_refused_everywhere() {
    let base = [
        "sweep",
        "--momentum",
        "0.5,0.9",
        "--runs",
        "2",
        "--steps",
        "100",
        "--quiet",
    ];
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit); 4] = [
        ("summary.error.mean", |v| {
            v["summary"]["error"]["mean"] = 0.123.into()
        }),
        ("summary.diverged", |v| v["summary"]["diverged"] = 2.into()),
        ("trace[1].mean", |v| v["trace"][1]["mean"] = 0.456.into()),
        ("staleness", |v| {
            v["staleness"] = serde_json::json!([[7, 200]])
        }),
    ];
    for (what, edit) in edits {
        let d = tmp(&format!("edit-{what}"));
        let o = psim(&[&base[..], &["--out", s(&d)]].concat());
        assert!(o.status.success(), "{}", text(&o));
        let f = d.join("points/0.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        edit(&mut v);
        std::fs::write(&f, serde_json::to_string_pretty(&v).unwrap()).unwrap();
        let o = psim(&["report", s(&d)]);
        assert_eq!(o.status.code(), Some(2), "{what}: report: {}", text(&o));
        assert!(text(&o).contains("0.json"), "{what}: {}", text(&o));
        std::fs::remove_file(d.join("summary.json")).unwrap();
        let o = psim(&["sweep", "--resume", s(&d), "--quiet"]);
        assert_eq!(o.status.code(), Some(2), "{what}: resume: {}", text(&o));
        assert!(
            text(&o).contains("0.json") && text(&o).contains("edited"),
            "{what}: {}",
            text(&o)
        );
        let _ = std::fs::remove_dir_all(&d);
    }
    // A shard's edited point is refused by merge.
    let shards: Vec<PathBuf> = (0..2)
        .map(|i| {
            let d = tmp(&format!("edit-shard{i}"));
            let o = psim(&[&base[..], &["--shard", &format!("{i}/2"), "--out", s(&d)]].concat());
            assert!(o.status.success(), "{}", text(&o));
            d
        })
        .collect();
    let f = shards[0].join("points/0.json");
    let t = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, t.replacen("\"diverged\": 0", "\"diverged\": 2", 1)).unwrap();
    let merged = tmp("edit-merged");
    let o = psim(&["merge", s(&shards[0]), s(&shards[1]), "--out", s(&merged)]);
    assert_eq!(o.status.code(), Some(2), "merge: {}", text(&o));
    assert!(text(&o).contains("0.json"), "{}", text(&o));
    for d in shards.iter().chain([&merged]) {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn a_relative_trace_path_replays_from_another_folder() {
    let d = tmp("relative");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("delays.txt"), "1 2 3 5 8\n").unwrap();
    let out = d.join("out");
    let o = cmd(&[
        "run",
        "--delay",
        "trace:delays.txt",
        "--runs",
        "2",
        "--steps",
        "300",
        "--quiet",
        "--out",
        s(&out),
    ])
    .current_dir(&d)
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    let recorded = format!("trace:{}", d.join("delays.txt").display());
    assert!(config.contains(&recorded), "{config}");
    let again = d.join("again");
    let o = cmd(&[
        "run",
        "--config",
        s(&out.join("config.toml")),
        "--quiet",
        "--out",
        s(&again),
    ])
    .current_dir(std::env::temp_dir())
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    same_outputs(&out, &again, "replay from another folder");
    let _ = std::fs::remove_dir_all(&d);
}
