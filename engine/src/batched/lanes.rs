//! Lane arithmetic of the batched engine: `L` runs side by side in fixed
//! arrays, one per-lane random stream (xoshiro256++), and a branch-free
//! Gaussian sampler. Every function is a plain loop over the lanes, written
//! so that LLVM turns it into vector instructions of whatever width the
//! calling kernel was compiled for (see `super::Simd`). No lane ever reads
//! another lane, and no operation depends on the vector width: a lane's
//! numbers are the same on AVX-512, AVX2 or the portable build.

// Lane loops index several arrays in step; that is the form LLVM vectorises.
#![allow(clippy::needless_range_loop)]

/// Runs advanced together in one batch.
pub const L: usize = 8;

/// One f64 per lane.
pub type F = [f64; L];
/// One u64 per lane.
pub type U = [u64; L];

/// Elementwise `f(a[l])` over the lanes.
#[inline(always)]
pub fn map(a: &F, f: impl Fn(f64) -> f64) -> F {
    let mut o = [0.0; L];
    for l in 0..L {
        o[l] = f(a[l]);
    }
    o
}

/// Elementwise `f(a[l], b[l])` over the lanes.
#[inline(always)]
pub fn zip(a: &F, b: &F, f: impl Fn(f64, f64) -> f64) -> F {
    let mut o = [0.0; L];
    for l in 0..L {
        o[l] = f(a[l], b[l]);
    }
    o
}

/// xoshiro256++ in every lane (the generator of `rand`'s `SmallRng`, state
/// words kept as structure of arrays). Lane `l` is seeded exactly as
/// `SmallRng::seed_from_u64(seed[l])` (SplitMix64 expansion), so its raw
/// 64-bit outputs are those of the scalar generator with that seed.
#[derive(Debug, Clone)]
pub struct LaneRng {
    s: [U; 4],
}

impl LaneRng {
    /// Seeds lane `l` from `seeds[l]`.
    pub fn new(seeds: &U) -> Self {
        const PHI: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut s = [[0u64; L]; 4];
        for l in 0..L {
            let mut state = seeds[l];
            for word in s.iter_mut() {
                state = state.wrapping_add(PHI);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                word[l] = z ^ (z >> 31);
            }
        }
        Self { s }
    }

    /// The next 64 random bits of every lane, by the portable lane loop
    /// (vectorised by LLVM where the target has a 64-bit vector rotate,
    /// AVX-512; see [`Avx2Rng`] for AVX2).
    #[inline(always)]
    pub fn next_u64s(&mut self) -> U {
        let mut out = [0u64; L];
        let (mut s0, mut s1, mut s2, mut s3) = (self.s[0], self.s[1], self.s[2], self.s[3]);
        for l in 0..L {
            out[l] = s0[l]
                .wrapping_add(s3[l])
                .rotate_left(23)
                .wrapping_add(s0[l]);
            let t = s1[l] << 17;
            s2[l] ^= s0[l];
            s3[l] ^= s1[l];
            s1[l] ^= s2[l];
            s0[l] ^= s3[l];
            s2[l] ^= t;
            s3[l] = s3[l].rotate_left(45);
        }
        self.s = [s0, s1, s2, s3];
        out
    }
}

/// How a kernel draws its lanes' random bits: the same xoshiro256++ numbers
/// whatever the implementation.
pub trait LaneBits {
    /// The next 64 random bits of every lane of `rng`.
    fn next(rng: &mut LaneRng) -> U;
}

/// The portable lane loop ([`LaneRng::next_u64s`]).
pub struct PortableRng;

impl LaneBits for PortableRng {
    #[inline(always)]
    fn next(rng: &mut LaneRng) -> U {
        rng.next_u64s()
    }
}

/// xoshiro256++ in AVX2 intrinsics, two vectors of 4 lanes. LLVM's cost
/// model keeps the portable loop scalar on AVX2 (no 64-bit vector rotate:
/// a rotate is two shifts and an or), so it is written out here.
#[cfg(target_arch = "x86_64")]
pub struct Avx2Rng;

