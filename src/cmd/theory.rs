//! `psim theory`: the papers' closed-form predictions for given parameters.

use anyhow::{bail, ensure, Result};
use clap::Args;
use psim_common::num::show;
use psim_common::theory::{
    delay_bound_ode, delay_bound_sde, max_stable_delay, ode_pca_error, ou_stationary_error,
    ou_stationary_variance, pca_stiffest_curvature, phase_one_time, phase_three_min_epsilon,
    phase_three_time, phase_two_time, saddle_escape_steps, saddle_escape_steps_ou, PhaseInputs,
};
use psim_common::Delay;
use std::fmt::Write as _;

/// `psim theory`.
#[derive(Args, Debug)]
pub struct TheoryArgs {
    /// Eigenvalues of a diagonal Σ (Gaussian data), largest first.
    #[arg(long, value_delimiter = ',', default_value = "4,3,2,1")]
    spectrum: Vec<f64>,
    /// Momentum μ in [0, 1).
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Step size η > 0.
    #[arg(long = "step-size", default_value_t = 5e-4)]
    step_size: f64,
    /// Neighbourhood radius δ of the phase lengths (default √η).
    #[arg(long)]
    delta: Option<f64>,
    /// Target error ε of phase III.
    #[arg(long, default_value_t = 0.05)]
    epsilon: f64,
    /// Failure probability ν of phase I.
    #[arg(long, default_value_t = 0.5)]
    nu: f64,
    /// Exponent γ of the delay conditions.
    #[arg(long, default_value_t = 0.25)]
    gamma: f64,
    /// Bound C_d on ‖X‖ of the SDE delay condition (default Σλ).
    #[arg(long = "c-d")]
    c_d: Option<f64>,
    /// A delay model to check against the conditions (bounded: its maximum; random: E[τ]).
    #[arg(long)]
    delay: Option<String>,
    /// γ₁ of a strict saddle for the escape law of 002.
    #[arg(long, default_value_t = 1.0)]
    gamma1: f64,
    #[command(flatten)]
    time: TimeBoundArgs,
}

/// The optimal time bound's inputs (Tyurin & Richtárik 2023): with
/// `--workers` or `--config`, `psim theory` prints the bound instead of the
/// streaming-PCA predictions.
#[derive(Args, Debug, Default)]
pub struct TimeBoundArgs {
    /// Time bound: the number of workers n (prints the optimal time bound instead of the PCA predictions).
    #[arg(long)]
    workers: Option<usize>,
    /// Time bound: each worker's compute time, any `--worker-compute` value (e.g. `profile:0+1*i^0.5`; default: all equal).
    #[arg(long = "worker-compute")]
    worker_compute: Option<String>,
    /// Time bound: seconds per gradient, a delay model (its mean is used; default 1).
    #[arg(long = "compute-time")]
    compute_time: Option<String>,
    /// Time bound: seconds a push travels, a delay model (its mean is used; default 0).
    #[arg(long = "network-delay")]
    network_delay: Option<String>,
    /// Time bound: a config.toml (an experiment's) whose cluster and objective give n, τ_i, L, Δ, σ² (flags override).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Time bound: a built-in objective whose L, Δ, σ² are used: `quadratic` (the default quadratic of `reproduce heterogeneous`).
    #[arg(long)]
    objective: Option<String>,
    /// Time bound: L, the smoothness constant.
    #[arg(long)]
    smoothness: Option<f64>,
    /// Time bound: Δ = f(x⁰) − f*.
    #[arg(long)]
    gap: Option<f64>,
    /// Time bound: σ², the variance of a stochastic gradient.
    #[arg(long)]
    variance: Option<f64>,
    /// Time bound: ε, the target E‖∇f‖² (ε-stationarity).
    #[arg(long)]
    stationarity: Option<f64>,
}

impl TimeBoundArgs {
    /// Whether the time bound was asked for.
    fn asked(&self) -> bool {
        self.workers.is_some() || self.config.is_some()
    }
}

