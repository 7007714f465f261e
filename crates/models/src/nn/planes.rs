//! Plane-wise CPU kernels as candle custom ops, forward and backward: ReLU, max pooling,
//! nearest-neighbour upsampling by integer factors, and the per-channel sum that is a
//! convolution bias's gradient.
//!
//! candle composes their backward passes from several full-size tensor operations (max
//! pooling's: an upsampling, a comparison, an average pooling, another upsampling and two
//! products; ReLU's: a comparison, a conversion and a product), each allocating its
//! result. Each kernel here is one pass over the data, parallel over `[n, c]` planes.
//! Ties follow PyTorch: max pooling sends the gradient to the first maximum of a window
//! (candle sends it to every tied one), and ReLU's gradient is 0 at 0.

use std::mem::MaybeUninit;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

/// The f32 data of a contiguous tensor.
pub(crate) fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else { candle_core::bail!("{what} must be f32, not {:?}", storage.dtype()) };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

/// `n` zeros, written now. `vec![0.0; n]` asks the allocator for zeroed memory, which for
/// large buffers is fresh pages that the kernel maps to its shared zero page when first
/// read; a kernel that then adds into them (read, then write) takes a copy-on-write fault
/// per page, each with a TLB shootdown across the threads. Buffers that are accumulated
/// into start from this instead.
pub(crate) fn zeroed(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    advise_huge_pages(&v);
    v.resize(n, 0.0);
    v
}

/// `n` zeros for an output that a kernel then overwrites: fresh pages for large buffers,
/// faulted in by the kernel's own (parallel) writes, in huge pages where the system allows.
pub(crate) fn zeros(n: usize) -> Vec<f32> {
    let v = vec![0f32; n];
    advise_huge_pages(&v);
    v
}

/// `n` values that `write` sets, without zeroing them first: for outputs of kernels that
/// write every value through raw pointers. Zeroing first cost a pass over the output per
/// call (`calloc` must clear reused heap memory): 6 % of skip_fcn's inference.
///
/// # Safety
///
/// `write` must initialise all `n` values of the slice it is given.
#[allow(unsafe_code)]
pub(crate) unsafe fn written(n: usize, write: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    advise_huge_pages(&v);
    write(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: the capacity is at least `n`, and the caller guarantees that `write`
    // initialised the first `n` values.
    unsafe { v.set_len(n) };
    v
}

/// Buffers from this size on are backed by transparent huge pages where the system lets a
/// program ask (Linux's `madvise` mode). glibc serves requests this large (its largest
/// `mmap` threshold) with fresh pages on every call and hands them back when they are freed,
/// so each training step faults a layer's activations in again, one 4 KiB page at a time:
/// up to a third of a step. With the advice it is one fault per 2 MiB. Smaller buffers come
/// from reused heap memory, where the advice made things slower (squeeze_bn_elu, whose
/// activations are 2–16 MiB, lost 20–30 % with a 4 MiB threshold).
const HUGE_PAGE_MIN: usize = 32 << 20;

/// Advises the kernel to back `v`'s allocation with huge pages (whole 2 MiB pages inside it
/// only). Advice: where the kernel has no such pages or refuses, nothing changes, and
/// nothing is lost.
fn advise_huge_pages(v: &Vec<f32>) {
    let bytes = v.capacity() * std::mem::size_of::<f32>();
    if bytes < HUGE_PAGE_MIN {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = v.as_ptr() as usize;
        let first = start.next_multiple_of(HUGE);
        let end = (start + bytes) / HUGE * HUGE;
        if end > first {
            // SAFETY: the range lies inside `v`'s allocation (rounded inwards to whole huge
            // pages); MADV_HUGEPAGE only changes how its pages are backed, never their
            // contents. Its result is advice: an error means no huge pages, nothing more.
            #[allow(unsafe_code)]
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE)
            };
        }
    }
}

/// Whether `x` can take the CPU kernels: f32 on the CPU.
pub(crate) fn on_cpu_f32(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == candle_core::DType::F32
}

/// `max(x, 0)`.
pub(crate) struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "nanoml-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "relu input")?;
        let mut y = zeros(x.len());
        y.par_chunks_mut(1 << 16).zip(x.par_chunks(1 << 16)).for_each(|(y, x)| {
            for (y, x) in y.iter_mut().zip(x) {
                *y = x.max(0.0);
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(dy.contiguous()?.apply_op2_no_bwd(&y.contiguous()?, &ActivationGrad { elu_alpha: None })?))
    }
}

/// `(dy, y) → dx` for an activation that is the identity above 0: `dy` where `y > 0`;
/// below, 0 (ReLU) or `dy · (y + α)` (ELU with `α`, whose derivative there is
/// `α eˣ = y + α`).
pub(crate) struct ActivationGrad {
    pub(crate) elu_alpha: Option<f32>,
}

