//! Classification metrics, equal to scikit-learn's (1.x) on the same inputs.
//!
//! Labels are class indices `0..n_classes`; scores are one row per sample and one column
//! per class (probabilities for the one-vs-rest averages). Conventions follow
//! scikit-learn exactly, so that numbers can be compared with published ones:
//!
//! | here | scikit-learn |
//! |---|---|
//! | [`accuracy`] | `accuracy_score` |
//! | [`balanced_accuracy`] | `balanced_accuracy_score` (classes absent from the truth are left out) |
//! | [`confusion_matrix`] | `confusion_matrix(labels=range(n_classes))`, rows = truth |
//! | [`ClassReport`] | `precision_recall_fscore_support(labels=range(n), zero_division=0)` |
//! | [`roc_curve`] | `roc_curve` (first threshold `+∞`; `drop_intermediate`) |
//! | [`roc_auc`], [`roc_auc_ovr`] | `roc_auc_score` (binary; `multi_class="ovr"`) |
//! | [`precision_recall_curve`] | `precision_recall_curve` |
//! | [`average_precision`], [`average_precision_ovr`] | `average_precision_score` |
//!
//! Tied scores form one threshold, as in scikit-learn. Predicted classes from scores are
//! the first maximum of each row ([`argmax_rows`], numpy's `argmax`), so a three-way tie
//! goes to the lowest class index.

use ndarray::{Array2, ArrayView2};

use crate::{Error, Result};

/// How per-class values are combined into one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Average {
    /// Unweighted mean over classes.
    Macro,
    /// Mean weighted by each class's support (number of true samples).
    Weighted,
}

fn check_labels(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Result<()> {
    if y_true.is_empty() {
        return Err(Error::invalid("y_true", "[]", "at least one sample"));
    }
    if y_true.len() != y_pred.len() {
        return Err(Error::invalid(
            "y_pred",
            format!("{} labels", y_pred.len()),
            format!("{} labels, as y_true", y_true.len()),
        ));
    }
    check_range("y_true", y_true, n_classes)?;
    check_range("y_pred", y_pred, n_classes)
}

fn check_range(name: &'static str, labels: &[usize], n_classes: usize) -> Result<()> {
    if n_classes == 0 {
        return Err(Error::invalid("n_classes", 0, "at least 1"));
    }
    match labels.iter().find(|&&l| l >= n_classes) {
        Some(l) => {
            Err(Error::invalid(name, format!("a label {l}"), format!("class indices below n_classes = {n_classes}")))
        }
        None => Ok(()),
    }
}

/// The fraction of samples whose predicted class equals the true class.
pub fn accuracy(y_true: &[usize], y_pred: &[usize]) -> Result<f64> {
    let n_classes = y_true.iter().chain(y_pred).max().map_or(1, |m| m + 1);
    check_labels(y_true, y_pred, n_classes)?;
    let hits = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    Ok(hits as f64 / y_true.len() as f64)
}

/// The confusion matrix: entry `[t, p]` counts samples of true class `t` predicted as `p`.
pub fn confusion_matrix(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Result<Array2<u64>> {
    check_labels(y_true, y_pred, n_classes)?;
    let mut m = Array2::zeros((n_classes, n_classes));
    for (&t, &p) in y_true.iter().zip(y_pred) {
        m[[t, p]] += 1;
    }
    Ok(m)
}

/// The mean recall over the classes that occur in `y_true`.
pub fn balanced_accuracy(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Result<f64> {
    let m = confusion_matrix(y_true, y_pred, n_classes)?;
    let recalls: Vec<f64> = (0..n_classes)
        .filter_map(|c| {
            let support = m.row(c).sum();
            (support > 0).then(|| m[[c, c]] as f64 / support as f64)
        })
        .collect();
    Ok(recalls.iter().sum::<f64>() / recalls.len() as f64)
}

/// Per-class precision, recall, F1 and support; a ratio with a zero denominator is 0.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassReport {
    /// Precision of each class: true positives over predicted positives.
    pub precision: Vec<f64>,
    /// Recall of each class: true positives over true samples.
    pub recall: Vec<f64>,
    /// F1 of each class, `2 tp / (2 tp + fp + fn)`.
    pub f1: Vec<f64>,
    /// Number of true samples of each class.
    pub support: Vec<usize>,
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 { 0.0 } else { num as f64 / den as f64 }
}

impl ClassReport {
    /// Computes the report for classes `0..n_classes`.
    pub fn new(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Result<Self> {
        let m = confusion_matrix(y_true, y_pred, n_classes)?;
        let mut report = ClassReport { precision: vec![], recall: vec![], f1: vec![], support: vec![] };
        for c in 0..n_classes {
            let tp = m[[c, c]];
            let predicted = m.column(c).sum();
            let actual = m.row(c).sum();
            report.precision.push(ratio(tp, predicted));
            report.recall.push(ratio(tp, actual));
            report.f1.push(ratio(2 * tp, predicted + actual));
            report.support.push(actual as usize);
        }
        Ok(report)
    }

    fn average(&self, values: &[f64], average: Average) -> f64 {
        match average {
            Average::Macro => values.iter().sum::<f64>() / values.len() as f64,
            Average::Weighted => {
                let total: usize = self.support.iter().sum();
                if total == 0 {
                    return 0.0;
                }
                let weighted: f64 = values.iter().zip(&self.support).map(|(v, &s)| v * s as f64).sum();
                weighted / total as f64
            }
        }
    }

    /// Averaged precision.
    pub fn precision(&self, average: Average) -> f64 {
        self.average(&self.precision, average)
    }

    /// Averaged recall.
    pub fn recall(&self, average: Average) -> f64 {
        self.average(&self.recall, average)
    }

    /// Averaged F1 (the mean of per-class F1, not the F1 of averaged precision and recall).
    pub fn f1(&self, average: Average) -> f64 {
        self.average(&self.f1, average)
    }
}

/// The index of the first maximum of each row (numpy's `argmax(axis=1)`); NaN is never a maximum.
pub fn argmax_rows(scores: ArrayView2<'_, f64>) -> Vec<usize> {
    scores
        .rows()
        .into_iter()
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] || row[best].is_nan() && !v.is_nan() {
                    best = i;
                }
            }
            best
        })
        .collect()
}

