//! PNG pictures: 8- and 16-bit greyscale read and write, RGB write for overlays and panels.
//!
//! Arrays are `[row, col]` with row 0 at the top of the picture. Reading converts palette
//! and low-bit-depth images to 8 bits, drops alpha, and turns colour into grey with the
//! luma weights of `skimage.color.rgb2gray` (0.2125 R + 0.7154 G + 0.0721 B), rounded.
//!
//! ```
//! use ndarray::Array2;
//! use nanoml_core::io::png::{self, GrayImage};
//! let img = Array2::from_shape_fn((4, 6), |(r, c)| (r * 40 + c) as u16 * 100);
//! let path = std::env::temp_dir().join("nanoml-doc-png.png");
//! png::write_gray16(&path, &img)?;
//! assert_eq!(png::read_gray(&path)?, GrayImage::U16(img));
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), nanoml_core::Error>(())
//! ```

use crate::{Error, Result};
use ndarray::{Array2, ArrayBase, ArrayView2, Data, Ix2, Ix3};
use std::io::{BufReader, BufWriter};
use std::path::Path;

/// A greyscale picture as read from a file, at its stored bit depth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrayImage {
    /// 8 bits per pixel (also palette, 1/2/4-bit and colour pictures after conversion).
    U8(Array2<u8>),
    /// 16 bits per pixel.
    U16(Array2<u16>),
}

impl GrayImage {
    /// The picture as `f32` in `[0, 1]` (value / 255 or value / 65535).
    pub fn to_unit_f32(&self) -> Array2<f32> {
        match self {
            GrayImage::U8(a) => a.mapv(|v| f32::from(v) / 255.0),
            GrayImage::U16(a) => a.mapv(|v| f32::from(v) / 65535.0),
        }
    }

    /// `(rows, cols)`.
    pub fn dim(&self) -> (usize, usize) {
        match self {
            GrayImage::U8(a) => a.dim(),
            GrayImage::U16(a) => a.dim(),
        }
    }
}

fn check_dims(op: &'static str, rows: usize, cols: usize) -> Result<(u32, u32)> {
    if rows == 0 || cols == 0 {
        return Err(Error::EmptyInput { op, name: "image" });
    }
    let w = u32::try_from(cols).map_err(|_| Error::invalid("cols", cols, "at most 2^31 - 1"))?;
    let h = u32::try_from(rows).map_err(|_| Error::invalid("rows", rows, "at most 2^31 - 1"))?;
    if w > i32::MAX as u32 || h > i32::MAX as u32 {
        return Err(Error::invalid("image size", format!("{rows}x{cols}"), "each side at most 2^31 - 1"));
    }
    Ok((w, h))
}

fn encode(path: &Path, w: u32, h: u32, color: png::ColorType, depth: png::BitDepth, data: &[u8]) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), w, h);
    encoder.set_color(color);
    encoder.set_depth(depth);
    let to_err = |e: png::EncodingError| match e {
        png::EncodingError::IoError(io) => Error::io(path, io),
        other => Error::Format { format: "PNG", path: Some(path.to_path_buf()), reason: other.to_string() },
    };
    let mut writer = encoder.write_header().map_err(to_err)?;
    writer.write_image_data(data).map_err(to_err)?;
    writer.finish().map_err(to_err)
}

/// Writes an 8-bit greyscale PNG.
///
/// # Errors
/// [`Error::EmptyInput`] for an image with no pixels, [`Error::Io`] when the file cannot
/// be written.
pub fn write_gray8<S: Data<Elem = u8>>(path: impl AsRef<Path>, image: &ArrayBase<S, Ix2>) -> Result<()> {
    let (w, h) = check_dims("write_gray8", image.nrows(), image.ncols())?;
    let data: Vec<u8> = image.iter().copied().collect();
    encode(path.as_ref(), w, h, png::ColorType::Grayscale, png::BitDepth::Eight, &data)
}

/// Writes a 16-bit greyscale PNG.
///
/// # Errors
/// As [`write_gray8`].
pub fn write_gray16<S: Data<Elem = u16>>(path: impl AsRef<Path>, image: &ArrayBase<S, Ix2>) -> Result<()> {
    let (w, h) = check_dims("write_gray16", image.nrows(), image.ncols())?;
    let data: Vec<u8> = image.iter().flat_map(|v| v.to_be_bytes()).collect();
    encode(path.as_ref(), w, h, png::ColorType::Grayscale, png::BitDepth::Sixteen, &data)
}

/// Writes an 8-bit RGB PNG from an array of shape `(rows, cols, 3)`.
///
/// # Errors
/// [`Error::InvalidParameter`] when the last axis is not 3; otherwise as [`write_gray8`].
pub fn write_rgb8<S: Data<Elem = u8>>(path: impl AsRef<Path>, image: &ArrayBase<S, Ix3>) -> Result<()> {
    let (rows, cols, ch) = image.dim();
    if ch != 3 {
        return Err(Error::invalid("image.shape[2]", ch, "3 (RGB)"));
    }
    let (w, h) = check_dims("write_rgb8", rows, cols)?;
    let data: Vec<u8> = image.iter().copied().collect();
    encode(path.as_ref(), w, h, png::ColorType::Rgb, png::BitDepth::Eight, &data)
}

