//! Direct convolution on CPUs with AVX-512 (an "implicit GEMM"): no im2col matrix and no
//! packing of it.
//!
//! At stride 1 the im2col row of tap `(c, ky, kx)` for a run of output pixels in one output
//! row is a contiguous run of the zero-padded input, at a fixed offset. At stride `s` it is
//! one too once each padded row is stored as its columns `≡ 0, 1, … (mod s)` one after the
//! other (see [`Layout`]). The kernel keeps a block of up to 12 output channels × 32 pixels
//! in 24 registers and, for every tap, loads the 32 input pixels straight from the padded
//! image and broadcasts the 12 weights. The im2col route writes each input pixel `k²` times
//! and the matrix product then copies it again into packed panels, which costs as much as
//! the arithmetic when a layer has few output channels (each copied value is used only `o`
//! times).
//!
//! The weight gradient uses the same offsets the other way round, in one of two kernels
//! (see [`suits_weight_gradient`]), neither of which needs an im2col matrix.
//! [`weight_gradient_lanes`], for layers of at least 32 output channels at any stride and
//! width, holds 32 output channels in the lanes of two registers and broadcasts the input
//! at 9 taps per pixel: 18 running sums, no horizontal reduction at the end.
//! [`weight_gradient_images`], for narrower layers at stride 1, holds pixels in the lanes:
//! a block of 4 output channels × 6 taps keeps 24 running sums over the output pixels,
//! reduced across the lanes at the end.
//!
//! A stride-2 input gradient runs on the forward kernel too, as four stride-1 convolutions
//! of the output gradient, one per phase (even or odd) of the input's rows and columns
//! ([`input_gradient_phases`]).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::conv::{CopyPlan, Geometry, with_buffer};
use super::norm::Act;

/// Output channels per register block.
const ROWS: usize = 12;

/// Whether this CPU has AVX-512F.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether [`Plan::forward_image`] takes `g`: output rows at least 16 wide (shorter rows
/// leave most of the 32 lanes idle), a non-empty input, and AVX-512.
pub(crate) fn suits(g: &Geometry) -> bool {
    g.wo >= 16 && g.h > 0 && g.w > 0 && available()
}

/// Whether one of the direct weight gradients takes `g` (they also sum the bias gradient):
/// [`weight_gradient_lanes`] where [`suits_lanes`], else [`weight_gradient_images`] as
/// [`suits`] at stride 1. (At stride 2 the latter was no faster than the im2col product
/// over the SqueezeNet-like network's training step, and slower for its 128-channel layer
/// timed alone: the input it reads for every block of channels is four times the output
/// there.)
pub(crate) fn suits_weight_gradient(g: &Geometry) -> bool {
    suits_lanes(g) || (suits(g) && g.stride == 1)
}

/// How the direct kernels store a zero-padded image (padded row `py` is input row
/// `py − top`, padded column `px` input column `px − left`): per channel `hp` rows of `row`
/// values. At stride 1 a row is the padded row as it is; at stride `s` it holds the padded
/// columns `px ≡ 0 (mod s)`, then those `≡ 1`, and so on, `phase` values each. Consecutive
/// output pixels of a row (`s` padded columns apart) then read consecutive values at every
/// tap.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    /// Rows per channel.
    pub(crate) hp: usize,
    /// Values per row.
    pub(crate) row: usize,
    /// Values per column phase (`row / stride`).
    phase: usize,
    /// Padded columns that taps reach: `(wo − 1)·stride + k`.
    wp: usize,
    stride: usize,
}

impl Layout {
    /// The layout of `hp` padded rows per channel for `g`.
    pub(crate) fn new(g: &Geometry, hp: usize) -> Self {
        let wp = g.wo.saturating_sub(1) * g.stride + g.k;
        let phase = wp.div_ceil(g.stride.max(1));
        Layout { hp, row: phase * g.stride, phase, wp, stride: g.stride }
    }

    /// Padded rows that `count` consecutive output rows read.
    pub(crate) fn rows_for(g: &Geometry, count: usize) -> usize {
        count.saturating_sub(1) * g.stride + g.k
    }

    /// Values between the same tap of consecutive output rows.
    pub(crate) fn step(&self) -> usize {
        self.stride * self.row
    }

    /// Values per padded image.
    pub(crate) fn image(&self, g: &Geometry) -> usize {
        g.c * self.hp * self.row
    }

    /// Where output pixel `(oy, ox)`'s taps are counted from.
    pub(crate) fn pixel(&self, oy: usize, ox: usize) -> usize {
        oy * self.step() + ox
    }

    /// The offset of tap `t` (`(c, ky, kx)` in the weight's order) from its output pixel's
    /// [`Layout::pixel`].
    pub(crate) fn tap(&self, g: &Geometry, t: usize) -> usize {
        let (c, ky, kx) = g.tap(t);
        self.at(c, ky, kx)
    }

    /// The offset of input channel `c`'s padded row `ky` and column `kx` from an output
    /// pixel's [`Layout::pixel`].
    fn at(&self, c: usize, ky: usize, kx: usize) -> usize {
        (c * self.hp + ky) * self.row + kx % self.stride * self.phase + kx / self.stride
    }
}

/// What a forward kernel does to each output channel's sums (bias included) before
/// storing them.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Epilogue<'a> {
    /// Nothing.
    Identity,
    /// `max(v, 0)`.
    Relu,
    /// Per output channel: PReLU with the channel's `slope` if given, then `scale · v +
    /// shift`, then `act`: a convolution's [PReLU and] batch normalisation in evaluation,
    /// and the activation after it.
    Affine { slope: Option<&'a [f32]>, scale: &'a [f32], shift: &'a [f32], act: Act },
}

impl Epilogue<'_> {
    /// The epilogue of output channels `r0..r0 + r`.
    fn channels(self, r0: usize, r: usize) -> Self {
        match self {
            Epilogue::Affine { slope, scale, shift, act } => Epilogue::Affine {
                slope: slope.map(|s| &s[r0..r0 + r]),
                scale: &scale[r0..r0 + r],
                shift: &shift[r0..r0 + r],
                act,
            },
            other => other,
        }
    }

    /// Applies the epilogue to the values of output channel `ch`.
    pub(crate) fn apply(self, ch: usize, values: &mut [f32]) {
        match self {
            Epilogue::Identity => {}
            Epilogue::Relu => values.iter_mut().for_each(|v| *v = v.max(0.0)),
            Epilogue::Affine { slope, scale, shift, act } => {
                #[cfg(target_arch = "x86_64")]
                if available() {
                    // SAFETY: AVX-512F is present.
                    #[allow(unsafe_code)]
                    unsafe {
                        avx512::affine_values(values, slope.map(|s| s[ch]), scale[ch], shift[ch], act)
                    };
                    return;
                }
                if let Some(slope) = slope {
                    let a = slope[ch];
                    values.iter_mut().for_each(|v| *v = if *v > 0.0 { *v } else { a * *v });
                }
                super::norm::affine_in_place(values, scale[ch], shift[ch], act);
            }
        }
    }
}

