//! Batch normalisation of NCHW batches on the CPU as one candle custom op, forward and
//! backward, with an optional fused activation.
//!
//! candle composes batch normalisation from about ten full-size tensor operations (mean,
//! centring, square, mean, division, scale, shift), each allocating its result, and its
//! backward from as many again. Here the training forward reads the input twice (shifted
//! sums for the statistics, then the output) and the backward three times (the two
//! per-channel sums, then the input gradient), parallel over `[n, c]` planes.

use std::mem::MaybeUninit;
use std::sync::{Arc, OnceLock};

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::planes::{self, contiguous};

/// An activation applied after the normalisation, inside the same op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Act {
    Identity,
    Relu,
    Elu(f32),
}

/// Runs `$body` with `$f` bound to the activation (`apply`) and `$d` to its derivative
/// at an output, as closures of one variant each: every variant gets its own copy of the
/// loop, which the compiler vectorises (a `match` inside the loop keeps it scalar, and the
/// ELU's exponential is most of the op's work).
macro_rules! with_activation {
    ($act:expr, |$f:ident, $d:ident| $body:expr) => {
        match $act {
            Act::Identity => {
                let ($f, $d) = (|z: f32| Act::Identity.apply(z), |y: f32| Act::Identity.derivative(y));
                $body
            }
            Act::Relu => {
                let ($f, $d) = (|z: f32| Act::Relu.apply(z), |y: f32| Act::Relu.derivative(y));
                $body
            }
            Act::Elu(alpha) => {
                let ($f, $d) = (move |z: f32| Act::Elu(alpha).apply(z), move |y: f32| Act::Elu(alpha).derivative(y));
                $body
            }
        }
    };
}

impl Act {
    #[inline]
    fn apply(self, z: f32) -> f32 {
        match self {
            Act::Identity => z,
            Act::Relu => z.max(0.0),
            Act::Elu(alpha) => {
                let below = alpha * super::planes::exp_m1_nonpositive(z);
                if z > 0.0 { z } else { below }
            }
        }
    }

    /// The derivative at an output `y` (for ELU with `α > 0`, `y > 0` exactly where its
    /// input is; below, the derivative `α eᶻ` is `y + α`).
    #[inline]
    fn derivative(self, y: f32) -> f32 {
        match self {
            Act::Identity => 1.0,
            Act::Relu => f32::from(u8::from(y > 0.0)),
            Act::Elu(alpha) => {
                if y > 0.0 {
                    1.0
                } else {
                    y + alpha
                }
            }
        }
    }
}

/// Runs `f` compiled for AVX-512 where the CPU has it, else as it is: `f` (marked
/// `#[inline(always)]`) is inlined into a function with that target feature, so that its
/// loops vectorise 16 lanes wide. The portable build left the batch-norm gradient's loops
/// mostly scalar.
#[inline(always)]
fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if super::direct::available() {
        #[target_feature(enable = "avx512f")]
        fn run<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: AVX-512F is present.
        #[allow(unsafe_code)]
        return unsafe { run(f) };
    }
    f()
}

/// `v ← act(scale · v + shift)` for every value, one loop per activation (so that each
/// vectorises).
pub(crate) fn affine_in_place(values: &mut [f32], scale: f32, shift: f32, act: Act) {
    with_activation!(act, |f, _d| values.iter_mut().for_each(|v| *v = f(*v * scale + shift)));
}

/// `y ← act(γ (p − μ) / √(σ² + ε) + β)` with `p = prelu(x)` (`x` itself without `slope`)
/// per plane (`plane` values, channel = plane index mod `c`), with the statistics `stats`.
/// Writes every value of `y` where `y` and `x` have the same length.
#[allow(clippy::too_many_arguments)]
fn normalise_planes(
    x: &[f32],
    y: &mut [MaybeUninit<f32>],
    (c, plane): (usize, usize),
    slope: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    stats: &Stats,
    act: Act,
) {
    y.par_chunks_mut(plane).zip(x.par_chunks(plane)).enumerate().for_each(|(p, (y, x))| {
        let ch = p % c;
        let scale = gamma[ch] * stats.inv_std[ch];
        let (shift, a) = (beta[ch] - stats.mean[ch] * scale, slope_of(slope, ch));
        wide(
            #[inline(always)]
            || {
                with_activation!(act, |f, _d| y.iter_mut().zip(x).for_each(|(y, &x)| {
                    y.write(f(planes::prelu_factor(x, a) * x * scale + shift));
                }))
            },
        );
    });
}

