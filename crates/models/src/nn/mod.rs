//! Layers with named, seeded parameters, and the parameter store that saves and loads them.
//!
//! candle's own CPU random generator cannot be seeded, so every parameter here is drawn
//! from nanoml's Xoshiro256++ with a seed derived from the network's seed and the
//! parameter's position: the same seed gives the same network on any device and thread
//! count. Initialisation follows Keras, the framework of the reference networks:
//! Glorot-uniform weights and zero biases.
//!
//! Tensors are NCHW, f32. Convolution weights are `[out, in, kh, kw]`, dense weights
//! `[out, in]` (PyTorch's layout).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use candle_core::{D, DType, Device, Tensor, Var};
use nanoml_core::{Xoshiro256PlusPlus, derive_seed};

use crate::{Error, Result};

mod conv;
mod direct;
#[cfg(test)]
mod layer_tests;
mod norm;
mod planes;
mod resample;
#[cfg(test)]
mod testing;

pub use resample::Bilinear;

/// Whether a forward pass trains (dropout active, with its own seed) or evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Inference: dropout is the identity.
    Eval,
    /// Training: dropout masks are drawn from `seed` (derive one per step).
    Train {
        /// Seed of this pass's dropout masks.
        seed: u64,
    },
}

/// The named parameters of a network, in creation order: the trainable ones, and buffers
/// (batch norm's running statistics) that are saved and restored with them but not
/// optimised.
#[derive(Clone, Debug)]
pub struct Params {
    vars: BTreeMap<String, Var>,
    order: Vec<String>,
    buffers: BTreeSet<String>,
    device: Device,
}

impl Params {
    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The trainable variables, in creation order.
    pub fn vars(&self) -> Vec<Var> {
        self.trainable().map(|n| self.vars[n].clone()).collect()
    }

    fn trainable(&self) -> impl Iterator<Item = &String> {
        self.order.iter().filter(|n| !self.buffers.contains(*n))
    }

    /// Names and shapes of the trainable parameters, in creation order.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.trainable().map(|n| (n.clone(), self.vars[n].dims().to_vec())).collect()
    }

    /// The number of trainable scalar parameters (buffers not counted, as in PyTorch and
    /// Keras' "trainable params").
    pub fn count(&self) -> usize {
        self.trainable().map(|n| self.vars[n].elem_count()).sum()
    }

    /// A copy of every parameter's current value (to keep the best epoch, say).
    pub fn snapshot(&self) -> Result<HashMap<String, Tensor>> {
        self.vars.iter().map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?))).collect()
    }

    /// Sets every parameter from `tensors`, which must hold exactly these names and shapes.
    /// `origin` names the source in errors (a file path, say).
    pub fn restore(&self, tensors: &HashMap<String, Tensor>, origin: &str) -> Result<()> {
        let incompatible = |reason: String| Error::Checkpoint { path: origin.to_string(), reason };
        for name in tensors.keys() {
            if !self.vars.contains_key(name) {
                return Err(incompatible(format!("holds `{name}`, which this network does not have")));
            }
        }
        for (name, var) in &self.vars {
            let t = tensors.get(name).ok_or_else(|| incompatible(format!("lacks `{name}`")))?;
            if t.dims() != var.dims() {
                return Err(incompatible(format!("`{name}` has shape {:?}, the network {:?}", t.dims(), var.dims())));
            }
            var.set(&t.to_dtype(DType::F32)?.to_device(&self.device)?)?;
        }
        Ok(())
    }

    /// Writes the parameters as safetensors.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: HashMap<String, Tensor> =
            self.vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
        candle_core::safetensors::save(&tensors, path)
            .map_err(|e| Error::Io { path: path.display().to_string(), source: std::io::Error::other(e.to_string()) })
    }

    /// Reads parameters written by [`save`](Self::save) (or any safetensors with the same
    /// names and shapes).
    pub fn load(&self, path: &Path) -> Result<()> {
        let origin = path.display().to_string();
        let tensors = candle_core::safetensors::load(path, &self.device).map_err(|e| Error::Checkpoint {
            path: origin.clone(),
            reason: format!("not readable as safetensors ({e})"),
        })?;
        self.restore(&tensors, &origin)
    }

    /// Reads parameters from safetensors bytes (e.g. weights embedded in a binary).
    pub fn load_bytes(&self, bytes: &[u8], origin: &str) -> Result<()> {
        let tensors = candle_core::safetensors::load_buffer(bytes, &self.device).map_err(|e| Error::Checkpoint {
            path: origin.to_string(),
            reason: format!("not readable as safetensors ({e})"),
        })?;
        self.restore(&tensors, origin)
    }
}

/// Creates parameters: a seed, a device and a name prefix.
#[derive(Debug)]
pub struct Builder {
    seed: u64,
    params: Params,
}

