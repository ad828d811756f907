//! The digits MLP: data loading and its errors, the fixed split, gradients
//! against finite differences, no allocation per gradient, and learning.

use psim_common::mlp::{Dataset, DatasetError, EMBEDDED_DIGITS};
use psim_common::{MlpActivation, MlpConfig, Objective, ObjectiveConfig, PsimRng, RunConfig};
use rand::SeedableRng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;

/// Counts allocations made by the current thread.
struct Counting;
thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
}
#[global_allocator]
static GLOBAL: Counting = Counting;

fn mlp(hidden: Vec<usize>, activation: MlpActivation, batch: usize) -> psim_common::Mlp {
    psim_common::Mlp::new(&MlpConfig {
        hidden,
        batch,
        activation,
        data: None,
    })
    .unwrap()
}

#[test]
fn embedded_digits_load_and_split_fixed() {
    let d = Dataset::embedded();
    assert_eq!(d.labels.len(), 1797);
    assert_eq!(d.images.dim(), (1797, 64));
    assert!(d.images.iter().all(|x| (0.0..=1.0).contains(x)));
    let mut per_class = [0usize; 10];
    d.labels.iter().for_each(|&l| per_class[l as usize] += 1);
    assert!(
        per_class.iter().all(|&c| (170..=190).contains(&c)),
        "{per_class:?}"
    );
    let (train, test) = d.split();
    assert_eq!((train.labels.len(), test.labels.len()), (1348, 449));
    assert_eq!(test.labels[0], d.labels[3], "row 3 is the first test row");
    let m = mlp(vec![32], MlpActivation::Relu, 16);
    assert_eq!(m.dim(), 64 * 32 + 32 + 32 * 10 + 10);
    assert_eq!(m.split_sizes(), (1348, 449));
}

fn gz(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

#[test]
fn malformed_or_missing_data_is_a_clear_error() {
    let row = |label: &str| format!("{}{label}\n", "0,".repeat(64));
    let err = Dataset::from_gzip_csv(b"not gzip", "x.gz").unwrap_err();
    assert!(matches!(err, DatasetError::NotGzipCsv { .. }), "{err}");
    let err = Dataset::from_gzip_csv(&gz(&(row("1") + "1,2,3\n")), "x.gz").unwrap_err();
    assert!(err.to_string().contains("line 2: 3 fields"), "{err}");
    let err = Dataset::from_gzip_csv(&gz(&row("12")), "x.gz").unwrap_err();
    assert!(
        err.to_string().contains("field 65 = 12 out of range"),
        "{err}"
    );
    let err = Dataset::from_gzip_csv(&gz(&row("1").repeat(3)), "x.gz").unwrap_err();
    assert!(
        matches!(err, DatasetError::TooSmall { rows: 3, .. }),
        "{err}"
    );
    // Through the configuration: the field and the path are named.
    let cfg = RunConfig {
        objective: ObjectiveConfig::Mlp(MlpConfig {
            data: Some("/nonexistent/digits.csv.gz".into()),
            ..MlpConfig::default()
        }),
        ..RunConfig::default()
    };
    cfg.validate().unwrap();
    let e = psim_common::AnyObjective::build(&cfg.objective)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`objective.data`") && e.contains("/nonexistent/digits.csv.gz"),
        "{e}"
    );
    // A file with the embedded bytes loads like the embedded set.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("digits.csv.gz");
    std::fs::write(&path, EMBEDDED_DIGITS).unwrap();
    assert_eq!(
        Dataset::load(path.to_str().unwrap()).unwrap().labels.len(),
        1797
    );
}

#[test]
fn bad_shapes_name_their_field() {
    for (cfg, field) in [
        (
            MlpConfig {
                hidden: vec![],
                ..MlpConfig::default()
            },
            "objective.hidden",
        ),
        (
            MlpConfig {
                hidden: vec![8, 8, 8],
                ..MlpConfig::default()
            },
            "objective.hidden",
        ),
        (
            MlpConfig {
                hidden: vec![0],
                ..MlpConfig::default()
            },
            "objective.hidden[0]",
        ),
        (
            MlpConfig {
                batch: 0,
                ..MlpConfig::default()
            },
            "objective.batch",
        ),
        (
            MlpConfig {
                batch: 10_000,
                ..MlpConfig::default()
            },
            "objective.batch",
        ),
    ] {
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains(&format!("`{field}`")), "{field}: {e}");
    }
}

#[test]
fn gradient_matches_finite_differences() {
    // Central differences of the same mini-batch's loss: error O(h²) ≈ 1e-10
    // for smooth (tanh) layers; 1e-6 relative leaves room for rounding.
    for hidden in [vec![12], vec![10, 7]] {
        let m = mlp(hidden.clone(), MlpActivation::Tanh, 5);
        let mut x = vec![0.0; m.dim()];
        m.initial_point(&mut PsimRng::seed_from_u64(1), &mut x);
        x.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v += 0.01 * ((i % 7) as f64 - 3.0));
        let mut g = vec![0.0; m.dim()];
        m.gradient(&x, &mut PsimRng::seed_from_u64(9), &mut g);
        let h = 1e-5;
        for i in (0..m.dim()).step_by(m.dim() / 40 + 1).chain([m.dim() - 1]) {
            let mut xp = x.clone();
            xp[i] += h;
            let mut xm = x.clone();
            xm[i] -= h;
            let fd = (m.batch_loss(&xp, &mut PsimRng::seed_from_u64(9))
                - m.batch_loss(&xm, &mut PsimRng::seed_from_u64(9)))
                / (2.0 * h);
            assert!(
                (fd - g[i]).abs() <= 1e-6 * (1.0 + fd.abs()),
                "{hidden:?} coordinate {i}: analytic {} vs numeric {fd}",
                g[i]
            );
        }
    }
}

#[test]
fn gradient_does_not_allocate_after_warm_up() {
    for act in [MlpActivation::Relu, MlpActivation::Tanh] {
        let m = mlp(vec![32, 16], act, 16);
        let mut x = vec![0.0; m.dim()];
        let mut rng = PsimRng::seed_from_u64(3);
        m.initial_point(&mut rng, &mut x);
        let mut g = vec![0.0; m.dim()];
        m.gradient(&x, &mut rng, &mut g); // grows the thread's scratch
        let before = ALLOCS.with(|a| a.get());
        for _ in 0..50 {
            m.gradient(&x, &mut rng, &mut g);
        }
        assert_eq!(ALLOCS.with(|a| a.get()), before, "{act:?}");
    }
}

#[test]
fn sgd_learns_the_digits() {
    // Chance is 10% accuracy; a few hundred SGD steps on batches of 16 get
    // a 64-32-10 network well past 80% (a linear model reaches ~95%).
    let m = mlp(vec![32], MlpActivation::Relu, 16);
    let mut x = vec![0.0; m.dim()];
    let mut rng = PsimRng::seed_from_u64(5);
    m.initial_point(&mut rng, &mut x);
    let start = m.accuracy(&x);
    let mut g = vec![0.0; m.dim()];
    for _ in 0..600 {
        m.gradient(&x, &mut rng, &mut g);
        x.iter_mut().zip(&g).for_each(|(v, d)| *v -= 0.1 * d);
    }
    let acc = m.accuracy(&x);
    assert!(start < 0.3, "untrained accuracy {start}");
    assert!(acc > 0.8, "trained accuracy {acc}");
    assert!((m.error(&x) - (1.0 - acc)).abs() < 1e-12);
    assert!(m.test_loss(&x) < 1.0);
}
