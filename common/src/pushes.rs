//! The push log `pushes.csv`: one row per applied gradient of a cluster run
//! (virtual-time, threads, tasks), written by `--record-pushes`, and read
//! back to replay measured delays: its staleness column on the injected
//! engine (`--delay trace:pushes.csv`), its per-worker compute times on the
//! virtual-time engine (`--worker-compute replay:pushes.csv`).

use std::sync::Arc;

/// The header of `pushes.csv`, also how a trace file is recognised as one.
pub const PUSHES_HEADER: &str =
    "point,run,worker,fetched_version,applied_version,staleness,compute_seconds,wait_seconds";

/// Most rows one run records (a longer run keeps its first rows and counts
/// the rest as not recorded): 10⁶ rows of 48 bytes, 48 MB per run in memory.
pub const MAX_RECORDED_PUSHES: usize = 1_000_000;

/// One applied gradient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PushRecord {
    /// Worker that computed it.
    pub worker: u32,
    /// Server version its parameters were fetched at.
    pub fetched_version: u64,
    /// Server version after it was applied (under BSP, the round's update).
    pub applied_version: u64,
    /// Updates applied between its fetch and its application.
    pub staleness: u64,
    /// Seconds from its fetch to its arrival at the server (compute and
    /// network; the gradient's own computation included on real workers).
    pub compute_seconds: f64,
    /// Seconds the consistency model held it before it was applied (SSP
    /// order; 0 under ASP).
    pub wait_seconds: f64,
}

/// What a replay reads from `pushes.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct PushLog {
    /// Staleness of every row, in file order.
    pub staleness: Vec<u64>,
    /// Compute seconds per worker, in file order (index = worker id).
    pub compute: Vec<Arc<[f64]>>,
}

/// Whether `body` is a push log (starts with [`PUSHES_HEADER`]).
pub fn is_push_log(body: &str) -> bool {
    body.lines().next().map(str::trim) == Some(PUSHES_HEADER)
}

/// Parses a push log; the error names the line and column.
pub fn parse_push_log(body: &str) -> Result<PushLog, String> {
    if !is_push_log(body) {
        return Err(format!("the first line must be `{PUSHES_HEADER}`"));
    }
    let mut staleness = Vec::new();
    let mut compute: Vec<Vec<f64>> = Vec::new();
    for (i, line) in body.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(',').collect();
        if cols.len() != 8 {
            return Err(format!(
                "line {}: {} columns, expected 8",
                i + 1,
                cols.len()
            ));
        }
        let worker: usize = cols[2]
            .trim()
            .parse()
            .map_err(|_| format!("line {}: worker `{}` is not an integer", i + 1, cols[2]))?;
        if worker >= crate::config::MAX_WORKERS {
            return Err(format!("line {}: worker {worker} out of range", i + 1));
        }
        let s: u64 = cols[5]
            .trim()
            .parse()
            .map_err(|_| format!("line {}: staleness `{}` is not an integer", i + 1, cols[5]))?;
        let c: f64 = cols[6].trim().parse().map_err(|_| {
            format!(
                "line {}: compute_seconds `{}` is not a number",
                i + 1,
                cols[6]
            )
        })?;
        if !(c.is_finite() && c >= 0.0) {
            return Err(format!(
                "line {}: compute_seconds {c} is not finite and ≥ 0",
                i + 1
            ));
        }
        staleness.push(s);
        if compute.len() <= worker {
            compute.resize_with(worker + 1, Vec::new);
        }
        compute[worker].push(c);
    }
    if staleness.is_empty() {
        return Err("it holds no pushes".into());
    }
    Ok(PushLog {
        staleness,
        compute: compute.into_iter().map(Arc::from).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_its_own_header_and_rows() {
        let body = format!("{PUSHES_HEADER}\n0,0,1,0,1,0,0.5,0\n0,0,0,0,2,1,0.25,0.1\n");
        let log = parse_push_log(&body).unwrap();
        assert_eq!(log.staleness, vec![0, 1]);
        assert_eq!(&*log.compute[0], &[0.25]);
        assert_eq!(&*log.compute[1], &[0.5]);
        assert!(parse_push_log("1 2 3").is_err());
        let bad = format!("{PUSHES_HEADER}\n0,0,x,0,1,0,0.5,0\n");
        assert!(parse_push_log(&bad).unwrap_err().contains("line 2"));
    }
}