impl Builder {
    /// A builder whose parameters are drawn from `seed` and placed on `device`.
    pub fn new(seed: u64, device: &Device) -> Self {
        Builder {
            seed,
            params: Params { vars: BTreeMap::new(), order: vec![], buffers: BTreeSet::new(), device: device.clone() },
        }
    }

    /// The parameters created so far.
    pub fn finish(self) -> Params {
        self.params
    }

    fn add(&mut self, name: String, values: Vec<f32>, shape: &[usize]) -> Result<Var> {
        if self.params.vars.contains_key(&name) {
            return Err(Error::invalid("name", &name, "a parameter name not used before in this network"));
        }
        let var = Var::from_tensor(&Tensor::from_vec(values, shape, &self.params.device)?)?;
        self.params.vars.insert(name.clone(), var.clone());
        self.params.order.push(name);
        Ok(var)
    }

    /// Glorot-uniform values in `±√(6 / (fan_in + fan_out))`.
    fn glorot(&mut self, name: String, shape: &[usize], fan_in: usize, fan_out: usize) -> Result<Var> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(derive_seed(self.seed, self.params.order.len() as u64));
        let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
        let n = shape.iter().product();
        let values = (0..n).map(|_| rng.uniform_in(-limit, limit) as f32).collect();
        self.add(name, values, shape)
    }

    fn zeros(&mut self, name: String, n: usize) -> Result<Var> {
        self.constant(name, n, 0.0)
    }

    fn constant(&mut self, name: String, n: usize, value: f32) -> Result<Var> {
        self.add(name, vec![value; n], &[n])
    }

    /// A non-trainable vector saved with the parameters.
    fn buffer(&mut self, name: String, n: usize, value: f32) -> Result<Var> {
        let var = self.constant(name.clone(), n, value)?;
        self.params.buffers.insert(name);
        Ok(var)
    }
}

/// Padding of a convolution, as Keras names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// No padding: the output shrinks by `kernel − 1`.
    Valid,
    /// Zero padding so that the output is `ceil(input / stride)`; an odd total goes to the
    /// bottom and right, as in Keras and TensorFlow.
    Same,
}

/// A 2-D convolution with bias.
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Var,
    bias: Var,
    kernel: usize,
    stride: usize,
    padding: Padding,
}

impl Conv2d {
    /// A `kernel × kernel` convolution from `in_channels` to `out_channels`.
    pub fn new(
        b: &mut Builder,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: Padding,
    ) -> Result<Self> {
        for (param, v) in
            [("in_channels", in_channels), ("out_channels", out_channels), ("kernel", kernel), ("stride", stride)]
        {
            if v == 0 {
                return Err(Error::invalid(param, v, "at least 1"));
            }
        }
        let k2 = kernel * kernel;
        let weight = b.glorot(
            format!("{name}.weight"),
            &[out_channels, in_channels, kernel, kernel],
            in_channels * k2,
            out_channels * k2,
        )?;
        let bias = b.zeros(format!("{name}.bias"), out_channels)?;
        Ok(Conv2d { weight, bias, kernel, stride, padding })
    }

    /// Applies the convolution to an NCHW batch.
    ///
    /// On the CPU (f32) this runs nanoml's own kernels (see `nn::conv`: tiled im2col and
    /// matrix products, forward and backward); on other devices, candle's convolution.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, false)
    }

    /// [`forward`](Self::forward) followed by a ReLU, fused on the CPU: no separate
    /// tensor for the activation or its gradient.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, true)
    }

    /// [`forward_relu`](Self::forward_relu) followed by `k × k` max pooling with stride `k`
    /// ([`max_pool2d`]), fused on the CPU (f32): the convolution's output stays inside the
    /// op, so that the backward pass does not zero a tensor of its size and add its gradient
    /// into it (candle's gradient bookkeeping for every tensor in the graph).
    pub fn forward_relu_max_pool(&self, x: &Tensor, k: usize) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        if k == 0 {
            return Err(Error::invalid("pooling window", k, "at least 1"));
        }
        if !planes::on_cpu_f32(x) {
            return max_pool2d(&self.forward_relu(x)?, k);
        }
        let op = conv::ConvPoolOp {
            conv: conv::Conv2dOp { stride: self.stride, pad: self.padding_of(h, w), relu: true },
            pool: planes::MaxPool { k, stride: k },
            saved: std::sync::OnceLock::new(),
        };
        Ok(x.contiguous()?.apply_op3(self.weight.as_tensor(), self.bias.as_tensor(), op)?)
    }

    fn apply(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        if planes::on_cpu_f32(x) {
            let op = conv::Conv2dOp { stride: self.stride, pad: self.padding_of(h, w), relu };
            return Ok(x.contiguous()?.apply_op3(self.weight.as_tensor(), self.bias.as_tensor(), op)?);
        }
        let y = self.forward_reference(x)?;
        if relu { Ok(y.relu()?) } else { Ok(y) }
    }

    /// Zero padding `[top, bottom, left, right]` for an `h × w` input.
    fn padding_of(&self, h: usize, w: usize) -> [usize; 4] {
        match self.padding {
            Padding::Valid => [0; 4],
            Padding::Same => {
                let total = |n: usize| ((n.div_ceil(self.stride) - 1) * self.stride + self.kernel).saturating_sub(n);
                let (ph, pw) = (total(h), total(w));
                [ph / 2, ph - ph / 2, pw / 2, pw - pw / 2]
            }
        }
    }

    /// The convolution composed of candle's own ops (padding, `conv2d`, bias), on any
    /// device: the fallback off the CPU, and the reference the CPU kernels are tested
    /// against.
    pub fn forward_reference(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let [top, bottom, left, right] = self.padding_of(h, w);
        let x = x.pad_with_zeros(2, top, bottom)?.pad_with_zeros(3, left, right)?;
        let y = x.conv2d(&self.weight, 0, self.stride, 1, 1)?;
        Ok(y.broadcast_add(&self.bias.reshape((1, (), 1, 1))?)?)
    }
}

