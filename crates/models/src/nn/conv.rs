//! 2-D convolution on the CPU as candle custom ops, forward and backward.
//!
//! candle 0.11 computes a convolution's input gradient with a transposed convolution and
//! its weight gradient with a convolution of transposed tensors, both through generic CPU
//! loops; its backward pass takes about five times the forward. Here all three products
//! are matrix products over *tiles* of output pixels, each tile's im2col matrix small
//! enough to stay in cache:
//!
//! - forward: `y[:, tile] = W · cols(tile) + b`;
//! - input gradient: `dcols = Wᵀ · dy[:, tile]`, added back into `dx` (col2im); at stride
//!   2, by phases of the input instead (see [`input_gradient_phase_groups`] and
//!   [`direct::input_gradient_phases`]);
//! - weight gradient: `dW += dy[:, tile] · cols(tile)ᵀ`, one partial sum per thread;
//!
//! with `W` the weight as an `[out, in·k·k]` matrix and `cols(tile)` the `[in·k·k, T]`
//! matrix of the input pixels each output pixel of the tile sees. Products run on the
//! `gemm` crate (candle's own CPU matrix product); images are spread over rayon's threads,
//! or, for batches smaller than the thread count, each product is. Padding (also
//! asymmetric) is applied while building `cols`, never by copying the input.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::sync::{Arc, OnceLock};

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::direct::{self, Epilogue};
use super::norm::{self, Act};
use super::planes::{self, ChannelSum, MaskedChannelSum, contiguous, zeroed, zeros};

/// Shape of one convolution: input `[n, c, h, w]`, weight `[o, c, k, k]`, output
/// `[n, o, ho, wo]`, with `stride` and zero padding `top`/`left` (bottom and right follow
/// from the output size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) n: usize,
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) o: usize,
    pub(crate) k: usize,
    pub(crate) stride: usize,
    pub(crate) top: usize,
    pub(crate) left: usize,
    pub(crate) ho: usize,
    pub(crate) wo: usize,
}

impl Geometry {
    /// The geometry of `x` (`[n, c, h, w]`) convolved with `k × k` kernels to `o`
    /// channels, padded by `[top, bottom, left, right]`.
    pub(crate) fn new(
        (n, c, h, w): (usize, usize, usize, usize),
        o: usize,
        k: usize,
        stride: usize,
        [top, bottom, left, right]: [usize; 4],
    ) -> candle_core::Result<Self> {
        let (hp, wp) = (h + top + bottom, w + left + right);
        if k == 0 || stride == 0 || hp < k || wp < k {
            candle_core::bail!("convolution: kernel {k} (stride {stride}) does not fit the padded input {hp}×{wp}")
        }
        Ok(Geometry { n, c, h, w, o, k, stride, top, left, ho: (hp - k) / stride + 1, wo: (wp - k) / stride + 1 })
    }

    pub(crate) fn rows(&self) -> usize {
        self.c * self.k * self.k
    }

    fn pixels(&self) -> usize {
        self.ho * self.wo
    }

    /// Output pixels per tile: the tile's im2col matrix holds about 64 Ki floats (256 KiB).
    fn tile(&self) -> usize {
        #[cfg(test)]
        if let Some(t) = tests::tile_override() {
            return t.min(self.pixels()).max(1);
        }
        (65_536 / self.rows()).max(64).min(self.pixels()).max(1)
    }

    /// Images per group in the backward kernels. When an image has few output pixels (the
    /// deep layers of a network), a product per image is too thin for the gradients: the
    /// weight gradient would add a rank-`pixels` update to the whole weight matrix per
    /// image. Groups of images then share one product, their columns side by side. (The
    /// forward pass is faster per image: its products are already wide in the channels.)
    fn group(&self) -> usize {
        let target = self.tile_target();
        if self.pixels() >= target { 1 } else { target.div_ceil(self.pixels().max(1)).clamp(1, self.n.max(1)) }
    }

    /// Columns a product should have: a 256 KiB im2col tile, but at least 256.
    fn tile_target(&self) -> usize {
        #[cfg(test)]
        if let Some(t) = tests::tile_override() {
            return t;
        }
        (65_536 / self.rows()).max(256)
    }

    /// Tap `t` of the weight's order (a row of the im2col matrix) as `(input channel, kernel
    /// row, kernel column)`.
    pub(crate) fn tap(&self, t: usize) -> (usize, usize, usize) {
        (t / (self.k * self.k), t / self.k % self.k, t % self.k)
    }

    /// At stride 2, the kernel rows (with `pad = top`; columns with `pad = left`) that reach
    /// input rows of parity `p`, each with its shift: input row `2a + p` receives from
    /// kernel row `ky` the gradient of output row `a + shift` (where that row exists).
    pub(crate) fn phase_taps(&self, pad: usize, p: usize) -> Vec<(usize, isize)> {
        let q = (p + pad) as isize;
        (0..self.k as isize).filter(|&k| (q - k) % 2 == 0).map(|k| (k as usize, (q - k) / 2)).collect()
    }

    /// Whether `cols` is the input itself (1 × 1, stride 1, no padding).
    fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.ho == self.h && self.wo == self.w
    }

    /// Range of output columns `ox` whose input column `ox·stride + kx − left` lies inside
    /// the image.
    fn valid_ox(&self, kx: usize) -> (usize, usize) {
        let first = self.left.saturating_sub(kx).div_ceil(self.stride);
        let past = (self.w + self.left).saturating_sub(kx).div_ceil(self.stride).min(self.wo);
        (first.min(past), past)
    }
}

thread_local! {
    /// The im2col tile of the current thread, reused across calls.
    static COLS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The masked output-gradient tile of the current thread (fused ReLU).
    static GRAD: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// A masked output-gradient image of the current thread (fused ReLU, stride 1).
    static MASKED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's tile buffer, at least `len` long.
fn with_cols<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_buffer(&COLS, len, f)
}

/// Runs `f` with the first `len` values of this thread's buffer `key`, grown to `len` if
/// shorter (its values are whatever the last use left).
pub(crate) fn with_buffer<R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        // Re-entered on this thread (a nested parallel call): use a fresh buffer.
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// For each output row segment of the tile `p0..p1`: `(oy, ox0, len, offset in tile)`.
fn segments(g: &Geometry, p0: usize, p1: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
    let mut p = p0;
    std::iter::from_fn(move || {
        if p >= p1 {
            return None;
        }
        let (oy, ox0) = (p / g.wo, p % g.wo);
        let len = (g.wo - ox0).min(p1 - p);
        let seg = (oy, ox0, len, p - p0);
        p += len;
        Some(seg)
    })
}

/// Input row `oy·stride + ky − top`, if inside the image.
fn input_row(g: &Geometry, oy: usize, ky: usize) -> Option<usize> {
    (oy * g.stride + ky).checked_sub(g.top).filter(|&iy| iy < g.h)
}

