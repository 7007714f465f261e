//! The Nanonis reader on `.sxm` files built byte by byte to the layout
//! (`tools/fixtures/spm_sxm.py`), against what numpy and nanonispy 1.1.0 see in them.

use nanoml_spm::SpmImage;
use nanoml_spm::image::ScanDirection;
use nanoml_spm::io::sxm::{parse_sxm, read_sxm};
use proptest::prelude::*;
use serde_json::Value;

fn dir() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sxm")
}

fn fixture() -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{}/sxm.json", dir())).unwrap()).unwrap()
}

#[test]
fn frames_read_as_the_layout_says() {
    let fixture = fixture();
    let files = fixture["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for rec in files {
        let name = rec["file"].as_str().unwrap();
        let f = read_sxm(format!("{}/{name}", dir())).unwrap();
        let px = rec["pixels"].as_array().unwrap();
        assert_eq!(f.pixels, (px[0].as_u64().unwrap() as usize, px[1].as_u64().unwrap() as usize), "{name}");
        assert_eq!(u64::from(f.version), rec["version"].as_u64().unwrap());
        assert_eq!(f.scanned_up, rec["scan_dir"] == "up");
        assert_eq!((f.range, f.offset, f.angle), ((2e-8, 1.5e-8), (1e-9, -2e-9), 15.0));
        assert_eq!(f.tag("COMMENT"), Some("fixture written to the layout\nsecond comment line"));
        assert_eq!(f.tag("BIAS").map(str::trim), Some("5.000E-1"));
        let frames = rec["frames"].as_array().unwrap();
        assert_eq!(f.channels.len(), frames.len(), "{name}");
        for (c, want) in f.channels.iter().zip(frames) {
            assert_eq!(c.name, want["name"].as_str().unwrap());
            assert_eq!(c.unit, want["unit"].as_str().unwrap());
            let direction =
                if want["direction"] == "backward" { ScanDirection::Backward } else { ScanDirection::Forward };
            assert_eq!(c.direction, direction);
            assert_eq!(c.missing as u64, want["missing"].as_u64().unwrap());
            let rows = want["displayed"].as_array().unwrap();
            assert_eq!(c.data.nrows(), rows.len());
            for (r, row) in rows.iter().enumerate() {
                for (col, v) in row.as_array().unwrap().iter().enumerate() {
                    let got = c.data[[r, col]];
                    match v.as_f64() {
                        Some(v) => assert_eq!(got, v, "{name} {} ({r}, {col})", c.name),
                        None => assert!(got.is_nan()),
                    }
                }
            }
        }
        let image = SpmImage::from_sxm(&f);
        assert!(image.channel(&format!("{} (Forward)", f.channels[0].name)).is_ok());
        assert_eq!(image.channels[0].size, Some((2e-8, 1.5e-8)));
    }
}

#[test]
fn nanonispy_sees_the_same_frames() {
    let fixture = fixture();
    let rec = &fixture["files"][0];
    let py = &rec["nanonispy"];
    let f = read_sxm(format!("{}/both_up.sxm", dir())).unwrap();
    let names: Vec<&str> = py["channels"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let mut ours: Vec<&str> = f.channels.iter().map(|c| c.name.as_str()).collect();
    ours.dedup();
    assert_eq!(ours, names);
    assert_eq!(py["pixels"][0].as_u64().unwrap() as usize, f.pixels.0);
    assert_eq!(py["range"][0].as_f64().unwrap(), f.range.0);
    for c in &f.channels {
        let key = if c.direction == ScanDirection::Backward { "backward" } else { "forward" };
        // Orientation changes the order, not the values: the sums agree to rounding.
        let want = py["sums"][&c.name][key].as_f64().unwrap();
        let got: f64 = c.data.sum();
        assert!((got - want).abs() <= 1e-12 * c.data.iter().map(|v| v.abs()).sum::<f64>(), "{} {key}", c.name);
    }
    // nanonispy returns frames as stored: its first row is our bottom row (scanned up).
    let first: Vec<f64> = py["z_forward_first_row"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(f.channels[0].data.row(f.pixels.1 - 1).to_vec(), first);
}

fn sxm_bytes() -> Vec<Vec<u8>> {
    ["both_up.sxm", "forward_down_partial.sxm", "version1.sxm"]
        .iter()
        .map(|n| std::fs::read(format!("{}/{n}", dir())).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    /// Truncated files are errors; flipped bytes give an error or a file, never a panic.
    #[test]
    fn damaged_sxm_files_give_errors_never_panics(file in 0usize..3, cut in 0usize..2400, flip in 0usize..2400, bit in 0u8..8) {
        let all = sxm_bytes();
        let bytes = &all[file];
        let cut = cut % bytes.len();
        prop_assert!(parse_sxm(&bytes[..cut]).is_err());
        let mut damaged = bytes.clone();
        let at = flip % damaged.len();
        damaged[at] ^= 1 << bit;
        let _ = parse_sxm(&damaged);
    }
}

#[test]
fn open_recognises_every_format() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/spm");
    let sxm = SpmImage::open(format!("{}/both_up.sxm", dir())).unwrap();
    let names: Vec<&str> = sxm.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Z (Forward)", "Z (Backward)", "Current (Forward)", "Current (Backward)"]);
    if std::path::Path::new(data).exists() {
        for file in ["gwyfile-test.gwy", "image_with_defects.dat"] {
            assert!(!SpmImage::open(format!("{data}/{file}")).unwrap().channels.is_empty(), "{file}");
        }
        // The WaveMetrics samples are 1-D waves: read, then refused as images.
        let err = SpmImage::open(format!("{data}/win-version5.ibw")).unwrap_err();
        assert!(err.to_string().contains("2 or 3 dimensions"), "{err}");
    }
    let err = SpmImage::open(format!("{}/sxm.json", dir())).unwrap_err();
    assert!(err.to_string().contains("supported formats"), "{err}");
    let missing = SpmImage::open(format!("{}/nothing.sxm", dir())).unwrap_err();
    assert!(missing.to_string().contains("nothing.sxm"), "{missing}");
}