/// ReLU, `max(x, 0)`: nanoml's CPU kernel for f32 on the CPU (gradient 0 at 0, as in
/// PyTorch), candle's op elsewhere.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if planes::on_cpu_f32(x) {
        return Ok(x.contiguous()?.apply_op1(planes::Relu)?);
    }
    Ok(x.relu()?)
}

/// `k × k` max pooling with stride `k` of an NCHW batch (a trailing partial window is
/// dropped): nanoml's CPU kernel for f32 on the CPU, whose gradient goes to the first
/// maximum of each window as in PyTorch; candle's op elsewhere.
pub fn max_pool2d(x: &Tensor, k: usize) -> Result<Tensor> {
    if planes::on_cpu_f32(x) {
        return Ok(x.contiguous()?.apply_op1(planes::MaxPool { k, stride: k })?);
    }
    Ok(x.max_pool2d(k)?)
}

/// Nearest-neighbour upsampling of an NCHW batch by the integer `factor` along both axes:
/// nanoml's CPU kernel for f32 on the CPU, candle's op elsewhere.
pub fn upsample_nearest2d(x: &Tensor, factor: usize) -> Result<Tensor> {
    if factor == 0 {
        return Err(Error::invalid("factor", factor, "at least 1"));
    }
    if planes::on_cpu_f32(x) {
        return Ok(x.contiguous()?.apply_op1(planes::Upsample { fy: factor, fx: factor })?);
    }
    let (_, _, h, w) = x.dims4()?;
    Ok(x.upsample_nearest2d(h * factor, w * factor)?)
}

/// `k × k` average pooling with stride `k` of an NCHW batch (a trailing partial window is
/// dropped and gets no gradient, as in PyTorch): nanoml's CPU kernel for f32 on the CPU,
/// candle's op elsewhere.
pub fn avg_pool2d(x: &Tensor, k: usize) -> Result<Tensor> {
    if k == 0 {
        return Err(Error::invalid("k", k, "at least 1"));
    }
    if planes::on_cpu_f32(x) {
        return Ok(x.contiguous()?.apply_op1(resample::AvgPool { k })?);
    }
    let (_, _, h, w) = x.dims4()?;
    // candle's gradient assumes that the window divides the size: pool the part it covers.
    Ok(x.narrow(2, 0, h / k * k)?.narrow(3, 0, w / k * k)?.avg_pool2d(k)?)
}

/// Global average pooling: `[n, c, h, w] → [n, c]`, the mean of each plane.
pub fn global_avg_pool2d(x: &Tensor) -> Result<Tensor> {
    if planes::on_cpu_f32(x) {
        return Ok(x.contiguous()?.apply_op1(resample::GlobalAvgPool)?);
    }
    Ok(x.mean((2, 3))?)
}

/// Bilinear upsampling of an NCHW batch by the integer `factor` along both axes, sampling
/// as `mode` says. On the CPU (f32), nanoml's separable kernel; elsewhere, products with
/// the interpolation matrices, `U_h · X · U_wᵀ` per plane.
pub fn upsample_bilinear2d(x: &Tensor, factor: usize, mode: Bilinear) -> Result<Tensor> {
    if factor == 0 {
        return Err(Error::invalid("factor", factor, "at least 1"));
    }
    let (n, c, h, w) = x.dims4()?;
    if h == 0 || w == 0 {
        return Err(Error::invalid("input size", format!("{h}×{w}"), "non-empty planes"));
    }
    if planes::on_cpu_f32(x) {
        return Ok(x.contiguous()?.apply_op1(resample::UpsampleBilinear { factor, mode })?);
    }
    upsample_bilinear2d_reference(x, factor, mode, (n, c, h, w))
}

