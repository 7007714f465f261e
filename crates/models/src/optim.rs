//! Optimisers (Adam, AdamW, SGD with momentum, RMSprop) and learning-rate schedules.
//!
//! The update rules are PyTorch's (`torch.optim`), with Keras's defaults where the
//! reference networks were trained with Keras (Adam's ε = 1e-7, RMSprop's ρ = 0.9).

use std::sync::Mutex;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// An optimiser and its hyper-parameters (the learning rate is set per step).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Optimizer {
    /// Adam (Kingma & Ba) without weight decay.
    Adam {
        /// Decay of the first moment.
        beta1: f64,
        /// Decay of the second moment.
        beta2: f64,
        /// Added to the root of the second moment.
        eps: f64,
    },
    /// Adam with decoupled weight decay (Loshchilov & Hutter): `θ ← θ (1 − lr·λ)` before
    /// the Adam step.
    AdamW {
        /// Decay of the first moment.
        beta1: f64,
        /// Decay of the second moment.
        beta2: f64,
        /// Added to the root of the second moment.
        eps: f64,
        /// Decoupled weight decay λ.
        weight_decay: f64,
    },
    /// Stochastic gradient descent with (optionally Nesterov) momentum and L2 weight decay.
    Sgd {
        /// Momentum μ (0: plain SGD).
        momentum: f64,
        /// Use Nesterov's look-ahead.
        nesterov: bool,
        /// L2 penalty added to the gradient.
        weight_decay: f64,
    },
    /// RMSprop with optional momentum.
    RmsProp {
        /// Decay of the mean square.
        rho: f64,
        /// Added to the root mean square.
        eps: f64,
        /// Momentum μ (0: none).
        momentum: f64,
    },
}

impl Optimizer {
    /// Adam with Keras's defaults (β = 0.9, 0.999; ε = 1e-7), as the reference networks used.
    pub fn adam() -> Self {
        Optimizer::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-7 }
    }

    /// AdamW with PyTorch's defaults (β = 0.9, 0.999; ε = 1e-8; λ = 0.01).
    pub fn adamw() -> Self {
        Optimizer::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }

    /// SGD with momentum 0.9.
    pub fn sgd_momentum() -> Self {
        Optimizer::Sgd { momentum: 0.9, nesterov: false, weight_decay: 0.0 }
    }

    /// RMSprop with Keras's defaults (ρ = 0.9, ε = 1e-7, no momentum).
    pub fn rmsprop() -> Self {
        Optimizer::RmsProp { rho: 0.9, eps: 1e-7, momentum: 0.0 }
    }

    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<()> {
        let unit = |name: &'static str, v: f64| {
            if (0.0..1.0).contains(&v) { Ok(()) } else { Err(Error::invalid(name, v, "0 ≤ value < 1")) }
        };
        let positive = |name: &'static str, v: f64| {
            if v > 0.0 && v.is_finite() { Ok(()) } else { Err(Error::invalid(name, v, "a finite value > 0")) }
        };
        let non_negative = |name: &'static str, v: f64| {
            if v >= 0.0 && v.is_finite() { Ok(()) } else { Err(Error::invalid(name, v, "a finite value ≥ 0")) }
        };
        match *self {
            Optimizer::Adam { beta1, beta2, eps } => {
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                positive("eps", eps)
            }
            Optimizer::AdamW { beta1, beta2, eps, weight_decay } => {
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                positive("eps", eps)?;
                non_negative("weight_decay", weight_decay)
            }
            Optimizer::Sgd { momentum, weight_decay, nesterov } => {
                unit("momentum", momentum)?;
                if nesterov && momentum == 0.0 {
                    return Err(Error::invalid("nesterov", true, "momentum > 0 for Nesterov's method"));
                }
                non_negative("weight_decay", weight_decay)
            }
            Optimizer::RmsProp { rho, eps, momentum } => {
                unit("rho", rho)?;
                positive("eps", eps)?;
                unit("momentum", momentum)
            }
        }
    }

    /// Fresh state for `vars`.
    pub fn start(&self, vars: Vec<Var>) -> Result<OptimizerState> {
        self.validate()?;
        let n = vars.len();
        Ok(OptimizerState {
            kind: self.clone(),
            vars,
            first: vec![None; n],
            second: vec![None; n],
            fused: vec![None; n],
            step: 0,
        })
    }
}