/// Six significant digits, without float noise.
fn sig(x: f64) -> String {
    if x != 0.0 && !(1e-3..1e7).contains(&x.abs()) {
        format!("{x:.5e}")
    } else {
        let t = format!("{x:.6}");
        let t = t.trim_end_matches('0').trim_end_matches('.');
        t.to_string()
    }
}

/// The time bound's section: τ_i from the cluster (means), L, Δ, σ² from
/// the objective or the flags; every input checked and named.
fn render_time_bound(a: &TimeBoundArgs) -> Result<String> {
    use psim_common::theory::{time_bound, TimeBoundInputs};
    use psim_common::{ClusterConfig, ObjectiveConfig, WorkerCompute};
    let mut cluster = ClusterConfig {
        compute_time: Delay::Constant(1.0),
        ..ClusterConfig::default()
    };
    let mut objective: Option<(String, ObjectiveConfig)> = None;
    if let Some(path) = &a.config {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("invalid `--config`: cannot read {}: {e}", path.display())
        })?;
        let e = psim_scenarios::durable::read_experiment(&text).map_err(|e| {
            anyhow::anyhow!(
                "invalid `--config`: {} is not a psim config.toml: {e}",
                path.display()
            )
        })?;
        match e.base.cluster() {
            Some(c) => cluster = c.clone(),
            None => bail!("invalid `--config`: {} runs the injected engine, which has no workers; the time bound needs a cluster (virtual-time, threads or tasks)", path.display()),
        }
        objective = Some((format!("{}", path.display()), e.base.objective.clone()));
    }
    if let Some(n) = a.workers {
        cluster.workers = n;
    }
    if let Some(t) = &a.compute_time {
        cluster.compute_time = t
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid `--compute-time`: {e}"))?;
    }
    if let Some(t) = &a.network_delay {
        cluster.network_delay = t
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid `--network-delay`: {e}"))?;
    }
    if let Some(w) = &a.worker_compute {
        cluster.worker_compute = Some(
            w.parse::<WorkerCompute>()
                .map_err(|e| anyhow::anyhow!("invalid `--worker-compute`: {e}"))?,
        );
        // Per-worker models and replayed times replace compute_time, which
        // must then be left unset (as a run requires).
        if matches!(
            cluster.worker_compute,
            Some(WorkerCompute::Models(_) | WorkerCompute::Replay { .. })
        ) && a.compute_time.is_none()
        {
            cluster.compute_time = ClusterConfig::default().compute_time;
        }
    }
    if let Some(o) = &a.objective {
        match o.as_str() {
            "quadratic" => {
                objective = Some((
                    "`--objective quadratic`".into(),
                    ObjectiveConfig::Quadratic(Default::default()),
                ))
            }
            other => bail!("invalid `--objective` = {other}: must be `quadratic` (the one built-in objective with known L, Δ, σ²); give `--smoothness`, `--gap`, `--variance` otherwise"),
        }
    }
    cluster
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid time-bound cluster (`--workers`, `--worker-compute`, `--compute-time`, `--network-delay`): {e}"))?;
    let taus = cluster.mean_worker_times(0, 0).ok_or_else(|| {
        anyhow::anyhow!("the workers' mean compute times are not finite (a Pareto with shape ≤ 1?) or are recorded (`replay:`): the bound needs finite τ_i; give models with finite means")
    })?;
    // L, Δ, σ² from the objective, flags overriding.
    let (mut l, mut gap, mut var, mut source) = (None, None, None, "the flags".to_string());
    if let Some((from, o)) = &objective {
        match o {
            ObjectiveConfig::Quadratic(q) => {
                q.validate()?;
                l = Some(q.smoothness);
                gap = Some(q.gap());
                var = Some(q.noise_variance);
                source = format!("the quadratic of {from} (d = {}, condition {}, start {})", q.dim, show(q.condition), show(q.start));
            }
            _ if a.smoothness.is_some() && a.gap.is_some() && a.variance.is_some() => {}
            _ => bail!("the objective of {from} has no known L, Δ, σ² (only `quadratic` has): give `--smoothness`, `--gap` and `--variance`"),
        }
    }
    let l = a.smoothness.or(l).ok_or_else(|| anyhow::anyhow!("missing `--smoothness` (L), or `--objective quadratic` / a `--config` with a quadratic objective"))?;
    let gap = a
        .gap
        .or(gap)
        .ok_or_else(|| anyhow::anyhow!("missing `--gap` (Δ = f(x⁰) − f*)"))?;
    let var = a
        .variance
        .or(var)
        .ok_or_else(|| anyhow::anyhow!("missing `--variance` (σ²)"))?;
    let eps = a
        .stationarity
        .ok_or_else(|| anyhow::anyhow!("missing `--stationarity` (ε, the target E‖∇f‖²)"))?;
    let inputs = TimeBoundInputs {
        smoothness: l,
        gap,
        variance: var,
        epsilon: eps,
    };
    let b = time_bound(&taus, &inputs).map_err(|e| {
        anyhow::anyhow!("invalid time-bound input (`--smoothness`, `--gap`, `--variance`, `--stationarity`): {e}")
    })?;
    let mut sorted = taus.clone();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let mut o = String::new();
    let _ = writeln!(o, "optimal time to an ε-stationary point (E‖∇f‖² ≤ ε), fixed computation model (Tyurin & Richtárik 2023; T_R of Ringmaster ASGD, Maranjyan et al. 2025), up to a constant:");
    let _ = writeln!(
        o,
        "  T* ≍ min_m (1/m Σ_{{i≤m}} 1/τ_i)⁻¹ (LΔ/ε + σ²LΔ/(mε²)),  τ₁ ≤ … ≤ τ_n"
    );
    let _ = writeln!(
        o,
        "  L = {}, Δ = {}, σ² = {}, ε = {}  (from {source})",
        sig(l),
        sig(gap),
        sig(var),
        sig(eps)
    );
    let random = cluster.compute_time.upper_bound().is_none()
        || !matches!(cluster.network_delay, Delay::Constant(_))
        || !matches!(
            cluster.compute_time,
            Delay::Constant(_) | Delay::Uniform { .. }
        )
        || matches!(&cluster.worker_compute, Some(WorkerCompute::Profile(p)) if p.noise.is_some() || p.power.is_some() || p.outage.is_some() || p.upload.is_some() || p.download.is_some())
        || matches!(&cluster.worker_compute, Some(WorkerCompute::Draw(_)));
    let _ = writeln!(
        o,
        "  τ_i: mean seconds from fetch to arrival of worker i (compute-time mean × the per-worker factors{}, plus the mean network delay){}",
        match &cluster.worker_compute {
            Some(WorkerCompute::Profile(_)) => " and the profile's noise mean, ÷ its long-run power and up-time, plus its mean upload and download",
            Some(WorkerCompute::Draw(_)) => "; `draw:` factors of seed 0, run 0",
            _ => "",
        },
        if random { "; the times are random, so the means stand in for the fixed τ_i of the theorem" } else { "" }
    );
    let _ = writeln!(
        o,
        "  n = {n} workers: τ₁ = {}, median τ = {}, τ_n = {}",
        sig(sorted[0]),
        sig(sorted[n / 2]),
        sig(sorted[n - 1])
    );
    let _ = writeln!(o, "  T* = {} s, at m* = {} workers worth using (the fastest m*); with all n: T(n) = {} s ({:.2}× T*)", sig(b.seconds), b.workers, sig(b.with_all), b.with_all / b.seconds);
    let r = (var / eps).ceil().max(1.0);
    let beyond = if r > psim_common::config::MAX_GRADIENTS_PER_UPDATE as f64 {
        " (beyond the 2²⁰ gradients per update psim's rennala:B and buffered:K take)"
    } else {
        ""
    };
    let _ = writeln!(o, "  the papers' parameters for this ε: Rennala batch B = Ringmaster threshold R = max(1, ⌈σ²/ε⌉) = {}{beyond}", psim_common::num::show(r));
    Ok(o)
}