/// Bilinear upsampling as products with interpolation matrices (any device).
fn upsample_bilinear2d_reference(
    x: &Tensor,
    factor: usize,
    mode: Bilinear,
    (n, c, h, w): (usize, usize, usize, usize),
) -> Result<Tensor> {
    let uh = resample::bilinear_matrix(h, factor, mode, x.device())?.to_dtype(x.dtype())?;
    let uw = resample::bilinear_matrix(w, factor, mode, x.device())?.to_dtype(x.dtype())?;
    let planes = x.reshape((n * c, h, w))?;
    let y = uh.broadcast_left(n * c)?.matmul(&planes)?.matmul(&uw.t()?.broadcast_left(n * c)?)?;
    Ok(y.reshape((n, c, h * factor, w * factor))?)
}

/// ELU, `x` above 0 and `α (eˣ − 1)` below, `α > 0`: nanoml's CPU kernel for f32 on the
/// CPU, candle's op elsewhere.
pub fn elu(x: &Tensor, alpha: f64) -> Result<Tensor> {
    if !(alpha > 0.0 && alpha.is_finite()) {
        return Err(Error::invalid("alpha", alpha, "a finite α > 0"));
    }
    if planes::on_cpu_f32(x) {
        return Ok(x.contiguous()?.apply_op1(planes::Elu { alpha: alpha as f32 })?);
    }
    Ok(x.elu(alpha)?)
}

/// An activation that follows a layer, fused into it where nanoml has a kernel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// None.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// ELU with the given `α > 0`.
    Elu(f64),
}

impl Activation {
    fn kernel(self) -> Result<norm::Act> {
        match self {
            Activation::Identity => Ok(norm::Act::Identity),
            Activation::Relu => Ok(norm::Act::Relu),
            Activation::Elu(alpha) if alpha > 0.0 && alpha.is_finite() => Ok(norm::Act::Elu(alpha as f32)),
            Activation::Elu(alpha) => Err(Error::invalid("alpha", alpha, "a finite α > 0")),
        }
    }

    /// Applies the activation with candle's ops (any device).
    fn apply_reference(self, x: Tensor) -> Result<Tensor> {
        match self {
            Activation::Identity => Ok(x),
            Activation::Relu => Ok(x.relu()?),
            Activation::Elu(alpha) => Ok(x.elu(alpha)?),
        }
    }
}

/// PReLU with one learnable slope per channel: `x` above 0, `a[c] · x` below.
#[derive(Clone, Debug)]
pub struct Prelu {
    slope: Var,
}

impl Prelu {
    /// Slopes for `channels` channels, all starting at `init` (Keras' FCN used 0.01,
    /// PyTorch's default is 0.25).
    pub fn new(b: &mut Builder, name: &str, channels: usize, init: f32) -> Result<Self> {
        if channels == 0 {
            return Err(Error::invalid("channels", channels, "at least 1"));
        }
        Ok(Prelu { slope: b.constant(format!("{name}.slope"), channels, init)? })
    }

    /// Applies the activation to an NCHW batch: nanoml's CPU kernel (one pass for the
    /// output, one for both gradients) for f32 on the CPU, candle's ops elsewhere.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = x.dims4()?.1;
        if c != self.slope.elem_count() {
            return Err(Error::invalid("channels", c, format!("{} (the layer's slopes)", self.slope.elem_count())));
        }
        if planes::on_cpu_f32(x) {
            return Ok(x.contiguous()?.apply_op2(self.slope.as_tensor(), planes::Prelu)?);
        }
        self.forward_reference(x)
    }

    /// `relu(x) − a · relu(−x)` with candle's ops (any device): the fallback off the CPU
    /// and the reference in tests.
    pub fn forward_reference(&self, x: &Tensor) -> Result<Tensor> {
        let a = self.slope.reshape((1, (), 1, 1))?;
        Ok((x.relu()? - x.neg()?.relu()?.broadcast_mul(&a)?)?)
    }
}

/// Convolution → PReLU → batch normalisation, the layer of the HRTEM encoder-decoder.
///
/// On the CPU (f32) this is one op. In evaluation the convolution kernel applies the PReLU
/// and the normalisation (with the running statistics) to its sums before storing them, so
/// the layer writes one tensor instead of three; gradients still reach the input and every
/// parameter (recomputed from the convolution's output when asked for). In training the op
/// keeps the convolution's output and writes the normalised one (two tensors instead of
/// three), updates the running statistics as [`BatchNorm2d`] does, and its backward pass
/// yields the gradients of all six inputs from two passes over the layer's values. On
/// other devices the three layers run one after the other.
pub fn conv_prelu_bn(x: &Tensor, conv: &Conv2d, prelu: &Prelu, bn: &BatchNorm2d, mode: Mode) -> Result<Tensor> {
    if let Some(y) = fused_conv_norm(x, conv, Some(prelu), bn, mode, Activation::Identity)? {
        return Ok(y);
    }
    bn.forward(&prelu.forward(&conv.forward(x)?)?, mode)
}

