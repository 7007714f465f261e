//! Statistics for the Monte Carlo tests: chi-square p-values and two-sample permutation
//! tests (exact for ties, unlike asymptotic formulas).
#![allow(dead_code)]

use nanoml_core::Xoshiro256PlusPlus;

/// ln Γ(x) (Lanczos, g = 7; about 15 digits for x > 0).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularised upper incomplete gamma Q(a, x).
fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let lead = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        // Series for P.
        let (mut sum, mut term, mut n) = (1.0 / a, 1.0 / a, a);
        for _ in 0..10_000 {
            n += 1.0;
            term *= x / n;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        1.0 - sum * lead
    } else {
        // Continued fraction (modified Lentz).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        lead * h
    }
}

/// Upper tail probability of the chi-square distribution with `dof` degrees of freedom.
pub(crate) fn chi2_sf(chi2: f64, dof: f64) -> f64 {
    gamma_q(dof / 2.0, chi2 / 2.0)
}

/// Pearson chi-square goodness of fit of `observed` counts to `expected` probabilities,
/// after merging bins whose expected count is below 5 into one. Returns (chi2, dof, p).
pub(crate) fn chi2_goodness_of_fit(observed: &[u64], expected_p: &[f64]) -> (f64, usize, f64) {
    let n: u64 = observed.iter().sum();
    let (mut obs, mut exp) = (Vec::new(), Vec::new());
    let (mut rest_o, mut rest_e) = (0.0, 0.0);
    for (&o, &p) in observed.iter().zip(expected_p) {
        let e = p * n as f64;
        if e < 5.0 {
            rest_o += o as f64;
            rest_e += e;
        } else {
            obs.push(o as f64);
            exp.push(e);
        }
    }
    if rest_e > 0.0 {
        obs.push(rest_o);
        exp.push(rest_e);
    }
    let chi2: f64 = obs.iter().zip(&exp).map(|(o, e)| (o - e) * (o - e) / e).sum();
    let dof = obs.len() - 1;
    (chi2, dof, chi2_sf(chi2, dof as f64))
}

/// Two-sample Kolmogorov–Smirnov statistic (largest gap of the empirical CDFs).
pub(crate) fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let mut all: Vec<f64> = a.iter().chain(b).copied().collect();
    all.sort_by(f64::total_cmp);
    all.dedup();
    let cdf = |s: &[f64], v: f64| s.iter().filter(|&&x| x <= v).count() as f64 / s.len() as f64;
    all.iter().map(|&v| (cdf(a, v) - cdf(b, v)).abs()).fold(0.0, f64::max)
}

/// Permutation p-value of a two-sample statistic: the fraction of random relabellings
/// of the pooled samples (plus the observed one) whose statistic is at least the
/// observed.
pub(crate) fn permutation_p<T: Clone>(
    a: &[T],
    b: &[T],
    stat: impl Fn(&[T], &[T]) -> f64,
    rounds: usize,
    seed: u64,
) -> f64 {
    let observed = stat(a, b);
    let mut pooled: Vec<T> = a.iter().chain(b).cloned().collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut at_least = 1;
    for _ in 0..rounds {
        rng.shuffle(&mut pooled);
        let (x, y) = pooled.split_at(a.len());
        if stat(x, y) >= observed - 1e-12 {
            at_least += 1;
        }
    }
    at_least as f64 / (rounds + 1) as f64
}

/// Total-variation distance between the category frequencies of two samples.
pub(crate) fn tv_distance<T: PartialEq + Clone>(a: &[T], b: &[T]) -> f64 {
    let mut kinds: Vec<T> = Vec::new();
    for v in a.iter().chain(b) {
        if !kinds.contains(v) {
            kinds.push(v.clone());
        }
    }
    let freq = |s: &[T], k: &T| s.iter().filter(|&v| v == k).count() as f64 / s.len() as f64;
    0.5 * kinds.iter().map(|k| (freq(a, k) - freq(b, k)).abs()).sum::<f64>()
}

#[test]
fn chi2_sf_matches_known_quantiles() {
    // scipy.stats.chi2.sf(3.841458820694124, 1) = 0.05; chi2.sf(18.307038053275146, 10) = 0.05
    assert!((chi2_sf(3.841_458_820_694_124, 1.0) - 0.05).abs() < 1e-9);
    assert!((chi2_sf(18.307_038_053_275_146, 10.0) - 0.05).abs() < 1e-9);
    // scipy.stats.chi2.sf(100, 150) = 0.99942224547379; chi2.sf(250, 200) = 0.009379131668826098
    assert!((chi2_sf(100.0, 150.0) - 0.999_422_245_473_79).abs() < 1e-9);
    assert!((chi2_sf(250.0, 200.0) - 0.009_379_131_668_826_098).abs() < 1e-9);
}