#[cfg(target_arch = "x86_64")]
impl LaneBits for Avx2Rng {
    #[inline(always)]
    fn next(rng: &mut LaneRng) -> U {
        // SAFETY: only instantiated by kernels compiled with AVX2 enabled,
        // which run only after `Simd::available` confirmed AVX2.
        unsafe { avx2_next(rng) }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn avx2_next(rng: &mut LaneRng) -> U {
    use std::arch::x86_64::*;
    macro_rules! rotl {
        ($x:expr, $k:literal) => {
            _mm256_or_si256(
                _mm256_slli_epi64::<$k>($x),
                _mm256_srli_epi64::<{ 64 - $k }>($x),
            )
        };
    }
    let mut out = [0u64; L];
    for half in 0..L / 4 {
        let at = |w: usize| rng.s[w].as_ptr().add(4 * half) as *const __m256i;
        let (mut s0, mut s1, mut s2, mut s3) = (
            _mm256_loadu_si256(at(0)),
            _mm256_loadu_si256(at(1)),
            _mm256_loadu_si256(at(2)),
            _mm256_loadu_si256(at(3)),
        );
        let r = _mm256_add_epi64(rotl!(_mm256_add_epi64(s0, s3), 23), s0);
        let t = _mm256_slli_epi64::<17>(s1);
        s2 = _mm256_xor_si256(s2, s0);
        s3 = _mm256_xor_si256(s3, s1);
        s1 = _mm256_xor_si256(s1, s2);
        s0 = _mm256_xor_si256(s0, s3);
        s2 = _mm256_xor_si256(s2, t);
        s3 = rotl!(s3, 45);
        _mm256_storeu_si256(out.as_mut_ptr().add(4 * half) as *mut __m256i, r);
        for (w, v) in [s0, s1, s2, s3].into_iter().enumerate() {
            _mm256_storeu_si256(rng.s[w].as_mut_ptr().add(4 * half) as *mut __m256i, v);
        }
    }
    out
}

const ONE_BITS: u64 = 0x3ff0_0000_0000_0000;

/// The top 52 bits of `bits` as a uniform on [0, 1) (resolution 2⁻⁵²): the
/// mantissa of a number in [1, 2), minus one. No integer→float conversion,
/// which AVX2 lacks for 64-bit integers.
#[inline(always)]
pub fn unit(bits: u64) -> f64 {
    f64::from_bits(ONE_BITS | (bits >> 12)) - 1.0
}

/// ln(u) for u in [2⁻⁵², 1] (normal, positive), relative error below
/// 3·10⁻⁹ (plus rounding): u = 2ᵉ·z with z in [√½, √2), and
/// ln z = 2·atanh(s), s = (z−1)/(z+1), |s| ≤ 0.1716, by its series up to
/// s⁹ (the first omitted term is 2s¹¹/11, i.e. below s¹⁰/11 ≤ 2·10⁻⁹
/// relative to the leading 2s). Branch free; the exponent is read from the
/// bits (offset so that a logical shift suffices, AVX2 has no 64-bit
/// arithmetic shift) and converted with the 2⁵² trick.
#[inline(always)]
pub fn ln_unit(u: f64) -> f64 {
    const SQRT_HALF_BITS: u64 = 0x3fe6_a09e_667f_3bcd;
    const EXP_MASK: u64 = 0xfff << 52;
    let ix = u.to_bits();
    // ix − bits(√½) + bits(1): its exponent field is e + 1023, with e the
    // power of two that brings u into [√½, √2).
    let biased = ix.wrapping_add(ONE_BITS).wrapping_sub(SQRT_HALF_BITS);
    let ebits = biased & EXP_MASK;
    let z = f64::from_bits(ix.wrapping_sub(ebits).wrapping_add(ONE_BITS));
    // (ebits >> 52) is e + 1023 < 2¹¹: exact as the mantissa of 2⁵² + k.
    let e =
        f64::from_bits((ebits >> 52) | 0x4330_0000_0000_0000) - (4_503_599_627_370_496.0 + 1023.0);
    let s = (z - 1.0) / (z + 1.0);
    let s2 = s * s;
    let p = (1.0 / 9.0f64)
        .mul_add(s2, 1.0 / 7.0)
        .mul_add(s2, 1.0 / 5.0)
        .mul_add(s2, 1.0 / 3.0)
        .mul_add(s2, 1.0);
    e.mul_add(std::f64::consts::LN_2, 2.0 * s * p)
}

/// (cos φ, sin φ) for |φ| ≤ π/4 by their Taylor polynomials through φ¹⁰
/// and φ⁹: truncation below φ¹²/12! ≤ 1.2·10⁻¹⁰ and φ¹¹/11! ≤ 1.8·10⁻⁹
/// (relative to |sin φ| ≥ 0.9|φ|: 2.6·10⁻⁹).
#[inline(always)]
pub fn cos_sin_octant(phi: f64) -> (f64, f64) {
    let x2 = phi * phi;
    let c = (-1.0 / 3_628_800.0f64)
        .mul_add(x2, 1.0 / 40_320.0)
        .mul_add(x2, -1.0 / 720.0)
        .mul_add(x2, 1.0 / 24.0)
        .mul_add(x2, -0.5)
        .mul_add(x2, 1.0);
    let s = (1.0 / 362_880.0f64)
        .mul_add(x2, -1.0 / 5040.0)
        .mul_add(x2, 1.0 / 120.0)
        .mul_add(x2, -1.0 / 6.0)
        .mul_add(x2, 1.0);
    (c, phi * s)
}

/// Two independent standard normals from two 64-bit words (Box–Muller):
/// radius √(−2 ln u) from `b1` (u in (0, 1], 52 bits: |z| ≤ 8.5, a tail of
/// probability 2·10⁻¹⁷ cut), angle from `b2`: φ uniform on [−π/4, π/4)
/// from bits 10..62, then bit 63 flips the sign of the larger coordinate
/// and bit 62 swaps the two, which maps the sector onto the whole circle
/// with equal probability (the four quarter-turns of the sector tile it,
/// and the sector is symmetric in sin φ). Relative error of each normal
/// ≲ 3·10⁻⁹ from the polynomials, plus rounding.
#[inline(always)]
pub fn normal_pair(b1: u64, b2: u64) -> (f64, f64) {
    let u = 1.0 - unit(b1);
    let r = (-2.0 * ln_unit(u)).sqrt();
    let f = unit(b2 << 2);
    let phi = (f - 0.5) * std::f64::consts::FRAC_PI_2;
    let (c, s) = cos_sin_octant(phi);
    let a = (r * c).to_bits() ^ (b2 & (1 << 63));
    let b = (r * s).to_bits();
    let swap = 0u64.wrapping_sub((b2 >> 62) & 1);
    let z1 = (b & swap) | (a & !swap);
    let z2 = (a & swap) | (b & !swap);
    (f64::from_bits(z1), f64::from_bits(z2))
}

/// Fills `out` (an even number of rows) with standard normals, lane by lane
/// from each lane's stream.
#[inline(always)]
pub fn fill_normals<B: LaneBits>(rng: &mut LaneRng, out: &mut [F]) {
    for pair in out.chunks_exact_mut(2) {
        let b1 = B::next(rng);
        let b2 = B::next(rng);
        let mut z1 = [0.0; L];
        let mut z2 = [0.0; L];
        for l in 0..L {
            (z1[l], z2[l]) = normal_pair(b1[l], b2[l]);
        }
        pair[0] = z1;
        pair[1] = z2;
    }
}

/// Fills `out` with uniforms on [−1, 1) (the `uniform` data distribution
/// before scaling), lane by lane.
#[inline(always)]
pub fn fill_uniforms<B: LaneBits>(rng: &mut LaneRng, out: &mut [F]) {
    for row in out.iter_mut() {
        let b = B::next(rng);
        for l in 0..L {
            row[l] = 2.0 * unit(b[l]) - 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};

    #[test]
    fn lane_streams_are_small_rng_streams() {
        let seeds: U = std::array::from_fn(|l| 1000 + l as u64 * 7);
        let mut lanes = LaneRng::new(&seeds);
        let mut scalar: Vec<_> = seeds
            .iter()
            .map(|&s| psim_common::PsimRng::seed_from_u64(s))
            .collect();
        #[cfg(target_arch = "x86_64")]
        let mut avx2 = (crate::batched::Simd::Avx2.available()).then(|| lanes.clone());
        for _ in 0..100 {
            #[cfg(target_arch = "x86_64")]
            if let Some(a) = avx2.as_mut() {
                let expected = lanes.clone().next_u64s();
                assert_eq!(Avx2Rng::next(a), expected);
            }
            let out = lanes.next_u64s();
            for l in 0..L {
                assert_eq!(out[l], scalar[l].next_u64());
            }
        }
    }

    #[test]
    fn ln_and_sincos_are_accurate() {
        // Relative error of ln against libm over (0, 1]: 3e-9 (series) plus
        // a few ulps of rounding; 1e-8 is the bound claimed in the README.
        let mut worst: f64 = 0.0;
        for i in 1..200_000u64 {
            let u = i as f64 / 200_000.0;
            for u in [u, u * 1e-9, u.powi(40)] {
                if u < f64::EPSILON / 2.0 {
                    continue;
                }
                let (a, b) = (ln_unit(u), u.ln());
                if b != 0.0 {
                    worst = worst.max(((a - b) / b).abs());
                }
            }
        }
        assert!(worst < 1e-8, "ln relative error {worst:e}");
        assert_eq!(ln_unit(1.0), 0.0);
        let mut worst: f64 = 0.0;
        for i in 0..=100_000 {
            let phi = (i as f64 / 100_000.0 - 0.5) * std::f64::consts::FRAC_PI_2;
            let (c, s) = cos_sin_octant(phi);
            worst = worst.max(((c - phi.cos()) / phi.cos()).abs());
            if phi != 0.0 {
                worst = worst.max(((s - phi.sin()) / phi.sin()).abs());
            }
        }
        assert!(worst < 1e-8, "sincos relative error {worst:e}");
    }

    /// Moments and the KS distance of 4·10⁶ normals (8 lanes × 5·10⁵).
    /// Tolerances, with n = 4·10⁶: the sample mean has SE 1/√n = 5·10⁻⁴,
    /// the variance SE √(2/n) = 7·10⁻⁴, the third moment SE √(15/n) =
    /// 1.9·10⁻³, the fourth (3) SE √(96/n) = 4.9·10⁻³: we allow 5 SE each
    /// (two-sided p ≈ 6·10⁻⁷ per check). The KS distance of n iid draws
    /// exceeds 1.95/√n (≈ 1·10⁻³) with probability 0.001; each lane alone
    /// (n = 5·10⁵) against 1.95/√n, and the lag-1 correlation within a
    /// lane (SE 1/√n) within 5 SE.
    #[test]
    fn normals_have_gaussian_moments_and_distribution() {
        let seeds: U = std::array::from_fn(|l| psim_common::seed::splitmix64(42 + l as u64));
        let mut rng = LaneRng::new(&seeds);
        let rows = 500_000;
        let mut buf = vec![[0.0; L]; rows];
        fill_normals::<PortableRng>(&mut rng, &mut buf);
        let all: Vec<f64> = buf.iter().flat_map(|r| r.iter().copied()).collect();
        let n = all.len() as f64;
        let m = |k: i32| all.iter().map(|x| x.powi(k)).sum::<f64>() / n;
        let se = |v: f64| (v / n).sqrt();
        assert!(m(1).abs() < 5.0 * se(1.0), "mean {}", m(1));
        assert!((m(2) - 1.0).abs() < 5.0 * se(2.0), "variance {}", m(2));
        assert!(m(3).abs() < 5.0 * se(15.0), "third moment {}", m(3));
        assert!(
            (m(4) - 3.0).abs() < 5.0 * se(96.0),
            "fourth moment {}",
            m(4)
        );
        let cdf = psim_common::theory::normal_cdf;
        let d = ks_against(&all, cdf);
        assert!(d < 1.95 / n.sqrt(), "KS distance {d}");
        for l in 0..L {
            let lane: Vec<f64> = buf.iter().map(|r| r[l]).collect();
            let nl = lane.len() as f64;
            let d = ks_against(&lane, cdf);
            assert!(d < 1.95 / nl.sqrt(), "lane {l}: KS distance {d}");
            let lag: f64 = lane.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / (nl - 1.0);
            assert!(
                lag.abs() < 5.0 / nl.sqrt(),
                "lane {l}: lag-1 correlation {lag}"
            );
        }
    }

    fn ks_against(sample: &[f64], cdf: impl Fn(f64) -> f64) -> f64 {
        let mut s = sample.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len() as f64;
        s.iter()
            .enumerate()
            .map(|(i, &x)| {
                let f = cdf(x);
                (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn uniforms_cover_minus_one_to_one() {
        let seeds: U = std::array::from_fn(|l| l as u64);
        let mut rng = LaneRng::new(&seeds);
        let mut buf = vec![[0.0; L]; 100_000];
        fill_uniforms::<PortableRng>(&mut rng, &mut buf);
        let all: Vec<f64> = buf.iter().flat_map(|r| r.iter().copied()).collect();
        assert!(all.iter().all(|x| (-1.0..1.0).contains(x)));
        let n = all.len() as f64;
        let var = all.iter().map(|x| x * x).sum::<f64>() / n;
        // Var = 1/3, SE of the mean square √(Var(X²)/n) = √(4/45/n) ≈ 1·10⁻³.
        assert!((var - 1.0 / 3.0).abs() < 5e-3, "{var}");
    }
}