/// Convolution → batch normalisation → `activation` (SqueezeNet-like and VGG-like layers).
///
/// On the CPU (f32) this is one op, as in [`conv_prelu_bn`], in evaluation (one tensor
/// instead of two) and in training (one node of the gradient graph instead of two). On
/// other devices, the convolution and then [`BatchNorm2d::forward_activated`].
pub fn conv_bn(x: &Tensor, conv: &Conv2d, bn: &BatchNorm2d, mode: Mode, activation: Activation) -> Result<Tensor> {
    if let Some(y) = fused_conv_norm(x, conv, None, bn, mode, activation)? {
        return Ok(y);
    }
    bn.forward_activated(&conv.forward(x)?, mode, activation)
}

/// The fused op of [`conv_prelu_bn`] and [`conv_bn`], where it applies (f32 on the CPU),
/// after checking that the layers fit `x` and each other.
fn fused_conv_norm(
    x: &Tensor,
    conv: &Conv2d,
    prelu: Option<&Prelu>,
    bn: &BatchNorm2d,
    mode: Mode,
    activation: Activation,
) -> Result<Option<Tensor>> {
    let (_, c, h, w) = x.dims4()?;
    let (o, inputs) = (conv.weight.dims()[0], conv.weight.dims()[1]);
    if c != inputs {
        return Err(Error::invalid("channels", c, format!("{inputs} (the convolution's inputs)")));
    }
    let widths =
        prelu.map(|p| ("PReLU", p.slope.elem_count())).into_iter().chain([("batch norm", bn.gamma.elem_count())]);
    for (what, n) in widths {
        if n != o {
            return Err(Error::invalid(
                "layers",
                format!("{what} of {n} channels"),
                format!("{o} channels (the convolution's outputs)"),
            ));
        }
    }
    let act = activation.kernel()?;
    if !planes::on_cpu_f32(x) {
        return Ok(None);
    }
    let saved = Arc::new(OnceLock::new());
    let stats = match mode {
        Mode::Eval => {
            let stats = bn.running_stats()?;
            conv::Statistics::Fixed { mean: stats.mean, inv_std: stats.inv_std }
        }
        Mode::Train { .. } => conv::Statistics::Batch { eps: bn.eps as f32, saved: saved.clone() },
    };
    let mut params = vec![conv.bias.as_tensor()];
    params.extend(prelu.map(|p| p.slope.as_tensor()));
    params.extend([bn.gamma.as_tensor(), bn.beta.as_tensor()]);
    let op = conv::ConvNormOp { stride: conv.stride, pad: conv.padding_of(h, w), stats, prelu: prelu.is_some(), act };
    let y = x.contiguous()?.apply_op3(conv.weight.as_tensor(), &Tensor::cat(&params, 0)?, op)?;
    if let Some(norm::Saved { stats, .. }) = saved.get() {
        bn.update_running_from(stats)?;
    }
    Ok(Some(y))
}

/// Batch normalisation of NCHW batches over `[n, h, w]` per channel, with a learnable
/// scale `γ` (starts at 1) and shift `β` (starts at 0), and running statistics (buffers
/// saved with the parameters).
///
/// In training ([`Mode::Train`]) it normalises with the batch's mean and biased variance
/// and moves the running mean and *unbiased* variance towards them by `momentum`
/// (`running ← (1 − momentum) · running + momentum · batch`: PyTorch's convention, whose
/// default 0.1 is Keras' `momentum=0.9`; Keras' default 0.99 is 0.01 here). In evaluation
/// it uses the running statistics.
#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    gamma: Var,
    beta: Var,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