/// Per-channel statistics: the mean and `1 / √(var + ε)`, and (from a batch) the unbiased
/// variance for the running average.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stats {
    pub(crate) mean: Vec<f32>,
    pub(crate) inv_std: Vec<f32>,
    pub(crate) unbiased_var: Vec<f32>,
}

/// Where the op's statistics come from.
pub(crate) enum Source {
    /// Training: computed from the batch and left here for the running averages and the
    /// backward pass.
    Batch(Arc<OnceLock<Stats>>),
    /// Evaluation: the running statistics.
    Fixed(Stats),
}

/// `(x [n, c, h, w], γ [c], β [c]) → act(γ (x − μ) / √(σ² + ε) + β)`.
pub(crate) struct BatchNorm {
    pub(crate) eps: f32,
    pub(crate) act: Act,
    pub(crate) source: Source,
}

/// `(planes, c, plane size)` of an NCHW shape whose channels `gamma` and `beta` match.
fn geometry(shape: &Shape, gamma: &[f32], beta: &[f32]) -> candle_core::Result<(usize, usize, usize)> {
    let (n, c, h, w) = shape.dims4()?;
    if gamma.len() != c || beta.len() != c {
        candle_core::bail!("batch norm: {} scales and {} shifts for {c} channels", gamma.len(), beta.len())
    }
    Ok((n * c, c, h * w))
}

/// The batch statistics of `prelu(x)` (`x` itself without `slope`): per plane, sums
/// shifted by the channel's first value (which keeps the variance accurate when the mean
/// is large), combined per channel in f64.
fn batch_stats(
    x: &[f32],
    (planes, c, plane): (usize, usize, usize),
    slope: Option<&[f32]>,
    eps: f32,
) -> candle_core::Result<Stats> {
    let count = (planes / c) * plane;
    if count < 2 {
        candle_core::bail!("batch norm in training needs at least 2 values per channel, not {count}")
    }
    let shift: Vec<f32> =
        (0..c).map(|ch| planes::prelu_factor(x[ch * plane], slope_of(slope, ch)) * x[ch * plane]).collect();
    let sums: Vec<(f64, f64)> = x
        .par_chunks(plane)
        .enumerate()
        .map(|(p, v)| planes::shifted_sums(v, shift[p % c], slope_of(slope, p % c)))
        .collect();
    let (sum1, sum2) = (ch_sums(&sums, planes / c, c, |s| s.0), ch_sums(&sums, planes / c, c, |s| s.1));
    let mut stats = Stats::default();
    for ch in 0..c {
        let (s1, s2) = (sum1[ch], sum2[ch]);
        let m = s1 / count as f64;
        let var = (s2 / count as f64 - m * m).max(0.0);
        stats.mean.push((f64::from(shift[ch]) + m) as f32);
        stats.inv_std.push((1.0 / (var + f64::from(eps)).sqrt()) as f32);
        stats.unbiased_var.push((var * count as f64 / (count - 1) as f64) as f32);
    }
    Ok(stats)
}

impl BatchNorm {
    fn stats(&self) -> candle_core::Result<&Stats> {
        match &self.source {
            Source::Fixed(s) => Ok(s),
            Source::Batch(cell) => match cell.get() {
                Some(s) => Ok(s),
                None => candle_core::bail!("batch norm: backward before forward"),
            },
        }
    }
}

impl CustomOp3 for BatchNorm {
    fn name(&self) -> &'static str {
        "nanoml-batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, "batch norm input")?;
        let (gamma, beta) = (contiguous(s2, l2, "batch norm scale")?, contiguous(s3, l3, "batch norm shift")?);
        let (planes, c, plane) = geometry(l1.shape(), gamma, beta)?;
        if plane == 0 {
            return Ok((CpuStorage::F32(Vec::new()), l1.shape().clone()));
        }
        let stats = match &self.source {
            Source::Fixed(s) => s,
            Source::Batch(cell) => {
                let s = batch_stats(x, (planes, c, plane), None, self.eps)?;
                // A second forward with the same op (never done by the layer) keeps the first statistics.
                cell.get_or_init(|| s)
            }
        };
        if stats.mean.len() != c {
            candle_core::bail!("batch norm: statistics for {} channels, input has {c}", stats.mean.len())
        }
        let write = |y: &mut [MaybeUninit<f32>]| normalise_planes(x, y, (c, plane), None, gamma, beta, stats, self.act);
        // SAFETY: `y` is as long as `x`, so `normalise_planes` writes all of it.
        #[allow(unsafe_code)]
        let y = unsafe { planes::written(x.len(), write) };
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = BatchNormGrad {
            stats: self.stats()?.clone(),
            gamma: gamma.flatten_all()?.to_vec1()?,
            act: self.act,
            batch: matches!(self.source, Source::Batch(_)),
        };
        // `dx`, `dγ` and `dβ` end to end.
        let all = x.contiguous()?.apply_op3_no_bwd(&y.contiguous()?, &dy.contiguous()?, &grad)?;
        let (n, c) = (x.elem_count(), gamma.elem_count());
        let dx = all.narrow(0, 0, n)?.reshape(x.shape())?;
        Ok((Some(dx), Some(all.narrow(0, n, c)?), Some(all.narrow(0, n + c, c)?)))
    }
}