/// Checks every numeric flag: finite, and in its range; the error names
/// the flag and the range.
fn validate(a: &TheoryArgs) -> Result<()> {
    let lam = &a.spectrum;
    ensure!(
        lam.len() >= 2
            && lam.windows(2).all(|w| w[0] >= w[1])
            && lam[0] > lam[1]
            && lam.iter().all(|l| l.is_finite() && *l > 0.0),
        "invalid `--spectrum` = {lam:?}: must be ≥ 2 finite positive values, sorted, with λ₁ > λ₂"
    );
    let check = |flag: &str, v: f64, ok: bool, range: &str| -> Result<()> {
        ensure!(
            v.is_finite() && ok,
            "invalid `--{flag}` = {v}: must be {range}"
        );
        Ok(())
    };
    check(
        "momentum",
        a.momentum,
        (0.0..1.0).contains(&a.momentum),
        "in [0, 1)",
    )?;
    check(
        "step-size",
        a.step_size,
        a.step_size > 0.0,
        "finite and > 0",
    )?;
    if let Some(d) = a.delta {
        check(
            "delta",
            d,
            d > 0.0 && d < 1.0,
            "in (0, 1) (a radius on the unit sphere)",
        )?;
    }
    check(
        "epsilon",
        a.epsilon,
        a.epsilon > 0.0 && a.epsilon < 1.0,
        "in (0, 1) (the PCA error lies in [0, 1])",
    )?;
    check("nu", a.nu, a.nu > 0.0 && a.nu < 1.0, "in (0, 1)")?;
    check(
        "gamma",
        a.gamma,
        (0.0..=0.5).contains(&a.gamma),
        "in [0, 0.5]",
    )?;
    if let Some(c) = a.c_d {
        check("c-d", c, c > 0.0, "finite and > 0")?;
    }
    check("gamma1", a.gamma1, a.gamma1 > 0.0, "finite and > 0")?;
    // Magnitudes whose squares and products stay finite.
    ensure!(
        lam.iter().all(|l| (1e-100..=1e100).contains(l)),
        "invalid `--spectrum` = {}: every eigenvalue must be in [1e-100, 1e100] (α² = 3λ² and the sums of products must stay finite)",
        list(lam)
    );
    ensure!(
        lam.len() <= 100_000,
        "invalid `--spectrum`: {} eigenvalues, at most 100000",
        lam.len()
    );
    // Heavy ball on the stiffest direction (curvature 2λ₁) is stable only
    // for η·2λ₁ < 2(1+μ); beyond it every prediction below is meaningless.
    let limit = 2.0 * (1.0 + a.momentum) / pca_stiffest_curvature(lam);
    ensure!(
        a.step_size < limit,
        "invalid `--step-size` = {}: must be below the stability limit 2(1+μ)/(2λ₁) = {} of heavy ball at `--momentum` = {} on `--spectrum` λ₁ = {} (the predictions describe a stable run)",
        show(a.step_size),
        show(limit),
        show(a.momentum),
        show(lam[0])
    );
    if let Some(text) = &a.delay {
        let d: Delay = text
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid `--delay`: {e}"))?;
        d.validate_steps("delay")
            .map_err(|e| anyhow::anyhow!("invalid `--delay`: {e}"))?;
    }
    Ok(())
}

