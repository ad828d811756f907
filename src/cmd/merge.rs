//! `psim merge DIR... --out OUT`: combine the directories of a sharded
//! sweep (`--shard I/N`) into what one unsharded run writes.

use anyhow::{bail, Context, Result};
use clap::Args;
use psim_common::fs::Links;
use psim_common::Experiment;
use psim_scenarios::durable::{self, Progress, ShardFile};
use psim_scenarios::output::{atomic_write, OutputDir};
use std::path::{Path, PathBuf};

/// `psim merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The shards' output directories (each written with --shard I/N).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where the merged outputs go: a new or empty directory, or an earlier
    /// merge of the same experiment (a rerun copies only what is missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write runs.parquet and traces.parquet beside the CSV files, as
    /// `psim run --parquet` does.
    #[arg(long)]
    pub parquet: bool,
}

/// The experiment of `dir/config.toml` and the file's text (a Python
/// objective's reference is kept in the text, copied as it is to the
/// merged directory; merging runs no objective).
fn read_config_text(dir: &Path) -> Result<(Experiment, String)> {
    let path = dir.join("config.toml");
    let text = psim_common::fs::read_regular(&path, Links::Refuse).with_context(|| {
        format!(
            "`{}` is not a psim output directory (cannot read its config.toml)",
            dir.display()
        )
    })?;
    let e = durable::read_experiment(&text)
        .with_context(|| format!("invalid config `{}`", path.display()))?;
    Ok((e, text))
}

fn read_config(dir: &Path) -> Result<Experiment> {
    Ok(read_config_text(dir)?.0)
}

/// Checks the shards, copies their point files into OUT and writes the outputs.
pub fn merge(a: MergeArgs) -> Result<()> {
    let report = merge_dirs(&a)?;
    crate::cmd::print(format_args!("{report}"))
}

