//! A small multi-layer perceptron on the 8×8 handwritten digits, the
//! neural-network objective of experiment E2 (001 §5.2 used a ResNet on
//! CIFAR-100; this is its laptop-sized stand-in on real data).
//!
//! The network is 64 inputs → one or two hidden layers (ReLU or tanh) → 10
//! logits, trained with softmax cross-entropy on mini-batches drawn with
//! replacement from the training set. Its parameters are one flat vector:
//! for every layer, the weights (`inputs × outputs`, row-major) then the
//! biases. [`Objective::error`] is the **held-out classification error**
//! (1 − accuracy on the test set), so error traces read as error rates;
//! [`Mlp::accuracy`] and [`Mlp::test_loss`] expose the rest.
//!
//! Data: `data/digits.csv.gz` (1797 rows of 64 pixels in 0..=16 and a label
//! in 0..=9; see `data/README.md` for provenance and licence) is embedded in
//! the binary; `MlpConfig::data` may name another file of the same format.
//! Pixels are scaled to [0, 1]. The train/test split is fixed: row `i` is a
//! test row when `i % 4 == 3` (449 test rows, 1348 training rows), so every
//! run and every engine sees the same split.
//!
//! Gradients do not allocate after the first call on a thread: the forward
//! and backward activations live in a thread-local scratch buffer that grows
//! to the largest network seen on that thread.

use crate::config::{MlpActivation, MlpConfig, MAX_BATCH};
use crate::error::ConfigError;
use crate::objective::Objective;
use crate::seed::PsimRng;
use flate2::read::GzDecoder;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use std::cell::RefCell;
use std::io::Read;
use std::sync::Arc;
use thiserror::Error;

/// The digits data set shipped with psim (gzip-compressed CSV).
pub static EMBEDDED_DIGITS: &[u8] = include_bytes!("../../data/digits.csv.gz");

/// Pixels per image (8×8).
pub const INPUTS: usize = 64;
/// Digit classes.
pub const CLASSES: usize = 10;
/// Rows of the embedded data set.
pub const DIGITS_ROWS: usize = 1797;

/// Why a digits file could not be loaded.
#[derive(Debug, Error)]
pub enum DatasetError {
    /// The file could not be read.
    #[error("cannot read digits data `{path}`: {source}")]
    Io {
        /// The path given.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not gzip-compressed UTF-8 text.
    #[error("digits data `{path}` is not a gzip-compressed CSV: {reason}")]
    NotGzipCsv {
        /// The path given (or `embedded`).
        path: String,
        /// What failed.
        reason: String,
    },
    /// A line does not hold 64 pixels in 0..=16 and a label in 0..=9.
    #[error("digits data `{path}` line {line}: {reason} (expected 64 pixels in 0..=16 and a label in 0..=9, comma-separated)")]
    Malformed {
        /// The path given (or `embedded`).
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Too few rows for a train and a test set.
    #[error("digits data `{path}` has {rows} rows: need at least 8")]
    TooSmall {
        /// The path given (or `embedded`).
        path: String,
        /// Rows found.
        rows: usize,
    },
}

/// Images (rows of 64 values in [0, 1]) and their labels.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// One image per row.
    pub images: Array2<f64>,
    /// The digit of each row.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Parses gzip-compressed CSV bytes; `path` names the source in errors.
    pub fn from_gzip_csv(bytes: &[u8], path: &str) -> Result<Self, DatasetError> {
        let mut text = String::new();
        GzDecoder::new(bytes)
            .read_to_string(&mut text)
            .map_err(|e| DatasetError::NotGzipCsv {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
        let mut pixels = Vec::with_capacity(DIGITS_ROWS * INPUTS);
        let mut labels = Vec::with_capacity(DIGITS_ROWS);
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |reason: String| DatasetError::Malformed {
                path: path.to_string(),
                line: i + 1,
                reason,
            };
            let fields: Vec<&str> = line.split(',').collect();
            if fields.len() != INPUTS + 1 {
                return Err(bad(format!("{} fields", fields.len())));
            }
            for (j, f) in fields.iter().enumerate() {
                let x: f64 = f
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("field {} = `{f}` is not a number", j + 1)))?;
                let max = if j < INPUTS { 16.0 } else { 9.0 };
                if !(0.0..=max).contains(&x) || x.fract() != 0.0 {
                    return Err(bad(format!("field {} = {x} out of range", j + 1)));
                }
                if j < INPUTS {
                    pixels.push(x / 16.0);
                } else {
                    labels.push(x as u8);
                }
            }
        }
        if labels.len() < 8 {
            return Err(DatasetError::TooSmall {
                path: path.to_string(),
                rows: labels.len(),
            });
        }
        let images = Array2::from_shape_vec((labels.len(), INPUTS), pixels)
            .expect("rows × 64 pixels by construction");
        Ok(Self { images, labels })
    }