impl CustomOp2 for ActivationGrad {
    fn name(&self) -> &'static str {
        "nanoml-activation-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (dy, y) = (contiguous(s1, l1, "activation gradient")?, contiguous(s2, l2, "activation output")?);
        if dy.len() != y.len() {
            candle_core::bail!("activation gradient: {} values against an output of {}", dy.len(), y.len())
        }
        let mut dx = zeros(dy.len());
        let chunks = dx.par_chunks_mut(1 << 16).zip(dy.par_chunks(1 << 16).zip(y.par_chunks(1 << 16)));
        match self.elu_alpha {
            None => chunks.for_each(|(dx, (dy, y))| {
                for ((dx, dy), y) in dx.iter_mut().zip(dy).zip(y) {
                    *dx = if *y > 0.0 { *dy } else { 0.0 };
                }
            }),
            Some(alpha) => chunks.for_each(|(dx, (dy, y))| {
                for ((dx, dy), y) in dx.iter_mut().zip(dy).zip(y) {
                    *dx = if *y > 0.0 { *dy } else { *dy * (*y + alpha) };
                }
            }),
        }
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// `eˣ − 1` for the ELU's negative side, without a call into libm so that loops over it
/// vectorise: `x ≤ 0` is clamped at −87 (where `eˣ` is below f32's smallest normal), split
/// as `x = n ln 2 + r` with `|r| ≤ ½ ln 2`, and `eʳ` is Cephes' degree-7 polynomial
/// (relative error about 1e-7). Near 0 the subtraction of 1 leaves an absolute error of
/// about 1e-7. Positive `x` give `e⁰ − 1 = 0` (the ELU takes `x` itself there); NaN stays
/// NaN.
#[inline]
pub(crate) fn exp_m1_nonpositive(x: f32) -> f32 {
    // Adding and subtracting 1.5·2²³ rounds to the nearest integer with plain f32 additions.
    const ROUND: f32 = 12_582_912.0;
    // `clamp` keeps NaN.
    let x = x.clamp(-87.0, 0.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // ln 2 in two parts, so that `n · ln 2` is exact in the first.
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p =
        ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 0.166_666_65) * r + 0.5;
    let er = p * r * r + r + 1.0;
    // 2ⁿ from its exponent bits; `t`'s low mantissa bits hold `n` (−126 ≤ n ≤ 0).
    let bits = (t.to_bits() as i32).wrapping_sub(0x4B40_0000).wrapping_add(127) << 23;
    er * f32::from_bits(bits as u32) - 1.0
}

/// ELU: `x` above 0, `α (eˣ − 1)` below (`α > 0`).
pub(crate) struct Elu {
    pub(crate) alpha: f32,
}

impl CustomOp1 for Elu {
    fn name(&self) -> &'static str {
        "nanoml-elu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "elu input")?;
        let alpha = self.alpha;
        let mut y = zeros(x.len());
        y.par_chunks_mut(1 << 16).zip(x.par_chunks(1 << 16)).for_each(|(y, x)| {
            for (y, &x) in y.iter_mut().zip(x) {
                let below = alpha * exp_m1_nonpositive(x);
                *y = if x > 0.0 { x } else { below };
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = ActivationGrad { elu_alpha: Some(self.alpha) };
        Ok(Some(dy.contiguous()?.apply_op2_no_bwd(&y.contiguous()?, &grad)?))
    }
}

/// PReLU with one slope per channel: `(x [n, c, h, w], a [c]) → x` above 0, `a[c] · x`
/// below.
pub(crate) struct Prelu;

/// The channel count of an NCHW `x` that `a` holds one value for.
fn prelu_channels(x: &Shape, a: &[f32]) -> candle_core::Result<(usize, usize)> {
    let (n, c, h, w) = x.dims4()?;
    if a.len() != c {
        candle_core::bail!("prelu: {} slopes for {c} channels", a.len())
    }
    Ok((n * c, h * w))
}

impl CustomOp2 for Prelu {
    fn name(&self) -> &'static str {
        "nanoml-prelu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, a) = (contiguous(s1, l1, "prelu input")?, contiguous(s2, l2, "prelu slopes")?);
        let (_, plane) = prelu_channels(l1.shape(), a)?;
        let mut y = zeros(x.len());
        if plane > 0 {
            y.par_chunks_mut(plane).zip(x.par_chunks(plane)).enumerate().for_each(|(p, (y, x))| {
                prelu_plane(x, y, a[p % a.len()]);
            });
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // One pass gives both gradients, laid end to end: `dx` then `da`.
        let both = x.contiguous()?.apply_op3_no_bwd(&a.contiguous()?, &dy.contiguous()?, &PreluGrad)?;
        let n = x.elem_count();
        let dx = both.narrow(0, 0, n)?.reshape(x.shape())?;
        let da = both.narrow(0, n, a.elem_count())?;
        Ok((Some(dx), Some(da)))
    }
}

/// `(x, a, dy) → [dx, da]` flattened end to end: `dx = dy` above 0 and `a · dy` below;
/// `da[c] = Σ dy · x` over channel `c`'s values below 0 (accumulated in f64).
struct PreluGrad;

impl CustomOp3 for PreluGrad {
    fn name(&self) -> &'static str {
        "nanoml-prelu-grad"
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
        let (x, a, dy) = (
            contiguous(s1, l1, "prelu input")?,
            contiguous(s2, l2, "prelu slopes")?,
            contiguous(s3, l3, "prelu gradient")?,
        );
        let (planes, plane) = prelu_channels(l1.shape(), a)?;
        if dy.len() != x.len() {
            candle_core::bail!("prelu gradient: {} values against an input of {}", dy.len(), x.len())
        }
        let c = a.len();
        let mut out = zeros(x.len() + c);
        let (dx, da) = out.split_at_mut(x.len());
        if plane > 0 {
            let sums: Vec<f64> = dx
                .par_chunks_mut(plane)
                .zip(x.par_chunks(plane).zip(dy.par_chunks(plane)))
                .enumerate()
                .map(|(p, (dx, (x, dy)))| prelu_grad_plane(x, dy, dx, a[p % c]))
                .collect();
            for (ch, d) in da.iter_mut().enumerate() {
                *d = (0..planes / c).map(|i| sums[i * c + ch]).sum::<f64>() as f32;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(x.len() + c)))
    }
}

/// One plane of PReLU with slope `slope`: `y = x` where `x > 0`, `slope · x` elsewhere.
fn prelu_plane(x: &[f32], y: &mut [f32], slope: f32) {
    #[cfg(target_arch = "x86_64")]
    if super::direct::available() {
        // SAFETY: AVX-512F is present.
        #[allow(unsafe_code)]
        return unsafe { avx512::prelu_plane(x, y, slope) };
    }
    prelu_plane_portable(x, y, slope);
}

/// [`prelu_plane`] without vector instructions.
fn prelu_plane_portable(x: &[f32], y: &mut [f32], slope: f32) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = if x > 0.0 { x } else { slope * x };
    }
}

/// One plane of PReLU's gradient with slope `slope`: `dx = dy` where `x > 0`, `slope · dy`
/// elsewhere; returns `Σ dy · x` over the values not above 0 (the slope's gradient). Branch
/// free: the sign of `x` is a coin flip the CPU cannot predict.
fn prelu_grad_plane(x: &[f32], dy: &[f32], dx: &mut [f32], slope: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if super::direct::available() {
        // SAFETY: AVX-512F is present.
        #[allow(unsafe_code)]
        return unsafe { avx512::prelu_grad_plane(x, dy, dx, slope) };
    }
    prelu_grad_plane_portable(x, dy, dx, slope)
}

