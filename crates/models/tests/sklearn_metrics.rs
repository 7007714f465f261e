//! Metrics against scikit-learn (fixtures from `tools/fixtures/models_metrics.py`).

use nanoml_models::metrics::{self, Average, ClassReport};
use ndarray::Array2;
use serde_json::Value;

fn fixture() -> Value {
    let text = include_str!("fixtures/sklearn_metrics.json");
    serde_json::from_str(text).expect("fixture parses")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().unwrap_or(f64::INFINITY)).collect()
}

fn labels(v: &Value) -> Vec<usize> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("label") as usize).collect()
}

fn close(name: &str, case: &str, got: f64, want: f64) {
    let ok = got == want || (got - want).abs() <= 1e-12;
    assert!(ok, "{case}: {name} = {got}, scikit-learn {want}");
}

fn close_all(name: &str, case: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{case}: {name} length {} against scikit-learn's {}", got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        close(name, case, *g, *w);
    }
}

#[test]
fn classification_metrics_equal_scikit_learn() {
    let doc = fixture();
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() >= 12);
    for c in cases {
        let name = c["name"].as_str().expect("name");
        let k = c["n_classes"].as_u64().expect("n_classes") as usize;
        let y_true = labels(&c["y_true"]);
        let y_pred = labels(&c["y_pred"]);
        let scores = Array2::from_shape_vec((y_true.len(), k), floats(&c["scores"])).expect("scores shape");
        if !name.starts_with("unpredicted") {
            assert_eq!(metrics::argmax_rows(scores.view()), y_pred, "{name}: argmax");
        }
        close("accuracy", name, metrics::accuracy(&y_true, &y_pred).unwrap(), c["accuracy"].as_f64().unwrap());
        close(
            "balanced accuracy",
            name,
            metrics::balanced_accuracy(&y_true, &y_pred, k).unwrap(),
            c["balanced_accuracy"].as_f64().unwrap(),
        );
        let confusion = metrics::confusion_matrix(&y_true, &y_pred, k).unwrap();
        assert_eq!(
            confusion.iter().map(|&v| v as usize).collect::<Vec<_>>(),
            labels(&c["confusion"]),
            "{name}: confusion"
        );
        let report = ClassReport::new(&y_true, &y_pred, k).unwrap();
        close_all("precision", name, &report.precision, &floats(&c["precision_per_class"]));
        close_all("recall", name, &report.recall, &floats(&c["recall_per_class"]));
        close_all("f1", name, &report.f1, &floats(&c["f1_per_class"]));
        assert_eq!(report.support, labels(&c["support"]));
        for (avg, key) in [(Average::Macro, "macro"), (Average::Weighted, "weighted")] {
            close("precision", name, report.precision(avg), floats(&c[format!("precision_{key}")])[0]);
            close("recall", name, report.recall(avg), floats(&c[format!("recall_{key}")])[0]);
            close("f1", name, report.f1(avg), floats(&c[format!("f1_{key}")])[0]);
            if let Some(want) = c.get(format!("auroc_{key}")) {
                close(
                    "AUROC",
                    name,
                    metrics::roc_auc_ovr(&y_true, scores.view(), avg).unwrap(),
                    want.as_f64().unwrap(),
                );
                let ap = metrics::average_precision_ovr(&y_true, scores.view(), avg).unwrap();
                close("average precision", name, ap, c[format!("ap_{key}")].as_f64().unwrap());
            }
        }
        for curve in c["curves"].as_array().expect("curves") {
            let class = curve["class"].as_u64().unwrap() as usize;
            let positive: Vec<bool> = y_true.iter().map(|&t| t == class).collect();
            let column = scores.column(class).to_vec();
            let roc = metrics::roc_curve(&positive, &column, true).unwrap();
            close_all("fpr", name, &roc.fpr, &floats(&curve["fpr"]));
            close_all("tpr", name, &roc.tpr, &floats(&curve["tpr"]));
            close_all("roc thresholds", name, &roc.thresholds, &floats(&curve["thresholds"]));
            let all = metrics::roc_curve(&positive, &column, false).unwrap();
            close_all("fpr (all)", name, &all.fpr, &floats(&curve["fpr_all"]));
            close_all("tpr (all)", name, &all.tpr, &floats(&curve["tpr_all"]));
            close_all("roc thresholds (all)", name, &all.thresholds, &floats(&curve["thresholds_all"]));
            close("auc", name, roc.auc(), curve["auc"].as_f64().unwrap());
            close("auc", name, metrics::roc_auc(&positive, &column).unwrap(), curve["auc"].as_f64().unwrap());
            let pr = metrics::precision_recall_curve(&positive, &column).unwrap();
            close_all("pr precision", name, &pr.precision, &floats(&curve["precision"]));
            close_all("pr recall", name, &pr.recall, &floats(&curve["recall"]));
            close_all("pr thresholds", name, &pr.thresholds, &floats(&curve["pr_thresholds"]));
            close(
                "average precision",
                name,
                metrics::average_precision(&positive, &column).unwrap(),
                curve["average_precision"].as_f64().unwrap(),
            );
        }
    }
}
