//! Results depend on the seed only, never on the number of threads.

use nanoml_core::NoProgress;
use nanoml_rabani::{Dynamics, EarlyStop, Params, Simulator, simulate_batch};

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

#[test]
fn batches_are_identical_for_1_2_and_4_threads() {
    let grid: Vec<Params> = [0.1, 0.3]
        .iter()
        .map(|&kt| Params { size: 24, kt, max_steps: 40, early_stop: EarlyStop::converged(), ..Params::default() })
        .collect();
    let runs: Vec<_> =
        [1, 2, 4].iter().map(|&t| in_pool(t, || simulate_batch(&grid, 3, 99, &NoProgress).unwrap())).collect();
    assert_eq!(runs[0].len(), 6);
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[0], runs[2]);
    // Different repeats are different films.
    assert_ne!(runs[0][0].simulation.lattice, runs[0][1].simulation.lattice);
}

#[test]
fn sublattice_lattices_are_identical_for_1_2_and_4_threads() {
    let params = Params { size: 64, mobility: 2, dynamics: Dynamics::Sublattice, ..Params::default() };
    let lattices: Vec<_> = [1, 2, 4]
        .iter()
        .map(|&t| {
            in_pool(t, || {
                let mut sim = Simulator::new(&params, 5).unwrap();
                for _ in 0..10 {
                    sim.step();
                }
                sim.lattice().clone()
            })
        })
        .collect();
    assert_eq!(lattices[0], lattices[1]);
    assert_eq!(lattices[0], lattices[2]);
    assert_eq!(lattices[0].counts()[2], params.particle_count());
}
