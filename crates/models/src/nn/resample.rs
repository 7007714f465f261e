//! Average pooling, global average pooling and bilinear upsampling on the CPU as candle
//! custom ops, forward and backward, each one parallel pass over `[n, c]` planes.
//!
//! candle's average-pooling gradient spreads `dy` with a nearest-neighbour upsampling to
//! the input size, which misplaces it when the window does not divide the size; here a
//! trailing partial window gets no gradient, as in PyTorch.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::planes::{self, contiguous, zeroed};

/// `k × k` average pooling with stride `k`, no padding (a trailing partial window is
/// dropped).
pub(crate) struct AvgPool {
    pub(crate) k: usize,
}

impl AvgPool {
    /// `(n, c, h, w, ho, wo)` of an input of `shape`.
    fn output(&self, shape: &Shape) -> candle_core::Result<(usize, usize, usize, usize, usize, usize)> {
        let (n, c, h, w) = shape.dims4()?;
        if self.k == 0 || h < self.k || w < self.k {
            candle_core::bail!("average pooling: window {} does not fit {h}×{w}", self.k)
        }
        Ok((n, c, h, w, h / self.k, w / self.k))
    }
}

impl CustomOp1 for AvgPool {
    fn name(&self) -> &'static str {
        "nanoml-avg-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "average pooling input")?;
        let (n, c, h, w, ho, wo) = self.output(l.shape())?;
        let k = self.k;
        let scale = 1.0 / (k * k) as f32;
        let mut y = zeroed(n * c * ho * wo);
        y.par_chunks_mut(ho * wo).zip(x.par_chunks(h * w)).for_each(|(y, x)| {
            for (oy, out) in y.chunks_mut(wo).enumerate() {
                for row in x[oy * k * w..].chunks(w).take(k) {
                    for (v, window) in out.iter_mut().zip(row.chunks_exact(k)) {
                        *v += window.iter().sum::<f32>();
                    }
                }
                out.iter_mut().for_each(|v| *v *= scale);
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((n, c, ho, wo))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(&AvgPoolGrad { k: self.k, input: x.shape().clone() })?))
    }
}

/// `dy → dx`: each output's gradient over `k²`, spread over its window.
struct AvgPoolGrad {
    k: usize,
    input: Shape,
}

impl CustomOp1 for AvgPoolGrad {
    fn name(&self) -> &'static str {
        "nanoml-avg-pool2d-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dy = contiguous(s, l, "average pooling gradient")?;
        let (n, c, h, w, ho, wo) = AvgPool { k: self.k }.output(&self.input)?;
        if dy.len() != n * c * ho * wo {
            candle_core::bail!("average pooling gradient: {} values for an output of {n}×{c}×{ho}×{wo}", dy.len())
        }
        let k = self.k;
        let scale = 1.0 / (k * k) as f32;
        let mut dx = planes::zeros(n * c * h * w);
        dx.par_chunks_mut(h * w).zip(dy.par_chunks(ho * wo)).for_each(|(dx, dy)| {
            for (oy, g) in dy.chunks(wo).enumerate() {
                for row in dx[oy * k * w..].chunks_mut(w).take(k) {
                    for (window, &g) in row.chunks_exact_mut(k).zip(g) {
                        window.fill(g * scale);
                    }
                }
            }
        });
        Ok((CpuStorage::F32(dx), self.input.clone()))
    }
}

/// `[n, c, h, w] → [n, c]`: the mean of each plane.
pub(crate) struct GlobalAvgPool;

impl CustomOp1 for GlobalAvgPool {
    fn name(&self) -> &'static str {
        "nanoml-global-avg-pool"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "global average pooling input")?;
        let (n, c, h, w) = l.shape().dims4()?;
        if h * w == 0 {
            candle_core::bail!("global average pooling of empty {h}×{w} planes")
        }
        let y = x.par_chunks(h * w).map(|p| (super::planes::lane_sum(p, None) / p.len() as f64) as f32).collect();
        Ok((CpuStorage::F32(y), Shape::from((n, c))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(&GlobalAvgPoolGrad { input: x.shape().clone() })?))
    }
}

/// `dy [n, c] → dx`: each plane filled with its gradient over the plane's size.
struct GlobalAvgPoolGrad {
    input: Shape,
}

impl CustomOp1 for GlobalAvgPoolGrad {
    fn name(&self) -> &'static str {
        "nanoml-global-avg-pool-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dy = contiguous(s, l, "global average pooling gradient")?;
        let (n, c, h, w) = self.input.dims4()?;
        if dy.len() != n * c || h * w == 0 {
            candle_core::bail!("global average pooling gradient: {} values for {n}×{c} planes of {h}×{w}", dy.len())
        }
        let mut dx = planes::zeros(n * c * h * w);
        let scale = 1.0 / (h * w) as f32;
        dx.par_chunks_mut(h * w).zip(dy.par_iter()).for_each(|(p, &g)| p.fill(g * scale));
        Ok((CpuStorage::F32(dx), self.input.clone()))
    }
}

/// Where the output pixels of a bilinear upsampling sample the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bilinear {
    /// Pixel centres aligned, `src = (dst + ½) / f − ½` clamped at 0: PyTorch's
    /// `align_corners=False`, TensorFlow 2's `tf.image.resize`.
    HalfPixel,
    /// `src = dst / f`: TensorFlow 1's `resize_bilinear` (`align_corners=False`,
    /// `half_pixel_centers=False`), which the reference HRTEM FCN used. For `f = 2`,
    /// `out[2i] = in[i]`, `out[2i+1] = ½ (in[i] + in[i+1])`.
    Legacy,
}