/// Shifted sums `(Σ (p − s), Σ (p − s)²)` of one plane (batch norm's statistics), `p =
/// prelu(x)` with slope `slope` (1: `x` itself), in 16 f32 lanes, added in f64. The
/// portable loop, left to the compiler, came out scalar inside the AVX-512 wrapper of the
/// other batch-norm loops: measured inside squeeze_bn_elu's training step (2 threads), the
/// statistics of 32 images of 128 planes of 32 × 32 took 2.0 ms that way and 0.42 ms with
/// this kernel, those of the whole network 10.1 and 2.8 ms.
pub(crate) fn shifted_sums(x: &[f32], shift: f32, slope: f32) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if super::direct::available() {
        // SAFETY: AVX-512F is present.
        #[allow(unsafe_code)]
        return unsafe { avx512::shifted_sums(x, shift, slope) };
    }
    shifted_sums_portable(x, shift, slope)
}

/// [`shifted_sums`] without vector instructions.
fn shifted_sums_portable(x: &[f32], shift: f32, slope: f32) -> (f64, f64) {
    let (mut s1, mut s2) = ([0f32; 16], [0f32; 16]);
    let d = |v: f32| prelu_factor(v, slope) * v - shift;
    // Exact chunks, so that the loop vectorises; the remainder goes to lane 0.
    let mut chunks = x.chunks_exact(16);
    for chunk in chunks.by_ref() {
        for (j, &v) in chunk.iter().enumerate() {
            let v = d(v);
            s1[j] += v;
            s2[j] += v * v;
        }
    }
    for &v in chunks.remainder() {
        let v = d(v);
        s1[0] += v;
        s2[0] += v * v;
    }
    (lanes_total(&s1), lanes_total(&s2))
}

/// The sum of 16 f32 partial sums, in f64.
pub(crate) fn lanes_total(lanes: &[f32; 16]) -> f64 {
    lanes.iter().map(|&l| f64::from(l)).sum()
}

/// All bits set where `x ≤ 0`, none elsewhere (NaN included): a mask that selects without
/// a branch.
#[inline]
fn not_above_zero(x: f32) -> u32 {
    u32::from(x <= 0.0).wrapping_neg()
}

/// PReLU's factor at `x`: 1 above 0, `slope` elsewhere, chosen without a branch (the sign
/// of `x` is a coin flip the CPU cannot predict).
#[inline]
pub(crate) fn prelu_factor(x: f32, slope: f32) -> f32 {
    let below = not_above_zero(x);
    f32::from_bits((slope.to_bits() & below) | (1f32.to_bits() & !below))
}

