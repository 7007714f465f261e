//! Nanonis scan files (`.sxm`): an ASCII header of `:TAG:` lines, each followed by its
//! value lines, ended by `:SCANIT_END:`; then the bytes `0x1A 0x04` and the frames as
//! big-endian `f32`.
//!
//! Layout (Nanonis documentation, as Gwyddion's and nanonispy's readers use it): for
//! each channel of the `DATA_INFO` table, in order, the forward frame and then, if its
//! direction is `both`, the backward frame; a frame is `SCAN_PIXELS` = `nx ny` (swapped
//! in files of `NANONIS_VERSION` 1) lines of `nx` values. Scans stopped early are padded
//! with NaN.
//!
//! Orientation, as Gwyddion displays these files: a backward frame is recorded right to
//! left, so it is mirrored to run left to right like the forward one; and with
//! `SCAN_DIR` `up` the first line stored is the bottom of the image, so the frame is
//! flipped to put row 0 at the top. The values are in the channel's unit (`m` for `Z`,
//! `A` for `Current`, …); sizes in metres. Unrecorded pixels stay NaN (counted in
//! [`SxmChannel::missing`]), never dropped or filled.

use crate::image::ScanDirection;
use crate::{Error, Result};
use ndarray::Array2;
use std::path::Path;

const FORMAT: &str = "Nanonis SXM";

/// One frame of a Nanonis scan.
#[derive(Clone, Debug, PartialEq)]
pub struct SxmChannel {
    /// Channel name from `DATA_INFO` (`"Z"`, `"Current"`, …).
    pub name: String,
    /// Unit from `DATA_INFO`.
    pub unit: String,
    /// Forward or backward frame.
    pub direction: ScanDirection,
    /// Values, row 0 at the top, left to right.
    pub data: Array2<f64>,
    /// Pixels not recorded (NaN in the file and in `data`).
    pub missing: usize,
}

/// A parsed `.sxm` file.
#[derive(Clone, Debug, PartialEq)]
pub struct SxmFile {
    /// Every header tag with its value lines joined by `\n` (trimmed), in file order.
    pub header: Vec<(String, String)>,
    /// `NANONIS_VERSION` (1 when absent).
    pub version: u32,
    /// Columns and rows of every frame.
    pub pixels: (usize, usize),
    /// Scan width and height in metres (`SCAN_RANGE`).
    pub range: (f64, f64),
    /// Scan-frame centre in metres (`SCAN_OFFSET`, zero when absent).
    pub offset: (f64, f64),
    /// Scan-frame rotation in degrees (`SCAN_ANGLE`, zero when absent).
    pub angle: f64,
    /// `SCAN_DIR` was `up` (the frames were stored bottom line first).
    pub scanned_up: bool,
    /// The frames, in file order.
    pub channels: Vec<SxmChannel>,
}

