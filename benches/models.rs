//! Criterion benchmarks of the screening networks on the CPU: inference and one training
//! step (forward, loss, backward, Adam) of the small classifier and denoiser, and
//! screening one 256-pixel scan with the shipped weights. The side-by-side comparison with
//! PyTorch (all four networks, paper sizes included) is `tools/compare/models.py`.
//! `conv_kernels` times one 3×3 convolution layer with nanoml's CPU kernels beside
//! candle's own composition of the same layer (`Conv2d::forward_reference`);
//! `layer_kernels` does the same for batch norm with a fused ELU (training) and PReLU, and
//! for bilinear ×2 upsampling (forward only: candle 0.11 has no backward for it).

use criterion::{Criterion, criterion_group, criterion_main};
use nanoml::models::nn::{
    Activation, BatchNorm2d, Bilinear, Builder, Conv2d, Mode, Padding, Prelu, binary_cross_entropy_with_logits,
    upsample_bilinear2d, weighted_cross_entropy,
};
use nanoml::models::optim::Optimizer;
use nanoml::models::{Classifier, ClassifierConfig, DType, Denoiser, DenoiserConfig, Device, Network, Tensor};
use nanoml::screening::{Screener, ScreeningConfig};
use ndarray::Array2;
use std::hint::black_box;

fn models(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("models");
    g.sample_size(10);
    let clf = Classifier::new(&ClassifierConfig::small(), 0, &dev).expect("classifier");
    let x = Tensor::rand(0f32, 1f32, (32, 1, 100, 100), &dev).expect("input");
    let labels: Vec<usize> = (0..32).map(|i| i % 5).collect();
    g.bench_function("classifier_small_forward_b32", |b| {
        b.iter(|| clf.forward(black_box(&x), Mode::Eval).expect("forward"))
    });
    let mut opt = Optimizer::adam().start(clf.params().vars()).expect("optimiser");
    let mut step = 0;
    g.bench_function("classifier_small_train_step_b32", |b| {
        b.iter(|| {
            step += 1;
            let y = clf.forward(&x, Mode::Train { seed: step }).expect("forward");
            let loss = weighted_cross_entropy(&y, &labels, None).expect("loss");
            opt.step(&loss.backward().expect("backward"), 1e-4).expect("step");
        })
    });
    let den = Denoiser::new(&DenoiserConfig::small(), 0, &dev).expect("denoiser");
    let x = Tensor::rand(0f32, 1f32, (16, 1, 200, 200), &dev).expect("input");
    let target = x.ge(0.5).and_then(|t| t.to_dtype(DType::F32)).expect("target");
    g.bench_function("denoiser_small_forward_b16", |b| {
        b.iter(|| den.forward(black_box(&x), Mode::Eval).expect("forward"))
    });
    let mut opt = Optimizer::adam().start(den.params().vars()).expect("optimiser");
    g.bench_function("denoiser_small_train_step_b16", |b| {
        b.iter(|| {
            let y = den.forward(&x, Mode::Train { seed: 0 }).expect("forward");
            let loss = binary_cross_entropy_with_logits(&y, &target).expect("loss");
            opt.step(&loss.backward().expect("backward"), 1e-4).expect("step");
        })
    });
    let screener = Screener::pretrained(ScreeningConfig::default(), &dev).expect("screener");
    let mut rng = nanoml::core::Xoshiro256PlusPlus::seed_from_u64(3);
    let scan = Array2::from_shape_fn(
        (256, 256),
        |(r, c)| if (r / 6 + c / 6) % 3 == 0 { 2.0 } else { 0.0 } + 0.05 * rng.normal(),
    );
    g.bench_function("screen_scan_256", |b| b.iter(|| screener.screen_heights("bench", black_box(&scan))));
    g.finish();
}

fn conv_kernels(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("conv_kernels");
    g.sample_size(10);
    let mut b = Builder::new(0, &dev);
    let conv = Conv2d::new(&mut b, "conv", 32, 32, 3, 1, Padding::Same).expect("conv");
    let x = nanoml::models::Var::from_tensor(&Tensor::rand(0f32, 1f32, (8, 32, 100, 100), &dev).expect("input"))
        .expect("var");
    g.bench_function("conv3x3_32to32_100sq_b8_forward_nanoml", |bch| {
        bch.iter(|| conv.forward(black_box(&x)).expect("forward"))
    });
    g.bench_function("conv3x3_32to32_100sq_b8_forward_candle", |bch| {
        bch.iter(|| conv.forward_reference(black_box(&x)).expect("forward"))
    });
    g.bench_function("conv3x3_32to32_100sq_b8_train_nanoml", |bch| {
        bch.iter(|| conv.forward(&x).and_then(|y| Ok(y.sum_all()?.backward()?)).expect("backward"))
    });
    g.bench_function("conv3x3_32to32_100sq_b8_train_candle", |bch| {
        bch.iter(|| conv.forward_reference(&x).and_then(|y| Ok(y.sum_all()?.backward()?)).expect("backward"))
    });
    g.finish();
}

/// Forward and backward of `f` (the gradient of the sum).
fn train(f: impl Fn() -> nanoml::models::Result<Tensor>) {
    f().and_then(|y| Ok(y.sum_all()?.backward()?)).expect("backward");
}

fn layer_kernels(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("layer_kernels");
    g.sample_size(10);
    let mut b = Builder::new(0, &dev);
    let bn = BatchNorm2d::new(&mut b, "bn", 32, 1e-3, 0.01).expect("batch norm");
    let prelu = Prelu::new(&mut b, "prelu", 32, 0.01).expect("prelu");
    let x = nanoml::models::Var::from_tensor(&Tensor::rand(-1f32, 1f32, (8, 32, 100, 100), &dev).expect("input"))
        .expect("var");
    let (mode, elu) = (Mode::Train { seed: 0 }, Activation::Elu(1.0));
    g.bench_function("batchnorm_elu_32ch_100sq_b8_train_nanoml", |bch| {
        bch.iter(|| train(|| bn.forward_activated(black_box(&x), mode, elu)))
    });
    g.bench_function("batchnorm_elu_32ch_100sq_b8_train_candle", |bch| {
        bch.iter(|| train(|| bn.forward_reference(black_box(&x), mode, elu)))
    });
    g.bench_function("prelu_32ch_100sq_b8_train_nanoml", |bch| bch.iter(|| train(|| prelu.forward(black_box(&x)))));
    g.bench_function("prelu_32ch_100sq_b8_train_candle", |bch| {
        bch.iter(|| train(|| prelu.forward_reference(black_box(&x))))
    });
    // candle 0.11 has no backward for its bilinear upsampling: forward only.
    g.bench_function("bilinear_x2_32ch_100sq_b8_forward_nanoml", |bch| {
        bch.iter(|| upsample_bilinear2d(black_box(&x), 2, Bilinear::HalfPixel).expect("upsample"))
    });
    g.bench_function("bilinear_x2_32ch_100sq_b8_forward_candle", |bch| {
        bch.iter(|| black_box(&x).upsample_bilinear2d(200, 200, false).expect("upsample"))
    });
    g.bench_function("bilinear_x2_32ch_100sq_b8_train_nanoml", |bch| {
        bch.iter(|| train(|| upsample_bilinear2d(black_box(&x), 2, Bilinear::HalfPixel)))
    });
    g.finish();
}

criterion_group!(benches, models, conv_kernels, layer_kernels);
criterion_main!(benches);