/// Counts at each distinct score, from the highest down: `(false positives, true positives,
/// thresholds)`, cumulative (scikit-learn's `confusion_matrix_at_thresholds`).
fn counts_at_thresholds(
    positive: &[bool],
    scores: &[f64],
    what: &'static str,
) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    if scores.is_empty() {
        return Err(Error::invalid("scores", "[]", "at least one sample"));
    }
    if positive.len() != scores.len() {
        return Err(Error::invalid(
            "positive",
            format!("{} labels", positive.len()),
            format!("{} labels, one per score", scores.len()),
        ));
    }
    if let Some(s) = scores.iter().find(|s| !s.is_finite()) {
        return Err(Error::invalid("scores", s, "finite values"));
    }
    let n_pos = positive.iter().filter(|&&p| p).count();
    if n_pos == 0 || n_pos == positive.len() {
        let missing = if n_pos == 0 { "positive" } else { "negative" };
        return Err(Error::undefined(what, format!("no {missing} samples")));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut fps, mut tps, mut thresholds) = (vec![], vec![], vec![]);
    let mut tp = 0u64;
    for (rank, &i) in order.iter().enumerate() {
        tp += positive[i] as u64;
        let last_of_tie = order.get(rank + 1).is_none_or(|&next| scores[next] != scores[i]);
        if last_of_tie {
            tps.push(tp as f64);
            fps.push((rank as u64 + 1 - tp) as f64);
            thresholds.push(scores[i]);
        }
    }
    Ok((fps, tps, thresholds))
}

/// A receiver operating characteristic: false- and true-positive rates at decreasing thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct RocCurve {
    /// False-positive rate at each threshold, from 0 up to 1.
    pub fpr: Vec<f64>,
    /// True-positive rate at each threshold, from 0 up to 1.
    pub tpr: Vec<f64>,
    /// Decreasing thresholds (a sample is positive when its score is ≥ the threshold); the
    /// first is `+∞`, so the curve starts at (0, 0).
    pub thresholds: Vec<f64>,
}