/// [`prelu_grad_plane`] without vector instructions: partial sums in 16 lanes (the
/// remainder goes to lane 0).
fn prelu_grad_plane_portable(x: &[f32], dy: &[f32], dx: &mut [f32], slope: f32) -> f64 {
    let step = |dx: &mut f32, x: f32, dy: f32, lane: &mut f32| {
        *dx = prelu_factor(x, slope) * dy;
        *lane += f32::from_bits((dy * x).to_bits() & not_above_zero(x));
    };
    let mut lanes = [0f32; 16];
    let ((dx16, dx_rest), (x16, x_rest), (dy16, dy_rest)) =
        (dx.as_chunks_mut::<16>(), x.as_chunks::<16>(), dy.as_chunks::<16>());
    for ((dx, x), dy) in dx16.iter_mut().zip(x16).zip(dy16) {
        for j in 0..16 {
            step(&mut dx[j], x[j], dy[j], &mut lanes[j]);
        }
    }
    for ((dx, &x), &dy) in dx_rest.iter_mut().zip(x_rest).zip(dy_rest) {
        step(dx, x, dy, &mut lanes[0]);
    }
    lanes_total(&lanes)
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    use std::arch::x86_64::{
        __m512, _CMP_EQ_OQ, _CMP_LE_OQ, _mm512_add_ps, _mm512_cmp_ps_mask, _mm512_fmadd_ps, _mm512_mask_mul_ps,
        _mm512_mask_storeu_ps, _mm512_mask3_fmadd_ps, _mm512_maskz_loadu_ps, _mm512_maskz_mov_ps, _mm512_maskz_sub_ps,
        _mm512_permutex2var_ps, _mm512_reduce_add_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
    };
    use std::mem::MaybeUninit;

    use super::super::direct::avx512::{lanes, mask};

    /// One row pair of [`super::max_pool_2x2_grad`], 16 windows at a time (the last
    /// masked): input rows `x`, the windows' maxima and gradients `(y, g)`, the gradient rows
    /// `d`, of which it writes the first `2 · y.len()` values.
    ///
    /// # Safety
    /// AVX-512F must be present; `x` and `d` rows must hold at least `2 · y.len()` values
    /// and `g` as many as `y`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn max_pool_2x2_grad_rows(
        (x0, x1): (&[f32], &[f32]),
        (y, g): (&[f32], &[f32]),
        (d0, d1): (&mut [MaybeUninit<f32>], &mut [MaybeUninit<f32>]),
    ) {
        // Even and odd values of 32 (two vectors); and back: the first and last 16 of two
        // vectors interleaved.
        let (even, odd) = (lanes(|k| 2 * k), lanes(|k| 2 * k + 1));
        let (low, high) = (lanes(|k| (k / 2) + 16 * (k % 2)), lanes(|k| 8 + (k / 2) + 16 * (k % 2)));
        for i in (0..y.len()).step_by(16) {
            // Windows `i..i + n`: `n` maxima and gradients, `2n` values in each row.
            let n = (y.len() - i).min(16);
            let (m, m0, m1) = (mask(n), mask((2 * n).min(16)), mask((2 * n).saturating_sub(16)));
            // SAFETY: masked lanes are neither read nor written; the others lie in windows
            // `i..i + n` of the rows, `y` and `g` (the caller's bounds).
            unsafe {
                let split = |row: &[f32]| {
                    let at = row.as_ptr().add(2 * i);
                    let (a, b) = (_mm512_maskz_loadu_ps(m0, at), _mm512_maskz_loadu_ps(m1, at.add(16)));
                    (_mm512_permutex2var_ps(a, even, b), _mm512_permutex2var_ps(a, odd, b))
                };
                let ((a, b), (c, e)) = (split(x0), split(x1));
                let (top, gv) =
                    (_mm512_maskz_loadu_ps(m, y.as_ptr().add(i)), _mm512_maskz_loadu_ps(m, g.as_ptr().add(i)));
                let eq = |v| _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(v, top);
                let (e0, e1, e2, e3) = (eq(a), eq(b), eq(c), eq(e));
                // The first pixel that equals the maximum, or the window's first.
                let p0 = e0 | !(e1 | e2 | e3);
                let (p1, p2) = (!e0 & e1, !e0 & !e1 & e2);
                let p3 = !e0 & !e1 & !e2 & e3;
                let (v0, v1) = (_mm512_maskz_mov_ps(p0, gv), _mm512_maskz_mov_ps(p1, gv));
                let (v2, v3) = (_mm512_maskz_mov_ps(p2, gv), _mm512_maskz_mov_ps(p3, gv));
                let store = |row: &mut [MaybeUninit<f32>], l, r| {
                    let at = row.as_mut_ptr().add(2 * i).cast::<f32>();
                    _mm512_mask_storeu_ps(at, m0, _mm512_permutex2var_ps(l, low, r));
                    _mm512_mask_storeu_ps(at.add(16), m1, _mm512_permutex2var_ps(l, high, r));
                };
                store(d0, v0, v1);
                store(d1, v2, v3);
            }
        }
    }

    /// [`super::shifted_sums`], 16 lanes at a time (the last masked).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn shifted_sums(x: &[f32], shift: f32, slope: f32) -> (f64, f64) {
        let (a, s, zero) = (_mm512_set1_ps(slope), _mm512_set1_ps(shift), _mm512_setzero_ps());
        let (mut s1, mut s2) = (zero, zero);
        for i in (0..x.len()).step_by(16) {
            let m = mask(x.len() - i);
            // SAFETY: lanes beyond the plane are masked off, not read (and add zeros).
            unsafe {
                let v = _mm512_maskz_loadu_ps(m, x.as_ptr().add(i));
                let below = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(v, zero);
                let d = _mm512_maskz_sub_ps(m, _mm512_mask_mul_ps(v, below, v, a), s);
                s1 = _mm512_add_ps(s1, d);
                s2 = _mm512_fmadd_ps(d, d, s2);
            }
        }
        let total = |v: __m512| -> f64 {
            let mut l = [0f32; 16];
            // SAFETY: 16 values.
            unsafe { _mm512_storeu_ps(l.as_mut_ptr(), v) };
            super::lanes_total(&l)
        };
        (total(s1), total(s2))
    }

    /// [`super::prelu_plane`], 16 lanes at a time.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn prelu_plane(x: &[f32], y: &mut [f32], slope: f32) {
        let n = x.len().min(y.len());
        let (a, zero) = (_mm512_set1_ps(slope), _mm512_setzero_ps());
        for i in (0..n).step_by(16) {
            let m = mask(n - i);
            // SAFETY: lanes beyond `n` are masked off, not read or written.
            unsafe {
                let xv = _mm512_maskz_loadu_ps(m, x.as_ptr().add(i));
                let below = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(xv, zero);
                _mm512_mask_storeu_ps(y.as_mut_ptr().add(i), m, _mm512_mask_mul_ps(xv, below, xv, a));
            }
        }
    }

    /// [`super::prelu_grad_plane`], 16 lanes at a time (the sums in f32 per lane, fused
    /// multiply-adds).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn prelu_grad_plane(x: &[f32], dy: &[f32], dx: &mut [f32], slope: f32) -> f64 {
        let n = x.len().min(dy.len()).min(dx.len());
        let (a, zero) = (_mm512_set1_ps(slope), _mm512_setzero_ps());
        let mut acc = _mm512_setzero_ps();
        for i in (0..n).step_by(16) {
            let m = mask(n - i);
            // SAFETY: lanes beyond `n` are masked off, not read or written.
            unsafe {
                let xv = _mm512_maskz_loadu_ps(m, x.as_ptr().add(i));
                let g = _mm512_maskz_loadu_ps(m, dy.as_ptr().add(i));
                let below = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(xv, zero) & m;
                _mm512_mask_storeu_ps(dx.as_mut_ptr().add(i), m, _mm512_mask_mul_ps(g, below, g, a));
                acc = _mm512_mask3_fmadd_ps(g, xv, acc, below);
            }
        }
        f64::from(_mm512_reduce_add_ps(acc))
    }
}

/// `k × k` max pooling with stride `stride`, no padding (windows that do not fit are
/// dropped, as in candle and PyTorch).
pub(crate) struct MaxPool {
    pub(crate) k: usize,
    pub(crate) stride: usize,
}