/// An input image as [`im2col`] reads it.
#[derive(Clone, Copy)]
enum Image<'a> {
    /// `[c, h, w]` as it is: each tap's row segments are copied as runs, the padding filled
    /// in around them.
    Plain(&'a [f32]),
    /// Zero-padded in a [`direct::Layout`]: each tap's values are gathered at a fixed
    /// offset. For strided or narrow outputs, whose row segments are too short (4 values at
    /// 4 × 4) for the per-segment bookkeeping of [`Image::Plain`] to pay off.
    Padded { data: &'a [f32], layout: direct::Layout },
}

/// Calls `f` with image `xi` (`[c, h, w]`) prepared for [`im2col`]: padded in this thread's
/// reusable buffer for strided or narrow outputs, as it is otherwise.
fn with_image<R>(g: &Geometry, xi: &[f32], f: impl FnOnce(Image<'_>) -> R) -> R {
    if g.stride == 1 && g.wo >= 32 {
        return f(Image::Plain(xi));
    }
    // Every tap of every output pixel lies inside.
    let layout = direct::Layout::new(g, direct::Layout::rows_for(g, g.ho));
    direct::with_padded(g, xi, None, &layout, 1, |data| f(Image::Padded { data, layout }))
}

/// Fills `cols` (`[c·k·k, p1 − p0]`, row-major with row stride `ld`) with the input
/// pixels that output pixels `p0..p1` of image `x` (see [`with_image`]) see, zero where
/// they fall in the padding.
fn im2col(g: &Geometry, x: Image<'_>, p0: usize, p1: usize, cols: &mut [f32], ld: usize) {
    match x {
        Image::Plain(x) => im2col_plain(g, x, p0, p1, cols, ld),
        Image::Padded { data, layout } => {
            // Offsets from the tap's own position; the padded image is far below 2³² values.
            let at = direct::Gather::new((p0..p1).map(|p| layout.pixel(p / g.wo, p % g.wo) as u32).collect());
            for (t, row) in cols.chunks_mut(ld).take(g.rows()).enumerate() {
                at.run(&data[layout.tap(g, t)..], &mut row[..p1 - p0]);
            }
        }
    }
}

/// [`im2col`] of an image as it is, `[c, h, w]`.
fn im2col_plain(g: &Geometry, x: &[f32], p0: usize, p1: usize, cols: &mut [f32], ld: usize) {
    let t = p1 - p0;
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..g.k {
            for kx in 0..g.k {
                let row = &mut cols[((c * g.k + ky) * g.k + kx) * ld..][..t];
                let (first, past) = g.valid_ox(kx);
                for (oy, ox0, len, at) in segments(g, p0, p1) {
                    let dst = &mut row[at..at + len];
                    let Some(iy) = input_row(g, oy, ky) else {
                        dst.fill(0.0);
                        continue;
                    };
                    let src = &plane[iy * g.w..(iy + 1) * g.w];
                    let (a, b) = (first.clamp(ox0, ox0 + len), past.clamp(ox0, ox0 + len));
                    if a >= b {
                        // The whole segment lies in the padding.
                        dst.fill(0.0);
                        continue;
                    }
                    dst[..a - ox0].fill(0.0);
                    dst[b - ox0..].fill(0.0);
                    let ix0 = a * g.stride + kx - g.left;
                    if g.stride == 1 {
                        dst[a - ox0..b - ox0].copy_from_slice(&src[ix0..ix0 + (b - a)]);
                    } else {
                        for (d, s) in dst[a - ox0..b - ox0].iter_mut().zip(src[ix0..].iter().step_by(g.stride)) {
                            *d = *s;
                        }
                    }
                }
            }
        }
    }
}

/// Adds `cols` (as built by [`im2col`] for `p0..p1`, row stride `ld`) back into image
/// `dx` (`[c, h, w]`): the adjoint of [`im2col`].
fn col2im(g: &Geometry, cols: &[f32], p0: usize, p1: usize, dx: &mut [f32], ld: usize) {
    let t = p1 - p0;
    for c in 0..g.c {
        let plane = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..g.k {
            for kx in 0..g.k {
                let row = &cols[((c * g.k + ky) * g.k + kx) * ld..][..t];
                let (first, past) = g.valid_ox(kx);
                for (oy, ox0, len, at) in segments(g, p0, p1) {
                    let Some(iy) = input_row(g, oy, ky) else { continue };
                    let dst = &mut plane[iy * g.w..(iy + 1) * g.w];
                    let (a, b) = (first.clamp(ox0, ox0 + len), past.clamp(ox0, ox0 + len));
                    if a >= b {
                        continue;
                    }
                    let ix0 = a * g.stride + kx - g.left;
                    let src = &row[at + a - ox0..at + b - ox0];
                    if g.stride == 1 {
                        for (d, s) in dst[ix0..ix0 + (b - a)].iter_mut().zip(src) {
                            *d += *s;
                        }
                    } else {
                        for (d, s) in dst[ix0..].iter_mut().step_by(g.stride).zip(src) {
                            *d += *s;
                        }
                    }
                }
            }
        }
    }
}

/// A row-major matrix view for [`matmul`]: `rows × cols` with the given strides.
#[derive(Clone, Copy)]
struct Mat {
    ptr: *const f32,
    row_stride: usize,
    col_stride: usize,
}

/// `dst (m × n, row stride dst_rs) = [dst +] lhs (m × k) · rhs (k × n)`.
///
/// # Safety
/// Every element the shapes and strides address must lie inside the buffers, and `dst`
/// must not overlap `lhs` or `rhs`.
#[allow(unsafe_code, clippy::too_many_arguments)]
unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: Mat,
    rhs: Mat,
    threads: usize,
) {
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: forwarded from the caller; the strides fit in isize as they index buffers.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs.ptr,
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.ptr,
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Threads for each matrix product: all of them when images are fewer than threads (one
/// image at a time), else one (images in parallel).
fn product_threads(images: usize) -> usize {
    let threads = rayon::current_num_threads();
    if images < threads { threads } else { 1 }
}

/// Runs `f(i)` for every image, in parallel unless the products already are.
fn for_images<T: Send>(out: &mut [T], per_image: usize, images: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if per_image == 0 {
        return;
    }
    if product_threads(images) > 1 {
        out.chunks_mut(per_image).enumerate().for_each(|(i, o)| f(i, o));
    } else {
        out.par_chunks_mut(per_image).enumerate().for_each(|(i, o)| f(i, o));
    }
}

/// The forward op: `(x, weight, bias) → y`, all f32 on the CPU, optionally followed by a
/// ReLU. The fused ReLU saves two tensors the size of the output per step: its own output,
/// and its gradient, which the backward kernels mask tile by tile instead.
pub(crate) struct Conv2dOp {
    pub(crate) stride: usize,
    /// Zero padding `[top, bottom, left, right]`.
    pub(crate) pad: [usize; 4],
    pub(crate) relu: bool,
}

impl Conv2dOp {
    fn geometry(&self, x: &Shape, w: &Shape) -> candle_core::Result<Geometry> {
        let (o, c, kh, kw) = w.dims4()?;
        let dims = x.dims4()?;
        if dims.1 != c || kh != kw {
            candle_core::bail!("convolution: input {x:?} does not fit weight {w:?} (square kernels only)")
        }
        Geometry::new(dims, o, kh, self.stride, self.pad)
    }
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "nanoml-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.geometry(xl.shape(), wl.shape())?;
        let (x, weight, bias) = (
            contiguous(xs, xl, "convolution input")?,
            contiguous(ws, wl, "convolution weight")?,
            contiguous(bs, bl, "convolution bias")?,
        );
        if bias.len() != g.o {
            candle_core::bail!("convolution: bias has {} values for {} channels", bias.len(), g.o)
        }
        let epilogue = if self.relu { Epilogue::Relu } else { Epilogue::Identity };
        let y = forward(&g, x, weight, bias, epilogue);
        Ok((CpuStorage::F32(y), Shape::from((g.n, g.o, g.ho, g.wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.geometry(x.shape(), weight.shape())?;
        let (dy, y, relu) = (dy.contiguous()?, y.contiguous()?, self.relu);
        let dx = if x.track_op() {
            Some(dy.apply_op3_no_bwd(weight, &y, &ConvInputGrad { g, relu, planes: None })?)
        } else {
            None
        };
        if weight.track_op() && bias.track_op() && direct::suits_weight_gradient(&g) {
            // The direct weight gradient sums the bias gradient in the same pass: one
            // `[o·c·k·k + o]` tensor, split into views.
            let both = dy.apply_op3_no_bwd(x, &y, &ConvWeightGrad { g, relu, bias: true })?;
            let size = g.o * g.rows();
            let dw = both.narrow(0, 0, size)?.reshape((g.o, g.c, g.k, g.k))?;
            return Ok((dx, Some(dw), Some(both.narrow(0, size, g.o)?)));
        }
        let dw = if weight.track_op() {
            Some(dy.apply_op3_no_bwd(x, &y, &ConvWeightGrad { g, relu, bias: false })?)
        } else {
            None
        };
        let db = match (bias.track_op(), relu) {
            (false, _) => None,
            (true, false) => Some(dy.apply_op1_no_bwd(&ChannelSum)?),
            (true, true) => Some(dy.apply_op2_no_bwd(&y, &MaskedChannelSum)?),
        };
        Ok((dx, dw, db))
    }
}

/// A convolution with its fused ReLU, then `k × k` max pooling with stride `k`, as one op:
/// `(x, weight, bias) → maxpool(relu(conv(x) + bias))`. The convolution's output stays
/// inside the op for its backward pass instead of becoming a node of candle's gradient
/// graph, where candle would zero a tensor of its size and add its gradient into it on
/// every step: three passes over the largest activation of a block.
pub(crate) struct ConvPoolOp {
    /// The convolution (`relu` set).
    pub(crate) conv: Conv2dOp,
    pub(crate) pool: planes::MaxPool,
    /// The convolution's output, from the forward pass.
    pub(crate) saved: OnceLock<Tensor>,
}

impl CustomOp3 for ConvPoolOp {
    fn name(&self) -> &'static str {
        "nanoml-conv2d-relu-max-pool2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (full, shape) = self.conv.cpu_fwd(xs, xl, ws, wl, bs, bl)?;
        let pooled = candle_core::CustomOp1::cpu_fwd(&self.pool, &full, &Layout::contiguous(&shape))?;
        let CpuStorage::F32(values) = full else {
            candle_core::bail!("convolution → max pooling: the convolution's output is not f32")
        };
        let full = Tensor::from_vec(values, shape, &candle_core::Device::Cpu)?;
        if self.saved.set(full).is_err() {
            candle_core::bail!("convolution → max pooling: the op ran twice")
        }
        Ok(pooled)
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        pooled: &Tensor,
        dpooled: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(full) = self.saved.get() else {
            candle_core::bail!("convolution → max pooling: backward before forward")
        };
        let Some(dfull) = candle_core::CustomOp1::bwd(&self.pool, full, pooled, dpooled)? else {
            candle_core::bail!("convolution → max pooling: no gradient through the pooling")
        };
        self.conv.bwd(x, weight, bias, full, &dfull)
    }
}

/// Convolution, optional PReLU, batch normalisation and an activation as one op: `(x,
/// weight, [bias, (slope,) γ, β]) → act(γ · (prelu(conv(x) + bias) − mean) · inv_std + β)`,
/// per output channel.
///
/// With fixed statistics (evaluation) the forward kernels apply all of it as their
/// epilogue, while the sums are in registers; the backward pass recomputes the
/// convolution's output and composes the gradients from it (evaluation seldom needs
/// them). With the batch's statistics (training) the op keeps the convolution's output for
/// its backward pass, which computes the gradient reaching the convolution and those of
/// the PReLU and normalisation parameters in two passes: two tensors per layer instead of
/// three or four, and one node of the gradient graph instead of two or three.
pub(crate) struct ConvNormOp {
    pub(crate) stride: usize,
    /// Zero padding `[top, bottom, left, right]`.
    pub(crate) pad: [usize; 4],
    pub(crate) stats: Statistics,
    pub(crate) prelu: bool,
    pub(crate) act: Act,
}

/// Where a [`ConvNormOp`]'s statistics come from.
pub(crate) enum Statistics {
    /// Evaluation: the running mean and `1 / √(var + ε)`.
    Fixed { mean: Vec<f32>, inv_std: Vec<f32> },
    /// Training: computed from the batch; the forward pass leaves them here with the
    /// convolution's output.
    Batch { eps: f32, saved: Arc<OnceLock<norm::Saved>> },
}

impl ConvNormOp {
    fn conv(&self) -> Conv2dOp {
        Conv2dOp { stride: self.stride, pad: self.pad, relu: false }
    }

    /// Per-channel parameter vectors in `params`: bias, slope (with PReLU), γ, β.
    fn parts(&self) -> usize {
        if self.prelu { 4 } else { 3 }
    }
}

impl CustomOp3 for ConvNormOp {
    fn name(&self) -> &'static str {
        "nanoml-conv2d-batch-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.conv().geometry(xl.shape(), wl.shape())?;
        let (x, weight, params) = (
            contiguous(xs, xl, "convolution input")?,
            contiguous(ws, wl, "convolution weight")?,
            contiguous(ps, pl, "layer parameters")?,
        );
        if params.len() != self.parts() * g.o {
            candle_core::bail!("convolution → batch norm: parameters do not fit {} channels", g.o)
        }
        let part = |i: usize| &params[i * g.o..(i + 1) * g.o];
        let (bias, gamma, beta) = (part(0), part(self.parts() - 2), part(self.parts() - 1));
        let slope = self.prelu.then(|| part(1));
        let shape = Shape::from((g.n, g.o, g.ho, g.wo));
        let (mean, inv_std) = match &self.stats {
            Statistics::Fixed { mean, inv_std } => (mean, inv_std),
            Statistics::Batch { eps, saved } => {
                // The kernels in tap order, if made, stay for the input gradient.
                let (z, planes) = forward_masked(&g, x, None, weight, bias, Epilogue::Identity, true);
                let (y, stats) =
                    norm::normalise_batch(&z, (g.n * g.o, g.o, g.pixels()), slope, gamma, beta, *eps, self.act)?;
                if saved.set(norm::Saved { z, stats, planes: planes.map(Arc::new) }).is_err() {
                    candle_core::bail!("convolution → batch norm: the op ran twice")
                }
                return Ok((CpuStorage::F32(y), shape));
            }
        };
        if mean.len() != g.o || inv_std.len() != g.o {
            candle_core::bail!("convolution → batch norm: statistics do not fit {} channels", g.o)
        }
        let scale: Vec<f32> = gamma.iter().zip(inv_std).map(|(&g, &s)| g * s).collect();
        let shift: Vec<f32> = beta.iter().zip(mean).zip(&scale).map(|((&b, &m), &s)| b - m * s).collect();
        let y = forward(&g, x, weight, bias, Epilogue::Affine { slope, scale: &scale, shift: &shift, act: self.act });
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        params: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.conv().geometry(x.shape(), weight.shape())?;
        let (o, x) = (g.o, x.contiguous()?);
        let part = |i: usize| params.narrow(0, i * o, o);
        let (mean, inv_std) = match &self.stats {
            Statistics::Fixed { mean, inv_std } => (mean, inv_std),
            Statistics::Batch { saved, .. } => {
                let grad = norm::ConvNormGrad {
                    saved: saved.clone(),
                    gamma: part(self.parts() - 2)?.to_vec1()?,
                    slope: if self.prelu { Some(part(1)?.to_vec1()?) } else { None },
                    act: self.act,
                };
                let all = y.contiguous()?.apply_op2_no_bwd(&dy.contiguous()?, &grad)?;
                let dz = all.narrow(0, 0, y.elem_count())?.reshape(y.shape())?;
                let dparams = all.narrow(0, y.elem_count(), self.parts() * o)?;
                let planes = saved.get().and_then(|s| s.planes.clone());
                let (dx, dw) = self.conv_grads(g, &x, weight, &dz, planes)?;
                return Ok((dx, dw, Some(dparams)));
            }
        };
        let channels = |t: &Tensor| t.reshape((1, o, 1, 1));
        let fixed = |v: &[f32]| Tensor::from_slice(v, (1, o, 1, 1), x.device());
        let (mean, inv_std) = (fixed(mean)?, fixed(inv_std)?);
        // Back through the activation, at its output `y`.
        let positive = || y.gt(0.0)?.to_dtype(candle_core::DType::F32);
        let du = match self.act {
            Act::Identity => dy.clone(),
            Act::Relu => (dy * positive()?)?,
            // `α eᵘ = y + α` below 0.
            Act::Elu(alpha) => {
                let p = positive()?;
                (dy * (&p + ((y + f64::from(alpha))? * (1.0 - &p)?)?)?)?
            }
        };
        // The convolution's output `z`; `prelu(z) = z + (slope − 1) · z` where `z ≤ 0`.
        let z = x.apply_op3_no_bwd(weight, &part(0)?.contiguous()?, &self.conv())?;
        let prelu = match self.prelu {
            true => {
                let below = z.le(0.0)?.to_dtype(candle_core::DType::F32)?;
                let z_below = (&z * &below)?;
                Some((below, z_below, (channels(&part(1)?)? - 1.0)?))
            }
            false => None,
        };
        let activated = match &prelu {
            Some((_, z_below, slope_m1)) => (&z + z_below.broadcast_mul(slope_m1)?)?,
            None => z.clone(),
        };
        let normalised = activated.broadcast_sub(&mean)?.broadcast_mul(&inv_std)?;
        let sum = |t: &Tensor| t.sum((0, 2, 3));
        let (dbeta, dgamma) = (sum(&du)?, sum(&(&du * &normalised)?)?);
        let dp = du.broadcast_mul(&channels(&part(self.parts() - 2)?)?.broadcast_mul(&inv_std)?)?;
        let mut grads = vec![];
        let dz = match &prelu {
            Some((below, z_below, slope_m1)) => {
                grads.push(sum(&(&dp * z_below)?)?);
                (&dp + (&dp * below)?.broadcast_mul(slope_m1)?)?
            }
            None => dp,
        }
        .contiguous()?;
        grads.insert(0, sum(&dz)?);
        grads.extend([dgamma, dbeta]);
        let (dx, dw) = self.conv_grads(g, &x, weight, &dz, None)?;
        Ok((dx, dw, Some(Tensor::cat(&grads, 0)?)))
    }
}

impl ConvNormOp {
    /// The gradients of the convolution's input and weight (where tracked) from that of its
    /// output, `dz`; `planes` are the kernels in [`tap_major`] order if the forward pass
    /// made them.
    fn conv_grads(
        &self,
        g: Geometry,
        x: &Tensor,
        weight: &Tensor,
        dz: &Tensor,
        planes: Option<Arc<Vec<f32>>>,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // Without a fused ReLU the kernels ignore their third input: `dz` stands in.
        let dx = if x.track_op() {
            Some(dz.apply_op3_no_bwd(weight, dz, &ConvInputGrad { g, relu: false, planes })?)
        } else {
            None
        };
        let dw = if weight.track_op() {
            Some(dz.apply_op3_no_bwd(x, dz, &ConvWeightGrad { g, relu: false, bias: false })?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// `y = conv(x, weight) + bias` for all images, then `epilogue`: `[n, o, ho, wo]`.
fn forward(g: &Geometry, x: &[f32], weight: &[f32], bias: &[f32], epilogue: Epilogue<'_>) -> Vec<f32> {
    forward_masked(g, x, None, weight, bias, epilogue, false).0
}

/// [`forward`] of `x` zeroed where `mask` (the same shape) is not positive, one image at a
/// time in a reusable buffer. With `keep`, also the kernels in [`tap_major`] order where
/// the tap products made them, for the input gradient of a training step, which reads the
/// same: measured on the SqueezeNet-like network's layers (batch 32, 2 threads, shared and
/// remade alternated in one process), the backward pass of 512 → 1024 channels at 4 × 4
/// took 0.93× the time, 512 → 512 at stride 2 from 8 × 8 0.96× and 256 → 512 at 8 × 8
/// 0.98×.
fn forward_masked(
    g: &Geometry,
    x: &[f32],
    mask: Option<&[f32]>,
    weight: &[f32],
    bias: &[f32],
    epilogue: Epilogue<'_>,
    keep: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let (threads, image, len) = (product_threads(g.n), g.c * g.h * g.w, g.n * g.o * g.pixels());
    let inputs = |i: usize| (&x[i * image..(i + 1) * image], mask.map(|m| &m[i * image..(i + 1) * image]));
    if direct::suits(g) {
        let plan = direct::Plan::new(g, weight);
        let write = |y: &mut [MaybeUninit<f32>]| {
            for_images(y, g.o * g.pixels(), g.n, |i, yi| {
                let (xi, mi) = inputs(i);
                plan.forward_image(g, xi, mi, bias, epilogue, yi, threads);
            });
        };
        // SAFETY: `for_images` hands each image's `o · ho · wo` values to the direct
        // kernel, which writes every one of them.
        #[allow(unsafe_code)]
        return (unsafe { planes::written(len, write) }, None);
    }
    let mut y = zeros(len);
    if g.group() > 1 {
        if suits_taps(g) {
            let planes = tap_major(weight, g.o, g.c, g.k * g.k);
            forward_taps(g, x, mask, &Taps { weight: &planes, rotated: false }, bias, epilogue, &mut y);
            return (y, keep.then_some(planes));
        }
        forward_groups(g, x, mask, weight, bias, epilogue, &mut y);
        return (y, None);
    }
    for_images(&mut y, g.o * g.pixels(), g.n, |i, yi| match inputs(i) {
        (xi, None) => forward_image(g, xi, weight, bias, epilogue, yi, threads),
        (xi, Some(m)) => with_masked(xi, m, |buf| forward_image(g, buf, weight, bias, epilogue, yi, threads)),
    });
    (y, None)
}

/// Calls `f` with `x` zeroed where `mask` (the same length) is not positive, in this
/// thread's reusable buffer.
fn with_masked<R>(x: &[f32], mask: &[f32], f: impl FnOnce(&[f32]) -> R) -> R {
    with_buffer(&MASKED, x.len(), |buf| {
        for ((b, &v), &m) in buf.iter_mut().zip(x).zip(mask) {
            *b = if m > 0.0 { v } else { 0.0 };
        }
        f(buf)
    })
}

/// [`forward_masked`] for images with few output pixels (the deep layers of a network): per
/// group of images one product `W · cols` with the group's columns side by side, then each
/// image's planes (plus bias, then the epilogue) copied out. One product per image would stream the
/// whole weight matrix from memory for every image, each weight used only `pixels` times:
/// 19 MiB per image for a 512 → 1024 layer at 4 × 4.
#[allow(clippy::too_many_arguments)]
fn forward_groups(
    g: &Geometry,
    x: &[f32],
    mask: Option<&[f32]>,
    weight: &[f32],
    bias: &[f32],
    epilogue: Epilogue<'_>,
    y: &mut [f32],
) {
    let (rows, pixels, image) = (g.rows(), g.pixels(), g.c * g.h * g.w);
    for_groups(g, y, g.o * pixels, |i0, m, yg, threads| {
        let t = m * pixels;
        let images = &x[i0 * image..(i0 + m) * image];
        let mut product = |images: &[f32]| {
            with_cols(rows * t, |cols| {
                group_cols(g, images, 0, m, cols);
                with_buffer(&GRAD, g.o * t, |out| {
                    let w = Mat { ptr: weight.as_ptr(), row_stride: rows, col_stride: 1 };
                    let cols = Mat { ptr: cols.as_ptr(), row_stride: t, col_stride: 1 };
                    // SAFETY: `w` is `o × rows`, `cols` is `rows × t`, `out` holds `o × t`.
                    #[allow(unsafe_code)]
                    unsafe {
                        matmul(g.o, t, rows, out.as_mut_ptr(), t, false, w, cols, threads)
                    };
                    for (j, yi) in yg.chunks_mut(g.o * pixels).enumerate() {
                        for (o, ((plane, row), &b)) in yi.chunks_mut(pixels).zip(out.chunks(t)).zip(bias).enumerate() {
                            let row = &row[j * pixels..(j + 1) * pixels];
                            plane.iter_mut().zip(row).for_each(|(v, &r)| *v = r + b);
                            epilogue.apply(o, plane);
                        }
                    }
                })
            })
        };
        match mask {
            None => product(images),
            Some(mask) => with_masked(images, &mask[i0 * image..(i0 + m) * image], product),
        }
    });
}

/// Whether [`forward_taps`] computes the forward pass of a layer that [`forward_groups`]
/// would: a kernel wider than a pixel, and input channels enough for a product per tap
/// (`K = c`) to run as fast as one over all taps. Measured at 8 × 8 (batch 32, 2 threads,
/// both routes alternated in one process), the tap products against im2col: 64 → 64
/// channels 0.89–0.93×, 128 → 128 0.86–0.88×, 32 → 64 0.98–1.03×.
fn suits_taps(g: &Geometry) -> bool {
    #[cfg(test)]
    if tests::ANY_TAPS.load(std::sync::atomic::Ordering::Relaxed) {
        return g.k > 1;
    }
    g.k > 1 && g.c >= 64
}

/// The kernels `[o, c, taps]` as `taps` matrices `[o, c]`, for [`forward_taps`]. 3 × 3
/// kernels go 16 input channels at a time by AVX-512 gathers where the CPU has them:
/// measured inside squeeze_bn_elu's inference (2 threads, the four layers that reorder),
/// 1.7 ms per pass against 2.2 ms one value at a time; the reorder is bound by memory.
fn tap_major(weight: &[f32], o: usize, c: usize, taps: usize) -> Vec<f32> {
    let write = |out: &mut [MaybeUninit<f32>]| {
        // Per tap a plane of `o · c`; each output channel writes its row of every plane.
        let planes: Vec<_> = out.chunks_mut((o * c).max(1)).map(|p| p.as_mut_ptr() as usize).collect();
        let vector = taps == 9 && direct::available();
        (0..o).into_par_iter().for_each(|oi| {
            let kernels = &weight[oi * c * taps..(oi + 1) * c * taps];
            #[cfg(target_arch = "x86_64")]
            if vector {
                let rows = std::array::from_fn(|t| (planes[t] as *mut f32).wrapping_add(oi * c));
                // SAFETY: AVX-512F is present; row `oi` of each of the 9 planes (`c` values)
                // is written by this task only.
                #[allow(unsafe_code)]
                unsafe {
                    direct::avx512::tap_rows(kernels, rows)
                };
                return;
            }
            for (t, &plane) in planes.iter().enumerate() {
                // SAFETY: row `oi` of plane `t` (`c` values) is written by this task only.
                #[allow(unsafe_code)]
                let row = unsafe { std::slice::from_raw_parts_mut((plane as *mut MaybeUninit<f32>).add(oi * c), c) };
                for (d, kernel) in row.iter_mut().zip(kernels.chunks_exact(taps)) {
                    d.write(kernel[t]);
                }
            }
        });
    };
    // SAFETY: every `(t, oi, ci)` is written once.
    #[allow(unsafe_code)]
    unsafe {
        planes::written(weight.len(), write)
    }
}

/// The kernels of [`forward_taps`]: [`tap_major`]'s planes, `[o, c]` per tap, or (`rotated`)
/// those of the convolution whose input gradient this is (`[c, o]` per tap, read
/// transposed and in reverse order: its kernels rotated by 180° with in and out channels
/// swapped, without writing them out).
struct Taps<'a> {
    weight: &'a [f32],
    rotated: bool,
}

impl Taps<'_> {
    /// Tap `t`'s `o × c` matrix for `g`.
    fn mat(&self, g: &Geometry, t: usize) -> Mat {
        let (plane, taps) = (g.o * g.c, g.k * g.k);
        if self.rotated {
            Mat { ptr: self.weight[(taps - 1 - t) * plane..].as_ptr(), row_stride: 1, col_stride: g.o }
        } else {
            Mat { ptr: self.weight[t * plane..].as_ptr(), row_stride: g.c, col_stride: 1 }
        }
    }
}

/// Where the tap products ([`forward_taps`], [`input_gradient_phase_taps`]) copy each value
/// of one channel of one image, worked out once per call: `inside` pairs (place in the
/// copies, counted from the channel's first copy row and the image's first column; place
/// in the channel's source plane), `zeros` the places that take padding. Copying row by
/// row, the deep layers' rows of 4 to 8 values cost more in slicing and zero fills than in
/// the values.
pub(crate) struct CopyPlan {
    inside: Vec<(usize, usize)>,
    zeros: Vec<usize>,
    /// One more than the largest place in the copies and in the source plane (0 without
    /// any).
    ends: (usize, usize),
}

impl CopyPlan {
    /// The plan of copies `q` of `channels` channels whose row `r` holds source row
    /// `rows(q, r)` and column `col` source column `cols(q, col)` (`None`: padding), `(count,
    /// width)` rows and columns per copy, each row `span` values long (the images' rows side
    /// by side), from source planes `source_width` values wide. Copy `q` of channel `ch`, row
    /// `r` starts at `((q·channels + ch)·count + r)·span`.
    pub(crate) fn new(
        copies: usize,
        channels: usize,
        (count, width, span): (usize, usize, usize),
        source_width: usize,
        rows: impl Fn(usize, usize) -> Option<usize>,
        cols: impl Fn(usize, usize) -> Option<usize>,
    ) -> Self {
        let (mut inside, mut zeros) = (Vec::new(), Vec::new());
        for q in 0..copies {
            for r in 0..count {
                for col in 0..width {
                    let at = (q * channels * count + r) * span + col;
                    match (rows(q, r), cols(q, col)) {
                        (Some(row), Some(c)) => inside.push((at, row * source_width + c)),
                        _ => zeros.push(at),
                    }
                }
            }
        }
        let copies_end = inside.iter().map(|&(d, _)| d).chain(zeros.iter().copied()).max().map_or(0, |d| d + 1);
        let source_end = inside.iter().map(|&(_, v)| v + 1).max().unwrap_or(0);
        CopyPlan { inside, zeros, ends: (copies_end, source_end) }
    }

    /// The copies of [`forward_taps`] for `g`, groups of `m` images: `(kx, p)` for each
    /// kernel column `kx` and row phase `p`.
    fn taps(g: &Geometry, m: usize) -> Self {
        let (s, hs) = (g.stride, g.h.div_ceil(g.stride));
        let rows = |q: usize, a: usize| Some(a * s + q % s).filter(|&iy| iy < g.h);
        let cols = |q: usize, ox: usize| (ox * s + q / s).checked_sub(g.left).filter(|&ix| ix < g.w);
        CopyPlan::new(g.k * s, g.c, (hs, g.wo, m * g.wo), g.w, rows, cols)
    }

    /// Copies `src` into `copies` (`channels` channels of `count` rows of `images · width`
    /// values per copy, as in [`CopyPlan::new`]) from the source plane that starts at
    /// `from(ch, j)` for channel `ch` and image `j` of the group, zero where `mask` (as long
    /// as `src`) is not positive.
    pub(crate) fn copy(
        &self,
        src: &[f32],
        mask: Option<&[f32]>,
        copies: &mut [f32],
        (channels, images): (usize, usize),
        (count, width): (usize, usize),
        from: impl Fn(usize, usize) -> usize,
    ) {
        let span = images * width;
        let (copies_end, source_end) = self.ends;
        for ch in 0..channels {
            for j in 0..images {
                let (d0, s0) = (ch * count * span + j * width, from(ch, j));
                // The block's copies and source plane as far as the plan reaches (a plan
                // that does not fit panics here, as indexing would).
                let dst = &mut copies[d0..d0 + copies_end];
                let (src, mask) = (&src[s0..s0 + source_end], mask.map(|m| &m[s0..s0 + source_end]));
                // SAFETY: every place of the plan lies below `ends`, so inside `dst`, `src`
                // and `mask`. Checked indexing took 1.5 times as long (the forward copies of
                // squeeze_bn_elu's four deep layers, 2 threads: 4.5 against 3.0 ms of thread
                // time per pass; AVX-512 gathers per copy row, 4.5 ms, gained nothing).
                #[allow(unsafe_code)]
                unsafe {
                    match mask {
                        None => {
                            self.inside.iter().for_each(|&(d, v)| *dst.get_unchecked_mut(d) = *src.get_unchecked(v))
                        }
                        Some(mask) => self.inside.iter().for_each(|&(d, v)| {
                            let keep = *mask.get_unchecked(v) > 0.0;
                            *dst.get_unchecked_mut(d) = if keep { *src.get_unchecked(v) } else { 0.0 };
                        }),
                    }
                    self.zeros.iter().for_each(|&d| *dst.get_unchecked_mut(d) = 0.0);
                }
            }
        }
    }
}

/// [`forward_groups`] without the products over padded rows. Per group of `m` images, the
/// input is copied once per kernel column `kx` and row phase `p` (`stride` of them): row
/// `a` of the copy holds input row `a·stride + p`, and its value for output column `ox`
/// the input column `ox·stride + kx − left` (zero in the padding). Columns are ordered
/// `(row, image, ox)`, so the output rows that a tap's kernel row reaches read one
/// contiguous run of a copy's columns: one product `W_tap · copy` per tap over those rows
/// only, added into the group's output. At 4 × 4 with a 3 × 3 kernel the im2col product
/// spends a sixth of its work on padded rows; and the copies are `k` times the input, not
/// `k²` (the im2col matrix of 16 images of 1024 channels at 4 × 4 is 9 MiB). The copies
/// follow a [`CopyPlan`]: measured in one process against copying row by row (32 images,
/// 2 threads, old and new alternated, inference through batch norm and ELU), 512 → 512
/// channels at stride 2 from 8 × 8 took 0.94× the time, 256 → 256 from 16 × 16 0.94×,
/// 256 → 512 at 8 × 8 0.98×, 512 → 1024 at 4 × 4 0.98×.
#[allow(clippy::too_many_arguments)]
fn forward_taps(
    g: &Geometry,
    x: &[f32],
    mask: Option<&[f32]>,
    taps: &Taps,
    bias: &[f32],
    epilogue: Epilogue<'_>,
    y: &mut [f32],
) {
    let (pixels, image, s) = (g.pixels(), g.c * g.h * g.w, g.stride);
    // Rows per phase copy.
    let hs = g.h.div_ceil(s);
    for_groups(g, y, g.o * pixels, |i0, m, yg, threads| {
        let span = m * g.wo;
        // Per group: the last may hold fewer images, and its copy rows are shorter.
        let plan = CopyPlan::taps(g, m);
        // Copy `(kx, p)` of channel `ci`, row `a` starts at `((kx·s + p)·c + ci)·hs + a` spans.
        with_cols(g.k * s * g.c * hs * span, |copies| {
            let from = |ci: usize, j: usize| (i0 + j) * image + ci * g.h * g.w;
            plan.copy(x, mask, copies, (g.c, m), (hs, g.wo), from);
            with_buffer(&GRAD, g.o * g.ho * span, |out| {
                for (row, &b) in out.chunks_mut(g.ho * span).zip(bias) {
                    row.fill(b);
                }
                for ky in 0..g.k {
                    // Output rows `a..b` whose input row `oy·s + ky − top` lies inside.
                    let a = g.top.saturating_sub(ky).div_ceil(s);
                    let b = (g.h + g.top).saturating_sub(ky).div_ceil(s).min(g.ho);
                    if a >= b {
                        continue;
                    }
                    let iy = a * s + ky - g.top;
                    for kx in 0..g.k {
                        let w = taps.mat(g, ky * g.k + kx);
                        let at = ((kx * s + iy % s) * g.c * hs + iy / s) * span;
                        let src = Mat { ptr: copies[at..].as_ptr(), row_stride: hs * span, col_stride: 1 };
                        // SAFETY: `w` is `o × c`; `src` is `c × (b − a)·span`, rows `iy / s..`
                        // `+ b − a` (below `hs`) of each channel's copy; the destination is
                        // output rows `a..b` of each channel's `ho · span`.
                        #[allow(unsafe_code)]
                        unsafe {
                            matmul(
                                g.o,
                                (b - a) * span,
                                g.c,
                                out.as_mut_ptr().add(a * span),
                                g.ho * span,
                                true,
                                w,
                                src,
                                threads,
                            )
                        };
                    }
                }
                // The epilogue on each channel's rows of all the group's images at once: per
                // image plane it was a call per 16 values at 4 × 4.
                for (o, rows) in out.chunks_mut(g.ho * span).enumerate().take(g.o) {
                    epilogue.apply(o, rows);
                }
                for (j, yi) in yg.chunks_mut(g.o * pixels).enumerate() {
                    for (plane, rows) in yi.chunks_mut(pixels).zip(out.chunks(g.ho * span)) {
                        for (dst, src) in plane.chunks_exact_mut(g.wo).zip(rows.chunks_exact(span)) {
                            dst.copy_from_slice(&src[j * g.wo..(j + 1) * g.wo]);
                        }
                    }
                }
            })
        })
    });
}

/// Builds the im2col matrix of images `i0..i0 + m` side by side in `cols` (`[rows, m ·
/// pixels]`).
fn group_cols(g: &Geometry, x: &[f32], i0: usize, m: usize, cols: &mut [f32]) {
    let (p, image) = (g.pixels(), g.c * g.h * g.w);
    for j in 0..m {
        with_image(g, &x[(i0 + j) * image..(i0 + j + 1) * image], |xi| {
            im2col(g, xi, 0, p, &mut cols[j * p..], m * p);
        });
    }
}

/// Gathers the output gradient of images `i0..i0 + m` side by side into `buf`
/// (`[o, m · pixels]`), masked where the output `y` is not positive if `relu`.
fn group_gradient(g: &Geometry, dy: &[f32], y: &[f32], relu: bool, i0: usize, m: usize, buf: &mut [f32]) {
    let (p, t) = (g.pixels(), m * g.pixels());
    for j in 0..m {
        for o in 0..g.o {
            let at = ((i0 + j) * g.o + o) * p;
            let (d, yv, out) = (&dy[at..at + p], &y[at..at + p], &mut buf[o * t + j * p..o * t + (j + 1) * p]);
            if relu {
                for ((out, &d), &yv) in out.iter_mut().zip(d).zip(yv) {
                    *out = if yv > 0.0 { d } else { 0.0 };
                }
            } else {
                out.copy_from_slice(d);
            }
        }
    }
}

/// Runs `f(first image, images, their part of out)` for each group of `g.group()` images,
/// in parallel unless there are fewer groups than threads (the products are then).
fn for_groups<T: Send>(
    g: &Geometry,
    out: &mut [T],
    per_image: usize,
    f: impl Fn(usize, usize, &mut [T], usize) + Sync,
) {
    let size = g.group();
    let threads = rayon::current_num_threads();
    let product = if g.n.div_ceil(size) < threads { threads } else { 1 };
    let run = |(k, chunk): (usize, &mut [T])| f(k * size, chunk.len() / per_image, chunk, product);
    if product > 1 {
        out.chunks_mut(size * per_image).enumerate().for_each(run);
    } else {
        out.par_chunks_mut(size * per_image).enumerate().for_each(run);
    }
}

/// [`forward`] of one image `xi` into `yi`.
fn forward_image(
    g: &Geometry,
    xi: &[f32],
    weight: &[f32],
    bias: &[f32],
    epilogue: Epilogue<'_>,
    yi: &mut [f32],
    threads: usize,
) {
    let (rows, pixels, tile) = (g.rows(), g.pixels(), g.tile());
    with_image(g, xi, |src| {
        let w = Mat { ptr: weight.as_ptr(), row_stride: rows, col_stride: 1 };
        for (o, plane) in yi.chunks_mut(pixels).enumerate() {
            plane.fill(bias[o]);
        }
        let mut p0 = 0;
        while p0 < pixels {
            let p1 = (p0 + tile).min(pixels);
            let t = p1 - p0;
            let mut product = |cols: Mat| {
                // SAFETY: `w` is `o × rows` (row stride `rows`), `cols` is `rows × t`, and the
                // destination is columns `p0..p1` of the `o × pixels` plane `yi`.
                #[allow(unsafe_code)]
                unsafe {
                    matmul(g.o, t, rows, yi.as_mut_ptr().add(p0), pixels, true, w, cols, threads)
                };
            };
            if g.pointwise() {
                product(Mat { ptr: xi[p0..].as_ptr(), row_stride: pixels, col_stride: 1 });
            } else {
                with_cols(rows * t, |cols| {
                    im2col(g, src, p0, p1, cols, t);
                    product(Mat { ptr: cols.as_ptr(), row_stride: t, col_stride: 1 });
                });
            }
            // While the tile is still in cache.
            for (o, plane) in yi.chunks_mut(pixels).enumerate() {
                epilogue.apply(o, &mut plane[p0..p1]);
            }
            p0 = p1;
        }
    })
}

/// Calls `f` with the output gradient of columns `p0..p1` of one image (`dyi`, `[o,
/// pixels]`) as an `o × (p1 − p0)` matrix: `dyi` itself, or with a fused ReLU a copy
/// masked where the output `yi` is not positive.
fn gradient_tile<R>(
    g: &Geometry,
    dyi: &[f32],
    yi: &[f32],
    (p0, p1): (usize, usize),
    relu: bool,
    f: impl FnOnce(Mat) -> R,
) -> R {
    let pixels = g.pixels();
    if !relu {
        return f(Mat { ptr: dyi[p0..].as_ptr(), row_stride: pixels, col_stride: 1 });
    }
    let t = p1 - p0;
    with_buffer(&GRAD, g.o * t, |buf| {
        for (o, out) in buf.chunks_mut(t).enumerate() {
            let (d, y) = (&dyi[o * pixels + p0..o * pixels + p1], &yi[o * pixels + p0..o * pixels + p1]);
            for ((out, &d), &y) in out.iter_mut().zip(d).zip(y) {
                *out = if y > 0.0 { d } else { 0.0 };
            }
        }
        f(Mat { ptr: buf.as_ptr(), row_stride: t, col_stride: 1 })
    })
}

/// At stride 1 the input gradient is itself a convolution: of `dy` with the kernels
/// rotated by 180° and in/out channels swapped, padded by `k − 1 − pad` on each side. Its
/// im2col copies `o·k²` rows instead of adding `c·k²` rows back (col2im), which is much
/// cheaper for the usual `o ≤ c` or thin output layers. Returns that convolution's geometry
/// (its kernels are [`rotate_kernels`]' or, on the tap products, [`Taps`] `rotated`), or
/// `None` at larger strides.
fn transposed(g: &Geometry) -> Option<Geometry> {
    if g.stride != 1 {
        return None;
    }
    let k = g.k;
    // `k − 1 − pad` on each side; at stride 1 the original bottom padding is
    // `ho + k − 1 − h − top`, so the new one is `h + top − ho` (and likewise on the right).
    let bottom = (g.h + g.top).checked_sub(g.ho)?;
    let right = (g.w + g.left).checked_sub(g.wo)?;
    let (top, left) = ((k - 1).checked_sub(g.top)?, (k - 1).checked_sub(g.left)?);
    let gt = Geometry::new((g.n, g.o, g.ho, g.wo), g.c, k, 1, [top, bottom, left, right]).ok()?;
    if (gt.ho, gt.wo) != (g.h, g.w) {
        return None;
    }
    Some(gt)
}

/// The kernels `[o, c, taps]` rotated by 180° with in and out channels swapped: `[c, o,
/// taps]`, taps reversed. Blocks of 16 input channels in parallel: each block reads 16
/// consecutive kernels of every output channel and writes 16 sequential streams, where
/// one channel at a time would touch a new page with every write.
fn rotate_kernels(weight: &[f32], o: usize, c: usize, taps: usize) -> Vec<f32> {
    const BLOCK: usize = 16;
    let write = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut((BLOCK * o * taps).max(1)).enumerate().for_each(|(b, block)| {
            let (c0, cs) = (b * BLOCK, block.len() / (o * taps).max(1));
            for oi in 0..o {
                let kernels = &weight[(oi * c + c0) * taps..(oi * c + c0 + cs) * taps];
                for (dc, kernel) in kernels.chunks_exact(taps).enumerate() {
                    let at = (dc * o + oi) * taps;
                    for (d, &v) in block[at..at + taps].iter_mut().zip(kernel.iter().rev()) {
                        d.write(v);
                    }
                }
            }
        });
    };
    // SAFETY: the blocks cover `out`; each block's `cs · o` kernels are all written.
    #[allow(unsafe_code)]
    unsafe {
        planes::written(weight.len(), write)
    }
}

/// One phase of a stride-2 input gradient (see [`input_gradient_phase_groups`]).
struct Phase {
    /// Parity of the input rows and columns.
    py: usize,
    px: usize,
    /// Kernel rows and columns that reach them, with their shifts ([`Geometry::phase_taps`]).
    ys: Vec<(usize, isize)>,
    xs: Vec<(usize, isize)>,
    /// Input rows and columns of this parity.
    h: usize,
    w: usize,
    /// `[c, o · taps]`: `W[o, c, ky, kx]` at column `o · taps + (ky, kx)`'s index.
    weight: Vec<f32>,
}

impl Phase {
    fn taps(&self) -> usize {
        self.ys.len() * self.xs.len()
    }
}

/// The input gradient of a stride-2 convolution with few output pixels (see
/// [`Geometry::group`]), one phase of the input at a time (even or odd rows × even or odd
/// columns): input pixel `(2a + py, 2b + px)` receives only from the kernel positions of
/// that parity ([`Geometry::phase_taps`]), so per group of images and phase it is one
/// product `Wₚᵀ · colsₚ`, with `colsₚ` the output gradient (masked by a fused ReLU's `y`)
/// at each such position's shift, `[o · taps, images · phase pixels]`. These are the
/// im2col route's products (`Wᵀ · dy`, then col2im), without its column matrix, 9 times
/// the input gradient (4.7 MiB per group of a 512-channel layer at 8 × 8), written out and
/// added back.
fn input_gradient_phase_groups(g: &Geometry, dy: &[f32], weight: &[f32], y: &[f32], relu: bool) -> Vec<f32> {
    let size = |n: usize, p: usize| n.saturating_sub(p).div_ceil(2);
    let mut phases: Vec<Phase> = (0..4)
        .map(|phase| {
            let (py, px) = (phase / 2, phase % 2);
            let (ys, xs) = (g.phase_taps(g.top, py), g.phase_taps(g.left, px));
            let weight = zeros(g.c * g.o * ys.len() * xs.len());
            Phase { py, px, ys, xs, h: size(g.h, py), w: size(g.w, px), weight }
        })
        .collect();
    phase_weights(g, weight, &mut phases);
    let (pixels, image) = (g.pixels(), g.c * g.h * g.w);
    // Phases that no kernel position reaches (kernel 1) stay zero.
    let mut dx = zeros(g.n * image);
    for_groups(g, &mut dx, image, |i0, m, dxg, threads| {
        with_buffer(&MASKED, g.o * m * pixels, |grad| {
            // The group's output gradient, `[o, m · pixels]`, masked by a fused ReLU.
            group_gradient(g, dy, y, relu, i0, m, grad);
            for p in phases.iter().filter(|p| p.taps() > 0 && p.h * p.w > 0) {
                let (rows, pp) = (g.o * p.taps(), p.h * p.w);
                let t = m * pp;
                with_cols(rows * t, |cols| {
                    // `cols[(o, taps), (j, a, b)]`: the gradient of output pixel `(a, b)` + shift.
                    for (r, row) in cols.chunks_mut(t).take(rows).enumerate() {
                        let (o, tap) = (r / p.taps(), r % p.taps());
                        let ((_, sy), (_, sx)) = (p.ys[tap / p.xs.len()], p.xs[tap % p.xs.len()]);
                        // Phase columns `b` whose output column `b + sx` exists.
                        let b0 = sx.unsigned_abs().min(p.w) * usize::from(sx < 0);
                        let b1 = (g.wo as isize - sx).clamp(b0 as isize, p.w as isize) as usize;
                        for (j, dst) in row.chunks_mut(pp).enumerate() {
                            let d = &grad[(o * m + j) * pixels..][..pixels];
                            for (a, dst) in dst.chunks_mut(p.w).enumerate() {
                                let oy = a as isize + sy;
                                if oy < 0 || oy >= g.ho as isize || b0 == b1 {
                                    dst.fill(0.0);
                                    continue;
                                }
                                let src = &d[oy as usize * g.wo..][..g.wo];
                                dst[..b0].fill(0.0);
                                dst[b1..].fill(0.0);
                                let at = (b0 as isize + sx) as usize;
                                dst[b0..b1].copy_from_slice(&src[at..at + (b1 - b0)]);
                            }
                        }
                    }
                    with_buffer(&GRAD, g.c * t, |out| {
                        let wp = Mat { ptr: p.weight.as_ptr(), row_stride: rows, col_stride: 1 };
                        let cols = Mat { ptr: cols.as_ptr(), row_stride: t, col_stride: 1 };
                        // SAFETY: `wp` is `c × rows`, `cols` is `rows × t`, `out` holds `c × t`.
                        #[allow(unsafe_code)]
                        unsafe {
                            matmul(g.c, t, rows, out.as_mut_ptr(), t, false, wp, cols, threads)
                        };
                        for (j, dxi) in dxg.chunks_mut(image).enumerate() {
                            for (plane, src) in dxi.chunks_mut(g.h * g.w).zip(out.chunks(t)) {
                                for (a, src) in src[j * pp..(j + 1) * pp].chunks(p.w).enumerate() {
                                    let row = &mut plane[(2 * a + p.py) * g.w..][..g.w];
                                    row[p.px..].iter_mut().step_by(2).zip(src).for_each(|(d, &v)| *d = v);
                                }
                            }
                        }
                    })
                })
            }
        })
    });
    dx
}

/// Whether [`input_gradient_phase_taps`] takes the stride-2 input gradient of `g` (one
/// that [`input_gradient_phase_groups`] would): outputs of at most 64 pixels, and output
/// channels (the products' inner dimension) as in [`suits_taps`]. Measured in one
/// process, old and new alternated (32 images, 2 threads, a layer's backward pass through
/// batch norm and ELU): at 4 × 4 outputs 128 → 128 channels 0.89×, 256 → 256 0.97–0.98×,
/// 512 → 512 0.90–0.92× the time. At 8 × 8 outputs it was no faster (0.98–1.04×) until
/// the copies went by a [`CopyPlan`], once for both row phases: then 64 → 64 0.87×,
/// 256 → 256 0.95×.
fn suits_phase_taps(g: &Geometry) -> bool {
    #[cfg(test)]
    if tests::ANY_TAPS.load(std::sync::atomic::Ordering::Relaxed) {
        return g.k > 1;
    }
    g.pixels() <= 64 && suits_taps(&Geometry { c: g.o, ..*g })
}

/// [`input_gradient_phase_groups`] as products per kernel tap (see [`suits_phase_taps`]).
/// Input pixel `(2a + py, 2b + px)` receives from kernel tap `(ky, kx)` of its phase the
/// output gradient at `(a + sy, b + sx)` ([`Geometry::phase_taps`]).
/// Per group of `m` images and column phase, the output gradient (masked by a fused ReLU's
/// `y`) is copied once per column shift `sx`, columns ordered `(row, image, b)` over the
/// phase's width (measured on 512 → 512 channels at 4 × 4 outputs, once per column phase
/// instead of once per phase, by a [`CopyPlan`] instead of value by value: 0.96× the time);
/// then each tap is one product `W_tapᵀ · copy` over the phase rows `a` whose row `a + sy`
/// exists, a contiguous run of columns, added into the phase's gradient, which is then
/// spread into the images' rows and columns of that parity. No column matrix of `o · taps`
/// rows per phase, and no product over gradient rows that do not exist.
/// `wt` holds the kernels as [`tap_major`] orders them.
fn input_gradient_phase_taps(g: &Geometry, dy: &[f32], wt: &[f32], y: &[f32], relu: bool) -> Vec<f32> {
    let size = |n: usize, p: usize| n.saturating_sub(p).div_ceil(2);
    let (pixels, image, plane) = (g.pixels(), g.c * g.h * g.w, g.o * g.c);
    let mut dx = zeros(g.n * image);
    for_groups(g, &mut dx, image, |i0, m, dxg, threads| {
        // The copies depend on the column phase only: both row phases read them.
        for px in 0..2 {
            let (xs, wp) = (g.phase_taps(g.left, px), size(g.w, px));
            if xs.is_empty() || wp == 0 {
                continue;
            }
            let span = m * wp;
            // Copy `q` (shift `xs[q].1`) of channel `oc`, row `oy` starts at `((q·o + oc)·ho
            // + oy)` spans; its column `b` holds the gradient's column `b + shift`.
            let cols = |q: usize, b: usize| (b as isize + xs[q].1).try_into().ok().filter(|&ox: &usize| ox < g.wo);
            let plan = CopyPlan::new(xs.len(), g.o, (g.ho, wp, span), g.wo, |_, oy| Some(oy), cols);
            with_cols(xs.len() * g.o * g.ho * span, |copies| {
                let from = |oc: usize, j: usize| ((i0 + j) * g.o + oc) * pixels;
                plan.copy(dy, relu.then_some(y), copies, (g.o, m), (g.ho, wp), from);
                for py in 0..2 {
                    let (ys, hp) = (g.phase_taps(g.top, py), size(g.h, py));
                    if ys.is_empty() || hp == 0 {
                        continue;
                    }
                    with_buffer(&GRAD, g.c * hp * span, |out| {
                        out.fill(0.0);
                        for &(ky, sy) in &ys {
                            // Phase rows `a` whose gradient row `a + sy` exists.
                            let a0 = (-sy).max(0) as usize;
                            let a1 = (g.ho as isize - sy).clamp(0, hp as isize) as usize;
                            if a0 >= a1 {
                                continue;
                            }
                            let oy0 = (a0 as isize + sy) as usize;
                            for (s, &(kx, _)) in xs.iter().enumerate() {
                                // `W[o, c, ky, kx]ᵀ`: `c × o`, from the tap's `[o, c]` plane.
                                let t = ky * g.k + kx;
                                let w = Mat { ptr: wt[t * plane..].as_ptr(), row_stride: 1, col_stride: g.c };
                                let at = ((s * g.o) * g.ho + oy0) * span;
                                let src = Mat { ptr: copies[at..].as_ptr(), row_stride: g.ho * span, col_stride: 1 };
                                // SAFETY: `w` is `c × o` inside plane `t`; `src` is `o × (a1 − a0)·span`,
                                // rows `oy0..oy0 + a1 − a0` (below `ho`) of each channel's copy `s`;
                                // the destination is phase rows `a0..a1` of each channel's `hp · span`.
                                #[allow(unsafe_code)]
                                unsafe {
                                    matmul(
                                        g.c,
                                        (a1 - a0) * span,
                                        g.o,
                                        out.as_mut_ptr().add(a0 * span),
                                        hp * span,
                                        true,
                                        w,
                                        src,
                                        threads,
                                    )
                                };
                            }
                        }
                        for (j, dxi) in dxg.chunks_mut(image).enumerate() {
                            for (dplane, rows) in dxi.chunks_mut(g.h * g.w).zip(out.chunks(hp * span)) {
                                for (a, src) in rows.chunks_exact(span).enumerate() {
                                    let row = &mut dplane[(2 * a + py) * g.w..][..g.w];
                                    let src = &src[j * wp..(j + 1) * wp];
                                    row[px..].iter_mut().step_by(2).zip(src).for_each(|(d, &v)| *d = v);
                                }
                            }
                        }
                    })
                }
            })
        }
    });
    dx
}

/// Fills each phase's [`Phase::weight`] from `weight` (`[o, c, k, k]`) in one pass, blocks
/// of input channels in parallel: each output channel's kernels of a block are read as one
/// run (reading one kernel at a time per input channel went through the weight with a
/// stride of `c · k²` values, a cache line and often a page per kernel).
fn phase_weights(g: &Geometry, weight: &[f32], phases: &mut [Phase]) {
    const BLOCK: usize = 16;
    let kk = g.k * g.k;
    // Per phase: its weight split into blocks of `BLOCK` input channels, and where each of
    // its taps sits in a kernel.
    let mut parts: Vec<(Vec<&mut [f32]>, Vec<usize>)> = phases
        .iter_mut()
        .map(|p| {
            let taps = p.taps();
            let at = p.ys.iter().flat_map(|&(ky, _)| p.xs.iter().map(move |&(kx, _)| ky * g.k + kx)).collect();
            (p.weight.chunks_mut((BLOCK * g.o * taps).max(1)).collect(), at)
        })
        .collect();
    let blocks = g.c.div_ceil(BLOCK);
    let mut jobs: Vec<Vec<(&mut [f32], &[usize])>> = (0..blocks).map(|_| Vec::new()).collect();
    for (chunks, at) in &mut parts {
        for (b, chunk) in chunks.drain(..).enumerate() {
            jobs[b].push((chunk, &at[..]));
        }
    }
    jobs.into_par_iter().enumerate().for_each(|(b, mut outs)| {
        let (c0, nc) = (b * BLOCK, BLOCK.min(g.c - b * BLOCK));
        for o in 0..g.o {
            let kernels = &weight[(o * g.c + c0) * kk..][..nc * kk];
            for (ci, kernel) in kernels.chunks_exact(kk).enumerate() {
                for (dst, at) in &mut outs {
                    let taps = at.len();
                    let dst = &mut dst[(ci * g.o + o) * taps..][..taps];
                    dst.iter_mut().zip(at.iter()).for_each(|(d, &i)| *d = kernel[i]);
                }
            }
        }
    });
}

/// `(dy, weight, y) → dx`, the input gradient (`y`, the output, masks `dy` with a fused
/// ReLU).
struct ConvInputGrad {
    g: Geometry,
    relu: bool,
    /// The kernels as [`tap_major`] orders them, if the forward pass made them.
    planes: Option<Arc<Vec<f32>>>,
}

impl ConvInputGrad {
    /// The kernels `weight` as [`tap_major`] orders them: the forward pass's, or made now.
    fn planes<'a>(&'a self, weight: &[f32]) -> std::borrow::Cow<'a, [f32]> {
        let g = &self.g;
        match &self.planes {
            Some(planes) if planes.len() == weight.len() => std::borrow::Cow::Borrowed(planes.as_slice()),
            _ => std::borrow::Cow::Owned(tap_major(weight, g.o, g.c, g.k * g.k)),
        }
    }
}

impl CustomOp3 for ConvInputGrad {
    fn name(&self) -> &'static str {
        "nanoml-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        dys: &CpuStorage,
        dyl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = &self.g;
        let y = contiguous(ys, yl, "convolution output")?;
        let (dy, weight) =
            (contiguous(dys, dyl, "convolution output gradient")?, contiguous(ws, wl, "convolution weight")?);
        if let Some(gt) = transposed(g) {
            let (mask, zero) = (self.relu.then_some(y), vec![0.0; g.c]);
            let dx = if !direct::suits(&gt) && gt.group() > 1 && suits_taps(&gt) {
                // The tap products read the kernels rotated in place.
                let planes = self.planes(weight);
                let mut dx = zeros(g.n * g.c * g.h * g.w);
                forward_taps(
                    &gt,
                    dy,
                    mask,
                    &Taps { weight: &planes, rotated: true },
                    &zero,
                    Epilogue::Identity,
                    &mut dx,
                );
                dx
            } else {
                let rotated = rotate_kernels(weight, g.o, g.c, g.k * g.k);
                forward_masked(&gt, dy, mask, &rotated, &zero, Epilogue::Identity, false).0
            };
            return Ok((CpuStorage::F32(dx), Shape::from((g.n, g.c, g.h, g.w))));
        }
        if let Some(dx) = direct::input_gradient_phases(g, dy, weight, self.relu.then_some(y)) {
            return Ok((CpuStorage::F32(dx), Shape::from((g.n, g.c, g.h, g.w))));
        }
        if g.stride == 2 && g.group() > 1 {
            let dx = if suits_phase_taps(g) {
                input_gradient_phase_taps(g, dy, &self.planes(weight), y, self.relu)
            } else {
                input_gradient_phase_groups(g, dy, weight, y, self.relu)
            };
            return Ok((CpuStorage::F32(dx), Shape::from((g.n, g.c, g.h, g.w))));
        }
        // Added into below.
        let mut dx = zeroed(g.n * g.c * g.h * g.w);
        let (rows, pixels, tile) = (g.rows(), g.pixels(), g.tile());
        if g.group() > 1 {
            for_groups(g, &mut dx, g.c * g.h * g.w, |i0, m, dxg, threads| {
                let t = m * pixels;
                with_buffer(&GRAD, g.o * t, |grad| {
                    group_gradient(g, dy, y, self.relu, i0, m, grad);
                    with_cols(rows * t, |cols| {
                        let wt = Mat { ptr: weight.as_ptr(), row_stride: 1, col_stride: rows };
                        let grad = Mat { ptr: grad.as_ptr(), row_stride: t, col_stride: 1 };
                        // SAFETY: `wt` is `rows × o`, `grad` is `o × t`, `cols` holds `rows × t`.
                        #[allow(unsafe_code)]
                        unsafe {
                            matmul(rows, t, g.o, cols.as_mut_ptr(), t, false, wt, grad, threads)
                        };
                        for (j, dxi) in dxg.chunks_mut(g.c * g.h * g.w).enumerate() {
                            col2im(g, &cols[j * pixels..], 0, pixels, dxi, t);
                        }
                    })
                })
            });
            return Ok((CpuStorage::F32(dx), Shape::from((g.n, g.c, g.h, g.w))));
        }
        let threads = product_threads(g.n);
        for_images(&mut dx, g.c * g.h * g.w, g.n, |i, dxi| {
            let wt = Mat { ptr: weight.as_ptr(), row_stride: 1, col_stride: rows };
            let span = i * g.o * pixels..(i + 1) * g.o * pixels;
            let (dyi, yi) = (&dy[span.clone()], &y[span]);
            let mut p0 = 0;
            while p0 < pixels {
                let p1 = (p0 + tile).min(pixels);
                let t = p1 - p0;
                gradient_tile(g, dyi, yi, (p0, p1), self.relu, |grad| {
                    if g.pointwise() {
                        // SAFETY: `wt` is `c × o`, `grad` is `o × t`; the destination is
                        // columns `p0..p1` of the `c × pixels` image `dxi`.
                        #[allow(unsafe_code)]
                        unsafe {
                            matmul(g.c, t, g.o, dxi.as_mut_ptr().add(p0), pixels, true, wt, grad, threads)
                        };
                    } else {
                        with_cols(rows * t, |cols| {
                            // SAFETY: `wt` is `rows × o`, `grad` is `o × t`, `cols` holds
                            // `rows × t`.
                            #[allow(unsafe_code)]
                            unsafe {
                                matmul(rows, t, g.o, cols.as_mut_ptr(), t, false, wt, grad, threads)
                            };
                            col2im(g, cols, p0, p1, dxi, t);
                        });
                    }
                });
                p0 = p1;
            }
        });
        Ok((CpuStorage::F32(dx), Shape::from((g.n, g.c, g.h, g.w))))
    }
}

/// `(dy, x, y) → dweight`, the weight gradient (`y`, the output, masks `dy` with a fused
/// ReLU); with `bias` (direct kernel only, see [`direct::suits_weight_gradient`]) followed
/// by the bias gradient, flat.
struct ConvWeightGrad {
    g: Geometry,
    relu: bool,
    bias: bool,
}

impl CustomOp3 for ConvWeightGrad {
    fn name(&self) -> &'static str {
        "nanoml-conv2d-weight-grad"
    }

    fn cpu_fwd(
        &self,
        dys: &CpuStorage,
        dyl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = &self.g;
        let y = contiguous(ys, yl, "convolution output")?;
        let (dy, x) = (contiguous(dys, dyl, "convolution output gradient")?, contiguous(xs, xl, "convolution input")?);
        let (rows, pixels, tile) = (g.rows(), g.pixels(), g.tile());
        let image = |i: usize, dw: &mut [f32], threads: usize| {
            let span = i * g.o * pixels..(i + 1) * g.o * pixels;
            let (dyi, yi, xi) = (&dy[span.clone()], &y[span], &x[i * g.c * g.h * g.w..(i + 1) * g.c * g.h * g.w]);
            with_image(g, xi, |src| {
                let mut p0 = 0;
                while p0 < pixels {
                    let p1 = (p0 + tile).min(pixels);
                    let t = p1 - p0;
                    gradient_tile(g, dyi, yi, (p0, p1), self.relu, |grad| {
                        let product = |cols_t: Mat, dw: &mut [f32]| {
                            // SAFETY: `grad` is `o × t`, `cols_t` is `t × rows`, `dw` is `o × rows`.
                            #[allow(unsafe_code)]
                            unsafe {
                                matmul(g.o, rows, t, dw.as_mut_ptr(), rows, true, grad, cols_t, threads)
                            };
                        };
                        if g.pointwise() {
                            product(Mat { ptr: xi[p0..].as_ptr(), row_stride: 1, col_stride: pixels }, dw);
                        } else {
                            with_cols(rows * t, |cols| {
                                im2col(g, src, p0, p1, cols, t);
                                product(Mat { ptr: cols.as_ptr(), row_stride: 1, col_stride: t }, dw);
                            });
                        }
                    });
                    p0 = p1;
                }
            })
        };
        let size = g.o * rows;
        if direct::suits_weight_gradient(g) {
            let total = if self.bias { size + g.o } else { size };
            let shape = if self.bias { Shape::from(total) } else { Shape::from((g.o, g.c, g.k, g.k)) };
            let lanes = direct::suits_lanes(g);
            let threads = rayon::current_num_threads();
            let blocks = lanes && direct::lane_blocks(g) >= threads;
            if blocks && size > partial_sum_max() {
                // All images at once, the blocks of 32 output channels spread over the
                // threads: no partial sum per thread (19 MiB each for a 512 → 1024 layer).
                let dw = direct::weight_gradient_lanes_written(g, x, dy, y, self.relu, self.bias, threads);
                return Ok((CpuStorage::F32(dw), shape));
            }
            // Groups of images (several when they have few pixels), one partial sum per
            // thread. Where the blocks of output channels would have gone over the threads
            // (the gradient small enough to keep a sum per thread), groups of about 1024
            // pixels: each group's padded input (and output gradient in the lanes) then
            // stays in cache instead of the whole batch's going out to memory and back.
            let target = if blocks || !lanes { 1024 } else { 4096 };
            let per = (target / pixels.max(1)).clamp(1, g.n.max(1));
            let dw = partial_sums((0..g.n).step_by(per).collect(), total, |i0, dw, threads| {
                let i1 = (i0 + per).min(g.n);
                let span = i0 * g.o * pixels..i1 * g.o * pixels;
                let xs = &x[i0 * g.c * g.h * g.w..i1 * g.c * g.h * g.w];
                let (dy, y) = (&dy[span.clone()], &y[span]);
                if lanes {
                    direct::weight_gradient_lanes(g, xs, dy, y, self.relu, dw, threads);
                } else {
                    direct::weight_gradient_images(g, xs, dy, y, self.relu, dw, threads);
                }
            });
            return Ok((CpuStorage::F32(dw), shape));
        }
        if self.bias {
            candle_core::bail!("convolution: the bias gradient is fused only into the direct weight gradient")
        }
        if g.group() > 1 {
            return Ok((
                CpuStorage::F32(weight_grad_groups(g, dy, x, y, self.relu)),
                Shape::from((g.o, g.c, g.k, g.k)),
            ));
        }
        let dw = partial_sums((0..g.n).collect(), size, image);
        Ok((CpuStorage::F32(dw), Shape::from((g.o, g.c, g.k, g.k))))
    }
}