impl SxmFile {
    /// The value lines of a header tag.
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.header.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Reads a `.sxm` file.
///
/// # Errors
/// I/O errors and everything [`parse_sxm`] rejects, with the path.
pub fn read_sxm(path: impl AsRef<Path>) -> Result<SxmFile> {
    super::read_file(path.as_ref(), parse_sxm)
}

fn corrupt(reason: impl Into<String>) -> Error {
    Error::corrupt(FORMAT, reason)
}

/// Parses `.sxm` bytes.
///
/// # Errors
/// [`Error::Corrupt`] naming what is wrong: no `:NANONIS_VERSION:` magic, no
/// `:SCANIT_END:` or data marker, a missing or malformed `SCAN_PIXELS`, `SCAN_RANGE` or
/// `DATA_INFO`, an unsupported `SCANIT_TYPE`, or fewer data bytes than the frames need
/// (with the offsets).
pub fn parse_sxm(bytes: &[u8]) -> Result<SxmFile> {
    const MAGIC: &[u8] = b":NANONIS_VERSION:";
    if !bytes.starts_with(MAGIC) {
        return Err(corrupt("the file does not start with `:NANONIS_VERSION:`"));
    }
    let end = find(bytes, b":SCANIT_END:").ok_or_else(|| corrupt("no `:SCANIT_END:` ends the header"))?;
    let marker = find(&bytes[end..], b"\x1a\x04")
        .map(|m| end + m)
        .ok_or_else(|| corrupt(format!("no data marker 0x1A 0x04 after `:SCANIT_END:` at byte {end}")))?;
    let text = String::from_utf8_lossy(&bytes[..end]);
    let header = parse_header(&text);
    let get = |name: &str| header.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let version = get("NANONIS_VERSION").and_then(|v| v.trim().parse().ok()).unwrap_or(1);

    let numbers = |name: &'static str| -> Result<Vec<f64>> {
        let v = get(name).ok_or_else(|| corrupt(format!("no `{name}` in the header")))?;
        v.split_whitespace()
            .map(|t| t.parse::<f64>().map_err(|_| corrupt(format!("`{name}` = {v:?} is not a list of numbers"))))
            .collect()
    };
    let pixels = numbers("SCAN_PIXELS")?;
    let (mut nx, mut ny) = match pixels[..] {
        [a, b] if a >= 1.0 && b >= 1.0 && a.fract() == 0.0 && b.fract() == 0.0 && a * b <= 1e9 => {
            (a as usize, b as usize)
        }
        _ => return Err(corrupt(format!("`SCAN_PIXELS` = {pixels:?} is not two positive whole numbers"))),
    };
    if version < 2 {
        // Version-1 files list the pixels as `ny nx`.
        std::mem::swap(&mut nx, &mut ny);
    }
    let range = match numbers("SCAN_RANGE")?[..] {
        [w, h] => (w.abs(), h.abs()),
        ref other => return Err(corrupt(format!("`SCAN_RANGE` = {other:?} is not two numbers"))),
    };
    let offset = match get("SCAN_OFFSET").map(|_| numbers("SCAN_OFFSET")).transpose()?.as_deref() {
        Some([x, y]) => (*x, *y),
        _ => (0.0, 0.0),
    };
    let angle = get("SCAN_ANGLE").and_then(|v| v.trim().parse().ok()).unwrap_or(0.0);
    let scanned_up = get("SCAN_DIR").is_some_and(|d| d.trim().eq_ignore_ascii_case("up"));
    if let Some(t) = get("SCANIT_TYPE") {
        let words: Vec<&str> = t.split_whitespace().collect();
        // Whatever the byte-order word says, the data are big-endian (as Gwyddion notes).
        if !matches!(words[..], ["FLOAT", "MSBFIRST" | "LSBFIRST"]) {
            return Err(corrupt(format!("`SCANIT_TYPE` = {t:?}: only FLOAT data are supported")));
        }
    }
    // Slices generated from 3-D data say `both` but hold one direction; Gwyddion
    // recognises them by their bogus times.
    let one_direction_only = get("ACQ_TIME").is_some_and(|v| v.trim() == "N/A")
        || get("SCAN_TIME").is_some_and(|v| v.trim_start().starts_with("NaN"));

    let info = get("DATA_INFO").ok_or_else(|| corrupt("no `DATA_INFO` table in the header"))?;
    let mut frames = Vec::new();
    let mut lines = info.lines().map(str::trim).filter(|l| !l.is_empty());
    let columns: Vec<&str> = lines.next().map(|l| l.split('\t').map(str::trim).collect()).unwrap_or_default();
    let col = |name: &str| columns.iter().position(|c| c.eq_ignore_ascii_case(name));
    let (Some(name_col), Some(unit_col), Some(dir_col)) = (col("Name"), col("Unit"), col("Direction")) else {
        return Err(corrupt(format!("the `DATA_INFO` columns {columns:?} lack Name, Unit or Direction")));
    };
    for line in lines {
        let cells: Vec<&str> = line.split('\t').map(str::trim).collect();
        let cell = |i: usize| {
            cells.get(i).copied().ok_or_else(|| corrupt(format!("`DATA_INFO` row {line:?} has too few columns")))
        };
        let (name, unit) = (cell(name_col)?.to_string(), cell(unit_col)?.to_string());
        let dirs: &[ScanDirection] = match cell(dir_col)? {
            "both" if one_direction_only => &[ScanDirection::Forward],
            "both" => &[ScanDirection::Forward, ScanDirection::Backward],
            "forward" => &[ScanDirection::Forward],
            "backward" => &[ScanDirection::Backward],
            other => return Err(corrupt(format!("channel {name:?} has the unknown direction {other:?}"))),
        };
        frames.extend(dirs.iter().map(|&d| (name.clone(), unit.clone(), d)));
    }
    if frames.is_empty() {
        return Err(corrupt("the `DATA_INFO` table lists no channels"));
    }