impl BatchNorm2d {
    /// Batch normalisation of `channels` channels, with `eps` added to the variance
    /// (PyTorch's default 1e-5, Keras' 1e-3) and the running averages' `momentum` (see
    /// the type's documentation).
    pub fn new(b: &mut Builder, name: &str, channels: usize, eps: f64, momentum: f64) -> Result<Self> {
        if channels == 0 {
            return Err(Error::invalid("channels", channels, "at least 1"));
        }
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(Error::invalid("eps", eps, "a finite ε > 0"));
        }
        if !(0.0..=1.0).contains(&momentum) {
            return Err(Error::invalid("momentum", momentum, "0 ≤ momentum ≤ 1"));
        }
        Ok(BatchNorm2d {
            gamma: b.constant(format!("{name}.gamma"), channels, 1.0)?,
            beta: b.zeros(format!("{name}.beta"), channels)?,
            running_mean: b.buffer(format!("{name}.running_mean"), channels, 0.0)?,
            running_var: b.buffer(format!("{name}.running_var"), channels, 1.0)?,
            eps,
            momentum,
        })
    }

    /// Normalises `x` (see the type's documentation for what `mode` changes).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.forward_activated(x, mode, Activation::Identity)
    }

    /// [`forward`](Self::forward) followed by `activation`, fused on the CPU (f32): one
    /// op, no separate tensor for the normalised values or their gradient.
    pub fn forward_activated(&self, x: &Tensor, mode: Mode, activation: Activation) -> Result<Tensor> {
        let c = x.dims4()?.1;
        if c != self.gamma.elem_count() {
            return Err(Error::invalid("channels", c, format!("{} (the layer's)", self.gamma.elem_count())));
        }
        let act = activation.kernel()?;
        if !planes::on_cpu_f32(x) {
            return self.forward_reference(x, mode, activation);
        }
        let source = match mode {
            Mode::Train { .. } => norm::Source::Batch(Arc::new(OnceLock::new())),
            Mode::Eval => norm::Source::Fixed(self.running_stats()?),
        };
        let cell = match &source {
            norm::Source::Batch(cell) => Some(cell.clone()),
            norm::Source::Fixed(_) => None,
        };
        let op = norm::BatchNorm { eps: self.eps as f32, act, source };
        let y = x.contiguous()?.apply_op3(self.gamma.as_tensor(), self.beta.as_tensor(), op)?;
        if let Some(stats) = cell.as_ref().and_then(|c| c.get()) {
            self.update_running_from(stats)?;
        }
        Ok(y)
    }

    /// The running statistics, as evaluation uses them.
    fn running_stats(&self) -> Result<norm::Stats> {
        let mean: Vec<f32> = self.running_mean.to_vec1()?;
        let var: Vec<f32> = self.running_var.to_vec1()?;
        let inv_std = var.iter().map(|&v| (1.0 / (f64::from(v) + self.eps).sqrt()) as f32).collect();
        Ok(norm::Stats { mean, inv_std, unbiased_var: var })
    }

    /// [`update_running`](Self::update_running) from a batch's statistics computed on the
    /// CPU.
    fn update_running_from(&self, stats: &norm::Stats) -> Result<()> {
        let (c, device) = (stats.mean.len(), self.running_mean.device());
        let mean = Tensor::from_slice(&stats.mean, c, device)?;
        let var = Tensor::from_slice(&stats.unbiased_var, c, device)?;
        self.update_running(&mean, &var)
    }

    fn update_running(&self, mean: &Tensor, unbiased_var: &Tensor) -> Result<()> {
        let m = self.momentum;
        self.running_mean.set(&((self.running_mean.as_tensor() * (1.0 - m))? + (mean * m)?)?)?;
        self.running_var.set(&((self.running_var.as_tensor() * (1.0 - m))? + (unbiased_var * m)?)?)?;
        Ok(())
    }

    /// The same with candle's ops (any device): the fallback off the CPU and the
    /// reference in tests. Also updates the running statistics in training.
    pub fn forward_reference(&self, x: &Tensor, mode: Mode, activation: Activation) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let (mean, var) = match mode {
            Mode::Train { .. } => {
                let count = n * h * w;
                if count < 2 {
                    return Err(Error::invalid("batch", format!("{n}×{h}×{w}"), "at least 2 values per channel"));
                }
                let mean = x.mean_keepdim((0, 2, 3))?;
                let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim((0, 2, 3))?;
                let unbiased = (var.detach().flatten_all()? * (count as f64 / (count - 1) as f64))?;
                self.update_running(&mean.detach().flatten_all()?, &unbiased)?;
                (mean, var)
            }
            Mode::Eval => {
                (self.running_mean.reshape((1, c, 1, 1))?, self.running_var.as_tensor().reshape((1, c, 1, 1))?)
            }
        };
        let z = x.broadcast_sub(&mean)?.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        let y =
            z.broadcast_mul(&self.gamma.reshape((1, c, 1, 1))?)?.broadcast_add(&self.beta.reshape((1, c, 1, 1))?)?;
        activation.apply_reference(y)
    }
}

/// A fully connected layer with bias.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Var,
    bias: Var,
}

impl Linear {
    /// A dense layer from `inputs` to `outputs` features.
    pub fn new(b: &mut Builder, name: &str, inputs: usize, outputs: usize) -> Result<Self> {
        if inputs == 0 || outputs == 0 {
            return Err(Error::invalid("features", format!("{inputs} → {outputs}"), "at least 1 each"));
        }
        let weight = b.glorot(format!("{name}.weight"), &[outputs, inputs], inputs, outputs)?;
        let bias = b.zeros(format!("{name}.bias"), outputs)?;
        Ok(Linear { weight, bias })
    }