impl RocCurve {
    /// The area under the curve, by the trapezoidal rule.
    pub fn auc(&self) -> f64 {
        trapezoid(&self.fpr, &self.tpr)
    }
}

fn trapezoid(x: &[f64], y: &[f64]) -> f64 {
    x.windows(2).zip(y.windows(2)).map(|(x, y)| (x[1] - x[0]) * (y[1] + y[0]) / 2.0).sum()
}

/// The ROC curve of a binary problem. With `drop_intermediate` (scikit-learn's default),
/// points collinear with their neighbours are left out; the area is the same.
///
/// Errors when `positive` holds only one class, or scores are not finite.
pub fn roc_curve(positive: &[bool], scores: &[f64], drop_intermediate: bool) -> Result<RocCurve> {
    let (mut fps, mut tps, mut thresholds) = counts_at_thresholds(positive, scores, "ROC curve")?;
    if drop_intermediate && fps.len() > 2 {
        let n = fps.len();
        let corner = |v: &[f64], i: usize| v[i + 1] - 2.0 * v[i] + v[i - 1] != 0.0;
        let keep: Vec<usize> = (0..n).filter(|&i| i == 0 || i == n - 1 || corner(&fps, i) || corner(&tps, i)).collect();
        fps = keep.iter().map(|&i| fps[i]).collect();
        tps = keep.iter().map(|&i| tps[i]).collect();
        thresholds = keep.iter().map(|&i| thresholds[i]).collect();
    }
    let (fn_, tn) = (*tps.last().unwrap_or(&1.0), *fps.last().unwrap_or(&1.0));
    let fpr = std::iter::once(0.0).chain(fps.iter().map(|f| f / tn)).collect();
    let tpr = std::iter::once(0.0).chain(tps.iter().map(|t| t / fn_)).collect();
    thresholds.insert(0, f64::INFINITY);
    Ok(RocCurve { fpr, tpr, thresholds })
}

/// The area under the ROC curve of a binary problem.
pub fn roc_auc(positive: &[bool], scores: &[f64]) -> Result<f64> {
    Ok(roc_curve(positive, scores, false)?.auc())
}

/// A precision-recall curve at decreasing recall.
#[derive(Clone, Debug, PartialEq)]
pub struct PrCurve {
    /// Precision at each threshold, ending with 1.
    pub precision: Vec<f64>,
    /// Recall at each threshold, decreasing, ending with 0.
    pub recall: Vec<f64>,
    /// Increasing thresholds, one fewer than points.
    pub thresholds: Vec<f64>,
}

/// The precision-recall curve of a binary problem (scikit-learn's, with all thresholds).
pub fn precision_recall_curve(positive: &[bool], scores: &[f64]) -> Result<PrCurve> {
    let (fps, tps, thresholds) = counts_at_thresholds(positive, scores, "precision-recall curve")?;
    let total = *tps.last().unwrap_or(&1.0);
    let precision =
        tps.iter().zip(&fps).rev().map(|(&t, &f)| if t + f == 0.0 { 0.0 } else { t / (t + f) }).chain([1.0]).collect();
    let recall = tps.iter().rev().map(|t| t / total).chain([0.0]).collect();
    Ok(PrCurve { precision, recall, thresholds: thresholds.into_iter().rev().collect() })
}

/// Average precision: the step-function area under the precision-recall curve,
/// `Σ (Rₙ − Rₙ₋₁) Pₙ`, without interpolation.
pub fn average_precision(positive: &[bool], scores: &[f64]) -> Result<f64> {
    let pr = precision_recall_curve(positive, scores)?;
    let sum: f64 = pr.recall.windows(2).zip(&pr.precision).map(|(r, p)| (r[1] - r[0]) * p).sum();
    Ok((-sum).max(0.0))
}