/// Maps a float image linearly onto 0–255, `low` to 0 and `high` to 255, clamping outside
/// and sending NaN to 0. With `range = None` the image's own finite minimum and maximum are
/// used (a constant image becomes 0).
pub fn to_u8_scaled(image: ArrayView2<'_, f32>, range: Option<(f32, f32)>) -> Array2<u8> {
    let (low, high) = range.unwrap_or_else(|| {
        image
            .iter()
            .filter(|v| v.is_finite())
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
    });
    let span = high - low;
    image.mapv(|v| {
        if !v.is_finite() || span.is_nan() || span <= 0.0 {
            0
        } else {
            (((v - low) / span).clamp(0.0, 1.0) * 255.0).round() as u8
        }
    })
}

/// Reads a PNG as greyscale.
///
/// # Errors
/// [`Error::Io`] when the file cannot be opened, [`Error::Format`] when it is not a valid
/// PNG (with the decoder's reason).
pub fn read_gray(path: impl AsRef<Path>) -> Result<GrayImage> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let fmt =
        |e: png::DecodingError| Error::Format { format: "PNG", path: Some(path.to_path_buf()), reason: e.to_string() };
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(fmt)?;
    let size = reader.output_buffer_size().ok_or_else(|| Error::Format {
        format: "PNG",
        path: Some(path.to_path_buf()),
        reason: "image too large for memory".into(),
    })?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(fmt)?;
    buf.truncate(info.buffer_size());
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let sixteen = info.bit_depth == png::BitDepth::Sixteen;
    let bytes_per_sample = if sixteen { 2 } else { 1 };
    let sample = |px: usize, c: usize| -> u32 {
        let i = (px * channels + c) * bytes_per_sample;
        if sixteen { u32::from(u16::from_be_bytes([buf[i], buf[i + 1]])) } else { u32::from(buf[i]) }
    };
    let gray = |px: usize| -> u32 {
        match channels {
            1 | 2 => sample(px, 0),
            _ => {
                let (r, g, b) = (f64::from(sample(px, 0)), f64::from(sample(px, 1)), f64::from(sample(px, 2)));
                (0.2125 * r + 0.7154 * g + 0.0721 * b).round() as u32
            }
        }
    };
    if buf.len() < w * h * channels * bytes_per_sample {
        return Err(Error::Format {
            format: "PNG",
            path: Some(path.to_path_buf()),
            reason: "decoded buffer shorter than the image".into(),
        });
    }
    Ok(if sixteen {
        GrayImage::U16(Array2::from_shape_fn((h, w), |(r, c)| gray(r * w + c) as u16))
    } else {
        GrayImage::U8(Array2::from_shape_fn((h, w), |(r, c)| gray(r * w + c) as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn tmp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("nanoml-png-{}-{name}", std::process::id()))
    }

    #[test]
    fn gray8_and_gray16_roundtrip() {
        let a = Array2::from_shape_fn((7, 5), |(r, c)| (r * 31 + c * 7) as u8);
        let p = tmp("g8.png");
        write_gray8(&p, &a).unwrap();
        assert_eq!(read_gray(&p).unwrap(), GrayImage::U8(a));
        let b = Array2::from_shape_fn((3, 9), |(r, c)| (r * 20000 + c * 999) as u16);
        write_gray16(&p, &b).unwrap();
        assert_eq!(read_gray(&p).unwrap(), GrayImage::U16(b));
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn rgb_reads_back_as_luma() {
        let mut a = Array3::<u8>::zeros((2, 2, 3));
        a[[0, 0, 0]] = 255; // red
        a[[0, 1, 1]] = 255; // green
        a[[1, 0, 2]] = 255; // blue
        a.slice_mut(ndarray::s![1, 1, ..]).fill(200);
        let p = tmp("rgb.png");
        write_rgb8(&p, &a).unwrap();
        let GrayImage::U8(g) = read_gray(&p).unwrap() else { panic!("expected 8-bit") };
        assert_eq!(g, ndarray::array![[54, 182], [18, 200]]);
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(write_gray8(tmp("e.png"), &Array2::<u8>::zeros((0, 3))), Err(Error::EmptyInput { .. })));
        assert!(write_rgb8(tmp("e.png"), &Array3::<u8>::zeros((2, 2, 4))).is_err());
        let p = tmp("garbage.png");
        std::fs::write(&p, b"\x89PNG\r\n\x1a\nnot really").unwrap();
        assert!(matches!(read_gray(&p), Err(Error::Format { .. })));
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(read_gray(tmp("absent.png")), Err(Error::Io { .. })));
    }

    #[test]
    fn scaling_maps_range_and_handles_degenerate_input() {
        let a = ndarray::array![[0.0f32, 0.5], [1.0, f32::NAN]];
        assert_eq!(to_u8_scaled(a.view(), None), ndarray::array![[0, 128], [255, 0]]);
        assert_eq!(to_u8_scaled(Array2::from_elem((2, 2), 3.0f32).view(), None), Array2::<u8>::zeros((2, 2)));
        assert_eq!(to_u8_scaled(a.view(), Some((0.0, 0.5))), ndarray::array![[0, 255], [255, 0]]);
    }
}
