//! Batch norm, PReLU, ELU, average pooling and bilinear upsampling: nanoml's CPU kernels
//! against candle's compositions of the same layers (outputs and every gradient, within
//! 1e-4 relative), direct loops where candle's own gradient is wrong, and finite
//! differences.

use candle_core::{DType, Device, Tensor, Var};
use proptest::prelude::*;

use super::testing::{check_finite_differences, close, gradients, random, values};
use super::*;

/// A loss that weights every output by a random value, so that each gradient entry differs.
fn weighted(y: &Tensor, seed: u64) -> Tensor {
    (y * random(y.dims(), seed ^ 0x5eed)).unwrap().sum_all().unwrap()
}

fn var(shape: &[usize], seed: u64) -> Var {
    Var::from_tensor(&random(shape, seed)).unwrap()
}

fn agree(ours: &[Vec<f32>], theirs: &[Vec<f32>], rel: f32) -> Result<(), TestCaseError> {
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        close(a, b, rel).map_err(|e| TestCaseError::fail(format!("gradient {i}: {e}")))?;
    }
    Ok(())
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![Just(Activation::Identity), Just(Activation::Relu), (0.1f64..2.0).prop_map(Activation::Elu)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Training and evaluation, with each fused activation: output, input, scale and
    /// shift gradients, and the running statistics.
    #[test]
    fn batch_norm_equals_candles_composition(
        n in 1usize..4, c in 1usize..5, h in 1usize..8, w in 2usize..8, act in activation(),
        offset in -3.0f32..3.0, train in any::<bool>(), seed in any::<u64>(),
    ) {
        let mode = if train { Mode::Train { seed } } else { Mode::Eval };
        let make = || {
            let mut b = Builder::new(seed, &Device::Cpu);
            let bn = BatchNorm2d::new(&mut b, "bn", c, 1e-3, 0.1).unwrap();
            // Non-trivial scale, shift and running statistics.
            bn.gamma.set(&(random(&[c], seed ^ 2) + 1.5).unwrap()).unwrap();
            bn.beta.set(&random(&[c], seed ^ 3)).unwrap();
            bn.running_mean.set(&random(&[c], seed ^ 4)).unwrap();
            bn.running_var.set(&(random(&[c], seed ^ 5) + 1.5).unwrap()).unwrap();
            bn
        };
        let (ours, theirs) = (make(), make());
        let x = Var::from_tensor(&(random(&[n, c, h, w], seed) * 2.0).unwrap().affine(1.0, f64::from(offset)).unwrap()).unwrap();
        let a = ours.forward_activated(&x, mode, act).unwrap();
        let b = theirs.forward_reference(&x, mode, act).unwrap();
        close(&values(&a), &values(&b), 1e-4).map_err(TestCaseError::fail)?;
        let ga = gradients(&weighted(&a, seed), &[&x, &ours.gamma, &ours.beta]);
        let gb = gradients(&weighted(&b, seed), &[&x, &theirs.gamma, &theirs.beta]);
        agree(&ga, &gb, 1e-4)?;
        close(&values(&ours.running_mean), &values(&theirs.running_mean), 1e-5).map_err(TestCaseError::fail)?;
        close(&values(&ours.running_var), &values(&theirs.running_var), 1e-5).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn prelu_equals_candles_composition(n in 1usize..4, c in 1usize..5, h in 1usize..8, w in 1usize..8, seed in any::<u64>()) {
        let mut b = Builder::new(seed, &Device::Cpu);
        let prelu = Prelu::new(&mut b, "p", c, 0.25).unwrap();
        prelu.slope.set(&random(&[c], seed ^ 7)).unwrap();
        let x = var(&[n, c, h, w], seed);
        let (a, r) = (prelu.forward(&x).unwrap(), prelu.forward_reference(&x).unwrap());
        close(&values(&a), &values(&r), 1e-6).map_err(TestCaseError::fail)?;
        agree(&gradients(&weighted(&a, seed), &[&x, &prelu.slope]), &gradients(&weighted(&r, seed), &[&x, &prelu.slope]), 1e-4)?;
    }

    #[test]
    fn elu_equals_candles(n in 1usize..4, c in 1usize..4, h in 1usize..9, alpha in 0.1f64..2.0, seed in any::<u64>()) {
        let x = Var::from_tensor(&(random(&[n, c, h, 5], seed) * 4.0).unwrap()).unwrap();
        let (a, r) = (elu(&x, alpha).unwrap(), x.elu(alpha).unwrap());
        close(&values(&a), &values(&r), 1e-6).map_err(TestCaseError::fail)?;
        agree(&gradients(&weighted(&a, seed), &[&x]), &gradients(&weighted(&r, seed), &[&x]), 1e-5)?;
    }

    /// Against candle where the window divides the size (candle misplaces the gradient
    /// otherwise), and against direct loops on any size.
    #[test]
    fn average_pooling_equals_candle_and_direct_loops(
        n in 1usize..3, c in 1usize..4, k in 1usize..4, h in 3usize..12, w in 3usize..12, seed in any::<u64>(),
    ) {
        let x = var(&[n, c, h, w], seed);
        let y = avg_pool2d(&x, k).unwrap();
        let (ho, wo) = (h / k, w / k);
        prop_assert_eq!(y.dims(), &[n, c, ho, wo]);
        let weights = random(y.dims(), seed ^ 0x5eed);
        let grad = &gradients(&weighted(&y, seed), &[&x])[0];
        let (xv, rv) = (values(&x), values(&weights));
        let (mut want_y, mut want_dx) = (vec![0f32; y.elem_count()], vec![0f32; xv.len()]);
        for p in 0..n * c {
            for (oy, ox) in (0..ho).flat_map(|oy| (0..wo).map(move |ox| (oy, ox))) {
                let o = (p * ho + oy) * wo + ox;
                for j in 0..k * k {
                    let i = p * h * w + (oy * k + j / k) * w + ox * k + j % k;
                    want_y[o] += xv[i] / (k * k) as f32;
                    want_dx[i] = rv[o] / (k * k) as f32;
                }
            }
        }
        close(&values(&y), &want_y, 1e-5).map_err(TestCaseError::fail)?;
        close(grad, &want_dx, 1e-6).map_err(TestCaseError::fail)?;
        if h % k == 0 && w % k == 0 {
            let r = x.avg_pool2d(k).unwrap();
            close(&values(&y), &values(&r), 1e-5).map_err(TestCaseError::fail)?;
            close(grad, &gradients(&weighted(&r, seed), &[&x])[0], 1e-5).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn global_average_pooling_equals_candles_mean(n in 1usize..4, c in 1usize..5, h in 1usize..9, w in 1usize..9, seed in any::<u64>()) {
        let x = var(&[n, c, h, w], seed);
        let (a, r) = (global_avg_pool2d(&x).unwrap(), x.mean((2, 3)).unwrap());
        close(&values(&a), &values(&r), 1e-5).map_err(TestCaseError::fail)?;
        agree(&gradients(&weighted(&a, seed), &[&x]), &gradients(&weighted(&r, seed), &[&x]), 1e-5)?;
    }

    /// In evaluation and in training, the fused layer equals the three layers one after the
    /// other: output, the gradients of the input and of all six parameters, and the running
    /// statistics. Rows of 16 and more take the direct kernel, narrower ones and strides
    /// above 1 the matrix products.
    #[test]
    fn fused_conv_prelu_batch_norm_equals_the_three_layers(
        n in 1usize..3, c in 1usize..4, o in 1usize..15, k in prop_oneof![Just(1usize), Just(3)],
        stride in 1usize..3, same in any::<bool>(), h in 3usize..8, w in prop_oneof![3usize..8, 16usize..20],
        train in any::<bool>(), seed in any::<u64>(),
    ) {
        let mut b = Builder::new(seed, &Device::Cpu);
        let padding = if same { Padding::Same } else { Padding::Valid };
        let conv = Conv2d::new(&mut b, "conv", c, o, k, stride, padding).unwrap();
        conv.bias.set(&random(&[o], seed ^ 1)).unwrap();
        let prelu = Prelu::new(&mut b, "p", o, 0.25).unwrap();
        prelu.slope.set(&random(&[o], seed ^ 7)).unwrap();
        let bn = BatchNorm2d::new(&mut b, "bn", o, 1e-3, 0.1).unwrap();
        bn.gamma.set(&(random(&[o], seed ^ 2) + 1.5).unwrap()).unwrap();
        bn.beta.set(&random(&[o], seed ^ 3)).unwrap();
        bn.running_mean.set(&random(&[o], seed ^ 4)).unwrap();
        bn.running_var.set(&(random(&[o], seed ^ 5) + 1.5).unwrap()).unwrap();
        let x = var(&[n, c, h, w], seed);
        let mode = if train { Mode::Train { seed } } else { Mode::Eval };
        // The layers' own kernels, each tested against candle (whose convolution input
        // gradient is wrong at strides above 1).
        let Some((a, r)) = both_runs(&bn, || conv_prelu_bn(&x, &conv, &prelu, &bn, mode), || {
            bn.forward(&prelu.forward(&conv.forward(&x)?)?, mode)
        })? else {
            return Ok(());
        };
        prop_assert_eq!(a.dims(), r.dims());
        close(&values(&a), &values(&r), 1e-4).map_err(TestCaseError::fail)?;
        let vars = [&x, &conv.weight, &conv.bias, &prelu.slope, &bn.gamma, &bn.beta];
        let (mut ga, mut gr) = (gradients(&weighted(&a, seed), &vars), gradients(&weighted(&r, seed), &vars));
        if train {
            // In training, batch norm's gradient has zero mean per channel, and the PReLU
            // between moves it only where the output is negative: the bias gradient sums
            // terms that mostly cancel, and both sides keep the rounding of the terms
            // (1e-4 at worst seen), not of the small result.
            close(&ga.remove(2), &gr.remove(2), 1e-3).map_err(|e| TestCaseError::fail(format!("bias: {e}")))?;
        }
        agree(&ga, &gr, 1e-4)?;
    }

    /// In evaluation and in training, the fused convolution → batch norm → activation
    /// equals the two layers (the norm's own fused activation): output, all five gradients
    /// and the running statistics.
    #[test]
    fn fused_conv_batch_norm_equals_the_two_layers(
        n in 1usize..3, c in 1usize..4, o in 1usize..15, k in prop_oneof![Just(1usize), Just(3)],
        stride in 1usize..3, same in any::<bool>(), h in 3usize..8, w in prop_oneof![3usize..8, 16usize..20],
        act in activation(), train in any::<bool>(), taps in any::<bool>(), seed in any::<u64>(),
    ) {
        // The tap products at any channel count: in training the input gradient then reads
        // the kernels that the forward pass put in tap order.
        conv::tests::ANY_TAPS.store(taps, std::sync::atomic::Ordering::Relaxed);
        let mut b = Builder::new(seed, &Device::Cpu);
        let padding = if same { Padding::Same } else { Padding::Valid };
        let conv = Conv2d::new(&mut b, "conv", c, o, k, stride, padding).unwrap();
        conv.bias.set(&random(&[o], seed ^ 1)).unwrap();
        let bn = BatchNorm2d::new(&mut b, "bn", o, 1e-3, 0.1).unwrap();
        bn.gamma.set(&(random(&[o], seed ^ 2) * 2.0).unwrap()).unwrap();
        bn.beta.set(&random(&[o], seed ^ 3)).unwrap();
        bn.running_mean.set(&random(&[o], seed ^ 4)).unwrap();
        bn.running_var.set(&(random(&[o], seed ^ 5) + 1.5).unwrap()).unwrap();
        let x = Var::from_tensor(&(random(&[n, c, h, w], seed) * 3.0).unwrap()).unwrap();
        let mode = if train { Mode::Train { seed } } else { Mode::Eval };
        let Some((a, r)) = both_runs(&bn, || conv_bn(&x, &conv, &bn, mode, act), || {
            bn.forward_activated(&conv.forward(&x)?, mode, act)
        })? else {
            return Ok(());
        };
        prop_assert_eq!(a.dims(), r.dims());
        close(&values(&a), &values(&r), 1e-4).map_err(TestCaseError::fail)?;
        let vars = [&x, &conv.weight, &conv.bias, &bn.gamma, &bn.beta];
        agree(&gradients(&weighted(&a, seed), &vars), &gradients(&weighted(&r, seed), &vars), 1e-4)?;
    }

    /// The fused convolution → ReLU → max pooling equals the convolution with its ReLU and
    /// then the pooling layer: output and all three gradients, with windows of 1–3 (odd
    /// sizes leave rows and columns no window covers) and outputs wide enough for the
    /// direct kernel or not.
    #[test]
    fn fused_conv_relu_max_pool_equals_the_two_layers(
        n in 1usize..3, c in 1usize..4, o in 1usize..15, k in prop_oneof![Just(1usize), Just(3)],
        stride in 1usize..3, same in any::<bool>(), h in 3usize..9, w in prop_oneof![3usize..9, 16usize..21],
        pool in 1usize..4, seed in any::<u64>(),
    ) {
        let mut b = Builder::new(seed, &Device::Cpu);
        let padding = if same { Padding::Same } else { Padding::Valid };
        let conv = Conv2d::new(&mut b, "conv", c, o, k, stride, padding).unwrap();
        conv.bias.set(&random(&[o], seed ^ 1)).unwrap();
        let x = var(&[n, c, h, w], seed);
        let separate = conv.forward_relu(&x).and_then(|y| max_pool2d(&y, pool));
        let fused = conv.forward_relu_max_pool(&x, pool);
        let (a, r) = match (fused, separate) {
            (Ok(a), Ok(r)) => (a, r),
            // Windows larger than the convolution's output: both refuse.
            (Err(_), Err(_)) => return Ok(()),
            (a, r) => return Err(TestCaseError::fail(format!("fused {:?}, separate {:?}", a.is_ok(), r.is_ok()))),
        };
        prop_assert_eq!(a.dims(), r.dims());
        close(&values(&a), &values(&r), 1e-6).map_err(TestCaseError::fail)?;
        let vars = [&x, &conv.weight, &conv.bias];
        agree(&gradients(&weighted(&a, seed), &vars), &gradients(&weighted(&r, seed), &vars), 1e-5)?;
    }

    /// The separable kernel equals products with the interpolation matrices, both ways.
    #[test]
    fn bilinear_upsampling_equals_matrix_products(
        n in 1usize..3, c in 1usize..4, h in 1usize..7, w in 1usize..7, factor in 1usize..5,
        legacy in any::<bool>(), seed in any::<u64>(),
    ) {
        let mode = if legacy { Bilinear::Legacy } else { Bilinear::HalfPixel };
        let x = var(&[n, c, h, w], seed);
        let a = upsample_bilinear2d(&x, factor, mode).unwrap();
        let r = upsample_bilinear2d_reference(&x, factor, mode, (n, c, h, w)).unwrap();
        close(&values(&a), &values(&r), 1e-5).map_err(TestCaseError::fail)?;
        agree(&gradients(&weighted(&a, seed), &[&x]), &gradients(&weighted(&r, seed), &[&x]), 1e-5)?;
        if !legacy {
            // candle's own kernel (forward only) samples as PyTorch does.
            let c = x.upsample_bilinear2d(h * factor, w * factor, false).unwrap();
            close(&values(&a), &values(&c), 1e-5).map_err(TestCaseError::fail)?;
        }
    }
}

/// The two samplings on a known row: TensorFlow 1's `out[2i] = in[i]`,
/// `out[2i+1] = ½ (in[i] + in[i+1])`; PyTorch's `align_corners=False` values.
#[test]
fn bilinear_samplings_match_tensorflow_1_and_pytorch() {
    let x = Tensor::new(&[[[[1f32, 2.0, 4.0]]]], &Device::Cpu).unwrap();
    let row = |mode| values(&upsample_bilinear2d(&x, 2, mode).unwrap().narrow(2, 0, 1).unwrap());
    assert_eq!(row(Bilinear::Legacy), vec![1.0, 1.5, 2.0, 3.0, 4.0, 4.0]);
    // torch.nn.functional.interpolate(torch.tensor([[[[1., 2., 4.]]]]), scale_factor=2, mode="bilinear")
    assert_eq!(row(Bilinear::HalfPixel), vec![1.0, 1.25, 1.75, 2.5, 3.5, 4.0]);
}

/// A batch normalised in training has mean β and standard deviation γ per channel, and
/// the running statistics move by `momentum` towards the batch's (variance unbiased).
#[test]
fn batch_norm_normalises_and_tracks_running_statistics() {
    let mut b = Builder::new(1, &Device::Cpu);
    let bn = BatchNorm2d::new(&mut b, "bn", 2, 1e-5, 0.1).unwrap();
    let x = ((random(&[4, 2, 5, 5], 9) * 3.0).unwrap() + 10.0).unwrap();
    let y = bn.forward(&x, Mode::Train { seed: 0 }).unwrap();
    for ch in 0..2 {
        let v = values(&y.narrow(1, ch, 1).unwrap());
        let mean = v.iter().map(|&v| f64::from(v)).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3, "channel {ch}: mean {mean}, variance {var}");
        let xs: Vec<f64> = values(&x.narrow(1, ch, 1).unwrap()).into_iter().map(f64::from).collect();
        let m = xs.iter().sum::<f64>() / 100.0;
        let unbiased = xs.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 99.0;
        let running_mean = f64::from(values(&bn.running_mean)[ch]);
        let running_var = f64::from(values(&bn.running_var)[ch]);
        assert!((running_mean - 0.1 * m).abs() < 1e-4, "running mean {running_mean}, batch mean {m}");
        assert!((running_var - (0.9 + 0.1 * unbiased)).abs() < 1e-4, "running variance {running_var}");
    }
    // Running statistics are buffers: saved, not trained.
    let params = b.finish();
    assert_eq!(params.vars().len(), 2);
    assert_eq!(params.count(), 4);
    assert_eq!(params.snapshot().unwrap().len(), 4);
}

/// Central differences agree with the gradients of every new kernel, in one network-like
/// chain: PReLU → batch norm with ELU → average pooling → bilinear upsampling → global
/// average pooling.
#[test]
fn gradients_agree_with_finite_differences() {
    let mut b = Builder::new(3, &Device::Cpu);
    let prelu = Prelu::new(&mut b, "p", 3, 0.2).unwrap();
    let bn = BatchNorm2d::new(&mut b, "bn", 3, 1e-3, 0.1).unwrap();
    let x = var(&[2, 3, 6, 6], 4);
    let weights = random(&[2, 3], 5);
    let loss = || {
        let y = prelu.forward(&x).unwrap();
        let y = bn.forward_activated(&y, Mode::Train { seed: 0 }, Activation::Elu(1.0)).unwrap();
        let y = avg_pool2d(&y, 2).unwrap();
        let y = upsample_bilinear2d(&y, 2, Bilinear::HalfPixel).unwrap();
        let y = global_avg_pool2d(&(&y * &y).unwrap()).unwrap();
        (y * &weights).unwrap().sum_all().unwrap()
    };
    let vars = [(&x, "input"), (&prelu.slope, "slope"), (&bn.gamma, "gamma"), (&bn.beta, "beta")];
    check_finite_differences(&vars, loss, 1e-2, 5e-3);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let mut b = Builder::new(1, &Device::Cpu);
    let x = Tensor::zeros((1, 2, 3, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(avg_pool2d(&x, 4).is_err());
    assert!(avg_pool2d(&x, 0).is_err());
    assert!(upsample_bilinear2d(&x, 0, Bilinear::Legacy).is_err());
    assert!(elu(&x, 0.0).is_err());
    assert!(BatchNorm2d::new(&mut b, "bn", 3, 1e-5, 0.1).unwrap().forward(&x, Mode::Eval).is_err());
    assert!(BatchNorm2d::new(&mut b, "bn2", 2, 0.0, 0.1).is_err());
    assert!(BatchNorm2d::new(&mut b, "bn3", 2, 1e-5, 1.5).is_err());
    let one = Tensor::zeros((1, 2, 1, 1), DType::F32, &Device::Cpu).unwrap();
    let bn = BatchNorm2d::new(&mut b, "bn4", 2, 1e-5, 0.1).unwrap();
    assert!(bn.forward(&one, Mode::Train { seed: 0 }).is_err(), "one value per channel has no variance");
    assert!(Prelu::new(&mut b, "p", 3, 0.1).unwrap().forward(&x).is_err());
}

/// The polynomial `eˣ − 1` of the ELU agrees with libm's `expm1` within 2e-7 absolute
/// and 1e-6 relative over the whole negative range, and keeps NaN.
#[test]
fn exp_m1_approximation_is_accurate() {
    for i in 0..=2_000_000 {
        let x = -100.0 * (i as f32 / 2e6).powi(3);
        let (a, b) = (super::planes::exp_m1_nonpositive(x), x.exp_m1());
        let err = (a - b).abs();
        assert!(err <= 2e-7 && err <= 1e-6 * b.abs().max(1e-1), "x = {x}: {a} against {b}");
    }
    assert!(super::planes::exp_m1_nonpositive(f32::NAN).is_nan());
    assert_eq!(super::planes::exp_m1_nonpositive(3.0), 0.0);
}

/// Runs the fused layer `fused` and the separate layers `separate` from the same running
/// statistics of `bn`, and checks that both leave the same statistics. `None` where both
/// fail (a training batch of one value per channel); an error where only one does.
fn both_runs(
    bn: &BatchNorm2d,
    fused: impl FnOnce() -> crate::Result<Tensor>,
    separate: impl FnOnce() -> crate::Result<Tensor>,
) -> Result<Option<(Tensor, Tensor)>, TestCaseError> {
    let running = |bn: &BatchNorm2d| [values(bn.running_mean.as_tensor()), values(bn.running_var.as_tensor())];
    let start = [bn.running_mean.as_tensor().copy().unwrap(), bn.running_var.as_tensor().copy().unwrap()];
    let a = fused();
    let after_fused = running(bn);
    bn.running_mean.set(&start[0]).unwrap();
    bn.running_var.set(&start[1]).unwrap();
    let r = separate();
    let (a, r) = match (a, r) {
        (Ok(a), Ok(r)) => (a, r),
        (Err(_), Err(_)) => return Ok(None),
        (a, r) => return Err(TestCaseError::fail(format!("fused {:?} but separate {:?}", a.err(), r.err()))),
    };
    for (f, s) in after_fused.iter().zip(&running(bn)) {
        close(f, s, 1e-5).map_err(TestCaseError::fail)?;
    }
    Ok(Some((a, r)))
}