    /// Applies the layer to a `[batch, inputs]` matrix.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?)
    }
}

/// Inverted dropout: in training, each element is zeroed with probability `rate` and the
/// rest scaled by `1 / (1 − rate)`; in evaluation, the identity. The mask depends only on
/// `seed` and `salt` (not on the device or thread count); on the CPU it is drawn in
/// parallel and never stored (the gradient draws it again).
pub fn dropout(x: &Tensor, rate: f64, mode: Mode, salt: u64) -> Result<Tensor> {
    let Mode::Train { seed } = mode else { return Ok(x.clone()) };
    if !(0.0..1.0).contains(&rate) {
        return Err(Error::invalid("dropout rate", rate, "0 ≤ rate < 1"));
    }
    if rate == 0.0 {
        return Ok(x.clone());
    }
    let op = planes::Dropout { seed: derive_seed(seed, salt), keep: (1.0 - rate) as f32 };
    if planes::on_cpu_f32(x) {
        return Ok(x.contiguous()?.apply_op1(op)?);
    }
    // Elsewhere the same mask, drawn on the CPU, multiplies the input.
    let ones = Tensor::ones(x.shape(), DType::F32, &Device::Cpu)?;
    let mask = ones.apply_op1_no_bwd(&op)?.to_device(x.device())?.to_dtype(x.dtype())?;
    Ok(x.mul(&mask)?)
}

/// Cross-entropy of logits `[batch, classes]` against class indices, each sample weighted
/// by its class's weight; the weighted mean `Σ wᵢ lᵢ / Σ wᵢ` (PyTorch's convention;
/// Keras divides by the batch size instead, which differs only by a constant factor per
/// batch).
pub fn weighted_cross_entropy(logits: &Tensor, targets: &[usize], class_weights: Option<&[f32]>) -> Result<Tensor> {
    let (n, k) = logits.dims2()?;
    if targets.len() != n {
        return Err(Error::invalid(
            "targets",
            format!("{} labels", targets.len()),
            format!("{n}, one per row of logits"),
        ));
    }
    if let Some(&t) = targets.iter().find(|&&t| t >= k) {
        return Err(Error::invalid("targets", t, format!("class indices below {k}")));
    }
    let weights: Vec<f32> = match class_weights {
        Some(w) if w.len() != k => {
            return Err(Error::invalid("class_weights", format!("{} weights", w.len()), format!("{k}")));
        }
        Some(w) => targets.iter().map(|&t| w[t]).collect(),
        None => vec![1.0; n],
    };
    let total: f32 = weights.iter().sum();
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let idx = Tensor::from_vec(targets.iter().map(|&t| t as u32).collect::<Vec<_>>(), (n, 1), logits.device())?;
    let picked = log_p.gather(&idx, 1)?.squeeze(1)?;
    let w = Tensor::from_vec(weights, n, logits.device())?;
    Ok((picked.mul(&w)?.sum_all()?.neg()? / total as f64)?)
}

