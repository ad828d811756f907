//! The standard sweep outputs written in one pass, a point at a time: each
//! file is a temporary file from the first point on, renamed into place
//! when the last point is in. [`write_sweep`](super::write_sweep) (points in
//! memory) and a streamed plain sweep (points read back from disk one by
//! one) both write through [`SweepWriter`], so their files are the same
//! bytes, and a streamed sweep's memory does not grow with its points.

use super::{
    columns, create_temp, f, param_count_of, point_head, runs_header, runs_rows, OutputDir,
    OutputError, TracesPlot,
};
use crate::experiments::tradeoff::TradeoffTable;
use crate::sweep::PointResult;
use psim_common::Experiment;
use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// Writes through to `w`, four spaces before every line: a point's
/// pretty-printed JSON nested two levels into `summary.json`'s list.
struct Indented<'a, W: Write> {
    w: &'a mut W,
    at_line_start: bool,
}

impl<W: Write> Write for Indented<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            if self.at_line_start {
                self.w.write_all(b"    ")?;
                self.at_line_start = false;
            }
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.w.write_all(&rest[..=i])?;
                    self.at_line_start = true;
                    rest = &rest[i + 1..];
                }
                None => {
                    self.w.write_all(rest)?;
                    rest = &[];
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

/// A file being written beside its final name; removed unless committed.
struct Staged {
    path: PathBuf,
    tmp: PathBuf,
    w: Option<BufWriter<std::fs::File>>,
    /// Flushed to disk before the rename ([`OutputDir::scratch`]: not).
    durable: bool,
    /// CSV records are formatted here first: a `csv::Writer` over the file
    /// itself would flush the file (a write call) after every point.
    buf: Vec<u8>,
}

impl Staged {
    fn new(out: &OutputDir, name: &str) -> Result<Self, OutputError> {
        let path = out.checked(name)?;
        let (tmp, file) = create_temp(&path).map_err(|e| OutputError::io(&path, e))?;
        Ok(Self {
            path,
            tmp,
            w: Some(BufWriter::new(file)),
            durable: out.durable,
            buf: Vec::new(),
        })
    }

    /// Appends CSV records.
    fn records<R, F>(&mut self, rows: impl IntoIterator<Item = R>) -> Result<(), OutputError>
    where
        R: IntoIterator<Item = F>,
        F: AsRef<[u8]>,
    {
        let formatted = || -> std::io::Result<()> {
            let mut c = csv::Writer::from_writer(&mut self.buf);
            for r in rows {
                c.write_record(r).map_err(std::io::Error::other)?;
            }
            c.flush()?;
            drop(c);
            let w = self.w.as_mut().expect("written before commit");
            w.write_all(&self.buf)?;
            self.buf.clear();
            Ok(())
        };
        formatted().map_err(|err| OutputError::io(&self.path, err))
    }

    fn w(&mut self) -> &mut BufWriter<std::fs::File> {
        self.w.as_mut().expect("written before commit")
    }

    fn err(&self, cause: std::io::Error) -> OutputError {
        OutputError::io(&self.path, cause)
    }

    /// Flushes to disk and renames over the final name.
    fn commit(mut self) -> Result<PathBuf, OutputError> {
        let w = self.w.take().expect("committed once");
        let done = (|| {
            let file = w.into_inner().map_err(|e| e.into_error())?;
            if self.durable {
                file.sync_all()?;
            }
            std::fs::rename(&self.tmp, &self.path)
        })();
        done.map_err(|e| self.err(e))?;
        Ok(std::mem::take(&mut self.path))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.w.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `summary.json`, `runs.csv`, `traces.csv`, `staleness.csv`,
/// `workers.csv` (when a point has workers) and `traces.svg` as points are
/// added in grid order.
pub struct SweepWriter<'a> {
    out: &'a OutputDir,
    e: &'a Experiment,
    summary: Staged,
    summary_tail: String,
    runs: Staged,
    traces: Staged,
    staleness: Staged,
    workers: Staged,
    points: usize,
    worker_rows: usize,
    plot: TracesPlot,
}

impl<'a> SweepWriter<'a> {
    /// Starts the files of experiment `e` (run in `wall_seconds` on
    /// `threads` threads; `tradeoff`: the analysis `summary.json` ends with).
    pub fn new(
        out: &'a OutputDir,
        e: &'a Experiment,
        (wall_seconds, threads): (f64, usize),
        tradeoff: Option<&TradeoffTable>,
    ) -> Result<Self, OutputError> {
        // summary.json is the pretty JSON of `Summary`: its text with no
        // point, split where the points go.
        let empty = super::Summary {
            name: &e.name,
            psim_version: env!("CARGO_PKG_VERSION"),
            seed: e.base.seed,
            runs: e.base.runs,
            steps: e.base.steps,
            rule: &e.base.rule,
            schedule: &e.base.schedule,
            threads,
            wall_seconds,
            points: Vec::new(),
            tradeoff,
        };
        let text = serde_json::to_string_pretty(&empty).map_err(|err| OutputError::Encode {
            path: out.path().join("summary.json"),
            message: err.to_string(),
        })? + "\n";
        let at = text
            .find("\"points\": []")
            .expect("Summary serialises its points")
            + "\"points\": ".len();
        let mut summary = Staged::new(out, "summary.json")?;
        summary
            .w()
            .write_all(&text.as_bytes()[..at])
            .map_err(|err| summary.err(err))?;
        let summary_tail = text[at + "[]".len()..].to_string();
        let mut w = Self {
            out,
            e,
            summary,
            summary_tail,
            runs: Staged::new(out, "runs.csv")?,
            traces: Staged::new(out, "traces.csv")?,
            staleness: Staged::new(out, "staleness.csv")?,
            workers: Staged::new(out, "workers.csv")?,
            points: 0,
            worker_rows: 0,
            plot: TracesPlot::new(e, tradeoff.is_some()),
        };
        let header = |s: &mut Staged, rest: &[&'static str]| s.records([columns(e, rest)]);
        header(
            &mut w.traces,
            &["step", "runs", "mean_error", "p10_error", "p90_error"],
        )?;
        header(&mut w.staleness, &["staleness", "count"])?;
        header(
            &mut w.workers,
            &[
                "worker",
                "mean_compute",
                "applied_per_run",
                "share",
                "mean_staleness",
                "p50_staleness",
                "p90_staleness",
                "p99_staleness",
                "max_staleness",
            ],
        )?;
        Ok(w)
    }

    /// Adds the next point's lines to every file.
    pub fn add(&mut self, p: &PointResult) -> Result<(), OutputError> {
        let e = self.e;
        // summary.json: the point pretty-printed, each line indented by
        // four spaces, streamed (10⁶ workers' entries are ≈ 270 MB).
        let sep = if self.points == 0 { "[\n" } else { ",\n" };
        let path = self.summary.path.clone();
        let w = self.summary.w();
        w.write_all(sep.as_bytes())
            .map_err(serde_json::Error::io)
            .and_then(|()| {
                let mut indented = Indented {
                    w,
                    at_line_start: true,
                };
                serde_json::to_writer_pretty(&mut indented, &p.summary)
            })
            .map_err(|err| {
                if err.is_io() {
                    OutputError::io(&path, err.into())
                } else {
                    OutputError::Encode {
                        path,
                        message: err.to_string(),
                    }
                }
            })?;
        // runs.csv: the point's rows from memory, or, for points whose rows
        // were not read back, its `points/P.runs.csv` as it is (same
        // formatting code wrote it).
        if self.points == 0 {
            let mut header: Vec<String> = runs_header(e).iter().map(|c| c.to_string()).collect();
            let params = param_count_of(self.out, e, Some(p), header.len());
            header.extend((0..params).map(|i| format!("param_{i}")));
            self.runs.records([header])?;
        }
        let runs = &mut self.runs;
        if p.rows.len() == p.summary.runs {
            runs.records(runs_rows(e, p))?;
        } else {
            let frag = self
                .out
                .path()
                .join("points")
                .join(format!("{}.runs.csv", p.summary.index));
            psim_common::fs::open_regular(&frag, psim_common::fs::Links::Refuse)
                .map_err(|err| {
                    std::io::Error::new(err.kind(), format!("`{}`: {err}", frag.display()))
                })
                .and_then(|mut src| std::io::copy(&mut src, runs.w()).map(drop))
                .map_err(|err| runs.err(err))?;
        }
        // traces.csv, staleness.csv, workers.csv
        // Each row: the point's columns (borrowed, not copied per row),
        // then its own fields.
        let head = point_head(&p.summary);
        let row = |rest: &mut dyn Iterator<Item = String>| {
            let mut r: Vec<Cow<'_, [u8]>> = Vec::with_capacity(head.len() + 9);
            r.extend(head.iter().map(|h| Cow::Borrowed(h.as_bytes())));
            r.extend(rest.map(|f| Cow::Owned(f.into_bytes())));
            r
        };
        self.traces.records(p.trace.iter().map(|t| {
            row(&mut [
                t.step.to_string(),
                t.runs.to_string(),
                f(t.mean),
                f(t.p10),
                f(t.p90),
            ]
            .into_iter())
        }))?;
        self.staleness.records(
            p.staleness
                .iter()
                .map(|(v, n)| row(&mut [v.to_string(), n.to_string()].into_iter())),
        )?;
        let opt = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
        self.workers.records(p.summary.per_worker.iter().map(|w| {
            row(&mut [
                w.worker.to_string(),
                w.mean_compute.map_or(String::new(), f),
                f(w.applied_per_run),
                f(w.share),
                f(w.mean_staleness),
                opt(w.p50),
                opt(w.p90),
                opt(w.p99),
                w.max.to_string(),
            ]
            .into_iter())
        }))?;
        self.worker_rows += p.summary.per_worker.len();
        self.plot.add(p);
        self.points += 1;
        Ok(())
    }

    /// Closes every file (the ones no point wrote to are not created) and
    /// returns their paths, `traces.svg` last.
    pub fn finish(mut self) -> Result<Vec<PathBuf>, OutputError> {
        let close = if self.points == 0 { "[]" } else { "\n  ]" };
        let tail = format!("{close}{}", self.summary_tail);
        self.summary
            .w()
            .write_all(tail.as_bytes())
            .map_err(|err| self.summary.err(err))?;
        if self.points == 0 {
            self.runs.records([runs_header(self.e)])?;
        }
        let mut files = vec![
            self.summary.commit()?,
            self.runs.commit()?,
            self.traces.commit()?,
            self.staleness.commit()?,
        ];
        if self.worker_rows > 0 {
            files.push(self.workers.commit()?);
        }
        files.push(
            self.out
                .write("traces.svg", self.plot.into_plot().to_svg())?,
        );
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::{run_sweep, SweepOptions};

    /// The spliced, streamed `summary.json` is byte for byte serde's pretty
    /// JSON of the whole [`super::super::Summary`], for 0, 1 and 6 points.
    #[test]
    fn streamed_summary_is_the_pretty_json_of_the_whole() {
        let mut e = crate::catalogue::study_of(&Experiment {
            name: "sweep".into(),
            base: Default::default(),
            grid: Default::default(),
            tradeoff: None,
        })
        .experiment();
        e.base.steps = 50;
        e.base.runs = 2;
        e.grid.momentum = vec![0.0, 0.9];
        e.grid.delay = (0..3)
            .map(|t| format!("const:{t}").parse().unwrap())
            .collect();
        let done = run_sweep(&e, &SweepOptions::default()).unwrap();
        for n in [0, 1, 6] {
            let dir =
                std::env::temp_dir().join(format!("psim-stream-test-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let out = OutputDir::create(Some(&dir), "x", false).unwrap();
            let points = &done.points[..n];
            let mut w = SweepWriter::new(&out, &e, (1.5, 2), None).unwrap();
            points.iter().for_each(|p| w.add(p).unwrap());
            w.finish().unwrap();
            let whole = super::super::Summary {
                name: &e.name,
                psim_version: env!("CARGO_PKG_VERSION"),
                seed: e.base.seed,
                runs: e.base.runs,
                steps: e.base.steps,
                rule: &e.base.rule,
                schedule: &e.base.schedule,
                threads: 2,
                wall_seconds: 1.5,
                points: points.iter().map(|p| &p.summary).collect(),
                tradeoff: None,
            };
            let expected = serde_json::to_string_pretty(&whole).unwrap() + "\n";
            let got = std::fs::read_to_string(dir.join("summary.json")).unwrap();
            assert_eq!(got, expected, "{n} points");
            let runs = std::fs::read_to_string(dir.join("runs.csv")).unwrap();
            assert_eq!(runs.lines().count(), 1 + n * 2, "{n} points: header + rows");
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