/// `(x, y, dy) → [dx, dγ, dβ]` flattened. With `z` the normalised input
/// and `g = dy · act'(y)`: `dβ = Σ g`, `dγ = Σ g z`, and `dx = γ/σ · (g − dβ/N − z dγ/N)`
/// from batch statistics, `γ/σ · g` from fixed ones.
struct BatchNormGrad {
    stats: Stats,
    gamma: Vec<f32>,
    act: Act,
    batch: bool,
}

impl CustomOp3 for BatchNormGrad {
    fn name(&self) -> &'static str {
        "nanoml-batch-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, "batch norm input")?;
        let (y, dy) = (contiguous(s2, l2, "batch norm output")?, contiguous(s3, l3, "batch norm gradient")?);
        let (shape, c) = (l2.shape(), self.stats.mean.len());
        let (n, cc, h, w) = shape.dims4()?;
        if cc != c || self.gamma.len() != c || x.len() != y.len() || dy.len() != y.len() {
            candle_core::bail!("batch norm gradient: sizes do not match an input of {:?}", shape.dims())
        }
        let gamma = &self.gamma;
        let plane = h * w;
        let len = y.len() + 2 * c;
        if plane == 0 {
            return Ok((CpuStorage::F32(planes::zeros(len)), Shape::from(len)));
        }
        let (act, st) = (self.act, &self.stats);
        // Per plane: Σ g and Σ g z, in 8 f32 lanes each.
        let sums: Vec<(f64, f64)> = x
            .par_chunks(plane)
            .zip(y.par_chunks(plane).zip(dy.par_chunks(plane)))
            .enumerate()
            .map(|(p, (x, (y, dy)))| {
                let (m, inv) = (st.mean[p % c], st.inv_std[p % c]);
                let (mut sg, mut sgz) = ([0f32; 8], [0f32; 8]);
                // Exact chunks of 8 lanes, so that the loop vectorises; the remainder goes
                // to lane 0.
                with_activation!(act, |_f, d| {
                    let (x8, y8, dy8) = (x.chunks_exact(8), y.chunks_exact(8), dy.chunks_exact(8));
                    let rest = x8.remainder().iter().zip(y8.remainder()).zip(dy8.remainder());
                    for ((x, y), dy) in x8.zip(y8).zip(dy8) {
                        for j in 0..8 {
                            let g = dy[j] * d(y[j]);
                            sg[j] += g;
                            sgz[j] += g * (x[j] - m) * inv;
                        }
                    }
                    for ((&x, &y), &dy) in rest {
                        let g = dy * d(y);
                        sg[0] += g;
                        sgz[0] += g * (x - m) * inv;
                    }
                });
                let total = |l: [f32; 8]| l.iter().map(|&v| f64::from(v)).sum::<f64>();
                (total(sg), total(sgz))
            })
            .collect();
        let (sum_gz, sum_g) = (ch_sums(&sums, n, c, |s| s.1), ch_sums(&sums, n, c, |s| s.0));
        let count = (n * plane) as f32;
        let batch = self.batch;
        let write = |out: &mut [MaybeUninit<f32>]| {
            let (dx, rest) = out.split_at_mut(y.len());
            let (dgamma, dbeta) = rest.split_at_mut(c);
            store(dgamma, &sum_gz);
            store(dbeta, &sum_g);
            dx.par_chunks_mut(plane)
                .zip(x.par_chunks(plane).zip(y.par_chunks(plane).zip(dy.par_chunks(plane))))
                .enumerate()
                .for_each(|(p, (dx, (x, (y, dy))))| {
                    let ch = p % c;
                    let (m, inv) = (st.mean[ch], st.inv_std[ch]);
                    let k = gamma[ch] * inv;
                    let (mean_g, mean_gz) =
                        if batch { (sum_g[ch] as f32 / count, sum_gz[ch] as f32 / count) } else { (0.0, 0.0) };
                    with_activation!(act, |_f, d| {
                        for (((dx, &x), &y), &dy) in dx.iter_mut().zip(x).zip(y).zip(dy) {
                            let g = dy * d(y);
                            dx.write(k * (g - mean_g - (x - m) * inv * mean_gz));
                        }
                    });
                });
        };
        // SAFETY: `x`, `y` and `dy` have the same length (checked above), so the planes
        // cover all of `dx`; `dγ` and `dβ` are `c` values each.
        #[allow(unsafe_code)]
        let out = unsafe { planes::written(len, write) };
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

/// What a fused convolution → [PReLU →] batch norm → activation keeps from its training
/// forward pass for its backward pass: the convolution's output `z` (bias included), the
/// batch statistics of `prelu(z)`, and the kernels in tap order if the convolution made
/// them (its input gradient reads the same).
pub(crate) struct Saved {
    pub(crate) z: Vec<f32>,
    pub(crate) stats: Stats,
    pub(crate) planes: Option<Arc<Vec<f32>>>,
}

/// The PReLU slope of channel `ch` (1 without PReLU: the identity).
fn slope_of(slope: Option<&[f32]>, ch: usize) -> f32 {
    slope.map_or(1.0, |s| s[ch])
}

/// `y = act(γ (prelu(z) − μ) / √(σ² + ε) + β)` per channel of `z` (`planes` planes of
/// `plane` values, `c` channels), with the batch's statistics of `prelu(z)`, which it
/// returns with `y`: the statistics from `z` (PReLU applied on the fly), then `y` written
/// once.
#[allow(clippy::too_many_arguments)]
pub(crate) fn normalise_batch(
    z: &[f32],
    (planes, c, plane): (usize, usize, usize),
    slope: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    act: Act,
) -> candle_core::Result<(Vec<f32>, Stats)> {
    if plane == 0 || c == 0 || gamma.len() != c || beta.len() != c || slope.is_some_and(|s| s.len() != c) {
        candle_core::bail!("batch norm: {c} channels of {plane} values do not fit the layer's parameters")
    }
    let stats = batch_stats(z, (planes, c, plane), slope, eps)?;
    let write = |y: &mut [MaybeUninit<f32>]| normalise_planes(z, y, (c, plane), slope, gamma, beta, &stats, act);
    // SAFETY: `y` is as long as `z`, so `normalise_planes` writes all of it.
    #[allow(unsafe_code)]
    let y = unsafe { planes::written(z.len(), write) };
    Ok((y, stats))
}

/// The backward pass of [`normalise_batch`] from the saved `z`: `(y, dy) → [dz, Σ dz,
/// (dslope,) dγ, dβ]` flattened. With `p = prelu(z)`, `p̂` its normalised value and `g =
/// dy · act'(y)`: `dβ = Σ g`, `dγ = Σ g p̂`, `dp = γ/σ · (g − dβ/N − p̂ dγ/N)`, `dz = dp`
/// where `z > 0` and `slope · dp` elsewhere, `dslope = Σ dp · z` over `z ≤ 0`.
pub(crate) struct ConvNormGrad {
    pub(crate) saved: Arc<OnceLock<Saved>>,
    pub(crate) gamma: Vec<f32>,
    pub(crate) slope: Option<Vec<f32>>,
    pub(crate) act: Act,
}

impl candle_core::CustomOp2 for ConvNormGrad {
    fn name(&self) -> &'static str {
        "nanoml-conv2d-batch-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some(Saved { z, stats: st, .. }) = self.saved.get() else {
            candle_core::bail!("convolution → batch norm: backward before forward")
        };
        let (y, dy) = (contiguous(s1, l1, "batch norm output")?, contiguous(s2, l2, "batch norm gradient")?);
        let (n, c, h, w) = l1.shape().dims4()?;
        let plane = h * w;
        if st.mean.len() != c || self.gamma.len() != c || z.len() != y.len() || dy.len() != y.len() || plane * c == 0 {
            candle_core::bail!("convolution → batch norm gradient: sizes do not match an output of {:?}", l1.dims())
        }
        let (act, slope, gamma) = (self.act, self.slope.as_deref(), &self.gamma);
        // Per plane: Σ g and Σ g p̂, in 16 f32 lanes each (the remainder in lane 0).
        let sums: Vec<(f64, f64)> = z
            .par_chunks(plane)
            .zip(y.par_chunks(plane).zip(dy.par_chunks(plane)))
            .enumerate()
            .map(|(p, (z, (y, dy)))| {
                let ch = p % c;
                let (m, inv, a) = (st.mean[ch], st.inv_std[ch], slope_of(slope, ch));
                wide(
                    #[inline(always)]
                    || with_activation!(act, |_f, d| grad_sums(z, y, dy, d, a, m, inv)),
                )
            })
            .collect();
        let parts = if slope.is_some() { 4 } else { 3 };
        let (dgamma, dbeta) = (ch_sums(&sums, n, c, |s| s.1), ch_sums(&sums, n, c, |s| s.0));
        let count = (n * plane) as f32;
        let write = |out: &mut [MaybeUninit<f32>]| {
            let (dz, params) = out.split_at_mut(y.len());
            // Per plane: Σ dz and Σ dp · z over z ≤ 0, while writing dz.
            let more: Vec<(f64, f64)> = dz
                .par_chunks_mut(plane)
                .zip(z.par_chunks(plane).zip(y.par_chunks(plane).zip(dy.par_chunks(plane))))
                .enumerate()
                .map(|(p, (dz, (z, (y, dy))))| {
                    let ch = p % c;
                    let (m, inv, a) = (st.mean[ch], st.inv_std[ch], slope_of(slope, ch));
                    let k = (gamma[ch] * inv, dbeta[ch] as f32 / count, dgamma[ch] as f32 / count);
                    wide(
                        #[inline(always)]
                        || with_activation!(act, |_f, d| grad_write(dz, z, y, dy, d, a, m, inv, k)),
                    )
                })
                .collect();
            let (dbias, dslope) = (ch_sums(&more, n, c, |s| s.0), ch_sums(&more, n, c, |s| s.1));
            let mut columns = vec![dbias];
            if slope.is_some() {
                columns.push(dslope);
            }
            columns.extend([dgamma, dbeta]);
            for (dst, src) in params.chunks_mut(c).zip(&columns) {
                store(dst, src);
            }
        };
        // SAFETY: `z`, `y` and `dy` have the same length (checked above), so the planes
        // cover all of `dz`; `params` is `parts` columns of `c` values, one per column.
        #[allow(unsafe_code)]
        let out = unsafe { planes::written(y.len() + parts * c, write) };
        Ok((CpuStorage::F32(out), Shape::from(y.len() + parts * c)))
    }
}