/// An optimiser bound to its variables, with its moment estimates.
#[derive(Debug)]
pub struct OptimizerState {
    kind: Optimizer,
    vars: Vec<Var>,
    first: Vec<Option<Tensor>>,
    second: Vec<Option<Tensor>>,
    /// Adam's moments `(m, v)` of f32 variables on the CPU, which are updated in place by
    /// one fused pass ([`AdamStep`]) instead of a dozen tensor operations.
    fused: Vec<Option<Moments>>,
    step: u64,
}

type Moments = (Vec<f32>, Vec<f32>);

impl OptimizerState {
    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Updates every variable that has a gradient in `grads`, with learning rate `lr`.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        if !(lr >= 0.0 && lr.is_finite()) {
            return Err(Error::invalid("learning rate", lr, "a finite value ≥ 0"));
        }
        self.step += 1;
        let t = self.step as i32;
        for (i, var) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            if let Optimizer::Adam { beta1, beta2, eps } | Optimizer::AdamW { beta1, beta2, eps, .. } = self.kind {
                let fusable = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
                if fusable(var.as_tensor()) && fusable(g) {
                    let n = var.elem_count();
                    let moments = self.fused[i].get_or_insert_with(|| (vec![0.0; n], vec![0.0; n]));
                    let weight_decay = match self.kind {
                        Optimizer::AdamW { weight_decay, .. } => weight_decay,
                        _ => 0.0,
                    };
                    let op = AdamStep {
                        moments: Mutex::new(moments),
                        beta1,
                        beta2,
                        eps,
                        lr,
                        weight_decay,
                        corrections: (1.0 - beta1.powi(t), 1.0 - beta2.powi(t)),
                    };
                    var.as_tensor().inplace_op2(&g.contiguous()?, &op)?;
                    continue;
                }
            }
            // Detached: the moments must not keep the autograd history of every step alive.
            let g = &g.detach();
            let theta = &var.as_tensor().detach();
            let new = match self.kind {
                Optimizer::Adam { beta1, beta2, eps } | Optimizer::AdamW { beta1, beta2, eps, .. } => {
                    let m = blend(&self.first[i], g, beta1)?;
                    let v = blend(&self.second[i], &g.sqr()?, beta2)?;
                    let m_hat = (&m / (1.0 - beta1.powi(t)))?;
                    let v_hat = (&v / (1.0 - beta2.powi(t)))?;
                    let update = (m_hat / (v_hat.sqrt()? + eps)?)?;
                    self.first[i] = Some(m.detach());
                    self.second[i] = Some(v.detach());
                    let decayed = match self.kind {
                        Optimizer::AdamW { weight_decay, .. } if weight_decay > 0.0 => {
                            (theta * (1.0 - lr * weight_decay))?
                        }
                        _ => theta.clone(),
                    };
                    (decayed - (update * lr)?)?
                }
                Optimizer::Sgd { momentum, nesterov, weight_decay } => {
                    let g = if weight_decay > 0.0 { (g + (theta * weight_decay)?)? } else { g.clone() };
                    let direction = if momentum > 0.0 {
                        let buf = match &self.first[i] {
                            Some(b) => ((b * momentum)? + &g)?,
                            None => g.clone(),
                        };
                        let d = if nesterov { (&g + (&buf * momentum)?)? } else { buf.clone() };
                        self.first[i] = Some(buf.detach());
                        d
                    } else {
                        g
                    };
                    (theta - (direction * lr)?)?
                }
                Optimizer::RmsProp { rho, eps, momentum } => {
                    let sq = match &self.second[i] {
                        Some(s) => ((s * rho)? + (g.sqr()? * (1.0 - rho))?)?,
                        None => (g.sqr()? * (1.0 - rho))?,
                    };
                    let scaled = (g / (sq.sqrt()? + eps)?)?;
                    self.second[i] = Some(sq.detach());
                    let direction = if momentum > 0.0 {
                        let buf = match &self.first[i] {
                            Some(b) => ((b * momentum)? + &scaled)?,
                            None => scaled,
                        };
                        self.first[i] = Some(buf.detach());
                        buf
                    } else {
                        scaled
                    };
                    (theta - (direction * lr)?)?
                }
            };
            var.set(&new)?;
        }
        Ok(())
    }
}

/// One Adam(W) step of an f32 variable on the CPU, in place and in one pass: the moments
/// are blended, bias-corrected, and the variable decayed and updated element by element,
/// in parallel over chunks.
struct AdamStep<'a> {
    moments: Mutex<&'a mut Moments>,
    beta1: f64,
    beta2: f64,
    eps: f64,
    lr: f64,
    weight_decay: f64,
    /// `1 − β₁ᵗ`, `1 − β₂ᵗ`.
    corrections: (f64, f64),
}

