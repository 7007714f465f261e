//! The readers on real files from ../shared/data/spm (not copied into the repository:
//! their licences differ), checked against what the reference Python readers see in them
//! (`manifest.json` there: igor2 0.5.15 for the Igor waves).

use nanoml_spm::io::gwy::{GwyChannel, channels, parse_gwy, read_gwy, to_gwy_bytes, write_gwy};
use nanoml_spm::io::ibw::{WaveData, parse_ibw, read_ibw};
use nanoml_spm::io::raw::{parse_raw_f64, read_raw_f64};
use nanoml_spm::screening::preprocess_pyrabani;
use proptest::prelude::*;
use serde_json::Value;
use std::path::PathBuf;

fn data_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/spm"))
}

fn manifest() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(data_dir().join("manifest.json")).expect("../shared/data/spm/manifest.json");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_igor_wave_reads_as_igor2_reads_it() {
    let m = manifest();
    let mut checked = 0;
    for (file, expect) in m.iter().filter(|(f, _)| f.ends_with(".ibw")) {
        let wave = read_ibw(data_dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(u64::from(wave.version), expect["version"].as_u64().unwrap(), "{file}: version");
        let shape: Vec<usize> =
            expect["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(wave.shape, shape, "{file}: shape");
        let dtype = expect["dtype"].as_str().unwrap();
        // Numeric dtypes carry the byte order; text ones do not, but the samples' names do.
        if !dtype.starts_with('|') {
            assert_eq!(wave.big_endian, dtype.starts_with('>'), "{file}: byte order");
        } else if file.starts_with("mac-") || file.starts_with("win-") {
            assert_eq!(wave.big_endian, file.starts_with("mac-"), "{file}: byte order");
        }
        if let Some(values) = expect.get("values") {
            let want: Vec<&str> = values.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            let WaveData::Text(items) = &wave.data else { panic!("{file}: expected a text wave") };
            // Igor stores the first dimension fastest; igor2's array lists the last fastest.
            let order: Vec<usize> = if wave.shape.len() == 2 {
                let (r, c) = (wave.shape[0], wave.shape[1]);
                (0..r).flat_map(|i| (0..c).map(move |j| i + r * j)).collect()
            } else {
                (0..items.len()).collect()
            };
            let got: Vec<String> = order.iter().map(|&k| String::from_utf8_lossy(&items[k]).into_owned()).collect();
            assert_eq!(got, want, "{file}: text");
        } else {
            let single = dtype.ends_with("f4") || dtype == "float32";
            assert!(matches!(wave.data, WaveData::F32(_)) == single, "{file}: element type {dtype}");
            let sum: f64 = wave.data.to_f64().unwrap().iter().sum();
            assert_eq!(sum, expect["sum"].as_f64().unwrap(), "{file}: sum");
        }
        checked += 1;
    }
    assert_eq!(checked, 12);
}

#[test]
fn version5_metadata_is_read() {
    let wave = read_ibw(data_dir().join("win-version5.ibw")).unwrap();
    assert_eq!(wave.name, "version5");
    assert_eq!(wave.note, "This is a test.");
    assert_eq!(wave.data, WaveData::F32(vec![5.0, 4.0, 3.0, 2.0, 1.0]));
    // Slot 0 labels the dimension itself, then one slot per element.
    assert_eq!(wave.dim_labels[0].get(1).map(String::as_str), Some("Column0"));
    let mac = read_ibw(data_dir().join("mac-version5.ibw")).unwrap();
    assert_eq!((mac.data, mac.note, mac.name), (wave.data, wave.note, wave.name));
}

#[test]
fn stm_topographs_read_as_numpy_reads_them_and_go_through_the_chain() {
    let m = manifest();
    let mut checked = 0;
    for (file, expect) in m.iter().filter(|(f, _)| f.ends_with(".dat")) {
        let image = read_raw_f64(data_dir().join(file)).unwrap();
        let shape: Vec<usize> =
            expect["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(image.shape(), &shape[..], "{file}");
        let (lo, hi) = image.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
        // serde_json (without `float_roundtrip`) may parse the manifest's values one ulp off.
        let close = |a: f64, b: f64| (a - b).abs() <= 4.0 * f64::EPSILON * b.abs();
        assert!(
            close(lo, expect["min"].as_f64().unwrap()) && close(hi, expect["max"].as_f64().unwrap()),
            "{file}: {lo} {hi}"
        );
        let sum: f64 = image.iter().sum();
        let want = expect["sum"].as_f64().unwrap();
        assert!((sum - want).abs() <= 1e-12 * want.abs(), "{file}: sum {sum} vs {want}");
        // Real STM data through the screening chain: a verdict, never an error.
        let verdict = preprocess_pyrabani(&image).unwrap();
        if let Ok(p) = verdict {
            assert_eq!(p.binary.dim(), image.dim());
            assert!(p.thresholds[0] < p.thresholds[1]);
        }
        checked += 1;
    }
    assert_eq!(checked, 3);
    assert!(parse_raw_f64(&[2, 0, 0, 0, 2, 0, 0, 0, 1]).is_err());
    assert!(parse_raw_f64(&[0xff; 8]).is_err());
}

#[test]
fn the_gwyddion_file_reads_as_gwyfile_reads_it_and_round_trips() {
    let m = manifest();
    let expect = &m["gwyfile-test.gwy"]["channels"]["Test"];
    let path = data_dir().join("gwyfile-test.gwy");
    let chans = read_gwy(&path).unwrap();
    assert_eq!(chans.len(), 1);
    let ch = &chans[0];
    assert_eq!(ch.title, "Test");
    let shape: Vec<usize> = expect["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(ch.data.shape(), &shape[..]);
    assert_eq!(ch.real_size, (expect["xreal"].as_f64().unwrap(), expect["yreal"].as_f64().unwrap()));
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1e-300);
    let (lo, hi) = ch.data.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    assert!(close(ch.data.sum(), expect["sum"].as_f64().unwrap()), "sum {}", ch.data.sum());
    assert!(close(lo, expect["min"].as_f64().unwrap()), "min {lo}");
    assert!(close(hi, expect["max"].as_f64().unwrap()));
    let image = nanoml_spm::SpmImage::from_gwy(&chans);
    assert_eq!(image.channel("Test").unwrap().data, ch.data);
    // The whole object tree re-serialises to the very same bytes.
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(to_gwy_bytes(&parse_gwy(&bytes).unwrap()), bytes);
    // Written channels read back exactly.
    let mine = GwyChannel {
        id: 3,
        title: "levelled".into(),
        z_unit: "m".into(),
        xy_unit: "m".into(),
        real_size: (1e-6, 2e-6),
        data: ch.data.mapv(|v| v * 2.0 - 1e-4),
    };
    let out = std::env::temp_dir().join(format!("nanoml-spm-{}.gwy", std::process::id()));
    write_gwy(&out, &[ch.clone(), mine.clone()]).unwrap();
    let back = read_gwy(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    assert_eq!(back, vec![GwyChannel { xy_unit: ch.xy_unit.clone(), z_unit: ch.z_unit.clone(), ..ch.clone() }, mine]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn damaged_gwyddion_files_give_errors_never_panics(cut in 0usize..132_000, flip in 0usize..132_000, bit in 0u8..8) {
        let bytes = std::fs::read(data_dir().join("gwyfile-test.gwy")).unwrap();
        if cut < bytes.len() {
            prop_assert!(parse_gwy(&bytes[..cut]).is_err());
        }
        let mut damaged = bytes.clone();
        let at = flip % damaged.len();
        damaged[at] ^= 1 << bit;
        if let Ok(top) = parse_gwy(&damaged) {
            let _ = channels(&top);
        }
    }
}

fn ibw_bytes() -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(data_dir()).unwrap().filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.retain(|p| p.extension().is_some_and(|x| x == "ibw"));
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn damaged_files_give_errors_never_panics(file in 0usize..12, cut in 0usize..600, flip in 0usize..600, bit in 0u8..8) {
        let files = ibw_bytes();
        let bytes = &files[file % files.len()];
        // Truncated: an error unless nothing that matters was cut.
        let truncated = &bytes[..cut.min(bytes.len())];
        if cut < bytes.len() {
            let _ = parse_ibw(truncated);
        }
        // One bit flipped: must not panic; in the headers the checksum catches it.
        let mut damaged = bytes.clone();
        let at = flip % damaged.len();
        damaged[at] ^= 1 << bit;
        let result = parse_ibw(&damaged);
        let header = if damaged.len() > 64 && (damaged[0] == 5 || damaged[1] == 5) { 384 } else { 126 };
        if at >= 2 && at < header.min(damaged.len()) {
            prop_assert!(result.is_err(), "a flipped header bit at {} went unnoticed", at);
        }
    }
}
