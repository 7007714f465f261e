//! Test helpers shared by the kernels' tests: random tensors, and gradient checks against
//! candle's compositions and against finite differences.

use candle_core::{Device, Tensor, Var};
use nanoml_core::Xoshiro256PlusPlus;

/// Uniform values in [−1, 1) drawn from `seed`.
pub(crate) fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let v: Vec<f32> = (0..shape.iter().product()).map(|_| rng.uniform_f32() * 2.0 - 1.0).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// All values of `t`, flattened.
pub(crate) fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Whether `a` and `b` agree within `rel` relative (to `1 + |b|`), elementwise; the first
/// disagreement otherwise.
pub(crate) fn close(a: &[f32], b: &[f32], rel: f32) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("{} values against {}", a.len(), b.len()));
    }
    match a.iter().zip(b).position(|(x, y)| (x - y).abs().is_nan() || (x - y).abs() > rel * (1.0 + y.abs())) {
        None => Ok(()),
        Some(i) => Err(format!("value {i}: {} against {}", a[i], b[i])),
    }
}

/// The gradients of `loss` with respect to `vars`, flattened.
pub(crate) fn gradients(loss: &Tensor, vars: &[&Var]) -> Vec<Vec<f32>> {
    let grads = loss.backward().unwrap();
    vars.iter().map(|v| values(grads.get(v.as_tensor()).expect("every variable has a gradient"))).collect()
}

/// Central differences (step `eps`) of the scalar `loss()` at up to seven entries of each
/// variable agree with its gradient within `tol` relative.
pub(crate) fn check_finite_differences(vars: &[(&Var, &str)], loss: impl Fn() -> Tensor, eps: f32, tol: f32) {
    let analytic = gradients(&loss(), &vars.iter().map(|(v, _)| *v).collect::<Vec<_>>());
    for ((var, what), analytic) in vars.iter().zip(analytic) {
        let values = values(var.as_tensor());
        let set = |v: Vec<f32>| var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap()).unwrap();
        for i in (0..values.len()).step_by(values.len().div_ceil(7)) {
            let at = |delta: f32| {
                let mut v = values.clone();
                v[i] += delta;
                set(v);
                let l = loss().to_scalar::<f32>().unwrap();
                set(values.clone());
                l
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            assert!(
                (numeric - analytic[i]).abs() <= tol * (1.0 + analytic[i].abs()),
                "{what}[{i}]: finite difference {numeric}, gradient {}",
                analytic[i]
            );
        }
    }
}
