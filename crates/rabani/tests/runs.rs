//! Runs, snapshots, early stopping and training sets through the public API.

use nanoml_core::NoProgress;
use nanoml_rabani::dataset::{ParamRanges, TrainingSet};
use nanoml_rabani::{Category, EarlyStop, Params, Simulator, simulate};

fn small() -> Params {
    Params { size: 32, max_steps: 60, ..Params::default() }
}

#[test]
fn snapshots_are_the_lattice_at_their_steps() {
    let params = Params { snapshot_steps: vec![40, 0, 10, 10, 500], ..small() };
    let run = simulate(&params, 3).unwrap();
    let steps: Vec<usize> = run.snapshots.iter().map(|s| s.step).collect();
    assert_eq!(steps, [0, 10, 40]); // sorted, deduplicated, beyond-the-end dropped
    let mut sim = Simulator::new(&params, 3).unwrap();
    assert_eq!(sim.lattice(), &run.snapshots[0].lattice);
    for _ in 0..10 {
        sim.step();
    }
    assert_eq!(sim.lattice(), &run.snapshots[1].lattice);
    assert_ne!(run.snapshots[1].lattice, run.snapshots[2].lattice);
}

#[test]
fn pyrabani_early_stop_fires_after_step_index_200_only() {
    let params = Params { kt: 0.3, mu: 3.0, max_steps: 5001, early_stop: EarlyStop::PyRabani, ..small() };
    for seed in 0..5 {
        let run = simulate(&params, seed).unwrap();
        assert!(run.stopped_early);
        assert!((202..5001).contains(&run.steps), "{}", run.steps);
    }
}

#[test]
fn pyrabani_early_stop_never_fires_on_a_frozen_film() {
    // The rule needs 0 < std: a film that no longer changes at all gives std = 0 and runs
    // to the end, as in the reference.
    let params = Params { kt: 0.01, mu: 3.4, max_steps: 1500, early_stop: EarlyStop::PyRabani, ..small() };
    let run = simulate(&params, 1).unwrap();
    assert_eq!((run.steps, run.stopped_early), (1500, false));
}

#[test]
fn converged_early_stop_respects_its_minimum_and_can_be_off() {
    let stop = EarlyStop::Converged { interval: 10, window: 3, tolerance: 0.01, min_steps: 50 };
    let params = Params { kt: 0.01, mu: 3.4, max_steps: 2000, early_stop: stop, ..small() };
    let run = simulate(&params, 1).unwrap();
    assert!(run.stopped_early);
    assert!((50..200).contains(&run.steps), "{}", run.steps);
    assert_eq!(run.steps % 10, 0);
    let off = simulate(&Params { early_stop: EarlyStop::Off, max_steps: 300, ..params }, 1).unwrap();
    assert_eq!((off.steps, off.stopped_early), (300, false));
}

#[test]
fn rabani_2003_runs_conserve_particles() {
    let params = Params { size: 48, max_steps: 5, mobility: 5, ..Params::rabani_2003() };
    let run = simulate(&params, 9).unwrap();
    assert_eq!(run.lattice.counts()[2], 9 * params.particle_count());
    assert_eq!(run.lattice.particle_corners().len(), params.particle_count());
}

fn tiny_set() -> TrainingSet {
    TrainingSet {
        ranges: ParamRanges { size: (24, 40), max_steps: (30, 80), base: Params::default(), ..ParamRanges::default() },
        image_size: 48,
        ..TrainingSet::default()
    }
}

#[test]
fn training_sets_are_the_same_for_any_thread_count_and_match_the_iterator() {
    let set = tiny_set();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let a = one.install(|| set.generate(12, false, 1000, 5, &NoProgress)).unwrap();
    let b = two.install(|| set.generate(12, false, 1000, 5, &NoProgress)).unwrap();
    assert_eq!(a.samples, b.samples);
    let iterated: Vec<_> = set.iter(5).take(12).collect::<Result<_, _>>().unwrap();
    assert_eq!(iterated, a.samples);
    for s in &a.samples {
        assert_eq!(s.image.dim(), (48, 48));
        assert!(s.image.iter().all(|&v| v <= 1));
        assert_ne!(s.category, Category::Unclassified);
    }
}

#[test]
fn balanced_sets_have_equal_classes_or_say_which_fell_short() {
    let set = tiny_set();
    let data = set.generate(10, true, 3000, 11, &NoProgress).unwrap();
    for class in &Category::ALL[..5] {
        assert_eq!(data.samples.iter().filter(|s| s.category == *class).count(), 2, "{class}");
    }
    let err = set.generate(10, true, 3, 11, &NoProgress).unwrap_err().to_string();
    assert!(err.contains("max_candidates") && err.contains("of 2"), "{err}");
}

#[test]
fn written_sets_read_back() {
    let set = tiny_set();
    let data = set.generate(4, false, 1000, 2, &NoProgress).unwrap();
    let dir = std::env::temp_dir().join(format!("nanoml-rabani-set-{}", std::process::id()));
    data.write(&dir).unwrap();
    let images: ndarray::Array3<u8> = nanoml_core::io::npy::read(dir.join("images.npy")).unwrap();
    let labels: ndarray::Array1<u8> = nanoml_core::io::npy::read(dir.join("labels.npy")).unwrap();
    assert_eq!(images, data.images());
    assert_eq!(labels.len(), 4);
    assert_eq!(usize::from(labels[0]), data.samples[0].category.class_index().unwrap());
    let csv = std::fs::read_to_string(dir.join("samples.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
    std::fs::remove_dir_all(&dir).unwrap();
}