impl InplaceOp2 for AdamStep<'_> {
    fn name(&self) -> &'static str {
        "nanoml-adam-step"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<()> {
        let (CpuStorage::F32(theta), CpuStorage::F32(grad)) = (s1, s2) else {
            candle_core::bail!("fused Adam step: f32 variables and gradients only")
        };
        let (Some((a, b)), Some((c, d))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("fused Adam step: the variable and its gradient must be contiguous")
        };
        let (theta, grad) = (&mut theta[a..b], &grad[c..d]);
        let mut guard =
            self.moments.lock().map_err(|_| candle_core::Error::Msg("fused Adam step: poisoned moments".into()))?;
        let (m, v) = &mut **guard;
        if grad.len() != theta.len() || m.len() != theta.len() || v.len() != theta.len() {
            candle_core::bail!("fused Adam step: {} values, {} gradients, {} moments", theta.len(), grad.len(), m.len())
        }
        let (b1, b2, eps) = (self.beta1 as f32, self.beta2 as f32, self.eps as f32);
        let (c1, c2) = (self.corrections.0 as f32, self.corrections.1 as f32);
        let (lr, decay) = (self.lr as f32, (1.0 - self.lr * self.weight_decay) as f32);
        const CHUNK: usize = 1 << 15;
        theta
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
            .for_each(|((theta, grad), (m, v))| {
                for (((th, &g), m), v) in theta.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut()) {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *th = *th * decay - lr * (*m / c1) / ((*v / c2).sqrt() + eps);
                }
            });
        Ok(())
    }
}

/// `β·old + (1 − β)·x`, starting from zero.
fn blend(old: &Option<Tensor>, x: &Tensor, beta: f64) -> Result<Tensor> {
    Ok(match old {
        Some(o) => ((o * beta)? + (x * (1.0 - beta))?)?,
        None => (x * (1.0 - beta))?,
    })
}

/// How the learning rate changes from epoch to epoch (epochs count from 0).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Schedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// Multiply by `factor` every `every` epochs.
    Step {
        /// Epochs between drops.
        every: usize,
        /// Factor of each drop.
        factor: f64,
    },
    /// Multiply by `gamma` every epoch.
    Exponential {
        /// Factor per epoch.
        gamma: f64,
    },
    /// Cosine annealing from the base rate (epoch 0) to `min_lr` (last epoch).
    Cosine {
        /// Rate at the last epoch.
        min_lr: f64,
    },
}