    let data = &bytes[marker + 2..];
    let frame_bytes = nx * ny * 4;
    let needed = frame_bytes.saturating_mul(frames.len());
    if data.len() < needed {
        return Err(corrupt(format!(
            "{} frames of {nx}×{ny} need {needed} bytes after the data marker at byte {marker}, the file has {}",
            frames.len(),
            data.len()
        )));
    }
    let channels = frames
        .into_iter()
        .zip(data.chunks_exact(frame_bytes))
        .map(|((name, unit, direction), raw)| {
            let values: Vec<f64> =
                raw.chunks_exact(4).map(|b| f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]]))).collect();
            let missing = values.iter().filter(|v| v.is_nan()).count();
            let data = Array2::from_shape_fn((ny, nx), |(r, c)| {
                let row = if scanned_up { ny - 1 - r } else { r };
                let col = if direction == ScanDirection::Backward { nx - 1 - c } else { c };
                values[row * nx + col]
            });
            SxmChannel { name, unit, direction, data, missing }
        })
        .collect();
    Ok(SxmFile { header, version, pixels: (nx, ny), range, offset, angle, scanned_up, channels })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `:TAG:` lines and the value lines under each (blank lines dropped, trimmed).
fn parse_header(text: &str) -> Vec<(String, String)> {
    let mut header: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let t = line.trim_end_matches('\r');
        if t.len() > 2 && t.starts_with(':') && t.ends_with(':') && !t.contains('\t') {
            header.push((t[1..t.len() - 1].to_string(), String::new()));
        } else if let Some((_, value)) = header.last_mut() {
            if t.trim().is_empty() {
                continue;
            }
            if !value.is_empty() {
                value.push('\n');
            }
            // Keep the tabs that separate table cells; trim the rest.
            value.push_str(t.trim_matches(|c: char| c == ' ' || c == '\r'));
        }
    }
    header
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `.sxm` file built to the layout: `frames` are (name, unit, direction word) with
    /// data already in file order.
    pub(crate) fn build(
        version: u32,
        nx: usize,
        ny: usize,
        dir: &str,
        channels: &[(&str, &str, &str)],
        data: &[f32],
    ) -> Vec<u8> {
        let mut h = format!(":NANONIS_VERSION:\n{version}\n:SCANIT_TYPE:\n              FLOAT            MSBFIRST\n");
        let (a, b) = if version < 2 { (ny, nx) } else { (nx, ny) };
        h += &format!(
            ":SCAN_PIXELS:\n       {a}       {b}\n:SCAN_RANGE:\n           2.000000E-8           1.000000E-8\n"
        );
        h += &format!(
            ":SCAN_OFFSET:\n             1.000000E-9         -2.000000E-9\n:SCAN_ANGLE:\n            3.000E+1\n:SCAN_DIR:\n{dir}\n"
        );
        h += ":DATA_INFO:\n\tChannel\tName\tUnit\tDirection\tCalibration\tOffset\n";
        for (i, (n, u, d)) in channels.iter().enumerate() {
            h += &format!("\t{i}\t{n}\t{u}\t{d}\t1.000E+0\t0.000E+0\n");
        }
        h += "\n:SCANIT_END:\n\n\n";
        let mut bytes = h.into_bytes();
        bytes.extend_from_slice(b"\x1a\x04");
        for v in data {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        bytes
    }

    #[test]
    fn orientation_follows_scan_and_frame_direction() {
        let (nx, ny) = (3, 2);
        // Forward then backward frame of Z, as stored.
        let data: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let f = parse_sxm(&build(2, nx, ny, "up", &[("Z", "m", "both")], &data)).unwrap();
        assert_eq!(
            (f.pixels, f.range, f.offset, f.angle, f.scanned_up),
            ((3, 2), (2e-8, 1e-8), (1e-9, -2e-9), 30.0, true)
        );
        assert_eq!(f.channels.len(), 2);
        // Up: stored line 0 is the bottom row.
        assert_eq!(f.channels[0].data, ndarray::array![[3.0, 4.0, 5.0], [0.0, 1.0, 2.0]]);
        // Backward: also mirrored left–right.
        assert_eq!(f.channels[1].data, ndarray::array![[11.0, 10.0, 9.0], [8.0, 7.0, 6.0]]);
        let down = parse_sxm(&build(1, nx, ny, "down", &[("Z", "m", "forward")], &data[..6])).unwrap();
        assert_eq!(down.pixels, (3, 2));
        assert_eq!(down.channels[0].data, ndarray::array![[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]);
    }

    #[test]
    fn damage_gives_errors() {
        let data: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let good = build(2, 3, 2, "up", &[("Z", "m", "both")], &data);
        assert!(parse_sxm(&good[..good.len() - 1]).is_err());
        assert!(parse_sxm(&good[1..]).is_err());
        let text = String::from_utf8_lossy(&good).replace("SCAN_PIXELS", "SCAN_PIXELX");
        assert!(parse_sxm(text.as_bytes()).is_err());
    }
}