/// Lanes of the batch-norm gradient's sums: independent partial sums, so that the loops
/// vectorise.
const GRAD_LANES: usize = 16;

/// One plane's `(Σ g, Σ g p̂)` of [`ConvNormGrad`], with `g = dy · d(y)`, `p = prelu(z)`
/// (slope `a`) and `p̂ = (p − m) · inv`.
#[inline(always)]
fn grad_sums(z: &[f32], y: &[f32], dy: &[f32], d: impl Fn(f32) -> f32, a: f32, m: f32, inv: f32) -> (f64, f64) {
    let (mut sg, mut sgp) = ([0f32; GRAD_LANES], [0f32; GRAD_LANES]);
    let whole = z.len() / GRAD_LANES * GRAD_LANES;
    let chunks = z[..whole].chunks_exact(GRAD_LANES).zip(y[..whole].chunks_exact(GRAD_LANES));
    for ((z, y), dy) in chunks.zip(dy[..whole].chunks_exact(GRAD_LANES)) {
        for j in 0..GRAD_LANES {
            let g = dy[j] * d(y[j]);
            sg[j] += g;
            sgp[j] += g * ((planes::prelu_factor(z[j], a) * z[j] - m) * inv);
        }
    }
    for ((&z, &y), &dy) in z[whole..].iter().zip(&y[whole..]).zip(&dy[whole..]) {
        let g = dy * d(y);
        sg[0] += g;
        sgp[0] += g * ((planes::prelu_factor(z, a) * z - m) * inv);
    }
    (planes::lanes_total(&sg), planes::lanes_total(&sgp))
}

