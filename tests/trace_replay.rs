//! Measured delays recorded and replayed: `--record-pushes` writes every
//! applied push to `pushes.csv`; `--delay trace:DIR/pushes.csv` replays its
//! staleness on the injected engine, and `--worker-compute
//! replay:DIR/pushes.csv` its compute times on the virtual-time engine.

use std::path::Path;
use std::process::Command;

fn psim(args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_psim"))
        .args(args)
        .arg("--quiet")
        .output()
        .expect("running psim");
    assert!(
        o.status.success(),
        "psim {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The (staleness, count) rows of `staleness.csv` (its last two columns).
fn histogram(dir: &Path) -> Vec<(u64, u64)> {
    std::fs::read_to_string(dir.join("staleness.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            let n = c.len();
            (c[n - 2].parse().unwrap(), c[n - 1].parse().unwrap())
        })
        .collect()
}

fn rows(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("pushes.csv"))
        .unwrap()
        .lines()
        .count()
        - 1
}

/// Replaying a recorded threads run on the injected engine, for as many
/// steps as it applied pushes, reproduces its staleness histogram exactly:
/// the log is in the server's order, so the k-th staleness is at most k and
/// the history serves every one of them exactly.
#[test]
fn a_recorded_threads_run_replays_exactly_on_the_injected_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("rec");
    psim(&[
        "run",
        "--engine",
        "threads",
        "--workers",
        "4",
        "--compute-time",
        "exp:0.0002",
        "--steps",
        "1500",
        "--runs",
        "1",
        "--record-pushes",
        "--out",
        rec.to_str().unwrap(),
    ]);
    let n = rows(&rec);
    assert_eq!(n, 1500, "one row per applied push");
    let recorded = histogram(&rec);
    assert!(recorded.len() > 1, "{recorded:?}");
    assert!(rec.join("pushes.svg").exists() && rec.join("pushes-workers.svg").exists());
    let rep = tmp.path().join("rep");
    let trace = format!("trace:{}", rec.join("pushes.csv").display());
    psim(&[
        "run",
        "--delay",
        &trace,
        "--steps",
        &n.to_string(),
        "--runs",
        "1",
        "--out",
        rep.to_str().unwrap(),
    ]);
    assert_eq!(histogram(&rep), recorded);
}

/// A virtual-time run replayed from its own recorded compute times runs the
/// same events until the first worker runs out of recorded times (its push
/// in flight at the stop was never applied, so never recorded; from there
/// its times cycle): every push applied up to the smallest of the workers'
/// last applied versions is the same, row for row.
#[test]
fn recorded_compute_times_replay_in_virtual_time() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("rec");
    let common = [
        "run",
        "--engine",
        "virtual-time",
        "--workers",
        "4",
        "--steps",
        "2000",
        "--runs",
        "1",
        "--record-pushes",
    ];
    let mut a = common.to_vec();
    a.extend([
        "--compute-time",
        "exp:1",
        "--worker-compute",
        "linear:1,0.5",
        "--out",
        rec.to_str().unwrap(),
    ]);
    psim(&a);
    let rep = tmp.path().join("rep");
    let replay = format!("replay:{}", rec.join("pushes.csv").display());
    let mut b = common.to_vec();
    b.extend(["--worker-compute", &replay, "--out", rep.to_str().unwrap()]);
    psim(&b);
    let log = |d: &Path| -> Vec<(usize, u64, String)> {
        std::fs::read_to_string(d.join("pushes.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                let c: Vec<&str> = l.split(',').collect();
                (c[2].parse().unwrap(), c[4].parse().unwrap(), l.to_string())
            })
            .collect()
    };
    let (x, y) = (log(&rec), log(&rep));
    let mut last = [0u64; 4];
    for (w, v, _) in &x {
        last[*w] = last[*w].max(*v);
    }
    let cut = *last.iter().min().unwrap();
    assert!(cut > 1900, "cut at {cut}");
    let prefix = |l: &[(usize, u64, String)]| -> Vec<String> {
        l.iter()
            .filter(|r| r.1 <= cut)
            .map(|r| r.2.clone())
            .collect()
    };
    assert_eq!(prefix(&y), prefix(&x));
}

#[test]
fn a_push_log_is_refused_as_a_compute_time() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("pushes.csv");
    std::fs::write(
        &log,
        format!(
            "{}\n0,0,0,0,1,0,0.5,0\n",
            psim_common::pushes::PUSHES_HEADER
        ),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_psim"))
        .args([
            "run",
            "--engine",
            "virtual-time",
            "--compute-time",
            &format!("trace:{}", log.display()),
            "--out",
            tmp.path().join("x").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("compute_time"));
}
