//! Times nanoml's Rabani kernel and prints one JSON object per measurement. Driven by
//! `tools/compare/rabani.py`, which times a numba implementation of the reference kernel
//! on the same parameters in the same run; it can also be used alone:
//!
//! ```text
//! cargo run --release --example compare_rabani -- [L] [MR] [STEPS] [REPEATS] [BATCH] [BATCH_STEPS]
//! ```
//!
//! Measurements: `single` — nanoseconds per attempted update of one simulation on one
//! thread (median over REPEATS runs of STEPS steps; an update is one of the `L²·(1 + MR)`
//! attempts of a step); `batch_1` and `batch_2` — simulations per second of a batch of
//! BATCH runs of BATCH_STEPS steps (default 400, a typical early-stopped run) on a rayon
//! pool of 1 and 2 threads.

use anyhow::Result;
use nanoml::core::NoProgress;
use nanoml::rabani::{Params, Simulator, simulate_batch};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[allow(clippy::print_stdout)]
fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let arg = |i: usize, default: usize| args.get(i).copied().unwrap_or(default);
    let (l, mr, steps, repeats, batch) = (arg(0, 128), arg(1, 1), arg(2, 100), arg(3, 5).max(1), arg(4, 8).max(1));
    let batch_steps = arg(5, 400);
    let params = Params {
        size: l,
        mobility: u32::try_from(mr)?,
        kt: 0.35,
        mu: 3.0,
        coverage: 0.3,
        max_steps: steps,
        ..Params::default()
    };
    let attempts = (steps * l * l * (1 + mr)) as f64;
    let single: Vec<f64> = (0..repeats)
        .map(|seed| -> Result<f64> {
            let mut sim = Simulator::new(&params, seed as u64)?;
            let t = Instant::now();
            for _ in 0..steps {
                sim.step();
            }
            Ok(t.elapsed().as_secs_f64() / attempts * 1e9)
        })
        .collect::<Result<_>>()?;
    println!(
        r#"{{"measure": "single", "L": {l}, "MR": {mr}, "steps": {steps}, "ns_per_attempt": {}}}"#,
        median(single)
    );
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
        let t = Instant::now();
        let batch_params = Params { max_steps: batch_steps, ..params.clone() };
        pool.install(|| simulate_batch(std::slice::from_ref(&batch_params), batch, 1, &NoProgress))?;
        let per_s = batch as f64 / t.elapsed().as_secs_f64();
        println!(
            r#"{{"measure": "batch_{threads}", "L": {l}, "MR": {mr}, "steps": {batch_steps}, "sims_per_s": {per_s}}}"#
        );
    }
    Ok(())
}
