//! NPY files (NumPy's `.npy` format, versions 1.0–3.0), read and written without NumPy.
//!
//! Reading accepts little-, big- and no-endian descriptors and C or Fortran order; writing
//! produces version 1.0 (2.0 when the header needs it), little-endian, C order — exactly
//! what `numpy.save` writes, so `numpy.load` reads it back unchanged.
//!
//! ```
//! use ndarray::array;
//! use nanoml_core::io::npy;
//! let a = array![[1.0f32, 2.0], [3.0, 4.0]];
//! let bytes = npy::to_bytes(&a);
//! let b: ndarray::Array2<f32> = npy::from_bytes(&bytes)?;
//! assert_eq!(a, b);
//! # Ok::<(), nanoml_core::Error>(())
//! ```

use crate::{Error, Result};
use ndarray::{Array, ArrayBase, ArrayD, Data, Dimension, IxDyn, ShapeBuilder};
use std::io::{Read, Write};
use std::path::Path;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// An element type that NPY can store. Implemented for `bool`, the fixed-width integers and
/// `f32`/`f64`.
pub trait NpyElement: Copy + sealed::Sealed {
    /// NumPy kind character: `b`, `i`, `u` or `f`.
    const KIND: char;
    /// Size in bytes.
    const SIZE: usize;
    /// Decodes one element from `bytes` (exactly `SIZE` long).
    fn decode(bytes: &[u8], big_endian: bool) -> Result<Self>;
    /// Appends the little-endian encoding of `self`.
    fn encode_le(self, out: &mut Vec<u8>);
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! npy_number {
    ($($t:ty => $kind:literal),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl NpyElement for $t {
            const KIND: char = $kind;
            const SIZE: usize = std::mem::size_of::<$t>();
            #[inline]
            fn decode(bytes: &[u8], big_endian: bool) -> Result<Self> {
                let mut raw = [0u8; std::mem::size_of::<$t>()];
                raw.copy_from_slice(bytes);
                Ok(if big_endian { <$t>::from_be_bytes(raw) } else { <$t>::from_le_bytes(raw) })
            }
            #[inline]
            fn encode_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
npy_number!(u8 => 'u', u16 => 'u', u32 => 'u', u64 => 'u', i8 => 'i', i16 => 'i', i32 => 'i', i64 => 'i', f32 => 'f', f64 => 'f');

impl sealed::Sealed for bool {}
impl NpyElement for bool {
    const KIND: char = 'b';
    const SIZE: usize = 1;
    fn decode(bytes: &[u8], _big_endian: bool) -> Result<Self> {
        match bytes[0] {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(Error::format("NPY", format!("boolean element has byte value {v}, expected 0 or 1"))),
        }
    }
    fn encode_le(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
}

fn descr<T: NpyElement>() -> String {
    let order = if T::SIZE == 1 { '|' } else { '<' };
    format!("{order}{}{}", T::KIND, T::SIZE)
}

/// The parsed NPY header.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

fn parse_header(text: &str) -> Result<Header> {
    let bad = |what: &str| Error::format("NPY", format!("{what} in header {text:?}"));
    let value_after = |key: &str| -> Result<&str> {
        let k = text.find(&format!("'{key}'")).ok_or_else(|| bad(&format!("no key '{key}'")))?;
        let rest = &text[k + key.len() + 2..];
        let colon = rest.find(':').ok_or_else(|| bad(&format!("no ':' after '{key}'")))?;
        Ok(rest[colon + 1..].trim_start())
    };
    let d = value_after("descr")?;
    let quote = d
        .chars()
        .next()
        .filter(|c| *c == '\'' || *c == '"')
        .ok_or_else(|| bad("descr is not a string (structured dtypes are not supported)"))?;
    let end = d[1..].find(quote).ok_or_else(|| bad("unterminated descr"))?;
    let descr = d[1..1 + end].to_string();
    let f = value_after("fortran_order")?;
    let fortran_order = if f.starts_with("True") {
        true
    } else if f.starts_with("False") {
        false
    } else {
        return Err(bad("fortran_order is neither True nor False"));
    };
    let s = value_after("shape")?;
    let s = s.strip_prefix('(').ok_or_else(|| bad("shape is not a tuple"))?;
    let close = s.find(')').ok_or_else(|| bad("unterminated shape"))?;
    let shape = s[..close]
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.trim_end_matches('L').parse::<usize>().map_err(|_| bad(&format!("shape entry {p:?} is not a size"))))
        .collect::<Result<Vec<_>>>()?;
    Ok(Header { descr, fortran_order, shape })
}

/// Reads an array of any dimensionality from NPY bytes.
pub fn read_dyn<T: NpyElement, R: Read>(mut reader: R) -> Result<ArrayD<T>> {
    let mut magic = [0u8; 8];
    reader.read_exact(&mut magic).map_err(|_| Error::format("NPY", "file shorter than the 8-byte preamble"))?;
    if &magic[..6] != MAGIC {
        return Err(Error::format("NPY", "missing magic string \\x93NUMPY at offset 0"));
    }
    let major = magic[6];
    let header_len = match major {
        1 => {
            let mut l = [0u8; 2];
            reader.read_exact(&mut l).map_err(|_| Error::format("NPY", "truncated header length at offset 8"))?;
            usize::from(u16::from_le_bytes(l))
        }
        2 | 3 => {
            let mut l = [0u8; 4];
            reader.read_exact(&mut l).map_err(|_| Error::format("NPY", "truncated header length at offset 8"))?;
            u32::from_le_bytes(l) as usize
        }
        v => return Err(Error::format("NPY", format!("unsupported format version {v}.{}", magic[7]))),
    };
    if header_len > 1 << 24 {
        return Err(Error::format("NPY", format!("header length {header_len} is implausible")));
    }
    let mut header = vec![0u8; header_len];
    reader
        .read_exact(&mut header)
        .map_err(|_| Error::format("NPY", format!("header of {header_len} bytes is truncated")))?;
    let header = String::from_utf8_lossy(&header);
    let header = parse_header(&header)?;

    let mut chars = header.descr.chars();
    let order = chars.next().unwrap_or('?');
    let type_part: String = chars.collect();
    let big_endian = match order {
        '<' | '|' | '=' => false,
        '>' => true,
        _ => return Err(Error::format("NPY", format!("unsupported dtype descriptor {:?}", header.descr))),
    };
    let expected = format!("{}{}", T::KIND, T::SIZE);
    let same = type_part == expected
        || (T::KIND == 'b' && type_part == "b1")
        || (T::KIND == 'u' && T::SIZE == 1 && type_part == "B");
    if !same {
        return Err(Error::format(
            "NPY",
            format!("dtype {:?} does not match the requested element type {:?}", header.descr, descr::<T>()),
        ));
    }
    let n: usize = header
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::format("NPY", format!("shape {:?} overflows", header.shape)))?;
    let nbytes = n.checked_mul(T::SIZE).ok_or_else(|| Error::format("NPY", "array size overflows"))?;
    let mut data = Vec::new();
    reader
        .take(nbytes as u64)
        .read_to_end(&mut data)
        .map_err(|e| Error::format("NPY", format!("reading data: {e}")))?;
    if data.len() != nbytes {
        return Err(Error::format(
            "NPY",
            format!("data truncated: expected {nbytes} bytes for shape {:?}, found {}", header.shape, data.len()),
        ));
    }
    let values = data.chunks_exact(T::SIZE).map(|c| T::decode(c, big_endian)).collect::<Result<Vec<T>>>()?;
    let shape = IxDyn(&header.shape);
    let array = if header.fortran_order {
        Array::from_shape_vec(shape.f(), values)
    } else {
        Array::from_shape_vec(shape, values)
    };
    array.map_err(|e| Error::format("NPY", format!("shape {:?}: {e}", header.shape)))
}

/// Reads an array of dimensionality `D` (e.g. `Ix2` for `Array2`) from NPY bytes.
///
/// # Errors
/// [`Error::Format`] when the bytes are not NPY, the dtype differs from `T`, the data are
/// truncated or the stored array does not have `D`'s number of axes.
pub fn from_bytes<T: NpyElement, D: Dimension>(bytes: &[u8]) -> Result<Array<T, D>> {
    into_dim(read_dyn(bytes)?)
}

fn into_dim<T, D: Dimension>(a: ArrayD<T>) -> Result<Array<T, D>> {
    let ndim = a.ndim();
    a.into_dimensionality::<D>().map_err(|_| {
        Error::format(
            "NPY",
            format!("array has {ndim} axes, expected {}", D::NDIM.map_or("any".into(), |n| n.to_string())),
        )
    })
}

/// Reads an NPY file into an array of dimensionality `D`.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; otherwise as [`from_bytes`], with the path.
pub fn read<T: NpyElement, D: Dimension>(path: impl AsRef<Path>) -> Result<Array<T, D>> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    read_dyn(std::io::BufReader::new(file)).and_then(into_dim).map_err(|e| e.at_path(path))
}

/// Encodes an array as NPY bytes (little-endian, C order).
pub fn to_bytes<T: NpyElement, S: Data<Elem = T>, D: Dimension>(array: &ArrayBase<S, D>) -> Vec<u8> {
    let shape = match array.shape() {
        [n] => format!("({n},)"),
        dims => format!("({})", dims.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    };
    let mut dict = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}", descr::<T>());
    // Pad with spaces so that magic + length + header + '\n' is a multiple of 64.
    let version: u8 = if dict.len() + 1 + 10 > u16::MAX as usize { 2 } else { 1 };
    let prefix = if version == 1 { 10 } else { 12 };
    let total = (prefix + dict.len() + 1).div_ceil(64) * 64;
    dict.extend(std::iter::repeat_n(' ', total - prefix - dict.len() - 1));
    dict.push('\n');
    let mut out = Vec::with_capacity(total + array.len() * T::SIZE);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    for &v in array.iter() {
        v.encode_le(&mut out);
    }
    out
}

/// Writes an array to an NPY file (little-endian, C order).
///
/// # Errors
/// [`Error::Io`] when the file cannot be written.
pub fn write<T: NpyElement, S: Data<Elem = T>, D: Dimension>(
    path: impl AsRef<Path>,
    array: &ArrayBase<S, D>,
) -> Result<()> {
    let path = path.as_ref();
    let mut file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    file.write_all(&to_bytes(array)).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Array3, array};

    #[test]
    fn roundtrip_all_types_and_ranks() {
        let a = array![[true, false, true], [false, false, true]];
        assert_eq!(from_bytes::<bool, _>(&to_bytes(&a)).unwrap(), a);
        let b = Array3::<i64>::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 100 + j * 10 + k) as i64 - 50);
        assert_eq!(from_bytes::<i64, _>(&to_bytes(&b)).unwrap(), b);
        let c = ndarray::Array1::<u16>::from_vec(vec![1, 65535]);
        assert_eq!(from_bytes::<u16, _>(&to_bytes(&c)).unwrap(), c);
        let d = Array2::<f64>::zeros((0, 5));
        assert_eq!(from_bytes::<f64, _>(&to_bytes(&d)).unwrap(), d);
    }

    #[test]
    fn header_is_padded_to_64_bytes_as_numpy_writes_it() {
        let bytes = to_bytes(&array![[1.0f32, 2.0]]);
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        assert_eq!(bytes[10 + hlen - 1], b'\n');
        let text = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }"));
    }

    #[test]
    fn reads_big_endian_and_fortran_order() {
        let header = "{'descr': '>i4', 'fortran_order': True, 'shape': (2, 3), }";
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for v in [1i32, 4, 2, 5, 3, 6] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        let a: Array2<i32> = from_bytes(&bytes).unwrap();
        assert_eq!(a, array![[1, 2, 3], [4, 5, 6]]);
    }

    #[test]
    fn corrupt_input_gives_typed_errors() {
        let good = to_bytes(&array![[1.0f64, 2.0], [3.0, 4.0]]);
        let err = from_bytes::<f64, ndarray::Ix2>(&good[..good.len() - 3]).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let err = from_bytes::<f32, ndarray::Ix2>(&good).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        let err = from_bytes::<f64, ndarray::Ix3>(&good).unwrap_err();
        assert!(err.to_string().contains("axes"), "{err}");
        assert!(from_bytes::<f64, ndarray::Ix2>(b"nonsense").is_err());
        assert!(from_bytes::<f64, ndarray::Ix2>(&[]).is_err());
        for cut in 0..good.len() {
            let _ = from_bytes::<f64, ndarray::Ix2>(&good[..cut]);
        }
    }

    #[test]
    fn file_roundtrip_names_path_on_error() {
        let dir = std::env::temp_dir().join(format!("nanoml-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.npy");
        let a = array![[1u8, 2], [3, 4]];
        write(&p, &a).unwrap();
        assert_eq!(read::<u8, ndarray::Ix2>(&p).unwrap(), a);
        let err = read::<u8, ndarray::Ix2>(dir.join("missing.npy")).unwrap_err();
        assert!(err.to_string().contains("missing.npy"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