impl MaxPool {
    fn output(&self, shape: &Shape) -> candle_core::Result<(usize, usize, usize, usize, usize, usize)> {
        let (n, c, h, w) = shape.dims4()?;
        if self.k == 0 || self.stride == 0 || h < self.k || w < self.k {
            candle_core::bail!("max pooling: window {} (stride {}) does not fit {h}×{w}", self.k, self.stride)
        }
        Ok((n * c, h, w, (h - self.k) / self.stride + 1, (w - self.k) / self.stride + 1, c))
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "nanoml-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "max pooling input")?;
        let (planes, h, w, ho, wo, c) = self.output(l.shape())?;
        let (k, st) = (self.k, self.stride);
        let mut y = zeros(planes * ho * wo);
        y.par_chunks_mut(ho * wo).zip(x.par_chunks(h * w)).for_each(|(y, x)| {
            if (k, st) == (2, 2) {
                // The usual 2 × 2 windows, row pair by row pair (the same maxima, in the same
                // order, as the general loop).
                for (out, rows) in y.chunks_mut(wo).zip(x.chunks(2 * w)) {
                    let (r0, r1) = rows.split_at(w);
                    for ((v, a), b) in out.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                        *v = f32::NEG_INFINITY.max(a[0]).max(a[1]).max(b[0]).max(b[1]);
                    }
                }
                return;
            }
            for (oy, out) in y.chunks_mut(wo).enumerate() {
                for (ox, v) in out.iter_mut().enumerate() {
                    let mut m = f32::NEG_INFINITY;
                    for row in x[(oy * st) * w..].chunks(w).take(k) {
                        for &x in &row[ox * st..ox * st + k] {
                            m = m.max(x);
                        }
                    }
                    *v = m;
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((planes / c, c, ho, wo))))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = MaxPoolGrad { k: self.k, stride: self.stride, input: x.shape().clone() };
        Ok(Some(x.contiguous()?.apply_op3_no_bwd(&y.contiguous()?, &dy.contiguous()?, &grad)?))
    }
}

/// `(x, y, dy) → dx`: each output's gradient goes to the first maximum of its window.
struct MaxPoolGrad {
    k: usize,
    stride: usize,
    input: Shape,
}

impl CustomOp3 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "nanoml-max-pool2d-grad"
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
        let pool = MaxPool { k: self.k, stride: self.stride };
        let (planes, h, w, ho, wo, _) = pool.output(&self.input)?;
        let x = contiguous(s1, l1, "max pooling input")?;
        let (y, dy) = (contiguous(s2, l2, "max pooling output")?, contiguous(s3, l3, "max pooling gradient")?);
        if x.len() != planes * h * w || y.len() != planes * ho * wo || dy.len() != y.len() {
            candle_core::bail!("max pooling gradient: sizes do not match the input {:?}", self.input)
        }
        let (k, st) = (self.k, self.stride);
        if (k, st) == (2, 2) {
            // Every input pixel is written (not added to), so the gradient needs no zeroing.
            let write = |dx: &mut [MaybeUninit<f32>]| {
                dx.par_chunks_mut(h * w)
                    .zip(x.par_chunks(h * w))
                    .zip(y.par_chunks(ho * wo).zip(dy.par_chunks(ho * wo)))
                    .for_each(|((dx, x), (y, dy))| max_pool_2x2_grad(w, dx, x, y, dy));
            };
            // SAFETY: the planes cover `dx` (`x` is `planes` planes of `h · w`, checked above),
            // and `max_pool_2x2_grad` writes every value of each.
            #[allow(unsafe_code)]
            let dx = unsafe { written(x.len(), write) };
            return Ok((CpuStorage::F32(dx), self.input.clone()));
        }
        let mut dx = zeroed(x.len());
        dx.par_chunks_mut(h * w)
            .zip(x.par_chunks(h * w))
            .zip(y.par_chunks(ho * wo).zip(dy.par_chunks(ho * wo)))
            .for_each(|((dx, x), (y, dy))| {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let (m, g) = (y[oy * wo + ox], dy[oy * wo + ox]);
                        let corner = (oy * st) * w + ox * st;
                        let first = (0..k)
                            .flat_map(|ky| (0..k).map(move |kx| corner + ky * w + kx))
                            .find(|&i| x[i] == m)
                            // NaN windows: the window's first pixel (as PyTorch).
                            .unwrap_or(corner);
                        dx[first] += g;
                    }
                }
            });
        Ok((CpuStorage::F32(dx), self.input.clone()))
    }
}

/// One plane's gradient of 2 × 2, stride 2 max pooling (input rows `w` wide): each output's
/// gradient goes to the first of its window's pixels that equals the maximum (the window's
/// first pixel if none does), and 0 to the others and to the pixels no window covers (a
/// last odd row or column). Writes every value of `dx`. Branch-free, row pair by row pair,
/// 16 windows at a time with AVX-512 (the portable loop elsewhere). Measured inside the
/// screening classifiers' training steps (2 threads), against the portable loop over a
/// zeroed gradient: 64 images of 32 channels at 60 × 60 0.22× the time (12–13 ms before),
/// 64 of 64 at 26 × 26 0.2×, 32 of 32 at 196 × 196 0.32× (61 ms before), 32 of 64 at
/// 94 × 94 0.37×.
fn max_pool_2x2_grad(w: usize, dx: &mut [MaybeUninit<f32>], x: &[f32], y: &[f32], dy: &[f32]) {
    let wo = w / 2;
    let vector = cfg!(target_arch = "x86_64") && super::direct::available();
    // `y` has one row per whole pair of input rows, so a trailing odd row is never paired.
    let pairs = y.len().checked_div(wo).unwrap_or(0);
    let (covered, rest) = dx.split_at_mut((pairs * 2 * w).min(dx.len()));
    rest.iter_mut().for_each(|d| {
        d.write(0.0);
    });
    for (((d, x), y), g) in covered.chunks_mut(2 * w).zip(x.chunks(2 * w)).zip(y.chunks(wo)).zip(dy.chunks(wo)) {
        let (d0, d1) = d.split_at_mut(w);
        let (x0, x1) = x.split_at(w);
        if vector {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F is present; the rows hold `2 · y.len()` values or more.
            #[allow(unsafe_code)]
            unsafe {
                avx512::max_pool_2x2_grad_rows((x0, x1), (y, g), (&mut *d0, &mut *d1))
            };
        } else {
            let windows =
                d0.chunks_exact_mut(2).zip(d1.chunks_exact_mut(2)).zip(x0.chunks_exact(2).zip(x1.chunks_exact(2)));
            for (((d0, d1), (x0, x1)), (&m, &g)) in windows.zip(y.iter().zip(g)) {
                let (e0, e1, e2, e3) = (x0[0] == m, x0[1] == m, x1[0] == m, x1[1] == m);
                let pick = |first: bool| if first { g } else { 0.0 };
                d0[0].write(pick(e0 || !(e1 || e2 || e3)));
                d0[1].write(pick(!e0 && e1));
                d1[0].write(pick(!e0 && !e1 && e2));
                d1[1].write(pick(!e0 && !e1 && !e2 && e3));
            }
        }
        if w % 2 == 1 {
            d0[w - 1].write(0.0);
            d1[w - 1].write(0.0);
        }
    }
}