thread_local! {
    static PADDED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// A band of padded rows of the current thread's image (see [`Plan::forward_image`]).
    static BAND: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The weights and tap offsets of one convolution for [`Plan::forward_image`], made once per
/// batch.
pub(crate) struct Plan {
    /// Weights block by block: each block of `R ≤ 12` output channels as `rows` runs of `R`.
    packed: Vec<f32>,
    /// Input offset of each tap `(c, ky, kx)` in a band of padded rows.
    offsets: Vec<usize>,
    /// Output rows per band.
    band: usize,
    /// A band's padded rows.
    layout: Layout,
}

/// Output rows per band of [`Plan::forward_image`] for padded rows of `row` values: all of
/// them when the padded image is at most twice [`BAND_VALUES`], else the image split evenly
/// into bands of about that size, at least 4 rows each (so that the `k − stride` rows each
/// band pads again stay a small part of the copy).
fn band_rows(g: &Geometry, row: usize) -> usize {
    #[cfg(test)]
    if let n @ 1.. = BAND_ROWS.load(std::sync::atomic::Ordering::Relaxed) {
        return n;
    }
    let row = (g.c * row).max(1);
    if row * Layout::rows_for(g, g.ho) <= 2 * BAND_VALUES {
        return g.ho.max(1);
    }
    let most = ((BAND_VALUES / row).saturating_sub(g.k) / g.stride.max(1) + 1).max(4);
    g.ho.div_ceil(g.ho.div_ceil(most))
}

/// Tests set the rows per band (0: [`band_rows`]' own choice). Every value must give the
/// same results, so tests that run at the same time may share it.
#[cfg(test)]
pub(crate) static BAND_ROWS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Padded values per band of [`Plan::forward_image`]: 512 KiB, which stays in a core's L2
/// cache while the kernel reads it (each value `o · k` times).
const BAND_VALUES: usize = 128 << 10;

impl Plan {
    /// The plan for `g` (as in [`suits`]) and its `weight` (`[o, c, k, k]`).
    pub(crate) fn new(g: &Geometry, weight: &[f32]) -> Self {
        let rows = g.rows();
        let taps: Vec<_> = (0..rows).map(|t| g.tap(t)).collect();
        Plan::with_taps(g, &taps, |o, t| weight[o * rows + t])
    }

    /// The plan for `g` (as in [`suits`]) that sums only over `taps`, each an input
    /// channel and a padded row and column below `g.k`, with `weight(o, t)` the weight of
    /// output channel `o` at `taps[t]`.
    fn with_taps(g: &Geometry, taps: &[(usize, usize, usize)], weight: impl Fn(usize, usize) -> f32) -> Self {
        let mut packed = Vec::with_capacity(g.o * taps.len());
        for r0 in (0..g.o).step_by(ROWS) {
            let r = ROWS.min(g.o - r0);
            for t in 0..taps.len() {
                packed.extend((r0..r0 + r).map(|o| weight(o, t)));
            }
        }
        let band = band_rows(g, Layout::new(g, 0).row);
        let layout = Layout::new(g, Layout::rows_for(g, band));
        let offsets = taps.iter().map(|&(c, ky, kx)| layout.at(c, ky, kx)).collect();
        Plan { packed, offsets, band, layout }
    }

    /// `yi = conv(xi, weight) + bias`, then `epilogue`, for one image, with `xi`
    /// zeroed where `mask` (its shape) is not positive, if given. `threads > 1` splits the
    /// output rows over that many rayon tasks. Every value of `yi` (`[o, ho, wo]`) is
    /// written, so it need not be initialised.
    ///
    /// Each task pads its input a band of rows at a time into a buffer that stays in cache,
    /// and computes the band's output rows from it: padding the whole image first wrote it
    /// out to memory and read it back (7 % of skip_fcn's inference in the copy alone).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_image(
        &self,
        g: &Geometry,
        xi: &[f32],
        mask: Option<&[f32]>,
        bias: &[f32],
        epilogue: Epilogue<'_>,
        yi: &mut [MaybeUninit<f32>],
        threads: usize,
    ) {
        let (layout, band, packed, offsets) = (&self.layout, self.band, &self.packed, &self.offsets);
        let out = OutPtr(yi.as_mut_ptr().cast());
        let task = |(oy0, oy1): (usize, usize)| {
            with_buffer(&BAND, layout.image(g), |buf| {
                for b0 in (oy0..oy1).step_by(band) {
                    let b1 = (b0 + band).min(oy1);
                    // Padded rows from `b0 · stride` on feed output rows `b0..b1`.
                    pad_rows(g, xi, mask, (b0 * g.stride, Layout::rows_for(g, b1 - b0)), layout, buf);
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: AVX-512F is present (`suits`); every address lies in `buf`
                    // (taps of rows `0..b1 − b0` stay inside the band's `layout.hp` rows
                    // per channel), `packed`, or rows `b0..b1` of each output plane, which
                    // no other task writes.
                    #[allow(unsafe_code)]
                    unsafe {
                        let y = out.get().add(b0 * g.wo);
                        avx512::rows(g, (0, b1 - b0), buf, layout.step(), packed, offsets, bias, epilogue, y)
                    };
                    #[cfg(not(target_arch = "x86_64"))]
                    let _ = (b1, out, packed, offsets, bias, epilogue);
                }
            })
        };
        if threads > 1 {
            let per = g.ho.div_ceil(threads);
            (0..threads).into_par_iter().map(|t| (t * per, ((t + 1) * per).min(g.ho))).for_each(task);
        } else {
            task((0, g.ho));
        }
    }
}

/// The input gradient of a stride-2 convolution `g` as four stride-1 convolutions of the
/// output gradient `dy` (`[n, o, ho, wo]`, zeroed where `mask` is not positive if given),
/// one per phase of the input's rows and columns (even or odd), on [`Plan::forward_image`]:
/// input row `2a + p` receives, from each kernel row `ky ≡ p + top (mod 2)`, output row
/// `a + (p + top − ky) / 2`, and likewise for columns. The phases' kernels hold only those
/// taps (2 × 2, 2 × 1, 1 × 2 and 1 × 1 of a 3 × 3 kernel): the same products as the im2col
/// route (`Wᵀ · dy`, then each column added back into the image), without its column
/// matrix, 9 times the size of the input gradient, written and read back. `None` where the
/// direct kernel does not take the phases (stride other than 2, phase rows under 16 wide,
/// no AVX-512). Returns `dx` (`[n, c, h, w]`).
///
/// Measured inside the SqueezeNet-like network's training step (2 threads, old and new
/// alternated in one process): 32 → 64 channels at 64² 12.7 → 7.4 ms, 128 → 128 at 32²
/// 16.0 → 10.9 ms.
pub(crate) fn input_gradient_phases(
    g: &Geometry,
    dy: &[f32],
    weight: &[f32],
    mask: Option<&[f32]>,
) -> Option<Vec<f32>> {
    if g.stride != 2 || g.h < 2 || g.w < 2 || g.ho == 0 || g.wo == 0 || g.o == 0 || g.c == 0 || !available() {
        return None;
    }
    // Rows (or columns) of phase `p` in `n`, and its kernel indices with their shifts.
    let size = |n: usize, p: usize| (n - p).div_ceil(2);
    if size(g.w, 1) < 16 {
        return None;
    }
    let (rows, cols) =
        ([g.phase_taps(g.top, 0), g.phase_taps(g.top, 1)], [g.phase_taps(g.left, 0), g.phase_taps(g.left, 1)]);
    // One padded layout of the output gradient for all four phases.
    let span = |s: &[Vec<(usize, isize)>; 2]| {
        let d = s.iter().flatten().map(|&(_, d)| d);
        (d.clone().min().unwrap_or(0).min(0), d.max().unwrap_or(0).max(0))
    };
    let ((y0, y1), (x0, x1)) = (span(&rows), span(&cols));
    let (top, left) = (y0.unsigned_abs(), x0.unsigned_abs());
    let k = (y1 - y0).max(x1 - x0) as usize + 1;
    let plans: Vec<(usize, usize, Geometry, Plan)> = (0..4)
        .map(|phase| {
            let (py, px) = (phase / 2, phase % 2);
            let (ho, wo) = (size(g.h, py), size(g.w, px));
            let gp = Geometry { n: g.n, c: g.o, h: g.ho, w: g.wo, o: g.c, k, stride: 1, top, left, ho, wo };
            // The phase's kernel positions and where they read in the padded gradient.
            let at: Vec<((usize, usize), (usize, usize))> = rows[py]
                .iter()
                .flat_map(|&(ky, dy)| {
                    cols[px].iter().map(move |&(kx, dx)| ((ky, kx), ((dy - y0) as usize, (dx - x0) as usize)))
                })
                .collect();
            let taps: Vec<_> = (0..g.o).flat_map(|oc| at.iter().map(move |&(_, (ry, rx))| (oc, ry, rx))).collect();
            let plan = Plan::with_taps(&gp, &taps, |r, t| {
                let (oc, ((ky, kx), _)) = (t / at.len(), at[t % at.len()]);
                weight[((oc * g.c + r) * g.k + ky) * g.k + kx]
            });
            (py, px, gp, plan)
        })
        .collect();
    let (image_in, image_out) = (g.o * g.ho * g.wo, g.c * g.h * g.w);
    let threads = rayon::current_num_threads();
    let inner = if g.n < threads { threads } else { 1 };
    let zero = vec![0f32; g.c];
    let image = |(i, dxi): (usize, &mut [MaybeUninit<f32>])| {
        let (dyi, mi) = (&dy[i * image_in..(i + 1) * image_in], mask.map(|m| &m[i * image_in..(i + 1) * image_in]));
        // The even and odd columns of each input row parity, then both into the rows.
        for pair in plans.chunks_exact(2) {
            let ((py, _, ge, even), (_, _, go, odd)) = (&pair[0], &pair[1]);
            let (le, lo) = (g.c * ge.ho * ge.wo, g.c * go.ho * go.wo);
            with_buffer(&PHASE, le + lo, |buf| {
                let (be, bo) = buf.split_at_mut(le);
                for (plan, gp, out) in [(even, ge, &mut *be), (odd, go, &mut *bo)] {
                    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and the kernel
                    // writes only initialised values.
                    #[allow(unsafe_code)]
                    let out = unsafe { &mut *(std::ptr::from_mut(out) as *mut [MaybeUninit<f32>]) };
                    plan.forward_image(gp, dyi, mi, &zero, Epilogue::Identity, out, inner);
                }
                let rows = be.chunks_exact(ge.wo).zip(bo.chunks_exact(go.wo));
                for (r, (e, o)) in rows.enumerate() {
                    let (ch, a) = (r / ge.ho, r % ge.ho);
                    let row = &mut dxi[(ch * g.h + 2 * a + py) * g.w..][..g.w];
                    for ((d, &e), &o) in row.chunks_exact_mut(2).zip(e).zip(o) {
                        d[0].write(e);
                        d[1].write(o);
                    }
                    if g.w % 2 == 1 {
                        row[g.w - 1].write(e[ge.wo - 1]);
                    }
                }
            })
        }
    };
    let write = |dx: &mut [MaybeUninit<f32>]| {
        if inner > 1 {
            dx.chunks_mut(image_out.max(1)).enumerate().for_each(image);
        } else {
            dx.par_chunks_mut(image_out.max(1)).enumerate().for_each(image);
        }
    };
    // SAFETY: the two column phases of each row parity write every value of the image's
    // rows of that parity, and the two parities cover all rows.
    #[allow(unsafe_code)]
    let dx = unsafe { super::planes::written(g.n * image_out, write) };
    Some(dx)
}