/// Mean binary cross-entropy of logits against targets in [0, 1], computed stably as
/// `max(x, 0) − x t + ln(1 + e^{−|x|})`.
pub fn binary_cross_entropy_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if logits.shape() != targets.shape() {
        return Err(Error::invalid(
            "targets",
            format!("{:?}", targets.dims()),
            format!("the logits' shape {:?}", logits.dims()),
        ));
    }
    let softplus = logits.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    let loss = (logits.relu()? - logits.mul(targets)?)?.add(&softplus)?;
    Ok(loss.mean_all()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_keeps_the_size_and_valid_shrinks_it() {
        let mut b = Builder::new(1, &Device::Cpu);
        let same = Conv2d::new(&mut b, "same", 2, 3, 3, 1, Padding::Same).unwrap();
        let valid = Conv2d::new(&mut b, "valid", 2, 3, 3, 1, Padding::Valid).unwrap();
        let strided = Conv2d::new(&mut b, "strided", 2, 3, 3, 2, Padding::Same).unwrap();
        let x = Tensor::ones((1, 2, 7, 8), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(same.forward(&x).unwrap().dims(), &[1, 3, 7, 8]);
        assert_eq!(valid.forward(&x).unwrap().dims(), &[1, 3, 5, 6]);
        assert_eq!(strided.forward(&x).unwrap().dims(), &[1, 3, 4, 4]);
        assert_eq!(b.finish().count(), 3 * (2 * 9 * 3 + 3));
    }

    #[test]
    fn parameters_depend_only_on_the_seed() {
        let draw = |seed| {
            let mut b = Builder::new(seed, &Device::Cpu);
            Linear::new(&mut b, "fc", 4, 3).unwrap();
            b.finish().vars()[0].as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let limit = (6.0f32 / 7.0).sqrt();
        assert!(draw(7).iter().all(|v| v.abs() <= limit));
    }

    #[test]
    fn dropout_keeps_the_expectation_and_is_seeded() {
        let x = Tensor::ones(10_000, DType::F32, &Device::Cpu).unwrap();
        let a = dropout(&x, 0.25, Mode::Train { seed: 3 }, 0).unwrap().to_vec1::<f32>().unwrap();
        let b = dropout(&x, 0.25, Mode::Train { seed: 3 }, 0).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a, b);
        let zeros = a.iter().filter(|&&v| v == 0.0).count();
        assert!((2300..2700).contains(&zeros), "{zeros} of 10000 dropped");
        let mean = a.iter().sum::<f32>() / 1e4;
        assert!((mean - 1.0).abs() < 0.03);
        assert_eq!(dropout(&x, 0.25, Mode::Eval, 0).unwrap().to_vec1::<f32>().unwrap(), vec![1.0; 10_000]);
    }

    /// Dropped values are exactly 0 whatever the input (also infinite or NaN); kept ones are
    /// scaled by 1 / keep; the same seed drops the same positions whatever the values.
    #[test]
    fn dropout_zeroes_exactly_and_scales_the_rest() {
        let values: Vec<f32> = (0..40_000).map(|i| [f32::NAN, f32::INFINITY, -2.0, 3.5][i % 4]).collect();
        let x = Tensor::from_vec(values.clone(), 40_000, &Device::Cpu).unwrap();
        let y = dropout(&x, 0.5, Mode::Train { seed: 9 }, 1).unwrap().to_vec1::<f32>().unwrap();
        let ones = Tensor::ones(40_000, DType::F32, &Device::Cpu).unwrap();
        let mask = dropout(&ones, 0.5, Mode::Train { seed: 9 }, 1).unwrap().to_vec1::<f32>().unwrap();
        for ((&x, &y), &m) in values.iter().zip(&y).zip(&mask) {
            if m == 0.0 {
                assert_eq!(y.to_bits(), 0.0f32.to_bits(), "{x} dropped to {y}");
            } else {
                assert_eq!(m, 2.0);
                assert!(y == x * 2.0 || (x.is_nan() && y.is_nan()), "{x} kept as {y}");
            }
        }
        assert!(mask.iter().filter(|&&m| m == 0.0).count() > 15_000);
    }

    #[test]
    fn losses_match_their_formulas() {
        let logits = Tensor::new(&[[2.0f32, 0.0, -1.0], [0.5, 0.5, 0.5]], &Device::Cpu).unwrap();
        let lse0 = (2f32.exp() + 1.0 + (-1f32).exp()).ln();
        let l0 = lse0 - 2.0;
        let l1 = 3f32.ln();
        let plain = weighted_cross_entropy(&logits, &[0, 2], None).unwrap().to_scalar::<f32>().unwrap();
        assert!((plain - (l0 + l1) / 2.0).abs() < 1e-6);
        let weighted =
            weighted_cross_entropy(&logits, &[0, 2], Some(&[1.0, 1.0, 3.0])).unwrap().to_scalar::<f32>().unwrap();
        assert!((weighted - (l0 + 3.0 * l1) / 4.0).abs() < 1e-6);
        assert!(weighted_cross_entropy(&logits, &[0, 3], None).is_err());

        let x = Tensor::new(&[-30.0f32, 0.0, 2.0], &Device::Cpu).unwrap();
        let t = Tensor::new(&[1.0f32, 0.0, 1.0], &Device::Cpu).unwrap();
        let got = binary_cross_entropy_with_logits(&x, &t).unwrap().to_scalar::<f32>().unwrap();
        let want = (30.0 + 2f32.ln() + (1.0 + (-2f32).exp()).ln()) / 3.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn checkpoints_round_trip_and_reject_other_networks() {
        let dir = std::env::temp_dir().join(format!("nanoml-nn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.safetensors");
        let make = |seed, out| {
            let mut b = Builder::new(seed, &Device::Cpu);
            Conv2d::new(&mut b, "c", 1, out, 3, 1, Padding::Same).unwrap();
            b.finish()
        };
        let a = make(1, 4);
        a.save(&path).unwrap();
        let b = make(2, 4);
        b.load(&path).unwrap();
        let va = a.vars()[0].as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let vb = b.vars()[0].as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(va, vb);
        let err = make(1, 5).load(&path).unwrap_err();
        assert!(err.to_string().contains("shape"), "{err}");
        std::fs::write(dir.join("junk"), b"not safetensors").unwrap();
        assert!(matches!(b.load(&dir.join("junk")), Err(Error::Checkpoint { .. })));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