/// Nearest-neighbour upsampling by integer factors.
pub(crate) struct Upsample {
    pub(crate) fy: usize,
    pub(crate) fx: usize,
}

impl CustomOp1 for Upsample {
    fn name(&self) -> &'static str {
        "nanoml-upsample-nearest2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "upsampling input")?;
        let (n, c, h, w) = l.shape().dims4()?;
        let (fy, fx) = (self.fy, self.fx);
        if fy == 0 || fx == 0 {
            candle_core::bail!("upsampling: factors must be at least 1, not {fy}×{fx}")
        }
        let (ho, wo) = (h * fy, w * fx);
        let mut y = zeros(n * c * ho * wo);
        y.par_chunks_mut(ho * wo).zip(x.par_chunks(h * w)).for_each(|(y, x)| {
            for (rows, src) in y.chunks_mut(fy * wo).zip(x.chunks(w)) {
                let (first, rest) = rows.split_at_mut(wo);
                if fx == 2 {
                    for (out, &v) in first.chunks_exact_mut(2).zip(src) {
                        out.fill(v);
                    }
                } else {
                    for (out, &v) in first.chunks_mut(fx).zip(src) {
                        out.fill(v);
                    }
                }
                for row in rest.chunks_mut(wo) {
                    row.copy_from_slice(first);
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((n, c, ho, wo))))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(&UpsampleGrad { fy: self.fy, fx: self.fx })?))
    }
}

/// `dy → dx`: the sum of each `fy × fx` block.
struct UpsampleGrad {
    fy: usize,
    fx: usize,
}

impl CustomOp1 for UpsampleGrad {
    fn name(&self) -> &'static str {
        "nanoml-upsample-nearest2d-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dy = contiguous(s, l, "upsampling gradient")?;
        let (n, c, ho, wo) = l.shape().dims4()?;
        let (fy, fx) = (self.fy, self.fx);
        let (h, w) = (ho / fy, wo / fx);
        let mut dx = zeroed(n * c * h * w);
        dx.par_chunks_mut(h * w).zip(dy.par_chunks(ho * wo)).for_each(|(dx, dy)| {
            for (r, row) in dy.chunks(wo).enumerate() {
                let dst = &mut dx[(r / fy) * w..(r / fy + 1) * w];
                if fx == 2 {
                    for (d, block) in dst.iter_mut().zip(row.chunks_exact(2)) {
                        *d += block[0] + block[1];
                    }
                } else {
                    for (d, block) in dst.iter_mut().zip(row.chunks(fx)) {
                        *d += block.iter().sum::<f32>();
                    }
                }
            }
        });
        Ok((CpuStorage::F32(dx), Shape::from((n, c, h, w))))
    }
}

/// `[n, c, h, w] → [c]`: the sum over images and pixels of each channel (a convolution
/// bias's gradient).
pub(crate) struct ChannelSum;

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "nanoml-channel-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        channel_sums(contiguous(s, l, "channel sum input")?, None, l.shape())
    }
}

/// `(dy, y) → [c]`: [`ChannelSum`] of `dy` where `y > 0` (a convolution bias's gradient
/// through a fused ReLU).
pub(crate) struct MaskedChannelSum;

impl CustomOp2 for MaskedChannelSum {
    fn name(&self) -> &'static str {
        "nanoml-masked-channel-sum"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let mask = contiguous(s2, l2, "channel sum mask")?;
        channel_sums(contiguous(s1, l1, "channel sum input")?, Some(mask), l1.shape())
    }
}

/// Sum of `x` where `mask` (if any) is positive: 16 f32 partial sums (independent, so the
/// loop vectorises and does not wait on one accumulator's latency), each over every 16th
/// value of a plane, then added in f64.
pub(crate) fn lane_sum(x: &[f32], mask: Option<&[f32]>) -> f64 {
    const LANES: usize = 16;
    let mut lanes = [0f32; LANES];
    let keep = |v: f32, m: f32| if m > 0.0 { v } else { 0.0 };
    match mask {
        None => {
            let mut chunks = x.chunks_exact(LANES);
            for c in chunks.by_ref() {
                lanes.iter_mut().zip(c).for_each(|(l, &v)| *l += v);
            }
            lanes.iter_mut().zip(chunks.remainder()).for_each(|(l, &v)| *l += v);
        }
        Some(m) => {
            let (mut xc, mut mc) = (x.chunks_exact(LANES), m.chunks_exact(LANES));
            for (c, m) in xc.by_ref().zip(mc.by_ref()) {
                lanes.iter_mut().zip(c.iter().zip(m)).for_each(|(l, (&v, &m))| *l += keep(v, m));
            }
            lanes.iter_mut().zip(xc.remainder().iter().zip(mc.remainder())).for_each(|(l, (&v, &m))| *l += keep(v, m));
        }
    }
    lanes_total(&lanes)
}

/// Per-channel sums of `x` (shape `shape`, NCHW) where `mask` (if any) is positive,
/// accumulated in f64.
fn channel_sums(x: &[f32], mask: Option<&[f32]>, shape: &Shape) -> candle_core::Result<(CpuStorage, Shape)> {
    let (n, c, h, w) = shape.dims4()?;
    let plane = h * w;
    let sums: Vec<f64> = match mask {
        _ if plane == 0 => vec![0.0; n * c],
        None => x.par_chunks(plane).map(|p| lane_sum(p, None)).collect(),
        Some(m) if m.len() == x.len() => {
            x.par_chunks(plane).zip(m.par_chunks(plane)).map(|(p, m)| lane_sum(p, Some(m))).collect()
        }
        Some(m) => candle_core::bail!("masked channel sum: {} values against a mask of {}", x.len(), m.len()),
    };
    let out = (0..c).map(|ch| (0..n).map(|i| sums[i * c + ch]).sum::<f64>() as f32).collect();
    Ok((CpuStorage::F32(out), Shape::from(c)))
}