/// The most weight-gradient values for which [`weight_gradient_lanes`](direct::weight_gradient_lanes)
/// keeps one partial sum per thread over groups of images rather than spreading blocks of
/// output channels over the threads (1 MiB). Measured inside squeeze_bn_elu's training step
/// (2 threads, old and new alternated in one process, several runs), the time this way
/// against the spread blocks: 32 → 64 channels at stride 2 (18 Ki values) 0.64–0.82×,
/// 64 → 128 (74 Ki) 0.85–0.97×, 128 → 128 at stride 2 (147 Ki) 0.78–1.00×; 128 → 256
/// (295 Ki) 0.96–1.13×, 256 → 256 at stride 2 (590 Ki) 1.04–1.10×, 256 → 512 (1.2 Mi)
/// 1.16–1.21×.
const PARTIAL_SUM_MAX: usize = 256 << 10;

/// [`PARTIAL_SUM_MAX`], or 0 while a test spreads the blocks over the threads at any size.
fn partial_sum_max() -> usize {
    #[cfg(test)]
    if tests::SPREAD_BLOCKS.load(std::sync::atomic::Ordering::Relaxed) {
        return 0;
    }
    PARTIAL_SUM_MAX
}

/// The weight gradient for images with few output pixels: per group of images, `dW +=
/// grad · colsᵀ` with the group's columns side by side (one partial sum per thread).
fn weight_grad_groups(g: &Geometry, dy: &[f32], x: &[f32], y: &[f32], relu: bool) -> Vec<f32> {
    let (rows, size, per) = (g.rows(), g.o * g.rows(), g.group());
    let group = |i0: usize, dw: &mut [f32], threads: usize| {
        let m = per.min(g.n - i0);
        let t = m * g.pixels();
        with_buffer(&GRAD, g.o * t, |grad| {
            group_gradient(g, dy, y, relu, i0, m, grad);
            with_cols(rows * t, |cols| {
                group_cols(g, x, i0, m, cols);
                let grad = Mat { ptr: grad.as_ptr(), row_stride: t, col_stride: 1 };
                let cols_t = Mat { ptr: cols.as_ptr(), row_stride: 1, col_stride: t };
                // SAFETY: `grad` is `o × t`, `cols_t` is `t × rows`, `dw` is `o × rows`.
                #[allow(unsafe_code)]
                unsafe {
                    matmul(g.o, rows, t, dw.as_mut_ptr(), rows, true, grad, cols_t, threads)
                };
            })
        })
    };
    partial_sums((0..g.n).step_by(per).collect(), size, group)
}