/// A list of numbers as psim prints them.
fn list(v: &[f64]) -> String {
    let shown: Vec<String> = v.iter().take(8).map(|x| show(*x)).collect();
    format!(
        "[{}{}]",
        shown.join(", "),
        if v.len() > 8 { ", …" } else { "" }
    )
}

/// Refuses a derived quantity that is not a finite number in its range,
/// naming it and the flags it comes from.
fn derived(name: &str, v: f64, ok: bool, range: &str, from: &str) -> Result<()> {
    if !(v.is_finite() && ok) {
        bail!("{name} = {} is not {range} for these inputs ({from}); the prediction would be meaningless: change {from}", show(v));
    }
    Ok(())
}

/// Prints every prediction.
pub fn theory(a: TheoryArgs) -> Result<()> {
    if a.time.asked() {
        let text = render_time_bound(&a.time)?;
        return crate::cmd::print(format_args!("{text}"));
    }
    let t = &a.time;
    for (flag, set) in [
        ("--worker-compute", t.worker_compute.is_some()),
        ("--compute-time", t.compute_time.is_some()),
        ("--network-delay", t.network_delay.is_some()),
        ("--objective", t.objective.is_some()),
        ("--smoothness", t.smoothness.is_some()),
        ("--gap", t.gap.is_some()),
        ("--variance", t.variance.is_some()),
        ("--stationarity", t.stationarity.is_some()),
    ] {
        ensure!(!set, "`{flag}` is an input of the optimal time bound, printed with `--workers N` or `--config FILE`; without them it would be ignored, so it is refused");
    }
    validate(&a)?;
    let text = render(&a)?;
    crate::cmd::print(format_args!("{text}"))
}