/// Inverted dropout with a mask drawn from `seed`: `x · m`, `m` = `1 / keep` with
/// probability `keep`, else 0. The mask is drawn in fixed chunks of 16 Ki elements, each
/// from its own Xoshiro256++ stream (seed derived from `seed` and the chunk's index), so it
/// depends only on the seed and is drawn in parallel. The gradient is the same op applied
/// to `dy`: the mask is drawn again rather than stored.
#[derive(Clone, Copy)]
pub(crate) struct Dropout {
    pub(crate) seed: u64,
    pub(crate) keep: f32,
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "nanoml-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        const CHUNK: usize = 1 << 14;
        let x = contiguous(s, l, "dropout input")?;
        let (keep, scale) = (self.keep, 1.0 / self.keep);
        let mut y = zeros(x.len());
        y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).enumerate().for_each(|(c, (y, x))| {
            let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(nanoml_core::derive_seed(self.seed, c as u64));
            for (y, &x) in y.iter_mut().zip(x) {
                // A bit mask, not a branch: kept or not is a coin flip the CPU cannot predict.
                // (Dropped values are exactly 0, even where `x` is infinite or NaN.)
                let bits = u32::from(rng.uniform_f32() < keep).wrapping_neg();
                *y = f32::from_bits((x * scale).to_bits() & bits);
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(self)?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};
    use nanoml_core::Xoshiro256PlusPlus;
    use proptest::prelude::*;

    use super::super::{max_pool2d, relu, upsample_nearest2d};
    use super::*;

    #[test]
    fn prelu_planes_agree_with_and_without_vector_instructions() {
        // Every tail length, signed zeros, infinities and NaN among the values.
        let special = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e-30, -1e-30];
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        for n in 0..70 {
            let mut draw = |i: usize| {
                if i.is_multiple_of(5) { special[i / 5 % special.len()] } else { rng.uniform_f32() * 4.0 - 2.0 }
            };
            let x: Vec<f32> = (0..n).map(&mut draw).collect();
            let dy: Vec<f32> = (0..n).map(|i| draw(i + 3)).collect();
            let (mut y, mut y_ref) = (vec![9.0; n], vec![9.0; n]);
            prelu_plane(&x, &mut y, 0.3);
            prelu_plane_portable(&x, &mut y_ref, 0.3);
            let bits =
                |v: &[f32]| v.iter().map(|v| if v.is_nan() { u32::MAX } else { v.to_bits() }).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&y_ref), "forward, n = {n}");
            let (mut dx, mut dx_ref) = (vec![9.0; n], vec![9.0; n]);
            let (da, da_ref) =
                (prelu_grad_plane(&x, &dy, &mut dx, 0.3), prelu_grad_plane_portable(&x, &dy, &mut dx_ref, 0.3));
            assert_eq!(bits(&dx), bits(&dx_ref), "input gradient, n = {n}");
            let close = (da - da_ref).abs() <= 1e-5 * (1.0 + da_ref.abs());
            assert!(
                close || (da.is_nan() && da_ref.is_nan()) || da == da_ref,
                "slope gradient, n = {n}: {da} vs {da_ref}"
            );
        }
    }

    #[test]
    fn shifted_sums_agree_with_and_without_vector_instructions() {
        // Every tail length, with and without PReLU, against f64 sums; NaN and infinities
        // give NaN or infinite sums either way.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        for n in 0..70 {
            let x: Vec<f32> = (0..n).map(|_| rng.uniform_f32() * 4.0 - 1.5).collect();
            for slope in [1.0, 0.2] {
                let exact = x.iter().map(|&v| f64::from(if v <= 0.0 { slope * v } else { v }) - 0.25);
                let (e1, e2) = (exact.clone().sum::<f64>(), exact.map(|d| d * d).sum::<f64>());
                for (s1, s2) in [shifted_sums(&x, 0.25, slope), shifted_sums_portable(&x, 0.25, slope)] {
                    assert!((s1 - e1).abs() <= 1e-5 * (1.0 + e1.abs()), "n = {n}: {s1} vs {e1}");
                    assert!((s2 - e2).abs() <= 1e-5 * (1.0 + e2.abs()), "n = {n}: {s2} vs {e2}");
                }
            }
            for special in [f32::NAN, f32::INFINITY] {
                let mut y = x.clone();
                y.push(special);
                let (s1, s2) = shifted_sums(&y, 0.25, 0.2);
                let (r1, r2) = shifted_sums_portable(&y, 0.25, 0.2);
                assert_eq!((s1.is_nan(), s2.is_nan()), (r1.is_nan(), r2.is_nan()), "n = {n}, {special}");
            }
        }
    }

    #[test]
    fn buffers_advised_into_huge_pages_hold_zeros() {
        // Below and above the advice's threshold, and not a whole number of huge pages.
        for n in [1000, HUGE_PAGE_MIN / 4 + 17] {
            for mut v in [zeros(n), zeroed(n)] {
                assert_eq!(v.len(), n);
                assert!(v.iter().all(|&x| x == 0.0));
                v[n - 1] = 1.0;
                assert_eq!(v.iter().sum::<f32>(), 1.0);
            }
        }
    }

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let v: Vec<f32> = (0..shape.iter().product()).map(|_| rng.uniform_f32() * 2.0 - 1.0).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    /// `k × k` max pooling of `x` equals candle's, and its gradient sends each output's
    /// gradient to the first maximum of its window (direct loops).
    fn max_pooling_matches_direct_loops(x: &Tensor, k: usize, seed: u64) -> Result<(), TestCaseError> {
        let (n, c, h, w) = x.dims4().unwrap();
        let x = Var::from_tensor(x).unwrap();
        let y = max_pool2d(&x, k).unwrap();
        prop_assert_eq!(values(&y), values(&x.max_pool2d(k).unwrap()));
        let weighting = random(y.dims(), seed ^ 1);
        let grad = values((&y * &weighting).unwrap().sum_all().unwrap().backward().unwrap().get(&x).unwrap());
        let (xv, rv) = (values(&x), values(&weighting));
        let (ho, wo) = (h / k, w / k);
        let mut expected = vec![0f32; xv.len()];
        for p in 0..n * c {
            for (oy, ox) in (0..ho).flat_map(|oy| (0..wo).map(move |ox| (oy, ox))) {
                let window = (0..k * k).map(|j| p * h * w + (oy * k + j / k) * w + ox * k + j % k);
                let best =
                    window.clone().fold(window.clone().next().unwrap(), |b, i| if xv[i] > xv[b] { i } else { b });
                expected[best] += rv[(p * ho + oy) * wo + ox];
            }
        }
        prop_assert_eq!(grad, expected);
        Ok(())
    }

    /// Output and input gradient of `ours` and `theirs` on `x`, the loss weighted by a
    /// random tensor, equal within 1e-5 relative.
    fn same_as_candle(
        x: &Tensor,
        ours: impl Fn(&Tensor) -> Tensor,
        theirs: impl Fn(&Tensor) -> Tensor,
        seed: u64,
    ) -> Result<(), TestCaseError> {
        let x = Var::from_tensor(x).unwrap();
        let (a, b) = (ours(&x), theirs(&x));
        prop_assert_eq!(a.dims(), b.dims());
        prop_assert_eq!(values(&a), values(&b));
        let weighting = random(a.dims(), seed ^ 1);
        let grad =
            |y: &Tensor| values((y * &weighting).unwrap().sum_all().unwrap().backward().unwrap().get(&x).unwrap());
        for (g, h) in grad(&a).into_iter().zip(grad(&b)) {
            prop_assert!((g - h).abs() <= 1e-5 * (1.0 + h.abs()), "gradient {} against candle's {}", g, h);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn relu_equals_candles(n in 1usize..4, c in 1usize..4, h in 1usize..9, w in 1usize..9, seed in any::<u64>()) {
            same_as_candle(&random(&[n, c, h, w], seed), |x| relu(x).unwrap(), |x| x.relu().unwrap(), seed)?;
        }

        /// The output equals candle's; the gradient equals direct loops that send each
        /// output's gradient to its window's maximum. (candle 0.11's own max-pooling
        /// gradient is that divided by k², and misplaced when k does not divide the size.)
        #[test]
        fn max_pooling_equals_candle_and_direct_loops(n in 1usize..4, c in 1usize..4, k in 1usize..4, h in 3usize..13, w in 3usize..80, seed in any::<u64>()) {
            max_pooling_matches_direct_loops(&random(&[n, c, h, w], seed), k, seed)?;
        }

        /// With many ties (values from {0, 1, 2}) each window's gradient goes to its first
        /// maximum, on the 2 × 2 fast path (rows of 32 values or more: its vector loop) and
        /// the general one alike.
        #[test]
        fn max_pooling_sends_tied_gradients_to_the_first_maximum(n in 1usize..3, c in 1usize..3, k in 1usize..4, h in 3usize..13, w in 3usize..80, seed in any::<u64>()) {
            max_pooling_matches_direct_loops(&(random(&[n, c, h, w], seed) + 1.0).unwrap().round().unwrap(), k, seed)?;
        }

        #[test]
        fn upsampling_equals_candles(n in 1usize..4, c in 1usize..4, f in 1usize..4, h in 1usize..7, w in 1usize..7, seed in any::<u64>()) {
            same_as_candle(
                &random(&[n, c, h, w], seed),
                |x| upsample_nearest2d(x, f).unwrap(),
                |x| x.upsample_nearest2d(h * f, w * f).unwrap(),
                seed,
            )?;
        }

        #[test]
        fn channel_sums_equal_candles(n in 1usize..4, c in 1usize..5, h in 0usize..9, w in 1usize..9, seed in any::<u64>()) {
            let x = random(&[n, c, h, w], seed);
            let ours = values(&x.apply_op1_no_bwd(&ChannelSum).unwrap());
            let theirs = values(&x.sum((0, 2, 3)).unwrap());
            for (a, b) in ours.into_iter().zip(theirs) {
                prop_assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()));
            }
        }
    }

    /// Ties: the gradient goes to the first maximum of the window only, as in PyTorch, and
    /// ReLU's gradient is 0 at 0.
    #[test]
    fn ties_follow_pytorch() {
        let x = Var::from_tensor(&Tensor::new(&[[[[1f32, 1.0], [1.0, 0.0]]]], &Device::Cpu).unwrap()).unwrap();
        let grads = max_pool2d(&x, 2).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(values(grads.get(&x).unwrap()), vec![1.0, 0.0, 0.0, 0.0]);
        let z = Var::from_tensor(&Tensor::new(&[0f32, 2.0, -1.0], &Device::Cpu).unwrap()).unwrap();
        let grads = relu(&z).unwrap().sum_all().unwrap().backward().unwrap();
        assert_eq!(values(grads.get(&z).unwrap()), vec![0.0, 1.0, 0.0]);
    }

    /// The gradient uses the forward's mask: `r / keep` where an element was kept, else 0;
    /// the mask depends on the seed only.
    #[test]
    fn dropout_gradient_reuses_the_mask() {
        use super::super::{Mode, dropout};
        let x = Var::from_tensor(&(random(&[3, 4, 50, 70], 5).abs().unwrap() + 0.5).unwrap()).unwrap();
        let y = dropout(&x, 0.3, Mode::Train { seed: 11 }, 2).unwrap();
        let r = random(y.dims(), 6);
        let grad = values((&y * &r).unwrap().sum_all().unwrap().backward().unwrap().get(&x).unwrap());
        let (yv, rv) = (values(&y), values(&r));
        let kept = yv.iter().filter(|&&v| v != 0.0).count() as f64 / yv.len() as f64;
        assert!((kept - 0.7).abs() < 0.01, "kept {kept}");
        for ((g, y), r) in grad.iter().zip(&yv).zip(&rv) {
            let want = if *y != 0.0 { r / 0.7 } else { 0.0 };
            assert!((g - want).abs() <= 1e-5 * (1.0 + want.abs()), "gradient {g}, want {want}");
        }
        assert_eq!(yv, values(&dropout(&x, 0.3, Mode::Train { seed: 11 }, 2).unwrap()));
        assert_ne!(yv, values(&dropout(&x, 0.3, Mode::Train { seed: 12 }, 2).unwrap()));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let x = Tensor::zeros((1, 1, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(max_pool2d(&x, 3).is_err());
        assert!(max_pool2d(&x, 0).is_err());
        assert!(upsample_nearest2d(&x, 0).is_err());
    }
}