    /// The digits data set embedded in psim.
    pub fn embedded() -> Self {
        Self::from_gzip_csv(EMBEDDED_DIGITS, "embedded").expect("the embedded data set is valid")
    }

    /// Loads a gzip-compressed CSV file of the same format.
    pub fn load(path: &str) -> Result<Self, DatasetError> {
        let bytes =
            crate::fs::read_regular_bytes(std::path::Path::new(path), crate::fs::Links::Follow)
                .map_err(|source| DatasetError::Io {
                    path: path.to_string(),
                    source,
                })?;
        Self::from_gzip_csv(&bytes, path)
    }

    /// The fixed split: rows with `i % 4 == 3` are held out.
    pub fn split(&self) -> (Dataset, Dataset) {
        let pick = |test: bool| {
            let rows: Vec<usize> = (0..self.labels.len())
                .filter(|i| (i % 4 == 3) == test)
                .collect();
            Dataset {
                images: self.images.select(Axis(0), &rows),
                labels: rows.iter().map(|&i| self.labels[i]).collect(),
            }
        };
        (pick(false), pick(true))
    }
}

/// The MLP objective: network shape, data and mini-batch size.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// Layer widths, input first, classes last.
    sizes: Vec<usize>,
    /// Offset of each layer's weights in the flat parameter vector (biases follow).
    offsets: Vec<usize>,
    dim: usize,
    batch: usize,
    activation: MlpActivation,
    train: Arc<Dataset>,
    test: Arc<Dataset>,
}

/// Test rows pushed through the network at once when evaluating.
const EVAL_CHUNK: usize = 128;

thread_local! {
    static SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Cuts the next `n` values off the front of `buf`.
fn carve<'a>(buf: &mut &'a mut [f64], n: usize) -> &'a mut [f64] {
    let (head, tail) = std::mem::take(buf).split_at_mut(n);
    *buf = tail;
    head
}

impl Mlp {
    /// Builds the network from its configuration, loading the data.
    pub fn new(cfg: &MlpConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let data = match &cfg.data {
            None => Dataset::embedded(),
            Some(path) => Dataset::load(path).map_err(|e| {
                ConfigError::new(
                    "objective.data",
                    path,
                    format!("a readable digits file ({e})"),
                )
            })?,
        };
        let (train, test) = data.split();
        let mut sizes = vec![INPUTS];
        sizes.extend(&cfg.hidden);
        sizes.push(CLASSES);
        let mut offsets = Vec::with_capacity(sizes.len() - 1);
        let mut dim = 0;
        for l in 0..sizes.len() - 1 {
            offsets.push(dim);
            dim += sizes[l] * sizes[l + 1] + sizes[l + 1];
        }
        Ok(Self {
            sizes,
            offsets,
            dim,
            batch: cfg.batch,
            activation: cfg.activation,
            train: Arc::new(train),
            test: Arc::new(test),
        })
    }

    /// Layer widths, inputs first and classes last.
    pub fn layer_sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Training and test rows.
    pub fn split_sizes(&self) -> (usize, usize) {
        (self.train.labels.len(), self.test.labels.len())
    }

    fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// Weights and biases of layer `l` within `params`.
    fn layer<'p>(&self, params: &'p [f64], l: usize) -> (ArrayView2<'p, f64>, &'p [f64]) {
        let (i, o) = (self.sizes[l], self.sizes[l + 1]);
        let at = self.offsets[l];
        let w = ArrayView2::from_shape((i, o), &params[at..at + i * o]).expect("layer shape");
        (w, &params[at + i * o..at + i * o + o])
    }

    /// Scratch values a batch of `rows` needs: every layer's activations
    /// and two delta buffers of the widest layer.
    fn scratch_len(&self, rows: usize) -> usize {
        let widest = *self.sizes.iter().max().expect("non-empty");
        rows * (self.sizes.iter().sum::<usize>() + 2 * widest)
    }

    /// Forward pass: `acts[0]` holds the inputs; fills `acts[1..]`, the last
    /// with class probabilities (softmax).
    fn forward(&self, params: &[f64], acts: &mut [ArrayViewMut2<'_, f64>]) {
        let last = self.layers();
        for l in 0..last {
            let (w, b) = self.layer(params, l);
            let (lo, hi) = acts.split_at_mut(l + 1);
            let (input, out) = (&lo[l], &mut hi[0]);
            for (a, mut row) in input.rows().into_iter().zip(out.rows_mut()) {
                // z = b + Σ_k a_k W[k, :], row by row: contiguous, no packing buffers.
                row.iter_mut().zip(b).for_each(|(z, bias)| *z = *bias);
                for (&a_k, w_k) in a.iter().zip(w.rows()) {
                    if a_k != 0.0 {
                        row.scaled_add(a_k, &w_k);
                    }
                }
                if l + 1 < last {
                    match self.activation {
                        MlpActivation::Relu => row.iter_mut().for_each(|z| *z = z.max(0.0)),
                        MlpActivation::Tanh => row.iter_mut().for_each(|z| *z = z.tanh()),
                    }
                } else {
                    let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let mut sum = 0.0;
                    row.iter_mut().for_each(|z| {
                        *z = (*z - max).exp();
                        sum += *z;
                    });
                    row.iter_mut().for_each(|z| *z /= sum);
                }
            }
        }
    }

    /// Runs `f` with activation views for `rows` rows carved from the
    /// thread's scratch buffer, plus two delta buffers.
    fn with_scratch<T>(
        &self,
        rows: usize,
        f: impl FnOnce(&mut [ArrayViewMut2<'_, f64>], &mut [f64], &mut [f64]) -> T,
    ) -> T {
        SCRATCH.with(|cell| {
            let mut buf = cell.borrow_mut();
            let need = self.scratch_len(rows);
            if buf.len() < need {
                buf.resize(need, 0.0);
            }
            let mut rest: &mut [f64] = &mut buf[..need];
            // At most 4 layers of activations (inputs, 2 hidden, outputs):
            // a fixed array keeps this allocation-free.
            let mut views: [Option<ArrayViewMut2<'_, f64>>; 4] = [None, None, None, None];
            for (slot, &width) in views.iter_mut().zip(&self.sizes) {
                let s = carve(&mut rest, rows * width);
                *slot = Some(ArrayViewMut2::from_shape((rows, width), s).expect("shape"));
            }
            let widest = *self.sizes.iter().max().expect("non-empty");
            let d1 = carve(&mut rest, rows * widest);
            let d2 = carve(&mut rest, rows * widest);
            let mut acts: [ArrayViewMut2<'_, f64>; 4] = views.map(|v| {
                v.unwrap_or_else(|| ArrayViewMut2::from_shape((0, 0), &mut []).expect("empty"))
            });
            f(&mut acts[..self.sizes.len()], d1, d2)
        })
    }

    /// Fills `inputs` and `labels` with rows drawn uniformly with replacement
    /// from the training set.
    fn draw_batch(
        &self,
        inputs: &mut ArrayViewMut2<'_, f64>,
        labels: &mut [u8],
        rng: &mut PsimRng,
    ) {
        let n = self.train.labels.len();
        for (r, label) in labels.iter_mut().enumerate() {
            let i = rng.random_range(0..n);
            inputs.row_mut(r).assign(&self.train.images.row(i));
            *label = self.train.labels[i];
        }
    }

    /// Mean cross-entropy of the mini-batch that [`Objective::gradient`]
    /// would draw from the same `rng` state (for gradient checks).
    pub fn batch_loss(&self, params: &[f64], rng: &mut PsimRng) -> f64 {
        let b = self.batch;
        self.with_scratch(b, |acts, _, _| {
            let mut labels = [0u8; MAX_BATCH];
            self.draw_batch(&mut acts[0], &mut labels[..b], rng);
            self.forward(params, acts);
            let probs = &acts[self.layers()];
            let loss: f64 = (0..b)
                .map(|r| -probs[[r, labels[r] as usize]].max(1e-300).ln())
                .sum();
            loss / b as f64
        })
    }

    /// Held-out accuracy and mean cross-entropy at `params`.
    fn evaluate(&self, params: &[f64]) -> (f64, f64) {
        let n = self.test.labels.len();
        let (mut correct, mut loss) = (0usize, 0.0);
        self.with_scratch(EVAL_CHUNK, |acts, _, _| {
            let mut start = 0;
            while start < n {
                let rows = EVAL_CHUNK.min(n - start);
                let mut views: Vec<ArrayViewMut2<'_, f64>> = Vec::new();
                // Chunks shorter than EVAL_CHUNK use the top rows of each buffer.
                for a in acts.iter_mut() {
                    views.push(a.slice_mut(ndarray::s![..rows, ..]));
                }
                views[0].assign(&self.test.images.slice(ndarray::s![start..start + rows, ..]));
                self.forward(params, &mut views);
                let probs = &views[views.len() - 1];
                for (r, row) in probs.rows().into_iter().enumerate() {
                    let label = self.test.labels[start + r] as usize;
                    let mut best = 0;
                    for (k, p) in row.iter().enumerate() {
                        if *p > row[best] {
                            best = k;
                        }
                    }
                    correct += usize::from(best == label);
                    loss -= row[label].max(1e-300).ln();
                }
                start += rows;
            }
        });
        (correct as f64 / n as f64, loss / n as f64)
    }

    /// Held-out (test-set) accuracy at `params`, in [0, 1].
    pub fn accuracy(&self, params: &[f64]) -> f64 {
        self.evaluate(params).0
    }

    /// Held-out mean cross-entropy at `params`.
    pub fn test_loss(&self, params: &[f64]) -> f64 {
        self.evaluate(params).1
    }
}

impl Objective for Mlp {
    fn dim(&self) -> usize {
        self.dim
    }

    /// He (ReLU) or Glorot (tanh) normal weights, zero biases.
    fn initial_point(&self, rng: &mut PsimRng, out: &mut [f64]) {
        out.iter_mut().for_each(|x| *x = 0.0);
        for l in 0..self.layers() {
            let (i, o) = (self.sizes[l], self.sizes[l + 1]);
            let sd = match self.activation {
                MlpActivation::Relu => (2.0 / i as f64).sqrt(),
                MlpActivation::Tanh => (2.0 / (i + o) as f64).sqrt(),
            };
            let at = self.offsets[l];
            for w in &mut out[at..at + i * o] {
                let z: f64 = StandardNormal.sample(rng);
                *w = sd * z;
            }
        }
    }

    /// Gradient of the mean cross-entropy of a mini-batch of `batch` rows
    /// drawn uniformly with replacement from the training set.
    fn gradient(&self, point: &[f64], rng: &mut PsimRng, out: &mut [f64]) {
        let b = self.batch;
        let layers = self.layers();
        self.with_scratch(b, |acts, d1, d2| {
            // MlpConfig caps the batch, so the labels fit on the stack.
            let mut labels = [0u8; MAX_BATCH];
            self.draw_batch(&mut acts[0], &mut labels[..b], rng);
            self.forward(point, acts);
            // δ at the logits: (softmax − one-hot) / batch.
            let mut delta =
                ArrayViewMut2::from_shape((b, CLASSES), &mut d1[..b * CLASSES]).expect("shape");
            delta.assign(&acts[layers]);
            for (r, &label) in labels.iter().enumerate().take(b) {
                delta[[r, label as usize]] -= 1.0;
            }
            delta.mapv_inplace(|x| x / b as f64);
            let (mut cur, mut other) = (d1, d2);
            for l in (0..layers).rev() {
                let (i, o) = (self.sizes[l], self.sizes[l + 1]);
                let delta = ArrayView2::from_shape((b, o), &cur[..b * o]).expect("delta shape");
                let at = self.offsets[l];
                let (gw, gb) = out[at..at + i * o + o].split_at_mut(i * o);
                let mut gw = ArrayViewMut2::from_shape((i, o), gw).expect("shape");
                // ∂W = Aᵀ δ, accumulated row by row (general_mat_mul would
                // allocate packing buffers on every call).
                gw.fill(0.0);
                for (a, d) in acts[l].rows().into_iter().zip(delta.rows()) {
                    for (&a_k, mut gw_k) in a.iter().zip(gw.rows_mut()) {
                        if a_k != 0.0 {
                            gw_k.scaled_add(a_k, &d);
                        }
                    }
                }
                gb.iter_mut().for_each(|g| *g = 0.0);
                for row in delta.rows() {
                    for (g, d) in gb.iter_mut().zip(row) {
                        *g += d;
                    }
                }
                if l > 0 {
                    let (w, _) = self.layer(point, l);
                    let mut prev =
                        ArrayViewMut2::from_shape((b, i), &mut other[..b * i]).expect("shape");
                    // δ_prev = δ Wᵀ: one dot product per (row, input).
                    for (d, mut p) in delta.rows().into_iter().zip(prev.rows_mut()) {
                        for (p_k, w_k) in p.iter_mut().zip(w.rows()) {
                            *p_k = w_k.dot(&d);
                        }
                    }
                    let a = &acts[l];
                    match self.activation {
                        MlpActivation::Relu => prev.zip_mut_with(a, |d, &a| {
                            if a <= 0.0 {
                                *d = 0.0
                            }
                        }),
                        MlpActivation::Tanh => prev.zip_mut_with(a, |d, &a| *d *= 1.0 - a * a),
                    }
                    std::mem::swap(&mut cur, &mut other);
                }
            }
        });
    }

    /// Held-out classification error, 1 − [`Mlp::accuracy`].
    fn error(&self, point: &[f64]) -> f64 {
        1.0 - self.accuracy(point)
    }
}
