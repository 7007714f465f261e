//! A minimal raw height-map layout used by SPIEPy's demo topographs: two little-endian
//! `u32` (rows, columns), then `rows × columns` little-endian `f64` values row by row.

use crate::{Error, Result};
use ndarray::Array2;
use std::path::Path;

/// Parses the layout from bytes.
///
/// # Errors
/// [`Error::Corrupt`] when the header is missing, the sizes overflow, or the byte count
/// does not match the sizes.
pub fn parse_raw_f64(bytes: &[u8]) -> Result<Array2<f64>> {
    let header = bytes
        .get(..8)
        .ok_or_else(|| Error::corrupt("raw f64", format!("{} bytes hold no 8-byte header", bytes.len())))?;
    let rows = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let cols = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let expected = rows.checked_mul(cols).and_then(|n| n.checked_mul(8)).and_then(|n| n.checked_add(8));
    if expected != Some(bytes.len()) {
        return Err(Error::corrupt(
            "raw f64",
            format!(
                "a {rows}×{cols} image needs {} bytes, the data has {}",
                expected.map_or("too many".into(), |e| e.to_string()),
                bytes.len()
            ),
        ));
    }
    let values: Vec<f64> =
        bytes[8..].chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
    Array2::from_shape_vec((rows, cols), values).map_err(|e| Error::corrupt("raw f64", e.to_string()))
}

/// Reads a file in the layout.
///
/// # Errors
/// I/O errors and everything [`parse_raw_f64`] rejects, with the path.
pub fn read_raw_f64(path: impl AsRef<Path>) -> Result<Array2<f64>> {
    super::read_file(path.as_ref(), parse_raw_f64)
}