impl Schedule {
    /// The learning rate of `epoch` out of `epochs`.
    pub fn rate(&self, base: f64, epoch: usize, epochs: usize) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, factor } => base * factor.powi((epoch / every.max(1)) as i32),
            Schedule::Exponential { gamma } => base * gamma.powi(epoch as i32),
            Schedule::Cosine { min_lr } => {
                let span = epochs.saturating_sub(1).max(1) as f64;
                min_lr + (base - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / span).cos())
            }
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Schedule::Step { every: 0, .. } => Err(Error::invalid("every", 0, "at least 1 epoch")),
            Schedule::Step { factor: f, .. } | Schedule::Exponential { gamma: f } if !(f > 0.0 && f.is_finite()) => {
                Err(Error::invalid("factor", f, "a finite factor > 0"))
            }
            Schedule::Cosine { min_lr } if !(min_lr >= 0.0 && min_lr.is_finite()) => {
                Err(Error::invalid("min_lr", min_lr, "a finite rate ≥ 0"))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Runs `steps` steps on f(θ) = ½ Σ a_i θ_i² from θ = 1 and returns θ.
    fn run(opt: &Optimizer, steps: usize, lr: f64) -> Vec<f64> {
        let a = Tensor::new(&[1.0f64, 4.0, 0.25], &Device::Cpu).unwrap();
        let theta = Var::new(&[1.0f64, 1.0, 1.0], &Device::Cpu).unwrap();
        let mut state = opt.start(vec![theta.clone()]).unwrap();
        for _ in 0..steps {
            let loss = (theta.as_tensor().sqr().unwrap() * &a).unwrap().sum_all().unwrap().affine(0.5, 0.0).unwrap();
            state.step(&loss.backward().unwrap(), lr).unwrap();
        }
        theta.as_tensor().to_vec1::<f64>().unwrap()
    }

    /// The same updates written out with scalars.
    fn reference(opt: &Optimizer, steps: usize, lr: f64) -> Vec<f64> {
        [1.0f64, 4.0, 0.25]
            .iter()
            .map(|&a| {
                let (mut th, mut m, mut v) = (1.0f64, 0.0f64, 0.0f64);
                for t in 1..=steps as i32 {
                    let g = a * th;
                    match *opt {
                        Optimizer::Adam { beta1, beta2, eps } | Optimizer::AdamW { beta1, beta2, eps, .. } => {
                            if let Optimizer::AdamW { weight_decay, .. } = *opt {
                                th *= 1.0 - lr * weight_decay;
                            }
                            m = beta1 * m + (1.0 - beta1) * g;
                            v = beta2 * v + (1.0 - beta2) * g * g;
                            th -= lr * (m / (1.0 - beta1.powi(t))) / ((v / (1.0 - beta2.powi(t))).sqrt() + eps);
                        }
                        Optimizer::Sgd { momentum, nesterov, weight_decay } => {
                            let g = g + weight_decay * th;
                            m = if t == 1 { g } else { momentum * m + g };
                            th -= lr * if nesterov { g + momentum * m } else { m };
                        }
                        Optimizer::RmsProp { rho, eps, momentum } => {
                            v = rho * v + (1.0 - rho) * g * g;
                            let s = g / (v.sqrt() + eps);
                            m = if momentum > 0.0 { momentum * m + s } else { s };
                            th -= lr * m;
                        }
                    }
                }
                th
            })
            .collect()
    }

    /// The fused in-place Adam(W) step of f32 variables on the CPU follows the same
    /// formulas (to f32 precision), over many chunks of a large variable.
    #[test]
    fn fused_adam_follows_the_formulas() {
        for opt in [
            Optimizer::adam(),
            Optimizer::adamw(),
            Optimizer::AdamW { beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0.3 },
        ] {
            let n = 100_003;
            let a: Vec<f32> = (0..n).map(|i| [1.0f32, 4.0, 0.25][i % 3]).collect();
            let a_t = Tensor::new(a.as_slice(), &Device::Cpu).unwrap();
            let theta = Var::new(vec![1f32; n].as_slice(), &Device::Cpu).unwrap();
            let mut state = opt.start(vec![theta.clone()]).unwrap();
            for _ in 0..7 {
                let loss =
                    (theta.as_tensor().sqr().unwrap() * &a_t).unwrap().sum_all().unwrap().affine(0.5, 0.0).unwrap();
                state.step(&loss.backward().unwrap(), 0.05).unwrap();
            }
            assert!(state.fused[0].is_some(), "{opt:?} took the generic path");
            let got = theta.as_tensor().to_vec1::<f32>().unwrap();
            let want = reference(&opt, 7, 0.05);
            for (i, g) in got.iter().enumerate() {
                let w = want[i % 3];
                assert!((f64::from(*g) - w).abs() < 1e-5 * (1.0 + w.abs()), "{opt:?}: θ[{i}] = {g}, want {w}");
            }
        }
    }

    #[test]
    fn updates_follow_their_formulas() {
        for opt in [
            Optimizer::adam(),
            Optimizer::adamw(),
            Optimizer::sgd_momentum(),
            Optimizer::Sgd { momentum: 0.8, nesterov: true, weight_decay: 0.1 },
            Optimizer::Sgd { momentum: 0.0, nesterov: false, weight_decay: 0.0 },
            Optimizer::rmsprop(),
            Optimizer::RmsProp { rho: 0.95, eps: 1e-6, momentum: 0.5 },
        ] {
            let got = run(&opt, 7, 0.05);
            let want = reference(&opt, 7, 0.05);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-12, "{opt:?}: {got:?} vs {want:?}");
            }
            assert!(got.iter().all(|v| v.abs() < 1.0), "{opt:?} did not descend: {got:?}");
        }
    }

    #[test]
    fn schedules_and_bad_settings() {
        assert_eq!(Schedule::Step { every: 2, factor: 0.5 }.rate(1.0, 5, 10), 0.25);
        assert!((Schedule::Exponential { gamma: 0.9 }.rate(1.0, 2, 10) - 0.81).abs() < 1e-15);
        let cos = Schedule::Cosine { min_lr: 0.1 };
        assert_eq!(cos.rate(1.0, 0, 5), 1.0);
        assert!((cos.rate(1.0, 4, 5) - 0.1).abs() < 1e-15);
        assert!(Schedule::Step { every: 0, factor: 0.5 }.validate().is_err());
        assert!(Optimizer::Adam { beta1: 1.0, beta2: 0.9, eps: 1e-8 }.validate().is_err());
        assert!(Optimizer::Sgd { momentum: 0.0, nesterov: true, weight_decay: 0.0 }.validate().is_err());
    }
}