/// Merges the shard directories `a.dirs` into `a.out` and returns the
/// report (the Python package's `processes=N` calls this too).
pub fn merge_dirs(a: &MergeArgs) -> Result<String> {
    let first = &a.dirs[0];
    let (e, config_text) = read_config_text(first)?;
    e.validate()
        .with_context(|| format!("invalid config `{}`", first.join("config.toml").display()))?;
    if super::experiment::records_pushes(&e) {
        bail!(
            "`{}` records pushes (`record_pushes`): push logs are not kept in point files, so merged shards cannot hold pushes.csv; record pushes in an unsharded run",
            first.join("config.toml").display()
        );
    }
    let study = psim_scenarios::catalogue::study_of(&e);
    let plan = study.plan(&e)?;
    let total = plan.points.len();
    let mut shards: Vec<(PathBuf, ShardFile)> = Vec::new();
    for dir in &a.dirs {
        let other = read_config(dir)?;
        if other != e {
            bail!(
                "`{}` and `{}` are not shards of one experiment (their config.toml differ); merge the shards of one experiment only",
                first.display(),
                dir.display()
            );
        }
        // Nothing in a shard is read through a link or from a FIFO.
        psim_scenarios::output::check_regular_files(dir)?;
        let path = dir.join("shard.json");
        if std::fs::symlink_metadata(&path).is_err() {
            bail!(
                "`{}` has no shard.json: it was not written with --shard I/N",
                dir.display()
            );
        }
        let text = psim_common::fs::read_regular(&path, Links::Refuse)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        let shard: ShardFile =
            serde_json::from_str(&text).with_context(|| format!("invalid `{}`", path.display()))?;
        check_shard_file(&path, &shard, &plan)?;
        shards.push((dir.clone(), shard));
    }
    let count = shards[0].1.shard.count;
    if let Some((dir, s)) = shards.iter().find(|(_, s)| s.shard.count != count) {
        bail!(
            "`{}` is shard {} but `{}` is shard {}: the shards of one merge must split the sweep the same way (same N)",
            dir.display(),
            s.shard,
            shards[0].0.display(),
            shards[0].1.shard
        );
    }
    let mut seen: Vec<Option<&Path>> = vec![None; count];
    for (dir, s) in &shards {
        if let Some(prev) = seen[s.shard.index] {
            bail!(
                "`{}` and `{}` are both shard {}: overlapping shares; give each shard once",
                prev.display(),
                dir.display(),
                s.shard
            );
        }
        seen[s.shard.index] = Some(dir);
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| seen[*i].is_none())
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "shard{} {} {} missing: give every shard's directory (run the missing ones with --shard I/{count})",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", "),
            if missing.len() > 1 { "are" } else { "is" }
        );
    }
    for (dir, s) in &shards {
        let done = durable::done_points(dir);
        let todo: Vec<&usize> = s.share.iter().filter(|p| !done.contains(p)).collect();
        if !todo.is_empty() {
            bail!(
                "`{}` (shard {}) is unfinished: {} of its {} points are missing; rerun it with the same --shard and --out (it continues), then merge",
                dir.display(),
                s.shard,
                todo.len(),
                s.share.len()
            );
        }
    }
    // OUT: new, or an earlier merge of this experiment (idempotent); never
    // a shard (its points and shard.json would be mixed with the merge's).
    if a.out.join("shard.json").exists() {
        bail!(
            "`{}` is a shard's directory (it has shard.json); merge into a new or empty directory",
            a.out.display()
        );
    }
    let out = if a.out.join("config.toml").is_file() {
        if read_config(&a.out)? != e {
            bail!(
                "`{}` holds another experiment; choose another --out",
                a.out.display()
            );
        }
        OutputDir::existing(&a.out)?
    } else {
        let out = OutputDir::create(Some(&a.out), &e.name, false).map_err(|err| match err {
            psim_scenarios::output::OutputError::NotEmpty(p) => anyhow::anyhow!(
                "output directory `{}` exists and is not empty (nor an earlier merge of this experiment); choose a new or empty --out",
                p.display()
            ),
            other => other.into(),
        })?;
        out.write("config.toml", &config_text)?;
        out
    };
    psim_scenarios::output::check_regular_files(out.path())?;
    let points = out.points_dir()?;
    let have = durable::done_points(out.path());
    for (dir, s) in &shards {
        for p in s.share.iter().filter(|p| !have.contains(p)) {
            // The rows first, then the marker, each atomically.
            for name in [format!("{p}.runs.csv"), format!("{p}.json")] {
                let from = dir.join("points").join(&name);
                let mut src = psim_common::fs::open_regular(&from, Links::Refuse)
                    .with_context(|| format!("cannot read `{}`", from.display()))?;
                atomic_write(&points.join(&name), |w| {
                    std::io::copy(&mut src, w).map(|_| ())
                })?;
            }
        }
    }
    let wall_seconds = shards.iter().map(|(_, s)| s.wall_seconds).sum();
    let threads = shards.iter().map(|(_, s)| s.threads).max().unwrap_or(0);
    match psim_scenarios::executor::finish(
        study,
        &e,
        &plan,
        &out,
        (wall_seconds, threads),
        Default::default(),
    )? {
        Progress::Complete(report) => {
            if a.parquet {
                psim_scenarios::parquet::write_tables(&out)?;
            }
            Ok(format!(
                "{report}\nmerged {count} shards ({total} points) into {}\n",
                out.path().display()
            ))
        }
        Progress::Partial { done, total, .. } => bail!(
            "after merging, {} of {total} points are still missing",
            total - done
        ),
    }
}

/// Checks a shard's `shard.json` against the experiment of `total` points:
/// 1 ≤ count ≤ total, index < count, `points` = total, and a share that is
/// exactly the points P < total with P mod count = index. Names the file.
fn check_shard_file(
    path: &Path,
    s: &ShardFile,
    plan: &psim_scenarios::executor::Plan,
) -> Result<()> {
    let (index, count) = (s.shard.index, s.shard.count);
    let p = path.display();
    let total = plan.points.len();
    let chains = plan.chains().max(1);
    if count == 0 || count > chains {
        bail!("invalid `{p}`: shard count {count} must be in [1, {chains}] (the experiment's independent chains of points)");
    }
    if index >= count {
        bail!("invalid `{p}`: shard index {index} must be below its count {count}");
    }
    if s.points != total {
        bail!(
            "invalid `{p}`: it records {} points but the experiment has {total}",
            s.points
        );
    }
    let expected = plan.share(s.shard);
    if s.share != expected {
        bail!(
            "invalid `{p}`: its share is not the points of shard {index}/{count} (P < {total} whose chain starts at a point with P mod {count} = {index})"
        );
    }
    if !(s.wall_seconds.is_finite() && s.wall_seconds >= 0.0) {
        bail!(
            "invalid `{p}`: wall_seconds = {} must be finite and ≥ 0",
            s.wall_seconds
        );
    }
    Ok(())
}
