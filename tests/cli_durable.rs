//! Durable sweeps as a user meets them: an interrupted run (SIGINT, then
//! SIGKILL of the resumed attempt) resumes to the uninterrupted outputs;
//! shards (by flag and by the schedulers' environment variables) merge to
//! the unsharded outputs; the flags are refused where they cannot apply.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SCHEDULER_VARS: &[&str] = &[
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_COUNT",
    "JOB_COMPLETION_INDEX",
    "HQ_TASK_ID",
    "PSIM_SHARD_COUNT",
];

fn cmd(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_psim"));
    c.args(args);
    for v in SCHEDULER_VARS {
        c.env_remove(v);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn psim(args: &[&str], env: &[(&str, &str)]) -> Output {
    cmd(args, env).output().expect("psim runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("psim-durable-{}-{name}", std::process::id()));
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

/// Waits until `dir` holds at least `n` finished points (or the child has
/// exited), then sends `signal`. Returns whether the signal was sent.
fn interrupt_after(child: &mut Child, dir: &Path, n: usize, signal: i32) -> bool {
    let start = Instant::now();
    while done(dir) < n && start.elapsed() < Duration::from_secs(60) {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
    let sent = unsafe { libc::kill(child.id() as i32, signal) } == 0;
    child.wait().unwrap();
    sent
}

/// summary.json without its timings (the sweep's wall time and threads,
/// and each point's mean wall time per run).
fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("wall_seconds");
    o.remove("threads");
    for p in o["points"].as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("mean_wall_seconds");
    }
    v
}

/// runs.csv without its wall_seconds column.
fn runs(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("runs.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let wall = header.iter().position(|c| *c == "wall_seconds").unwrap();
    std::iter::once(header.join(","))
        .chain(lines.map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.remove(wall);
            f.join(",")
        }))
        .collect()
}

fn same_outputs(a: &Path, b: &Path) {
    assert_eq!(summary(a), summary(b), "summary.json");
    assert_eq!(runs(a), runs(b), "runs.csv");
    for f in ["traces.csv", "staleness.csv", "traces.svg", "tradeoff.svg"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn interrupted_twice_then_resumed_equals_the_uninterrupted_run() {
    let e1 = [
        "reproduce",
        "tradeoff",
        "--runs",
        "16",
        "--steps",
        "100000",
        "--quiet",
        "--threads",
        "1",
    ];
    let whole = tmp("whole");
    let o = psim(&[&e1[..], &["--out", s(&whole)]].concat(), &[]);
    assert!(o.status.success(), "{}", text(&o));

    let x = tmp("x");
    // Ctrl-C after a few points: they survive, nothing else is written.
    let mut a = cmd(&[&e1[..], &["--out", s(&x)]].concat(), &[])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let interrupted = interrupt_after(&mut a, &x, 5, libc::SIGINT);
    let first = done(&x);
    assert!(first >= 5, "{first} points survived SIGINT");
    if interrupted && first < 85 {
        assert!(!x.join("summary.json").exists());
        let r = psim(&["report", s(&x)], &[]);
        assert!(!r.status.success());
        assert!(text(&r).contains("INCOMPLETE"), "{}", text(&r));
        assert!(
            text(&r).contains(&format!("{} of its 85 points are missing", 85 - first)),
            "{}",
            text(&r)
        );
    }
    // kill -9 of the resumed attempt, a few points later.
    let mut b = cmd(
        &["reproduce", "tradeoff", "--resume", s(&x), "--quiet"],
        &[],
    )
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    interrupt_after(&mut b, &x, first + 3, libc::SIGKILL);
    assert!(done(&x) >= first);
    // Flags that change the recorded experiment are refused.
    let r = psim(
        &["reproduce", "tradeoff", "--resume", s(&x), "--runs", "17"],
        &[],
    );
    assert!(!r.status.success());
    assert!(text(&r).contains("--resume"), "{}", text(&r));
    // The third attempt finishes.
    let o = psim(
        &["reproduce", "tradeoff", "--resume", s(&x), "--quiet"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    same_outputs(&whole, &x);
    let r = psim(&["report", s(&x)], &[]);
    assert!(r.status.success(), "{}", text(&r));
    let _ = std::fs::remove_dir_all(&whole);
    let _ = std::fs::remove_dir_all(&x);
}

#[test]
fn three_shards_merge_into_the_unsharded_run() {
    let sweep = [
        "sweep",
        "--momentum",
        "0.7,0.9",
        "--taus",
        "0:40:10",
        "--runs",
        "8",
        "--steps",
        "2000",
        "--optimal-delay",
        "--quiet",
    ];
    let whole = tmp("unsharded");
    let o = psim(&[&sweep[..], &["--out", s(&whole)]].concat(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let dirs: Vec<PathBuf> = (0..3).map(|i| tmp(&format!("shard{i}"))).collect();
    // Shard 0 from Slurm's variables, 1 from a Kubernetes Indexed Job's,
    // 2 from HyperQueue's with the count as a flag.
    let envs: [&[(&str, &str)]; 3] = [
        &[
            ("SLURM_ARRAY_TASK_ID", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ],
        &[("JOB_COMPLETION_INDEX", "1"), ("PSIM_SHARD_COUNT", "3")],
        &[("HQ_TASK_ID", "2")],
    ];
    let extra: [&[&str]; 3] = [&[], &[], &["--shard-count", "3"]];
    for i in 0..3 {
        let args = [
            &sweep[..],
            &["--shard", "auto", "--out", s(&dirs[i])],
            extra[i],
        ]
        .concat();
        let o = psim(&args, envs[i]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains(&format!("shard {i}/3")), "{}", text(&o));
        assert!(!dirs[i].join("summary.json").exists());
    }
    assert_eq!(
        (0..3).map(|i| done(&dirs[i])).collect::<Vec<_>>(),
        [4, 3, 3]
    );
    // Without a count, the Kubernetes path is refused by name.
    let o = psim(
        &[&sweep[..], &["--shard", "auto", "--out", s(&tmp("k8s"))]].concat(),
        &[("JOB_COMPLETION_INDEX", "1")],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("--shard-count"), "{}", text(&o));
    // A retried shard rewrites no finished point.
    let before = std::fs::metadata(dirs[0].join("points/0.json"))
        .unwrap()
        .modified()
        .unwrap();
    let o = psim(
        &[&sweep[..], &["--shard", "0/3", "--out", s(&dirs[0])]].concat(),
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let after = std::fs::metadata(dirs[0].join("points/0.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);

    let merged = tmp("merged");
    let refuse = |dirs: &[&Path], what: &str| {
        let mut args = vec!["merge"];
        args.extend(dirs.iter().map(|d| s(d)));
        args.extend(["--out", s(&merged)]);
        let o = psim(&args, &[]);
        assert!(!o.status.success(), "{what}");
        assert!(text(&o).contains(what), "{}", text(&o));
    };
    refuse(&[&dirs[0], &dirs[1]], "shard 2/3 is missing");
    refuse(&[&dirs[0], &dirs[1], &dirs[1]], "overlapping");
    refuse(&[&dirs[0], &dirs[1], &whole], "shard.json");
    for _ in 0..2 {
        // Twice: a rerun of the merge copies nothing and writes the same.
        let o = psim(
            &[
                "merge",
                s(&dirs[0]),
                s(&dirs[1]),
                s(&dirs[2]),
                "--out",
                s(&merged),
            ],
            &[],
        );
        assert!(o.status.success(), "{}", text(&o));
        same_outputs(&whole, &merged);
    }
    for d in dirs.iter().chain([&whole, &merged]) {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn resume_and_shard_are_refused_where_they_cannot_apply() {
    for (args, needle) in [
        (
            // Three points (SGD, MSGD, MSGD + annealing): a fourth shard would be empty.
            vec!["reproduce", "three-phases", "--shard", "0/4"],
            "fewer than 4 shards",
        ),
        (
            vec![
                "reproduce",
                "three-phases",
                "--check-seeds",
                "1..2",
                "--shard",
                "0/2",
            ],
            "`--shard` is refused here",
        ),
        (
            vec!["reproduce", "spiky", "--resume", "/nonexistent-psim-dir"],
            "no config.toml",
        ),
        (
            vec!["run", "--runs", "2", "--steps", "100", "--shard", "3/2"],
            "0 ≤ I < N",
        ),
        (
            vec!["run", "--runs", "2", "--steps", "100", "--shard", "1/2"],
            "fewer than 2 shards",
        ),
        (
            vec!["run", "--runs", "2", "--steps", "100", "--shard-count", "2"],
            "--shard auto",
        ),
    ] {
        let o = psim(&args, &[]);
        assert!(!o.status.success(), "{args:?}");
        assert!(text(&o).contains(needle), "{args:?}: {}", text(&o));
    }
    // --resume on the directory of another experiment names both.
    let d = tmp("other");
    let o = psim(
        &[
            "run",
            "--runs",
            "2",
            "--steps",
            "100",
            "--quiet",
            "--out",
            s(&d),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = psim(&["reproduce", "tradeoff", "--resume", s(&d)], &[]);
    assert!(!o.status.success());
    assert!(text(&o).contains("not scenario `tradeoff`"), "{}", text(&o));
    let o = psim(&["reproduce", "spiky", "--resume", s(&d)], &[]);
    assert!(!o.status.success());
    let _ = std::fs::remove_dir_all(&d);
}
