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

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{D, DType, Device, Tensor, Var};
use nanoml_core::{Xoshiro256PlusPlus, derive_seed};

use crate::{Error, Result};

mod conv;
mod planes;

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

/// The named parameters of a network, in creation order.
#[derive(Clone, Debug)]
pub struct Params {
    vars: BTreeMap<String, Var>,
    order: Vec<String>,
    device: Device,
}

impl Params {
    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The trainable variables, in creation order.
    pub fn vars(&self) -> Vec<Var> {
        self.order.iter().map(|n| self.vars[n].clone()).collect()
    }

    /// Names and shapes, in creation order.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.order.iter().map(|n| (n.clone(), self.vars[n].dims().to_vec())).collect()
    }

    /// The number of scalar parameters.
    pub fn count(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
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
        Builder { seed, params: Params { vars: BTreeMap::new(), order: vec![], device: device.clone() } }
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
        self.add(name, vec![0.0; n], &[n])
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