/// Every prediction as text; nothing is printed before every input and
/// every derived quantity has been checked.
fn render(a: &TheoryArgs) -> Result<String> {
    let lam = &a.spectrum;
    let mut o = String::new();
    macro_rules! out {
        ($($t:tt)*) => {
            let _ = writeln!(o, $($t)*);
        };
    }
    let (mu, eta) = (a.momentum, a.step_size);
    let alpha = |i: usize, j: usize| {
        if i == j {
            3.0 * lam[i] * lam[i]
        } else {
            lam[i] * lam[j]
        }
    };
    let delta = a.delta.unwrap_or(eta.sqrt());
    let p = PhaseInputs {
        lambda1: lam[0],
        lambda2: lam[1],
        alpha12_sq: alpha(0, 1),
        phi: (0..lam.len()).map(|j| alpha(0, j)).sum(),
        momentum: mu,
        step_size: eta,
        delta,
    };
    let t1 = phase_one_time(&p, a.nu);
    let t2 = phase_two_time(&p);
    let floor = ou_stationary_error(eta, mu, lam, |i| alpha(i, 0));
    let from = "`--spectrum`, `--momentum`, `--step-size`, `--delta`";
    derived(
        "φ = Σ_j α²_1j",
        p.phi,
        p.phi > 0.0,
        "finite and > 0",
        "`--spectrum`",
    )?;
    derived(
        "T₁",
        t1,
        t1 >= 0.0,
        "finite and ≥ 0",
        "`--spectrum`, `--momentum`, `--step-size`, `--nu`",
    )?;
    derived(
        "T₂",
        t2,
        t2 >= 0.0,
        "finite and ≥ 0 (it needs δ² ≤ 1/2; δ defaults to √η)",
        from,
    )?;
    derived(
        "the OU stationary error",
        floor,
        floor >= 0.0,
        "finite and ≥ 0",
        from,
    )?;
    let c_d = a.c_d.unwrap_or(lam.iter().sum());
    let ode_bound = delay_bound_ode(mu, lam[0], eta, a.gamma);
    let sde_bound = delay_bound_sde(mu, lam[0], c_d, eta, a.gamma);
    derived(
        "the ODE delay bound",
        ode_bound,
        ode_bound >= 0.0,
        "finite and ≥ 0",
        "`--spectrum`, `--momentum`, `--step-size`, `--gamma`",
    )?;
    derived(
        "the SDE delay bound",
        sde_bound,
        sde_bound >= 0.0,
        "finite and ≥ 0",
        "`--spectrum`, `--momentum`, `--step-size`, `--gamma`, `--c-d`",
    )?;
    let escape = saddle_escape_steps(eta, a.gamma1);
    let escape_ou = saddle_escape_steps_ou(eta, a.gamma1, 1.0, 1.0, mu);
    derived(
        "the saddle escape time",
        escape,
        escape >= 0.0,
        "finite and ≥ 0",
        "`--step-size`, `--gamma1`",
    )?;
    derived(
        "the OU saddle escape time",
        escape_ou,
        escape_ou >= 0.0,
        "finite and ≥ 0",
        "`--step-size`, `--gamma1`, `--momentum`",
    )?;
    out!("streaming PCA, Σ = diag{} (Gaussian data: α²_ij = λ_iλ_j, α²_ii = 3λ_i²), μ = {}, η = {}, δ = {delta:.4}\n", list(lam), show(mu), show(eta));
    out!("ODE of 001 Thm 3.3: h_i(t) ∝ h_i(0)·exp(λ_i t/(1−μ)), t = kη; from h = (δ, √(1−δ²), 0, …):");
    let mut h0 = vec![0.0; lam.len()];
    h0[0] = delta;
    h0[1] = (1.0 - delta * delta).sqrt();
    for k in [0u64, 100, 1000, 10_000, 100_000] {
        out!(
            "  step {k:>7}: error {:.6}",
            ode_pca_error(&h0, lam, mu, k as f64 * eta)
        );
    }
    out!("\nOU stationary variance per coordinate (001 Thm 3.5), η α²_i1/(2(1−μ)(λ₁−λ_i)):");
    for i in 1..lam.len() {
        out!(
            "  h_{}: {:.6e}",
            i + 1,
            ou_stationary_variance(eta, mu, lam[0], lam[i], alpha(i, 0))
        );
    }
    let floor = ou_stationary_error(eta, mu, lam, |i| alpha(i, 0));
    // The error of streaming PCA is at most 1: a floor beyond it means η is
    // outside the small-step regime the OU approximation needs.
    out!(
        "  stationary error (sum): {floor:.6e}{}",
        if floor >= 1.0 {
            " — at least 1, the largest error there is: this η is outside the small-step regime of the OU approximation (it needs ηα²/((1−μ)(λ₁−λ_i)) ≪ 1), so the floor says nothing here"
        } else {
            ""
        }
    );
    out!("\nphase lengths (t and steps = t/η):");
    out!(
        "  T₁ escape the saddle (001 Prop 3.10, ν = {}): t = {t1:.4}, {} steps",
        a.nu,
        Steps(t1 / eta)
    );
    out!(
        "  T₂ traverse (ODE, 001 eq. B.9):              t = {t2:.4}, {} steps",
        Steps(t2 / eta)
    );
    let eps_min = phase_three_min_epsilon(&p);
    match phase_three_time(&p, a.epsilon) {
        Some(t3) => {
            out!(
                "  T₃ converge to ε = {} (001 Prop 3.6):        t = {t3:.4}, {} steps",
                a.epsilon,
                Steps(t3 / eta)
            );
        }
        None => {
            out!(
                "  T₃ (001 Prop 3.6): not defined at ε = {}: the bound needs (1−μ)(λ₁−λ₂)ε > 4ηφ",
                a.epsilon
            );
        }
    }
    out!(
        "      feasibility limit of Prop 3.6's bound: T₃ is defined for ε > 4ηφ/((1−μ)(λ₁−λ₂)) = {eps_min:.4}{}",
        if eps_min >= 1.0 {
            " (≥ 1, the largest error: the bound says nothing at this η; it needs η ≍ ε(λ₁−λ₂)/φ)"
        } else {
            ""
        }
    );
    out!(
        "      this is a condition of the bound, not of the dynamics: the OU floor (stationary error) is {floor:.4e}"
    );
    if phase_three_time(&p, a.epsilon).is_none() {
        // The largest η for which ε is feasible is (1−μ)(λ₁−λ₂)ε/(4φ); at half of it:
        let eta3 = (1.0 - mu) * (lam[0] - lam[1]) * a.epsilon / (8.0 * p.phi);
        // Phase III starts where phase II ends, at error δ²; with δ = √η
        // that is already below ε, so the example starts at δ² = 0.1 (E3's
        // phase boundary) unless --delta is given.
        let delta3 = a.delta.unwrap_or(0.1f64.sqrt());
        let p3 = PhaseInputs {
            step_size: eta3,
            delta: delta3,
            ..p
        };
        if let Some(t3) = phase_three_time(&p3, a.epsilon) {
            out!(
                "      where it is defined, e.g. η = {eta3:.3e} (half the largest η for this ε), from δ² = {:.3}: T₃ = {t3:.4}, {} steps",
                delta3 * delta3,
                Steps(t3 / eta3)
            );
        }
    }
    out!(
        "\ndelay conditions of 001 (γ = {}, C_d = {c_d}; up to constants):",
        a.gamma
    );
    out!("  ODE regime (Thm 3.3; E[τ] for random delays, eq. 4.1): τ ≲ (1−μ)²/(λ₁η^(1−γ))      = {ode_bound:.2}");
    out!("  SDE regime (Lemma 3.4, Thm 3.5):                       τ ≲ (1−μ)²/((λ₁+C_d)η^(1/2−γ)) = {sde_bound:.2}");
    let c = pca_stiffest_curvature(lam);
    out!("  largest stable constant delay of the linearised delayed heavy ball (curvature 2λ₁ = {c}): {}", max_stable_delay(mu, eta * c).map_or("unstable at τ = 0".into(), delay_text));
    if let Some(text) = &a.delay {
        let d: Delay = text.parse()?; // validated above
        let (what, v) = match d.upper_bound() {
            Some(b) => ("max τ", b),
            None => ("E[τ]", d.mean().unwrap_or(f64::INFINITY)),
        };
        out!(
            "  delay `{text}`: {what} = {v:.2} → ODE condition {}, SDE condition {}",
            if v <= ode_bound { "met" } else { "violated" },
            if v <= sde_bound { "met" } else { "violated" }
        );
    }
    out!("\nsaddle escape (002 Thm 3), γ₁ = {}: (1/(2γ₁))·η⁻¹·log η⁻¹ = {} steps; finite-η OU estimate (unit noise, radius 1, μ): {} steps", a.gamma1, Steps(escape), Steps(escape_ou));
    Ok(o)
}