/// `Σ f(item)` over `items`, each `f(item, sum, threads)` adding into a `size`-long sum:
/// in sequence with each product on all threads when items are fewer than threads, else
/// one partial sum per thread, added at the end.
fn partial_sums(items: Vec<usize>, size: usize, f: impl Fn(usize, &mut [f32], usize) + Sync) -> Vec<f32> {
    let threads = rayon::current_num_threads();
    if items.len() < threads {
        let mut sum = zeroed(size);
        items.into_iter().for_each(|i| f(i, &mut sum, threads));
        return sum;
    }
    items
        .into_par_iter()
        .fold(
            || zeroed(size),
            |mut sum, i| {
                f(i, &mut sum, 1);
                sum
            },
        )
        .reduce(
            || zeroed(size),
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        )
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::super::{Builder, Conv2d, Padding};
    use super::direct;
    use candle_core::{DType, Device, Tensor, Var};
    use nanoml_core::Xoshiro256PlusPlus;
    use proptest::prelude::*;

    fn random(shape: &[usize], rng: &mut Xoshiro256PlusPlus) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.uniform_f32() * 2.0 - 1.0).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_abs(t: &Tensor) -> f32 {
        t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// `|a − b| ≤ 1e-4 · max |b|` elementwise (plus a floor for all-zero references).
    fn assert_close(what: &str, a: &Tensor, b: &Tensor) -> Result<(), TestCaseError> {
        prop_assert_eq!(a.dims(), b.dims(), "{} shape", what);
        let diff = max_abs(&(a - b).unwrap());
        let scale = max_abs(b);
        prop_assert!(diff <= 1e-4 * scale + 1e-6, "{}: max difference {} for values up to {}", what, diff, scale);
        Ok(())
    }

    /// A convolution with a random bias, its input as a variable, and a random weighting
    /// of the output that turns it into a scalar loss.
    fn setup(
        (n, c, o, k, stride, h, w, same): (usize, usize, usize, usize, usize, usize, usize, bool),
        seed: u64,
    ) -> (Conv2d, Var, Tensor) {
        let mut b = Builder::new(seed, &Device::Cpu);
        let padding = if same { Padding::Same } else { Padding::Valid };
        let conv = Conv2d::new(&mut b, "c", c, o, k, stride, padding).unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5eed);
        conv.bias.set(&random(&[o], &mut rng)).unwrap();
        let x = Var::from_tensor(&random(&[n, c, h, w], &mut rng)).unwrap();
        let y = conv.forward_reference(&x).unwrap();
        let weighting = random(y.dims(), &mut rng);
        (conv, x, weighting)
    }

    /// Tile size and group target for the kernels while tests run (0: the usual sizes).
    /// The tests set it at random: every size must give the same results, so tests that
    /// run at the same time may share it.
    static TILE: AtomicUsize = AtomicUsize::new(0);

    /// Whether the lanes weight gradient spreads its blocks of output channels over the
    /// threads at any size (see [`super::partial_sum_max`]); shared like [`TILE`].
    pub(super) static SPREAD_BLOCKS: AtomicBool = AtomicBool::new(false);

    /// Whether every layer that [`super::forward_groups`] would take goes through
    /// [`super::forward_taps`] instead, whatever its channels; shared like [`TILE`] (and
    /// set by the layer tests too).
    pub(crate) static ANY_TAPS: AtomicBool = AtomicBool::new(false);

    pub(super) fn tile_override() -> Option<usize> {
        Some(TILE.load(Ordering::Relaxed)).filter(|&t| t > 0)
    }

    fn geometry() -> impl Strategy<Value = (usize, usize, usize, usize, usize, usize, usize, bool)> {
        (1usize..5, 1usize..5, 1usize..6, prop::sample::select(vec![1usize, 2, 3, 5]), 1usize..4, any::<bool>())
            .prop_flat_map(|(n, c, o, k, stride, same)| (Just((n, c, o, k, stride)), k..14, k..14, Just(same)))
            .prop_map(|((n, c, o, k, stride), h, w, same)| (n, c, o, k, stride, h, w, same))
    }

    /// Direct loops in f64: the output (through a ReLU if `relu`), and the gradients of
    /// `sum(weighting · output)` with respect to input, weight and bias.
    fn naive(conv: &Conv2d, x: &Tensor, weighting: &Tensor, relu: bool) -> [Tensor; 4] {
        let vec4 = |t: &Tensor| {
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f64::from).collect::<Vec<_>>()
        };
        let (n, c, h, w) = x.dims4().unwrap();
        let (o, _, k, _) = conv.weight.dims4().unwrap();
        let [top, _, left, _] = conv.padding_of(h, w);
        let (_, _, ho, wo) = weighting.dims4().unwrap();
        let (xv, wv, bv, mut rv) =
            (vec4(x), vec4(conv.weight.as_tensor()), vec4(conv.bias.as_tensor()), vec4(weighting));
        let (mut y, mut dx, mut dw, mut db) =
            (vec![0f64; n * o * ho * wo], vec![0f64; xv.len()], vec![0f64; wv.len()], vec![0f64; o]);
        let s = conv.stride;
        let taps = |i: usize, oc: usize, oy: usize, ox: usize| {
            (0..c).flat_map(move |ic| (0..k).flat_map(move |ky| (0..k).map(move |kx| (ic, ky, kx)))).filter_map(
                move |(ic, ky, kx)| {
                    let (iy, ix) = ((oy * s + ky) as isize - top as isize, (ox * s + kx) as isize - left as isize);
                    let inside = iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize;
                    inside.then(|| {
                        (((i * c + ic) * h + iy as usize) * w + ix as usize, ((oc * c + ic) * k + ky) * k + kx)
                    })
                },
            )
        };
        for (i, oc, oy, ox) in itertools_product(n, o, ho, wo) {
            let yi = ((i * o + oc) * ho + oy) * wo + ox;
            y[yi] = bv[oc] + taps(i, oc, oy, ox).map(|(xi, wi)| wv[wi] * xv[xi]).sum::<f64>();
            if relu && y[yi] <= 0.0 {
                (y[yi], rv[yi]) = (0.0, 0.0);
            }
            db[oc] += rv[yi];
            for (xi, wi) in taps(i, oc, oy, ox) {
                dx[xi] += wv[wi] * rv[yi];
                dw[wi] += xv[xi] * rv[yi];
            }
        }
        let t = |v: Vec<f64>, shape: &[usize]| {
            Tensor::from_vec(v.into_iter().map(|v| v as f32).collect::<Vec<_>>(), shape, &Device::Cpu).unwrap()
        };
        [t(y, &[n, o, ho, wo]), t(dx, &[n, c, h, w]), t(dw, conv.weight.dims()), t(db, &[o])]
    }

    fn itertools_product(a: usize, b: usize, c: usize, d: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
        (0..a).flat_map(move |i| (0..b).flat_map(move |j| (0..c).flat_map(move |k| (0..d).map(move |l| (i, j, k, l)))))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Output and the gradients of input, weight and bias, with and without the fused
        /// ReLU, equal direct loops in f64, and those of candle's own composition (padding,
        /// conv2d, broadcast add, relu), within 1e-4 relative, with groups of narrow images
        /// on the tap products ([`super::forward_taps`]) at any channel count or not.
        /// candle's input gradient is compared at stride 1 only: at larger
        /// strides, when the stride does not divide the padded size minus the kernel,
        /// candle 0.11's transposed convolution returns a gradient short of the last rows or
        /// columns, and backpropagation fails with a shape mismatch.
        #[test]
        fn forward_and_backward_equal_references(
            geometry in geometry(), relu in any::<bool>(), tile in prop_oneof![Just(0usize), 1usize..40], seed in any::<u64>(),
            taps in any::<bool>(),
        ) {
            // Small tiles split images into several tiles, or put several images in one group.
            TILE.store(tile, Ordering::Relaxed);
            ANY_TAPS.store(taps, Ordering::Relaxed);
            let (conv, x, weighting) = setup(geometry, seed);
            let ours = if relu { conv.forward_relu(&x) } else { conv.forward(&x) }.unwrap();
            let reference = |x: &Tensor| {
                let y = conv.forward_reference(x).unwrap();
                if relu { y.relu().unwrap() } else { y }
            };
            let [y, dx, dw, db] = naive(&conv, &x, &weighting, relu);
            assert_close("output", &ours, &y)?;
            assert_close("output vs candle", &ours, &reference(&x))?;
            let grads = |y: &Tensor| (y * &weighting).unwrap().sum_all().unwrap().backward();
            let g = grads(&ours).unwrap();
            assert_close("input gradient", g.get(&x).unwrap(), &dx)?;
            assert_close("weight gradient", g.get(&conv.weight).unwrap(), &dw)?;
            assert_close("bias gradient", g.get(&conv.bias).unwrap(), &db)?;
            if conv.stride == 1 {
                let c = grads(&reference(&x)).unwrap();
                for (what, var) in [("input", x.as_tensor()), ("weight", conv.weight.as_tensor()), ("bias", conv.bias.as_tensor())] {
                    assert_close(what, g.get(var).unwrap(), c.get(var).unwrap())?;
                }
            }
            TILE.store(0, Ordering::Relaxed);
            ANY_TAPS.store(false, Ordering::Relaxed);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Output rows at least 16 wide take the direct kernel (on CPUs with AVX-512) for
        /// the forward pass, at every stride; at stride 1 also for the weight gradient and
        /// the input gradient (itself a stride-1 convolution); at stride 2 for the input
        /// gradient of inputs at least 32 wide, as four phase convolutions (odd sizes give
        /// phases of unequal size, 2 × 2 kernels phases with one tap per row); stride 3
        /// takes the im2col products. All equal direct loops, with every remainder of the
        /// 12-channel, 4-channel, 6-tap and 32-pixel blocks.
        #[test]
        fn wide_rows_equal_direct_loops(
            n in 1usize..3, c in 1usize..5, o in 1usize..15, k in prop::sample::select(vec![1usize, 2, 3, 5]),
            stride in 1usize..4, h in 5usize..12, w in 16usize..110, same in any::<bool>(), relu in any::<bool>(),
            seed in any::<u64>(), band in 0usize..5,
        ) {
            // Bands of 1–4 rows (0: the kernel's own choice, one band at these heights).
            direct::BAND_ROWS.store(band, Ordering::Relaxed);
            direct_loops_agree((n, c, o, k, stride, h, w, same), relu, seed)?;
            direct::BAND_ROWS.store(0, Ordering::Relaxed);
        }

        /// Layers of at least 32 output channels and 32 taps take the weight gradient with
        /// the output channels in the lanes (on CPUs with AVX-512), at every stride and
        /// width: one block of 32 channels or several, with images split over the threads
        /// or (`spread`, otherwise only for large gradients) blocks split over them, partial
        /// blocks, several passes of 256 pixels (starting anywhere in an image), taps padded
        /// to whole blocks of 9 (5 × 5 kernels), and 3 × 3 kernels reading the input in place
        /// (the taps of edge pixels that fall in the padding left out) or (`padded`) from a
        /// padded copy. All equal direct loops.
        #[test]
        fn many_channels_equal_direct_loops(
            n in 1usize..4, c in 4usize..9, o in 32usize..100, k in prop::sample::select(vec![3usize, 5]),
            stride in 1usize..4, h in 5usize..14, w in 5usize..40, same in any::<bool>(), relu in any::<bool>(),
            spread in any::<bool>(), seed in any::<u64>(), padded in any::<bool>(),
        ) {
            SPREAD_BLOCKS.store(spread, Ordering::Relaxed);
            direct::PADDED_LANES.store(padded, Ordering::Relaxed);
            direct_loops_agree((n, c, o, k, stride, h, w, same), relu, seed)?;
            direct::PADDED_LANES.store(false, Ordering::Relaxed);
            SPREAD_BLOCKS.store(false, Ordering::Relaxed);
        }

        /// Groups of narrow images (one to all of them) on the tap products at every stride
        /// (so also the input gradient at stride 1, the tap products of the rotated
        /// kernels, masked by the fused ReLU; at stride 2 the input gradient's products per
        /// phase and tap, [`super::input_gradient_phase_taps`]): every padding, kernel rows
        /// that reach no input for some output rows, strides with rows of unequal phases.
        /// All equal direct loops.
        #[test]
        fn tap_products_equal_direct_loops(
            n in 1usize..5, c in 1usize..6, o in 1usize..8, k in prop::sample::select(vec![2usize, 3, 5]),
            stride in 1usize..4, h in 5usize..12, w in 5usize..12, same in any::<bool>(), relu in any::<bool>(),
            seed in any::<u64>(), tile in 1usize..400,
        ) {
            TILE.store(tile, Ordering::Relaxed);
            ANY_TAPS.store(true, Ordering::Relaxed);
            direct_loops_agree((n, c, o, k, stride, h, w, same), relu, seed)?;
            ANY_TAPS.store(false, Ordering::Relaxed);
            TILE.store(0, Ordering::Relaxed);
        }

        /// Rows exactly 16 wide go two at a time through the direct kernel (odd heights
        /// leave one alone), and their weight gradients several images at a time.
        #[test]
        fn sixteen_wide_rows_equal_direct_loops(
            n in 1usize..7, c in 1usize..4, o in 1usize..15, k in prop::sample::select(vec![1usize, 2, 3, 5]),
            h in 5usize..12, same in any::<bool>(), relu in any::<bool>(), seed in any::<u64>(), band in 0usize..5,
        ) {
            let w = if same { 16 } else { 15 + k };
            direct::BAND_ROWS.store(band, Ordering::Relaxed);
            direct_loops_agree((n, c, o, k, 1, h, w, same), relu, seed)?;
            direct::BAND_ROWS.store(0, Ordering::Relaxed);
        }
    }

    proptest! {
        /// [`super::tap_major`] puts tap `t` of kernel `(oi, ci)` at `(t, oi, ci)`, for 3 × 3
        /// kernels (AVX-512 gathers of 16 input channels, the tail masked) and others.
        #[test]
        fn tap_major_orders_kernels_by_tap(
            o in 1usize..5, c in 1usize..70, taps in prop::sample::select(vec![1usize, 4, 9, 25]),
        ) {
            let weight: Vec<f32> = (0..o * c * taps).map(|i| i as f32).collect();
            let planes = super::tap_major(&weight, o, c, taps);
            for (t, oi, ci) in itertools_product(taps, o, c, 1).map(|(t, oi, ci, _)| (t, oi, ci)) {
                prop_assert_eq!(planes[(t * o + oi) * c + ci], weight[(oi * c + ci) * taps + t]);
            }
        }
    }

    /// The tap products where the images do not split into equal groups: the last group's
    /// copies have shorter rows (a [`super::CopyPlan`] of their own).
    #[test]
    fn tap_products_with_a_shorter_last_group() {
        for (stride, relu) in [(1, false), (2, true), (1, true)] {
            // 36 output pixels at stride 1 (9 at stride 2) and tiles of 40 (10) columns:
            // groups of 2 images, then 1.
            TILE.store(if stride == 1 { 40 } else { 10 }, Ordering::Relaxed);
            ANY_TAPS.store(true, Ordering::Relaxed);
            let agree = direct_loops_agree((3, 3, 4, 3, stride, 6, 6, true), relu, 7);
            ANY_TAPS.store(false, Ordering::Relaxed);
            TILE.store(0, Ordering::Relaxed);
            agree.unwrap();
        }
    }

    /// The convolution's output and gradients against [`naive`]'s.
    fn direct_loops_agree(
        geometry: (usize, usize, usize, usize, usize, usize, usize, bool),
        relu: bool,
        seed: u64,
    ) -> Result<(), TestCaseError> {
        let (conv, x, weighting) = setup(geometry, seed);
        let ours = if relu { conv.forward_relu(&x) } else { conv.forward(&x) }.unwrap();
        let [y, dx, dw, db] = naive(&conv, &x, &weighting, relu);
        assert_close("output", &ours, &y)?;
        let g = (&ours * &weighting).unwrap().sum_all().unwrap().backward().unwrap();
        assert_close("input gradient", g.get(&x).unwrap(), &dx)?;
        assert_close("weight gradient", g.get(&conv.weight).unwrap(), &dw)?;
        assert_close("bias gradient", g.get(&conv.bias).unwrap(), &db)
    }

    /// Central differences of the weighted output sum agree with the gradients.
    #[test]
    fn gradients_agree_with_finite_differences() {
        for (geometry, seed) in
            [((2, 2, 3, 3, 1, 6, 5, true), 1), ((1, 3, 2, 3, 2, 7, 8, true), 2), ((2, 1, 2, 2, 1, 5, 5, false), 3)]
        {
            let (conv, x, weighting) = setup(geometry, seed);
            let loss = || (conv.forward(&x).unwrap() * &weighting).unwrap().sum_all().unwrap();
            let checks: [(&Var, &str); 3] = [(&x, "input"), (&conv.weight, "weight"), (&conv.bias, "bias")];
            super::super::testing::check_finite_differences(&checks, loss, 1e-2, 2e-3);
        }
    }

    #[test]
    fn bad_shapes_are_errors_not_panics() {
        let mut b = Builder::new(1, &Device::Cpu);
        let conv = Conv2d::new(&mut b, "c", 2, 3, 5, 1, Padding::Valid).unwrap();
        let small = Tensor::zeros((1, 2, 3, 3), DType::F32, &Device::Cpu).unwrap();
        assert!(conv.forward(&small).is_err());
        let wrong_channels = Tensor::zeros((1, 3, 8, 8), DType::F32, &Device::Cpu).unwrap();
        assert!(conv.forward(&wrong_channels).is_err());
    }
}