thread_local! {
    /// One phase of an image's input gradient (see [`input_gradient_phases`]).
    static PHASE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Calls `f` with the images of `xs` (each `[c, h, w]`) padded into `layout` (see
/// [`pad_rows`]) one after the other in this thread's reusable buffer; `threads > 1` pads
/// the images on that many rayon tasks.
pub(crate) fn with_padded<R>(
    g: &Geometry,
    xs: &[f32],
    mask: Option<&[f32]>,
    layout: &Layout,
    threads: usize,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    let (image, padded) = ((g.c * g.h * g.w).max(1), layout.image(g));
    // Input rows under 32 values go by a plan of places: row by row, the deep layers' rows
    // of 4 to 16 values cost more in zero fills and slicing than in the values. Measured in
    // one process, old and new alternated (32 images, 2 threads, a layer's backward pass
    // through batch norm and ELU): 0.98–0.99× the time from 16 × 16 inputs down to 4 × 4.
    let plan = (g.w < 32).then(|| {
        let (s, phase) = (layout.stride.max(1), layout.phase.max(1));
        let rows = |_, r: usize| r.checked_sub(g.top).filter(|&iy| iy < g.h);
        // Value `col` of a row is padded column `(col mod phase)·s + col / phase`.
        let cols = |_, col: usize| {
            let px = col % phase * s + col / phase;
            px.checked_sub(g.left).filter(|&ix| ix < g.w && px < layout.wp)
        };
        CopyPlan::new(1, g.c, (layout.hp, layout.row, layout.row), g.w, rows, cols)
    });
    let pad = |(j, (xi, dst)): (usize, (&[f32], &mut [f32]))| match &plan {
        Some(plan) => plan.copy(
            xi,
            mask.map(|m| &m[j * image..(j + 1) * image]),
            dst,
            (g.c, 1),
            (layout.hp, layout.row),
            |ch, _| ch * g.h * g.w,
        ),
        None => pad_rows(g, xi, mask.map(|m| &m[j * image..]), (0, layout.hp), layout, dst),
    };
    with_buffer(&PADDED, xs.len() / image * padded, |buf| {
        if threads > 1 {
            xs.par_chunks(image).zip(buf.par_chunks_mut(padded)).enumerate().for_each(pad);
        } else {
            xs.chunks(image).zip(buf.chunks_mut(padded)).enumerate().for_each(pad);
        }
        f(buf)
    })
}

/// Every tap's offset in `layout` (see [`Layout::tap`]), padded with zeros to whole blocks
/// of `block` taps for the weight-gradient kernels: the extra taps read valid memory, and
/// their sums are dropped.
fn block_offsets(g: &Geometry, layout: &Layout, block: usize) -> Vec<usize> {
    let taps = g.rows();
    (0..taps.next_multiple_of(block)).map(|t| if t < taps { layout.tap(g, t) } else { 0 }).collect()
}

/// Output channels × taps per register block of [`weight_gradient_images`].
const GRAD_ROWS: usize = 4;
const GRAD_TAPS: usize = 6;

thread_local! {
    static GRADIENT: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Adds the weight gradient of the images in `xs` (each `[c, h, w]`, their output
/// gradients `dys` and outputs `ys` each `[o, ho, wo]`) into `dw` (`[o, c·k·k]`, followed by
/// the bias gradient's `o` values if `dw` holds them) for `g` (as in [`suits`]):
/// `dw[o, tap] += Σ_p dy[o, p] · x[p + offset(tap)]` over the output pixels `p` of every
/// image, with `dy` zeroed where the output `y` is not positive if `relu`. No im2col
/// matrix: a block of 4 output channels × 6 taps keeps 24 sums of 16 pixels in registers
/// over all the images, loading 4 gradient and 6 input vectors per 24 products. (Several
/// small images at once spread the sums' final reduction over more products.) `threads >
/// 1` spreads the channel blocks over that many rayon tasks.
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_gradient_images(
    g: &Geometry,
    xs: &[f32],
    dys: &[f32],
    ys: &[f32],
    relu: bool,
    dw: &mut [f32],
    threads: usize,
) {
    let layout = Layout::new(g, Layout::rows_for(g, g.ho));
    let (pixels, taps) = (g.ho * g.wo, g.rows());
    let images = dys.len() / (g.o * pixels).max(1);
    let offsets = block_offsets(g, &layout, GRAD_TAPS);
    // Each image's (masked) gradient with its channels padded to whole blocks by zero rows.
    let rows = g.o.next_multiple_of(GRAD_ROWS);
    GRADIENT.with(|cell| {
        let mut fresh = Vec::new();
        let mut held = cell.try_borrow_mut();
        let grad = match held.as_mut() {
            Ok(buf) => &mut **buf,
            Err(_) => &mut fresh,
        };
        grad.clear();
        for (dyi, yi) in dys.chunks(g.o * pixels).zip(ys.chunks(g.o * pixels)).take(images) {
            let start = grad.len();
            if relu {
                grad.extend(dyi.iter().zip(yi).map(|(&d, &y)| if y > 0.0 { d } else { 0.0 }));
            } else {
                grad.extend_from_slice(dyi);
            }
            // The bias gradient, while the rows are in cache: one sum per output channel.
            for (db, row) in dw[g.o * taps..].iter_mut().zip(grad[start..].chunks(pixels)) {
                *db += super::planes::lane_sum(row, None) as f32;
            }
            grad.resize(start + rows * pixels, 0.0);
        }
        let grad = &grad[..];
        with_padded(g, &xs[..images * g.c * g.h * g.w], None, &layout, 1, |xpad| {
            let block = |(b, dw): (usize, &mut [f32])| {
                let r0 = b * GRAD_ROWS;
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX-512F is present (`suits`); for each of the `images`, the
                // gradient rows `r0..r0 + 4` lie in its `rows · pixels` part of `grad`
                // (padded to whole blocks), every tap offset plus a pixel's position lies
                // in its `layout.image(g)` part of `xpad`, and `dw` holds this block's (up to
                // 4) rows.
                #[allow(unsafe_code)]
                unsafe {
                    avx512::weight_rows(
                        g,
                        &layout,
                        (&grad[r0 * pixels..], rows * pixels),
                        xpad,
                        &offsets,
                        taps,
                        images,
                        dw,
                    )
                };
                #[cfg(not(target_arch = "x86_64"))]
                let _ = (r0, dw, grad, xpad);
            };
            let dw = &mut dw[..g.o * taps];
            if threads > 1 {
                dw.par_chunks_mut(GRAD_ROWS * taps).enumerate().for_each(block);
            } else {
                dw.chunks_mut(GRAD_ROWS * taps).enumerate().for_each(block);
            }
        })
    })
}

/// Offsets to gather values at (the im2col of a padded image, one tap at a time), with the
/// extent they reach, checked once.
pub(crate) struct Gather {
    at: Vec<u32>,
    /// One past the largest offset.
    end: usize,
}

impl Gather {
    pub(crate) fn new(at: Vec<u32>) -> Self {
        let end = at.iter().max().map_or(0, |&m| m as usize + 1);
        Gather { at, end }
    }

    /// `dst[q] = src[at[q]]` for every offset. Offsets must lie inside `src`; where they do
    /// not (only a bug could cause it: callers derive them from the image's shape) `dst`
    /// is left as it is.
    pub(crate) fn run(&self, src: &[f32], dst: &mut [f32]) {
        if self.end > src.len() {
            return;
        }
        let n = self.at.len().min(dst.len());
        #[cfg(target_arch = "x86_64")]
        if available() && src.len() <= i32::MAX as usize {
            // SAFETY: AVX-512F is present; every offset lies inside `src` (below `end`) and
            // below 2³¹, and `dst` holds the `n` values written.
            #[allow(unsafe_code)]
            unsafe {
                avx512::gather(src, &self.at[..n], &mut dst[..n])
            };
            return;
        }
        for (d, &i) in dst[..n].iter_mut().zip(&self.at) {
            *d = src[i as usize];
        }
    }
}

/// The output planes' base pointer, shared by the tasks that write disjoint rows.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);

impl OutPtr {
    /// The pointer (a method, so that closures capture the whole `Sync` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: the tasks write disjoint output rows (see `Plan::forward_image`).
#[allow(unsafe_code)]
unsafe impl Send for OutPtr {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl Sync for OutPtr {}

/// Output channels per block of [`weight_gradient_lanes`]: two vectors of 16 lanes.
const LANE_ROWS: usize = 32;
/// Taps per register block of [`weight_gradient_lanes`] (a 3 × 3 channel's).
const LANE_TAPS: usize = 9;
/// Output pixels per pass of [`weight_gradient_lanes`] over a block's taps: their
/// gradients (128 bytes each) stay in L1 while every tap reads them.
const LANE_PIXELS: usize = 256;

/// Whether [`weight_gradient_lanes`] takes `g`: at least 32 output channels (fewer leave
/// lanes idle: 16-channel layers took twice as long as with [`weight_gradient_images`]) and
/// 32 taps (a 3 × 3 layer on one input channel was faster with the pixels in the lanes), a
/// non-empty input and output, and AVX-512; any stride and output width.
pub(crate) fn suits_lanes(g: &Geometry) -> bool {
    g.o >= LANE_ROWS && g.rows() >= 32 && g.h > 0 && g.w > 0 && g.ho > 0 && g.wo > 0 && available()
}

/// For 3 × 3 kernels, the taps of each output pixel of an image (row-major) that read
/// inside the image, as [`EDGE_TAPS`]' index: all nine, or without the first or last
/// kernel row, column or both where the pixel is at an edge. `None` for other kernels
/// (whose blocks of 9 taps are not one channel's) and where some pixel has taps outside
/// the image that no class leaves out (images under 3 pixels, padding over 1).
fn edge_classes(g: &Geometry) -> Option<Vec<u8>> {
    if g.k != 3 {
        return None;
    }
    // 0: the three kernel rows; 1: without the first; 2: without the last.
    let class = |o: usize, pad: usize, size: usize| {
        let inside = |k: usize| (o * g.stride + k).checked_sub(pad).is_some_and(|i| i < size);
        match (inside(0), inside(1), inside(2)) {
            (true, true, true) => Some(0u8),
            (false, true, true) => Some(1),
            (true, true, false) => Some(2),
            _ => None,
        }
    };
    let rows: Option<Vec<u8>> = (0..g.ho).map(|oy| class(oy, g.top, g.h)).collect();
    let cols: Option<Vec<u8>> = (0..g.wo).map(|ox| class(ox, g.left, g.w)).collect();
    let (rows, cols) = (rows?, cols?);
    Some(rows.iter().flat_map(|&r| cols.iter().map(move |&c| r * 3 + c)).collect())
}

/// Tests give 3 × 3 kernels a padded copy of the input too, as other kernels have, so
/// that both ways are tested; every setting must give the same results.
#[cfg(test)]
pub(crate) static PADDED_LANES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The taps (bit `3·ky + kx`) of each [`edge_classes`] class: kernel rows `× 3` plus
/// kernel columns.
const EDGE_TAPS: [u16; 9] = {
    let lines = [0b111u16, 0b110, 0b011];
    let mut out = [0u16; 9];
    let mut i = 0;
    while i < 9 {
        let (r, c) = (lines[i / 3], lines[i % 3]);
        let mut t = 0;
        while t < 9 {
            if r & (1 << (t / 3)) != 0 && c & (1 << (t % 3)) != 0 {
                out[i] |= 1 << t;
            }
            t += 1;
        }
        i += 1;
    }
    out
};

/// Output-channel blocks of [`weight_gradient_lanes`] for `g`.
pub(crate) fn lane_blocks(g: &Geometry) -> usize {
    g.o.div_ceil(LANE_ROWS)
}

thread_local! {
    /// The output gradient with output channels in the lanes (see [`weight_gradient_lanes`]).
    static LANES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// A task's sums in [`weight_gradient_lanes`].
    static LANE_SUMS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Adds the weight gradient of the images in `xs` (each `[c, h, w]`, their output
/// gradients `dys` and outputs `ys` each `[o, ho, wo]`) into `dw` (`[o, c·k·k]`, followed by
/// the bias gradient's `o` values if `dw` holds them) for `g` (as in [`suits_lanes`]):
/// `dw[o, tap] += Σ_p dy[o, p] · x[p + offset(tap)]` over the output pixels `p` of every
/// image, with `dy` zeroed where the output `y` is not positive if `relu`.
///
/// The lanes hold output channels, not pixels: the gradient is first transposed to one row
/// of 32 output channels per pixel (blocks of 32 channels one after the other), and a
/// register block of 32 channels × 9 taps then adds, for every pixel, its two gradient
/// vectors times the 9 input values at the taps, each broadcast from the image. The
/// sums end in the lanes of the channel they belong to, so there is no horizontal
/// reduction, and the broadcasts never straddle a cache line as unaligned vector loads of
/// the input do. The output width does not matter (narrow deep layers take it too), nor
/// does the stride. `threads > 1` spreads the blocks of 32 output channels over that many
/// rayon tasks.
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_gradient_lanes(
    g: &Geometry,
    xs: &[f32],
    dys: &[f32],
    ys: &[f32],
    relu: bool,
    dw: &mut [f32],
    threads: usize,
) {
    // SAFETY: `[f32]` and `[MaybeUninit<f32>]` have the same layout, and `lanes_into`
    // writes only initialised values into it.
    #[allow(unsafe_code)]
    let dw = unsafe { &mut *(dw as *mut [f32] as *mut [MaybeUninit<f32>]) };
    lanes_into(g, xs, dys, ys, relu, dw, true, threads);
}

/// [`weight_gradient_lanes`] of all the images at once into a new buffer of `o · c·k·k`
/// values (and the `o` of the bias gradient after them with `bias`), written rather than
/// added: no zeroed buffer to add into, up to 19 MiB for a 512 → 1024 layer. Measured
/// inside squeeze_bn_elu's training step (2 threads), zeroing took 3.0 ms per step.
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_gradient_lanes_written(
    g: &Geometry,
    xs: &[f32],
    dys: &[f32],
    ys: &[f32],
    relu: bool,
    bias: bool,
    threads: usize,
) -> Vec<f32> {
    let len = g.o * g.rows() + if bias { g.o } else { 0 };
    let write = |dw: &mut [MaybeUninit<f32>]| lanes_into(g, xs, dys, ys, relu, dw, false, threads);
    // SAFETY: without adding, `lanes_into` writes every value of the weight gradient (each
    // block of output channels all its rows and taps) and of the bias gradient.
    #[allow(unsafe_code)]
    unsafe {
        super::planes::written(len, write)
    }
}

/// [`weight_gradient_lanes`] into `dw`, adding to its values (initialised) if `add`, else
/// writing every one.
#[allow(clippy::too_many_arguments)]
fn lanes_into(
    g: &Geometry,
    xs: &[f32],
    dys: &[f32],
    ys: &[f32],
    relu: bool,
    dw: &mut [MaybeUninit<f32>],
    add: bool,
    threads: usize,
) {
    // `v`, plus the value at `d` if adding.
    let put = |d: &mut MaybeUninit<f32>, v: f32| {
        // SAFETY: when adding, the caller's values are initialised.
        #[allow(unsafe_code)]
        d.write(if add { (unsafe { d.assume_init() }) + v } else { v });
    };
    let layout = Layout::new(g, Layout::rows_for(g, g.ho));
    let (pixels, taps, padded) = (g.ho * g.wo, g.rows(), layout.image(g));
    let images = dys.len() / (g.o * pixels).max(1);
    let count = images * pixels;
    #[cfg(test)]
    let classes = edge_classes(g).filter(|_| !PADDED_LANES.load(std::sync::atomic::Ordering::Relaxed));
    #[cfg(not(test))]
    let classes = edge_classes(g);
    // 3 × 3 kernels read the input where it lies, at each pixel only the taps that its
    // edge class keeps; others read a padded copy. Origins are counted from padded row and
    // column 0: a pixel at the image's top or left edge has its origin before the image (a
    // wrapped `usize`, to which the kernel adds a tap's offset first). Measured in one
    // process against the padded copy, old and new alternated (32 images, 2 threads, a
    // layer's backward pass through batch norm and ELU): 0.93–0.97× the time on the
    // SqueezeNet-like network's layers from 32 → 32 channels at 64 × 64 down to 512 → 512
    // at stride 2 from 8 × 8; level (0.99–1.00×) at 64 → 128 on 32 × 32, and at 512 → 1024
    // on 4 × 4, where the padded copy had skipped the padded taps already.
    let in_place = classes.is_some();
    let (offsets, origins): (Vec<usize>, Vec<usize>) = if in_place {
        let (image, corner) = (g.c * g.h * g.w, g.top * g.w + g.left);
        let offsets = (0..taps).map(|t| g.tap(t)).map(|(c, ky, kx)| (c * g.h + ky) * g.w + kx).collect();
        let origin = |i: usize, p: usize| (i * image + (p / g.wo * g.w + p % g.wo) * g.stride).wrapping_sub(corner);
        (offsets, (0..images).flat_map(|i| (0..pixels).map(move |p| origin(i, p))).collect())
    } else {
        let origin = |i: usize, p: usize| i * padded + layout.pixel(p / g.wo, p % g.wo);
        (
            block_offsets(g, &layout, LANE_TAPS),
            (0..images).flat_map(|i| (0..pixels).map(move |p| origin(i, p))).collect(),
        )
    };
    // A branch per pixel only where some pixel's taps read padding.
    let edges = classes.filter(|classes| classes.iter().any(|&c| c != 0));
    let blocks = lane_blocks(g);
    let per_task = blocks.div_ceil(threads.max(1));
    let block_len = count * LANE_ROWS;
    // 16 values of slack to start the rows on a 64-byte boundary.
    with_buffer(&LANES, blocks * block_len + 16, |buf| {
        let skip = buf.as_ptr().align_offset(64).min(16);
        let lanes = &mut buf[skip..skip + blocks * block_len];
        // Transposed block by block, 64 pixels at a time (a tile of 8 KiB that stays in
        // L1); each block's bias sums on the way.
        let transpose = |(b, block): (usize, &mut [f32])| -> Vec<f64> {
            let o0 = b * LANE_ROWS;
            let width = LANE_ROWS.min(g.o - o0);
            let mut sums = vec![0f64; width];
            for (i, dst) in block.chunks_mut(pixels * LANE_ROWS).enumerate() {
                let at = (i * g.o + o0) * pixels;
                let (dy, y) = (&dys[at..at + width * pixels], &ys[at..at + width * pixels]);
                for (sum, (dy, y)) in sums.iter_mut().zip(dy.chunks(pixels).zip(y.chunks(pixels))) {
                    *sum += super::planes::lane_sum(dy, relu.then_some(y));
                }
                for (p0, tile) in (0..pixels).step_by(64).zip(dst.chunks_mut(64 * LANE_ROWS)) {
                    let n = (pixels - p0).min(64);
                    // The lanes of channels past `o` keep stale values: their sums are dropped.
                    for j in 0..width {
                        let column = tile[j..].iter_mut().step_by(LANE_ROWS).take(n);
                        let (dy, y) =
                            (&dy[j * pixels + p0..j * pixels + p0 + n], &y[j * pixels + p0..j * pixels + p0 + n]);
                        if relu {
                            column.zip(dy.iter().zip(y)).for_each(|(d, (&v, &y))| *d = if y > 0.0 { v } else { 0.0 });
                        } else {
                            column.zip(dy).for_each(|(d, &v)| *d = v);
                        }
                    }
                }
            }
            sums
        };
        let sums: Vec<Vec<f64>> = if threads > 1 {
            lanes.par_chunks_mut(block_len).enumerate().map(transpose).collect()
        } else {
            lanes.chunks_mut(block_len).enumerate().map(transpose).collect()
        };
        if dw.len() >= g.o * taps + g.o {
            for (db, s) in dw[g.o * taps..].iter_mut().zip(sums.iter().flatten()) {
                put(db, *s as f32);
            }
        }
        let lanes = &lanes[..];
        let xs = &xs[..images * g.c * g.h * g.w];
        let mut passes = |xpad: &[f32]| {
            // A task's blocks of output channels `b0..b1` (its rows of `dw`), per pass over
            // a range of pixels. Where the blocks are spread over the threads (the whole
            // batch at once), per channel block every tap block in turn, so that the
            // block's gradients at those pixels (32 KiB) are read from L1 for all of them
            // and the input values, about a tenth as many per tap block, from L2: measured
            // in one process against the other order, old and new alternated, the backward
            // pass through batch norm and ELU took 0.97–0.99× the time at 8 × 8 to 16 × 16
            // and 128 channels or more (32 images, 2 threads; passes of 64, 128 or 512
            // pixels gained less). Elsewhere (a few images per thread, all its channel
            // blocks) per tap block every channel block in turn, so that the input values
            // are read from L1 for all of them: the other order there made the small
            // screening classifier's training step 0.5–4 % slower in 5 of 6 runs.
            let task = |(t, dw): (usize, &mut [MaybeUninit<f32>])| {
                let b0 = t * per_task;
                let nb = dw.len().div_ceil(LANE_ROWS * taps.max(1));
                with_buffer(&LANE_SUMS, nb * offsets.len() * LANE_ROWS, |acc| {
                    let tap_blocks = offsets.len() / LANE_TAPS;
                    for q0 in (0..count).step_by(LANE_PIXELS) {
                        let q1 = (q0 + LANE_PIXELS).min(count);
                        for step in 0..tap_blocks * nb {
                            // `(tap block, channel block)` of this step of the pass.
                            let (c, j) = if threads > 1 {
                                (step % tap_blocks, step / tap_blocks)
                            } else {
                                (step / nb, step % nb)
                            };
                            let off = &offsets[c * LANE_TAPS..(c + 1) * LANE_TAPS];
                            let lanes = &lanes[(b0 + j) * block_len..(b0 + j + 1) * block_len];
                            let at = (j * offsets.len() + c * LANE_TAPS) * LANE_ROWS;
                            let acc = &mut acc[at..at + LANE_TAPS * LANE_ROWS];
                            #[cfg(target_arch = "x86_64")]
                            // SAFETY: AVX-512F is present (`suits_lanes`); `lanes` holds a
                            // row of 32 values for each of the pixels `q0..q1`; every origin
                            // plus the offset of a tap that the pixel reads lies in `xpad`:
                            // in the padded copy each pixel's taps stay inside its image's
                            // padded rows, and in place `edges` keeps only taps inside the
                            // image (`edge_classes`); `acc` holds 9 × 32 sums.
                            #[allow(unsafe_code)]
                            unsafe {
                                avx512::weight_lanes(
                                    &lanes[q0 * LANE_ROWS..q1 * LANE_ROWS],
                                    xpad,
                                    &origins[q0..q1],
                                    edges.as_ref().map(|e| (e.as_slice(), q0 % pixels)),
                                    off,
                                    acc,
                                    q0 == 0,
                                )
                            };
                            #[cfg(not(target_arch = "x86_64"))]
                            let _ = (off, acc, q1, xpad, lanes);
                        }
                    }
                    // Back to `[o, taps]`, 16 taps at a time (a tile of 2 KiB of `acc`).
                    for (j, dw) in dw.chunks_mut(LANE_ROWS * taps).enumerate() {
                        let acc = &acc[j * offsets.len() * LANE_ROWS..];
                        for t0 in (0..taps).step_by(16) {
                            let t1 = (t0 + 16).min(taps);
                            for (r, row) in dw.chunks_mut(taps).enumerate() {
                                for (d, sums) in
                                    row[t0..t1].iter_mut().zip(acc[t0 * LANE_ROWS..].chunks_exact(LANE_ROWS))
                                {
                                    put(d, sums[r]);
                                }
                            }
                        }
                    }
                })
            };
            let dw = &mut dw[..g.o * taps];
            if threads > 1 {
                dw.par_chunks_mut(per_task * LANE_ROWS * taps).enumerate().for_each(task);
            } else {
                dw.chunks_mut(per_task * LANE_ROWS * taps).enumerate().for_each(task);
            }
        };
        if in_place { passes(xs) } else { with_padded(g, xs, None, &layout, threads, passes) }
    })
}

/// Padded rows `py0..py0 + count` of `xi` (`[c, h, w]`), zero outside the image and
/// where `mask` is not positive if given, written in `layout` to the first `count` of each
/// channel's `layout.hp` rows in `buf`. Input columns beyond the padded width (which no tap
/// reaches: valid padding with a stride that does not divide) are left out.
fn pad_rows(
    g: &Geometry,
    xi: &[f32],
    mask: Option<&[f32]>,
    (py0, count): (usize, usize),
    layout: &Layout,
    buf: &mut [f32],
) {
    let (wp, s) = (layout.wp, layout.stride.max(1));
    let width = g.w.min(wp.saturating_sub(g.left));
    let plane = g.h * g.w;
    let keep = |v: f32, m: f32| if m > 0.0 { v } else { 0.0 };
    for (ch, rows) in buf.chunks_mut(layout.hp * layout.row).take(g.c).enumerate() {
        for (r, dst) in rows.chunks_mut(layout.row).take(count).enumerate() {
            let Some(iy) = (py0 + r).checked_sub(g.top).filter(|&iy| iy < g.h) else {
                dst.fill(0.0);
                continue;
            };
            let at = ch * plane + iy * g.w;
            let (src, m) = (&xi[at..at + width], mask.map(|m| &m[at..at + width]));
            if s == 1 {
                let (before, rest) = dst.split_at_mut(g.left.min(wp));
                let (body, after) = rest.split_at_mut(width);
                before.fill(0.0);
                after.fill(0.0);
                match m {
                    None => body.copy_from_slice(src),
                    Some(m) => body.iter_mut().zip(src).zip(m).for_each(|((b, &v), &m)| *b = keep(v, m)),
                }
                continue;
            }
            dst.fill(0.0);
            #[cfg(target_arch = "x86_64")]
            if s == 2 && m.is_none() && available() {
                // Even input columns to one phase, odd ones to the other, 16 at a time.
                let (ne, no, at) = (width.div_ceil(2), width / 2, g.left / 2);
                let (p0, p1) = dst.split_at_mut(layout.phase);
                let (even, odd) = if g.left.is_multiple_of(2) {
                    (&mut p0[at..at + ne], &mut p1[at..at + no])
                } else {
                    (&mut p1[at..at + ne], &mut p0[at + 1..at + 1 + no])
                };
                // SAFETY: AVX-512F is present; `even` and `odd` hold the halves of `src`.
                #[allow(unsafe_code)]
                unsafe {
                    avx512::deinterleave(src, even, odd)
                };
                continue;
            }
            for q in 0..s {
                // Input columns `ix` with `(left + ix) mod s = q`, every `s`-th from `ix0`.
                let ix0 = (q + s - g.left % s) % s;
                if ix0 >= width {
                    continue;
                }
                let out = &mut dst[q * layout.phase + (g.left + ix0) / s..];
                let src = src[ix0..].iter().step_by(s);
                match m {
                    None => out.iter_mut().zip(src).for_each(|(d, &v)| *d = v),
                    Some(m) => out.iter_mut().zip(src.zip(m[ix0..].iter().step_by(s))).for_each(|(d, (&v, &m))| {
                        *d = keep(v, m);
                    }),
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub(super) mod avx512 {
    use std::arch::x86_64::{
        __m512, __m512i, __mmask16, _CMP_GT_OQ, _CMP_LE_OQ, _MM_HINT_T0, _mm_prefetch, _mm512_add_epi32, _mm512_add_ps,
        _mm512_castps_si512, _mm512_castsi512_ps, _mm512_cmp_ps_mask, _mm512_fmadd_ps, _mm512_loadu_epi32,
        _mm512_loadu_ps, _mm512_mask_blend_ps, _mm512_mask_i32gather_ps, _mm512_mask_mul_ps, _mm512_mask_storeu_ps,
        _mm512_maskz_loadu_epi32, _mm512_maskz_loadu_ps, _mm512_max_ps, _mm512_min_ps, _mm512_mul_ps,
        _mm512_permutex2var_ps, _mm512_reduce_add_ps, _mm512_set1_epi32, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_slli_epi32, _mm512_storeu_ps, _mm512_sub_epi32, _mm512_sub_ps,
    };

    use super::{Act, EDGE_TAPS, Epilogue, GRAD_ROWS, GRAD_TAPS, Geometry, LANE_ROWS, LANE_TAPS, Layout, ROWS};

    /// The first `w` of 16 lanes (all 16 from `w = 16` on).
    pub(in super::super) fn mask(w: usize) -> __mmask16 {
        if w >= 16 { 0xFFFF } else { ((1u32 << w) - 1) as u16 }
    }

    /// Lane `k` holds `f(k)`: the indices of a permutation.
    #[target_feature(enable = "avx512f")]
    pub(in super::super) fn lanes(f: fn(i32) -> i32) -> __m512i {
        let at: [i32; 16] = std::array::from_fn(|k| f(k as i32));
        // SAFETY: 16 values from an array of 16.
        unsafe { _mm512_loadu_epi32(at.as_ptr()) }
    }

    /// Output rows `oy0..oy1` of every channel, their taps `step` values apart in `xpad`
    /// from one row to the next.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn rows(
        g: &Geometry,
        (oy0, oy1): (usize, usize),
        xpad: &[f32],
        step: usize,
        packed: &[f32],
        offsets: &[usize],
        bias: &[f32],
        epilogue: Epilogue<'_>,
        y: *mut f32,
    ) {
        let (pixels, rows) = (g.ho * g.wo, offsets.len());
        // Rows of up to 16 pixels go two at a time, one in each half of the 32 lanes.
        let pair = g.wo <= 16;
        let mut oy = oy0;
        while oy < oy1 {
            let mut r0 = 0;
            while r0 < g.o {
                let r = ROWS.min(g.o - r0);
                let a = &packed[r0 * rows..(r0 + r) * rows];
                let (b, e) = (&bias[r0..r0 + r], epilogue.channels(r0, r));
                let mut ox0 = 0;
                while ox0 < g.wo {
                    let w = (g.wo - ox0).min(32);
                    // The second 16 lanes: the next 16 pixels of the row, or the next row.
                    let (masks, second) = if pair {
                        ((mask(w), if oy + 1 < oy1 { mask(w) } else { 0 }), (step, g.wo))
                    } else {
                        ((mask(w), mask(w.saturating_sub(16))), (16, 16))
                    };
                    // SAFETY: the caller's bounds (see `Plan::forward_image`); the second
                    // row of a pair is inside `oy0..oy1` or masked off.
                    unsafe {
                        let base = xpad.as_ptr().add(oy * step + ox0);
                        let out = y.add(r0 * pixels + oy * g.wo + ox0);
                        let args = (a.as_ptr(), base, offsets, b, e, out, pixels, masks, second);
                        if masks == (0xFFFF, 0xFFFF) { dispatch!(true, r, args) } else { dispatch!(false, r, args) }
                    }
                    ox0 += 32;
                }
                r0 += r;
            }
            oy += if pair { 2 } else { 1 };
        }
    }

    /// Adds into `dw` (up to `GRAD_ROWS` rows of `taps`) the sums over all output pixels of
    /// `images` images of `grad[r]` (rows `pixels` apart, images `grad.1` apart) times the
    /// padded input (images `c · hp · wp` apart) at each tap's offset.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn weight_rows(
        g: &Geometry,
        layout: &Layout,
        (grad, grad_image): (&[f32], usize),
        xpad: &[f32],
        offsets: &[usize],
        taps: usize,
        images: usize,
        dw: &mut [f32],
    ) {
        let (pixels, rows) = (g.ho * g.wo, dw.len() / taps);
        let padded = layout.image(g);
        for (b, chunk) in offsets.chunks_exact(GRAD_TAPS).enumerate() {
            let (t0, off): (usize, [usize; GRAD_TAPS]) = (b * GRAD_TAPS, std::array::from_fn(|t| chunk[t]));
            let mut acc = [[_mm512_setzero_ps(); GRAD_TAPS]; GRAD_ROWS];
            for i in 0..images {
                for oy in 0..g.ho {
                    let mut ox = 0;
                    while ox < g.wo {
                        let m = mask(g.wo - ox);
                        // SAFETY: the caller's bounds; masked lanes are not read.
                        unsafe {
                            let d = grad.as_ptr().add(i * grad_image + oy * g.wo + ox);
                            let dv: [__m512; GRAD_ROWS] =
                                std::array::from_fn(|r| _mm512_maskz_loadu_ps(m, d.add(r * pixels)));
                            let x = xpad.as_ptr().add(i * padded + layout.pixel(oy, ox));
                            for (t, &o) in off.iter().enumerate() {
                                let xv = _mm512_maskz_loadu_ps(m, x.add(o));
                                for (acc, &dv) in acc.iter_mut().zip(&dv) {
                                    acc[t] = _mm512_fmadd_ps(dv, xv, acc[t]);
                                }
                            }
                        }
                        ox += 16;
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate().take(rows) {
                for (t, &v) in acc.iter().enumerate().take(taps.saturating_sub(t0)) {
                    dw[r * taps + t0 + t] += _mm512_reduce_add_ps(v);
                }
            }
        }
    }

    /// Adds into `acc` (9 taps × 32 output channels), or stores there if `first`, the sums
    /// over the pixels `q` of `lanes[q]` (32 output channels' gradients, rows 32 apart)
    /// times the input at `origins[q]` plus each tap's offset in `off` (9 of them; the sum
    /// wraps, see [`weight_gradient_lanes`](super::weight_gradient_lanes)); with `edges`
    /// (the classes of an image's pixels and the class index of the first pixel), only the
    /// taps of each pixel's class ([`EDGE_TAPS`](super::EDGE_TAPS)).
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn weight_lanes(
        lanes: &[f32],
        xpad: &[f32],
        origins: &[usize],
        edges: Option<(&[u8], usize)>,
        off: &[usize],
        acc: &mut [f32],
        first: bool,
    ) {
        let off: [usize; LANE_TAPS] = std::array::from_fn(|t| off[t]);
        let mut sums = [[_mm512_setzero_ps(); LANE_TAPS]; 2];
        let (g, x) = (lanes.as_ptr(), xpad.as_ptr());
        // The products of pixel `q` at the taps in `mask` (a constant, so that each
        // class's code has only its own taps).
        macro_rules! pixel {
            ($q:expr, $origin:expr, $mask:expr) => {{
                // SAFETY: the caller's bounds.
                unsafe {
                    let gq = g.add($q * LANE_ROWS);
                    let (g0, g1) = (_mm512_loadu_ps(gq), _mm512_loadu_ps(gq.add(16)));
                    let origin: usize = $origin;
                    for (t, &o) in off.iter().enumerate() {
                        if $mask & (1u16 << t) != 0 {
                            let v = _mm512_set1_ps(*x.add(origin.wrapping_add(o)));
                            sums[0][t] = _mm512_fmadd_ps(g0, v, sums[0][t]);
                            sums[1][t] = _mm512_fmadd_ps(g1, v, sums[1][t]);
                        }
                    }
                }
            }};
        }
        match edges {
            None => origins.iter().enumerate().for_each(|(q, &origin)| pixel!(q, origin, 0x1FF)),
            Some((classes, start)) => {
                // The classes of an image's pixels, from the first pixel's, over and over.
                let mut at = start;
                for (q, &origin) in origins.iter().enumerate() {
                    match classes[at] {
                        1 => pixel!(q, origin, EDGE_TAPS[1]),
                        2 => pixel!(q, origin, EDGE_TAPS[2]),
                        3 => pixel!(q, origin, EDGE_TAPS[3]),
                        4 => pixel!(q, origin, EDGE_TAPS[4]),
                        5 => pixel!(q, origin, EDGE_TAPS[5]),
                        6 => pixel!(q, origin, EDGE_TAPS[6]),
                        7 => pixel!(q, origin, EDGE_TAPS[7]),
                        8 => pixel!(q, origin, EDGE_TAPS[8]),
                        _ => pixel!(q, origin, EDGE_TAPS[0]),
                    }
                    at += 1;
                    if at == classes.len() {
                        at = 0;
                    }
                }
            }
        }
        for (t, pair) in acc.chunks_exact_mut(LANE_ROWS).enumerate().take(LANE_TAPS) {
            for (h, half) in pair.chunks_exact_mut(16).enumerate() {
                // SAFETY: `half` holds 16 values.
                unsafe {
                    let p = half.as_mut_ptr();
                    let v = if first { sums[h][t] } else { _mm512_add_ps(_mm512_loadu_ps(p), sums[h][t]) };
                    _mm512_storeu_ps(p, v);
                }
            }
        }
    }

    /// ELU of 16 lanes: `z` above 0, `α (eᶻ − 1)` below, with
    /// [`exp_m1_nonpositive`](super::super::planes::exp_m1_nonpositive)'s reduction and
    /// polynomial (NaN stays NaN).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn elu(z: __m512, alpha: f32) -> __m512 {
        let round = _mm512_set1_ps(12_582_912.0);
        // min and max return their second operand when one is NaN: NaN passes through.
        let x = _mm512_max_ps(_mm512_set1_ps(-87.0), _mm512_min_ps(_mm512_setzero_ps(), z));
        let t = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)), round);
        let n = _mm512_sub_ps(t, round);
        let r = _mm512_add_ps(
            _mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(0.693_359_4))),
            _mm512_mul_ps(n, _mm512_set1_ps(2.121_944_4e-4)),
        );
        let mut p = _mm512_set1_ps(1.987_569_1e-4);
        for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let er = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0));
        let bits = _mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(0x4B40_0000)),
            _mm512_set1_epi32(127),
        ));
        let below = _mm512_mul_ps(
            _mm512_set1_ps(alpha),
            _mm512_sub_ps(_mm512_mul_ps(er, _mm512_castsi512_ps(bits)), _mm512_set1_ps(1.0)),
        );
        _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(z, _mm512_setzero_ps()), below, z)
    }

    /// PReLU with slope `a` if given, then `act(scale · v + shift)`, on 16 lanes.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn affine(mut v: __m512, a: Option<f32>, scale: f32, shift: f32, act: Act) -> __m512 {
        if let Some(a) = a {
            let below = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(v, _mm512_setzero_ps());
            v = _mm512_mask_mul_ps(v, below, v, _mm512_set1_ps(a));
        }
        let z = _mm512_fmadd_ps(v, _mm512_set1_ps(scale), _mm512_set1_ps(shift));
        match act {
            Act::Identity => z,
            Act::Relu => _mm512_max_ps(z, _mm512_setzero_ps()),
            Act::Elu(alpha) => elu(z, alpha),
        }
    }

    /// [`affine`] on every value, 16 at a time (the tail masked).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn affine_values(values: &mut [f32], a: Option<f32>, scale: f32, shift: f32, act: Act) {
        for q in (0..values.len()).step_by(16) {
            let m = mask(values.len() - q);
            // SAFETY: masked lanes are neither read nor written; the rest lie in `values`.
            unsafe {
                let p = values.as_mut_ptr().add(q);
                _mm512_mask_storeu_ps(p, m, affine(_mm512_maskz_loadu_ps(m, p), a, scale, shift, act));
            }
        }
    }

    /// `even[j] = src[2j]` and `odd[j] = src[2j + 1]` for all of `src` (`even` holds at
    /// least `⌈len / 2⌉` values, `odd` `⌊len / 2⌋`), 32 values of `src` at a time.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn deinterleave(src: &[f32], even: &mut [f32], odd: &mut [f32]) {
        let (pe, po) = (lanes(|k| 2 * k), lanes(|k| 2 * k + 1));
        let mut j = 0;
        while 2 * j + 32 <= src.len() {
            // SAFETY: values `2j..2j + 32` lie in `src`, and `j..j + 16` in both halves.
            unsafe {
                let s = src.as_ptr().add(2 * j);
                let (a, b) = (_mm512_loadu_ps(s), _mm512_loadu_ps(s.add(16)));
                _mm512_storeu_ps(even.as_mut_ptr().add(j), _mm512_permutex2var_ps(a, pe, b));
                _mm512_storeu_ps(odd.as_mut_ptr().add(j), _mm512_permutex2var_ps(a, po, b));
            }
            j += 16;
        }
        for (k, pair) in src[2 * j..].chunks(2).enumerate() {
            even[j + k] = pair[0];
            if let Some(&v) = pair.get(1) {
                odd[j + k] = v;
            }
        }
    }

    /// `dst[q] = src[at[q]]`, 16 at a time (the tail masked).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gather(src: &[f32], at: &[u32], dst: &mut [f32]) {
        for q in (0..at.len()).step_by(16) {
            let m = mask(at.len() - q);
            // SAFETY: the caller's bounds; masked lanes are neither read nor written.
            unsafe {
                let idx = _mm512_maskz_loadu_epi32(m, at.as_ptr().add(q).cast());
                let v = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), m, idx, src.as_ptr().cast());
                _mm512_mask_storeu_ps(dst.as_mut_ptr().add(q), m, v);
            }
        }
    }

    /// `rows[t][ci] = kernels[ci · 9 + t]` for the `kernels.len() / 9` kernels of 3 × 3
    /// taps (one output channel's): the kernels in tap order, 16 at a time (the tail masked).
    #[target_feature(enable = "avx512f")]
    pub(in super::super) unsafe fn tap_rows(kernels: &[f32], rows: [*mut f32; 9]) {
        let c = kernels.len() / 9;
        let nine = lanes(|k| 9 * k);
        for c0 in (0..c).step_by(16) {
            let m = mask(c - c0);
            for (t, &row) in rows.iter().enumerate() {
                // SAFETY: lane `k` reads tap `t` of kernel `c0 + k` (below `c`), and writes
                // value `c0 + k` of `rows[t]`, which the caller makes `c` long; masked lanes
                // are neither read nor written.
                unsafe {
                    let idx = _mm512_add_epi32(nine, _mm512_set1_epi32(t as i32));
                    let v = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), m, idx, kernels.as_ptr().add(c0 * 9));
                    _mm512_mask_storeu_ps(row.add(c0), m, v);
                }
            }
        }
    }

    type Args<'a> = (
        *const f32,
        *const f32,
        &'a [usize],
        &'a [f32],
        Epilogue<'a>,
        *mut f32,
        usize,
        (__mmask16, __mmask16),
        (usize, usize),
    );

    /// Calls [`block`] for `$r` (1 to [`ROWS`]) output channels with `FULL = $full`. A
    /// macro, not a function: [`rows`] must inline the blocks, and a function between them
    /// was not inlined (a call per block cost a third of the time of a layer with one input
    /// channel, whose blocks sum over 9 taps).
    macro_rules! dispatch {
        ($full:literal, $r:expr, $args:expr) => {
            match $r {
                12 => block::<12, $full>($args),
                11 => block::<11, $full>($args),
                10 => block::<10, $full>($args),
                9 => block::<9, $full>($args),
                8 => block::<8, $full>($args),
                7 => block::<7, $full>($args),
                6 => block::<6, $full>($args),
                5 => block::<5, $full>($args),
                4 => block::<4, $full>($args),
                3 => block::<3, $full>($args),
                2 => block::<2, $full>($args),
                _ => block::<1, $full>($args),
            }
        };
    }
    use dispatch;

    /// Asks for the cache line at `p` in L1. A hint: it never faults, wherever `p` points.
    #[inline]
    fn prefetch(p: *const f32) {
        // SAFETY: prefetching reads nothing and cannot fault.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }

    /// `R` output channels × up to 32 pixels (lanes in the two masks): packed weights `a`
    /// (`rows` runs of `R`), input pixels at `base + offsets[kk]`, output rows `pixels`
    /// apart; the second 16 lanes `second.0` further in the input and `second.1` in the
    /// output. With `FULL` (all 32 lanes) the input loads are plain: masked loads cost an
    /// extra operation on a port the products need, 5–8 % of the time of stride-1 layers.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block<const R: usize, const FULL: bool>(
        (a, base, offsets, bias, epilogue, out, pixels, (m0, m1), (in2, out2)): Args<'_>,
    ) {
        // Built at a length known at compile time: a loop over `bias` (of the same length
        // but not known to be) left the sums in memory for some `R` (9 and 10), stored
        // after every product: 1.6× the time of the whole layer at 22 output channels.
        let mut acc: [[__m512; 2]; R] = std::array::from_fn(|r| [_mm512_set1_ps(bias[r]); 2]);
        // SAFETY: the caller's bounds.
        unsafe {
            let last_tap = offsets.len().saturating_sub(1);
            for (kk, &off) in offsets.iter().enumerate() {
                let row = base.add(off);
                // The weights 16 taps ahead and the input 8 ahead, into L1: 128 → 128
                // channels at stride 2 (32² → 16²) took 9 % less time.
                prefetch(a.wrapping_add((kk + 16) * R));
                let ahead = base.wrapping_add(offsets[(kk + 8).min(last_tap)]);
                prefetch(ahead);
                prefetch(ahead.wrapping_add(in2));
                let (b0, b1) = if FULL {
                    (_mm512_loadu_ps(row), _mm512_loadu_ps(row.add(in2)))
                } else {
                    (_mm512_maskz_loadu_ps(m0, row), _mm512_maskz_loadu_ps(m1, row.add(in2)))
                };
                let col = a.add(kk * R);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*col.add(r));
                    acc[0] = _mm512_fmadd_ps(av, b0, acc[0]);
                    acc[1] = _mm512_fmadd_ps(av, b1, acc[1]);
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let (mut v0, mut v1) = (acc[0], acc[1]);
                match epilogue {
                    Epilogue::Identity => {}
                    Epilogue::Relu => {
                        (v0, v1) = (_mm512_max_ps(v0, _mm512_setzero_ps()), _mm512_max_ps(v1, _mm512_setzero_ps()));
                    }
                    Epilogue::Affine { slope, scale, shift, act } => {
                        let a = slope.map(|s| s[r]);
                        (v0, v1) = (affine(v0, a, scale[r], shift[r], act), affine(v1, a, scale[r], shift[r], act));
                    }
                }
                let o = out.add(r * pixels);
                _mm512_mask_storeu_ps(o, m0, v0);
                _mm512_mask_storeu_ps(o.add(out2), m1, v1);
            }
        }
    }
}