/// A stable delay as printed: exact up to 2⁵³ (the largest staleness psim
/// runs), beyond it only that it is that large (the bisection's τ* is then
/// below the resolution of f64 and its integer part meaningless).
fn delay_text(d: u64) -> String {
    if d as f64 > psim_common::delay::MAX_STALENESS {
        format!(
            "≥ {} (beyond any delay psim runs)",
            psim_common::num::show(psim_common::delay::MAX_STALENESS)
        )
    } else {
        d.to_string()
    }
}

/// A step count as printed: whole steps while they are exact in f64, the
/// shortest round-trip form beyond (never hundreds of digits).
struct Steps(f64);

impl std::fmt::Display for Steps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_finite() && self.0.abs() < 1e15 {
            write!(f, "{:.0}", self.0)
        } else {
            f.write_str(&psim_common::num::show(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(workers: usize, wc: &str) -> TimeBoundArgs {
        TimeBoundArgs {
            workers: Some(workers),
            worker_compute: Some(wc.into()),
            smoothness: Some(1.0),
            gap: Some(1.0),
            variance: Some(1.0),
            stationarity: Some(0.1),
            ..TimeBoundArgs::default()
        }
    }

    #[test]
    fn the_time_bound_is_printed_from_the_workers_means() {
        // τ = (1, 2, 3, 100), L = Δ = σ² = 1, ε = 0.1: m* = 3, T* = 780/11
        // (psim_common::theory::time_bound's hand computation).
        let out = render_time_bound(&args(4, "models:const:1;const:2;const:3;const:100")).unwrap();
        assert!(out.contains("T* = 70.909091 s, at m* = 3 workers"), "{out}");
        // The same through a profile: τ_i = 0 + 1·i^1 for i = 1, 2, 3 and
        // the quadratic's constants.
        let mut a = args(3, "profile:0+1*i^1");
        a.objective = Some("quadratic".into());
        a.smoothness = None;
        let out = render_time_bound(&a).unwrap();
        assert!(out.contains("τ₁ = 1, median τ = 2, τ_n = 3"), "{out}");
        assert!(
            !out.contains("from the flags") && out.contains("L = 1"),
            "{out}"
        );
    }

    #[test]
    fn bad_time_bound_inputs_are_refused_by_flag() {
        let mut a = args(4, "linear:1,1");
        a.stationarity = Some(0.0);
        let e = render_time_bound(&a).unwrap_err().to_string();
        assert!(e.contains("--stationarity") && e.contains("epsilon"), "{e}");
        let mut a = args(4, "linear:1,1");
        a.objective = Some("pca".into());
        let e = render_time_bound(&a).unwrap_err().to_string();
        assert!(e.contains("`--objective`"), "{e}");
        let e = render_time_bound(&args(4, "profile:1+1"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--worker-compute") && e.contains("profile:A+B*i^P"),
            "{e}"
        );
    }
}
