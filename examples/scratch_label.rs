#![allow(missing_docs, clippy::print_stdout)]
use nanoml::morphology::*;
use ndarray::Array2;
use std::time::Instant;
fn main() {
    let mut rng = nanoml::core::Xoshiro256PlusPlus::seed_from_u64(1);
    let m = Array2::from_shape_fn((1024, 1024), |_| rng.bernoulli(0.5));
    let reps: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let mut best = [f64::MAX; 3];
    for _ in 0..reps {
        let t = Instant::now();
        let n = count_components(&m, Connectivity::Eight).unwrap();
        best[0] = best[0].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let l = label(&m, Connectivity::Eight).unwrap();
        best[1] = best[1].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let e = euler_number(&m, Connectivity::Eight);
        best[2] = best[2].min(t.elapsed().as_secs_f64());
        std::hint::black_box((n, l, e));
    }
    println!("best ms: count {:.3} label {:.3} euler {:.3}", best[0] * 1e3, best[1] * 1e3, best[2] * 1e3);
}
