//! candle's backward pass as the workspace builds it (vendor/candle-core/PATCH.md): the first
//! gradient to reach a tensor is stored as it is, later ones are added, and the results are
//! those of the published crate.

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor, TensorId, Var};
use std::sync::{Arc, Mutex};

/// The identity, whose backward pass hands on the output's gradient times 3 and records
/// the id of the tensor it returned.
struct Tripled(Arc<Mutex<Option<TensorId>>>);

impl CustomOp1 for Tripled {
    fn name(&self) -> &'static str {
        "tripled-gradient"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(v) = s else { candle_core::bail!("f32 only") };
        let Some((a, b)) = l.contiguous_offsets() else { candle_core::bail!("contiguous only") };
        Ok((CpuStorage::F32(v[a..b].to_vec()), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let g = (grad * 3.0)?;
        *self.0.lock().unwrap() = Some(g.id());
        Ok(Some(g))
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn the_first_gradient_is_stored_not_copied() {
    let x = Var::from_vec(vec![1f32, -2.0, 3.0, 0.5], (2, 2), &Device::Cpu).unwrap();
    let id = Arc::new(Mutex::new(None));
    let y = x.as_tensor().apply_op1(Tripled(id.clone())).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    let g = grads.get(x.as_tensor()).unwrap();
    assert_eq!(values(g), [3.0; 4]);
    // Upstream adds it to zeros: a new tensor with another id.
    assert_eq!(Some(g.id()), *id.lock().unwrap(), "the op's gradient itself is the variable's");
}

#[test]
fn gradients_from_several_uses_are_added() {
    let x = Var::from_vec(vec![1f32, -2.0, 3.0, 0.5], (2, 2), &Device::Cpu).unwrap();
    let t = x.as_tensor();
    // d/dx of Σ (3 x_op + 2x + x²) with the op's gradient tripled: 3 + 2 + 2x, plus x + x: 2.
    let y = ((t.apply_op1(Tripled(Arc::default())).unwrap() + (t * 2.0).unwrap()).unwrap() + t.sqr().unwrap()).unwrap();
    let y = (y + (t + t).unwrap()).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    let want: Vec<f32> = values(t).iter().map(|v| 3.0 + 2.0 + 2.0 * v + 2.0).collect();
    assert_eq!(values(grads.get(t).unwrap()), want);
}

#[test]
fn a_strided_first_gradient_is_stored_contiguous() {
    let x = Var::from_vec((0..6).map(|v| v as f32).collect(), (2, 3), &Device::Cpu).unwrap();
    let w = Tensor::from_vec((0..6).map(|v| v as f32 * 0.5).collect(), (3, 2), &Device::Cpu).unwrap();
    // The transpose's backward hands on the output's gradient transposed: strided.
    let y = (x.as_tensor().t().unwrap() * &w).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    let g = grads.get(x.as_tensor()).unwrap();
    assert!(g.is_contiguous());
    assert_eq!(values(g), values(&w.t().unwrap()));
}