/// One plane's `dz` of [`ConvNormGrad`], written, and its `(Σ dz, Σ dp · z over z ≤ 0)`,
/// with `(k, mean_g, mean_gp) = (γ · inv, Σ g / N, Σ g p̂ / N)` of its channel:
/// `dp = k (g − mean_g − p̂ · mean_gp)`, `dz = prelu'(z) · dp`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn grad_write(
    dz: &mut [MaybeUninit<f32>],
    z: &[f32],
    y: &[f32],
    dy: &[f32],
    d: impl Fn(f32) -> f32,
    a: f32,
    m: f32,
    inv: f32,
    (k, mean_g, mean_gp): (f32, f32, f32),
) -> (f64, f64) {
    let (mut sdz, mut sslope) = ([0f32; GRAD_LANES], [0f32; GRAD_LANES]);
    let step = |z: f32, y: f32, dy: f32| {
        let f = planes::prelu_factor(z, a);
        let dp = k * (dy * d(y) - mean_g - (f * z - m) * inv * mean_gp);
        // `dp · z` where `z ≤ 0`, else 0 (NaN where `z` is NaN).
        (f * dp, if z > 0.0 { 0.0 } else { dp * z })
    };
    let whole = z.len() / GRAD_LANES * GRAD_LANES;
    let (head, tail) = dz.split_at_mut(whole);
    let chunks = z[..whole].chunks_exact(GRAD_LANES).zip(y[..whole].chunks_exact(GRAD_LANES));
    for (((z, y), dy), out) in chunks.zip(dy[..whole].chunks_exact(GRAD_LANES)).zip(head.chunks_exact_mut(GRAD_LANES)) {
        let mut v = [0f32; GRAD_LANES];
        for j in 0..GRAD_LANES {
            let (g, s) = step(z[j], y[j], dy[j]);
            v[j] = g;
            sdz[j] += g;
            sslope[j] += s;
        }
        for (o, &v) in out.iter_mut().zip(&v) {
            o.write(v);
        }
    }
    for (out, ((&z, &y), &dy)) in tail.iter_mut().zip(z[whole..].iter().zip(&y[whole..]).zip(&dy[whole..])) {
        let (g, s) = step(z, y, dy);
        out.write(g);
        sdz[0] += g;
        sslope[0] += s;
    }
    (planes::lanes_total(&sdz), planes::lanes_total(&sslope))
}