/// Applies a binary metric to each class against the rest and averages.
fn one_vs_rest(
    y_true: &[usize],
    scores: ArrayView2<'_, f64>,
    average: Average,
    metric: impl Fn(&[bool], &[f64]) -> Result<f64>,
) -> Result<f64> {
    let n_classes = scores.ncols();
    if scores.nrows() != y_true.len() {
        return Err(Error::invalid(
            "scores",
            format!("{} rows", scores.nrows()),
            format!("{} rows, one per label", y_true.len()),
        ));
    }
    check_range("y_true", y_true, n_classes)?;
    let mut values = Vec::with_capacity(n_classes);
    let mut supports = Vec::with_capacity(n_classes);
    for c in 0..n_classes {
        let positive: Vec<bool> = y_true.iter().map(|&t| t == c).collect();
        let column: Vec<f64> = scores.column(c).to_vec();
        values.push(metric(&positive, &column)?);
        supports.push(positive.iter().filter(|&&p| p).count() as f64);
    }
    Ok(match average {
        Average::Macro => values.iter().sum::<f64>() / n_classes as f64,
        Average::Weighted => {
            values.iter().zip(&supports).map(|(v, s)| v * s).sum::<f64>() / supports.iter().sum::<f64>()
        }
    })
}

/// Area under the ROC curve of a multi-class problem, one class against the rest, averaged.
///
/// As in scikit-learn: every class must occur in `y_true`, and with more than two classes
/// each row of `scores` must be a probability distribution (sum 1 within 1e-5). With two
/// classes, this is the binary AUC of column 1.
pub fn roc_auc_ovr(y_true: &[usize], scores: ArrayView2<'_, f64>, average: Average) -> Result<f64> {
    if scores.ncols() == 2 {
        let positive: Vec<bool> = y_true.iter().map(|&t| t == 1).collect();
        check_range("y_true", y_true, 2)?;
        return roc_auc(&positive, &scores.column(1).to_vec());
    }
    if let Some((i, row)) = scores.rows().into_iter().enumerate().find(|(_, r)| (r.sum() - 1.0).abs() > 1e-8 + 1e-5) {
        return Err(Error::invalid(
            "scores",
            format!("row {i} summing to {}", row.sum()),
            "probabilities summing to 1 in each row",
        ));
    }
    one_vs_rest(y_true, scores, average, roc_auc)
}

/// Average precision of a multi-class problem, one class against the rest, averaged. Every
/// class must occur in `y_true`; with two classes, this is the binary value of column 1.
pub fn average_precision_ovr(y_true: &[usize], scores: ArrayView2<'_, f64>, average: Average) -> Result<f64> {
    if scores.ncols() == 2 {
        check_range("y_true", y_true, 2)?;
        let positive: Vec<bool> = y_true.iter().map(|&t| t == 1).collect();
        return average_precision(&positive, &scores.column(1).to_vec());
    }
    one_vs_rest(y_true, scores, average, average_precision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn argmax_takes_the_first_of_tied_maxima() {
        let s = array![[0.3, 0.3, 0.3, 0.1], [0.1, 0.4, 0.1, 0.4], [f64::NAN, 0.2, 0.1, 0.0]];
        assert_eq!(argmax_rows(s.view()), vec![0, 1, 1]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(accuracy(&[], &[]).is_err());
        assert!(accuracy(&[0, 1], &[0]).is_err());
        assert!(confusion_matrix(&[0, 3], &[0, 1], 3).is_err());
        assert!(roc_curve(&[true, true], &[0.1, 0.2], true).is_err());
        assert!(roc_curve(&[true, false], &[0.1, f64::NAN], true).is_err());
        let not_probabilities = array![[0.5, 0.6, 0.1], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8]];
        assert!(roc_auc_ovr(&[0, 1, 2], not_probabilities.view(), Average::Macro).is_err());
    }

    #[test]
    fn a_perfect_ranking_has_unit_auc_and_precision() {
        let positive = [false, false, true, true];
        let scores = [0.1, 0.2, 0.8, 0.9];
        assert_eq!(roc_auc(&positive, &scores).unwrap(), 1.0);
        assert_eq!(average_precision(&positive, &scores).unwrap(), 1.0);
    }
}