/// One output position's two input indices and their weights.
pub(crate) type Tap = (usize, usize, f32, f32);

/// For each of the `n · factor` output positions along one axis of an `n`-long input: the
/// two input indices it interpolates and their weights. The last index is clamped.
pub(crate) fn bilinear_taps(n: usize, factor: usize, mode: Bilinear) -> Vec<Tap> {
    (0..n * factor)
        .map(|o| {
            let src = match mode {
                Bilinear::HalfPixel => ((o as f64 + 0.5) / factor as f64 - 0.5).max(0.0),
                Bilinear::Legacy => o as f64 / factor as f64,
            };
            let i0 = (src.floor() as usize).min(n - 1);
            let i1 = (i0 + 1).min(n - 1);
            let t = (src - i0 as f64) as f32;
            (i0, i1, 1.0 - t, t)
        })
        .collect()
}

/// Bilinear upsampling by an integer factor along both axes, separably: along rows into a
/// per-plane buffer, then along columns.
pub(crate) struct UpsampleBilinear {
    pub(crate) factor: usize,
    pub(crate) mode: Bilinear,
}

impl UpsampleBilinear {
    fn taps(&self, h: usize, w: usize) -> candle_core::Result<[Vec<Tap>; 2]> {
        if self.factor == 0 || h == 0 || w == 0 {
            candle_core::bail!("bilinear upsampling: factor {} of a {h}×{w} plane", self.factor)
        }
        Ok([bilinear_taps(h, self.factor, self.mode), bilinear_taps(w, self.factor, self.mode)])
    }
}

impl CustomOp1 for UpsampleBilinear {
    fn name(&self) -> &'static str {
        "nanoml-upsample-bilinear2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "upsampling input")?;
        let (n, c, h, w) = l.shape().dims4()?;
        let [ty, tx] = self.taps(h, w)?;
        let (ho, wo) = (ty.len(), tx.len());
        let mut y = planes::zeros(n * c * ho * wo);
        y.par_chunks_mut(ho * wo).zip(x.par_chunks(h * w)).for_each_init(Vec::new, |rows, (y, x)| {
            // Each input row widened to `wo`.
            rows.resize(h * wo, 0.0);
            for (wide, row) in rows.chunks_mut(wo).zip(x.chunks(w)) {
                for (v, &(i0, i1, a, b)) in wide.iter_mut().zip(&tx) {
                    *v = a * row[i0] + b * row[i1];
                }
            }
            for (out, &(i0, i1, a, b)) in y.chunks_mut(wo).zip(&ty) {
                let (r0, r1) = (&rows[i0 * wo..(i0 + 1) * wo], &rows[i1 * wo..(i1 + 1) * wo]);
                for ((v, &p), &q) in out.iter_mut().zip(r0).zip(r1) {
                    *v = a * p + b * q;
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((n, c, ho, wo))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = UpsampleBilinearGrad { factor: self.factor, mode: self.mode, input: x.shape().clone() };
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(&grad)?))
    }
}

/// `dy → dx`: the transpose of [`UpsampleBilinear`], columns first, then rows.
struct UpsampleBilinearGrad {
    factor: usize,
    mode: Bilinear,
    input: Shape,
}

impl CustomOp1 for UpsampleBilinearGrad {
    fn name(&self) -> &'static str {
        "nanoml-upsample-bilinear2d-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dy = contiguous(s, l, "upsampling gradient")?;
        let (n, c, h, w) = self.input.dims4()?;
        let [ty, tx] = UpsampleBilinear { factor: self.factor, mode: self.mode }.taps(h, w)?;
        let (ho, wo) = (ty.len(), tx.len());
        if dy.len() != n * c * ho * wo {
            candle_core::bail!("upsampling gradient: {} values for an output of {n}×{c}×{ho}×{wo}", dy.len())
        }
        let mut dx = zeroed(n * c * h * w);
        dx.par_chunks_mut(h * w).zip(dy.par_chunks(ho * wo)).for_each_init(Vec::new, |rows, (dx, dy)| {
            // The gradient of each widened input row.
            rows.clear();
            rows.resize(h * wo, 0.0);
            for (g, &(i0, i1, a, b)) in dy.chunks(wo).zip(&ty) {
                for (r, &v) in rows[i0 * wo..(i0 + 1) * wo].iter_mut().zip(g) {
                    *r += a * v;
                }
                for (r, &v) in rows[i1 * wo..(i1 + 1) * wo].iter_mut().zip(g) {
                    *r += b * v;
                }
            }
            for (row, wide) in dx.chunks_mut(w).zip(rows.chunks(wo)) {
                for (&v, &(i0, i1, a, b)) in wide.iter().zip(&tx) {
                    row[i0] += a * v;
                    row[i1] += b * v;
                }
            }
        });
        Ok((CpuStorage::F32(dx), self.input.clone()))
    }
}

/// The `[n · factor, n]` matrix of [`bilinear_taps`]: upsampling along one axis as a
/// product (candle's composition of the op, on any device).
pub(crate) fn bilinear_matrix(
    n: usize,
    factor: usize,
    mode: Bilinear,
    device: &candle_core::Device,
) -> candle_core::Result<Tensor> {
    let mut m = vec![0f32; n * factor * n];
    for (o, (i0, i1, a, b)) in bilinear_taps(n, factor, mode).into_iter().enumerate() {
        m[o * n + i0] += a;
        m[o * n + i1] += b;
    }
    Tensor::from_vec(m, (n * factor, n), device)
}