/// Per channel, the sum over the `n` images of `part` of each plane's sums.
fn ch_sums(sums: &[(f64, f64)], n: usize, c: usize, part: impl Fn(&(f64, f64)) -> f64) -> Vec<f64> {
    (0..c).map(|ch| (0..n).map(|i| part(&sums[i * c + ch])).sum()).collect()
}

/// `dst ← src`, rounded to f32.
fn store(dst: &mut [MaybeUninit<f32>], src: &[f64]) {
    dst.iter_mut().zip(src).for_each(|(d, &s)| {
        d.write(s as f32);
    });
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::batch_stats;

    proptest! {
        /// The batch statistics (sums per plane shifted by the channel's first value,
        /// combined in f64) equal a two-pass computation in f64, also where the mean is ten
        /// thousand times the spread, with and without PReLU.
        #[test]
        fn batch_statistics_equal_two_passes(
            images in 1usize..5, c in 1usize..4, plane in 1usize..40, offset in -1e4f64..1e4,
            slope in prop::option::of(0.01f32..0.5), seed in any::<u64>(),
        ) {
            prop_assume!(images * plane >= 2);
            let planes = images * c;
            let mut state = seed | 1;
            let x: Vec<f32> = (0..planes * plane)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (offset + (state % 2001) as f64 / 1000.0 - 1.0) as f32
                })
                .collect();
            let slopes = slope.map(|a| vec![a; c]);
            let prelu = |v: f32| match slope {
                Some(a) if v <= 0.0 => a * v,
                _ => v,
            };
            let stats = batch_stats(&x, (planes, c, plane), slopes.as_deref(), 1e-3).unwrap();
            for ch in 0..c {
                let values: Vec<f64> = (0..images)
                    .flat_map(|i| x[(i * c + ch) * plane..][..plane].iter().map(|&v| f64::from(prelu(v))))
                    .collect();
                let n = values.len() as f64;
                let mean = values.iter().sum::<f64>() / n;
                let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                let spread = var.sqrt().max(1e-3);
                prop_assert!((f64::from(stats.mean[ch]) - mean).abs() <= 1e-6 * mean.abs() + 1e-4 * spread);
                let inv = 1.0 / (var + 1e-3).sqrt();
                prop_assert!((f64::from(stats.inv_std[ch]) - inv).abs() <= 1e-3 * inv, "{} vs {inv}", stats.inv_std[ch]);
                let unbiased = var * n / (n - 1.0);
                prop_assert!((f64::from(stats.unbiased_var[ch]) - unbiased).abs() <= 1e-3 * unbiased + 1e-6);
            }
        }
    }
}
