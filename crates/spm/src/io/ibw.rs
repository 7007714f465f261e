//! Igor Pro binary waves (`.ibw`, WaveMetrics Technical Note TN003): versions 2, 3 and 5
//! in either byte order, numeric (integer, float, complex) and text waves. Asylum
//! Research AFMs write version 5 with the channels as layers.
//!
//! Layout: a binary header (16, 20 or 64 bytes for versions 2, 3 and 5) whose first
//! 16-bit word is the version — its byte order is the file's — then a wave header (data
//! at byte 110 of it for versions 2 and 3, 320 for version 5), the data (`wfmSize`
//! minus 126 or 320 bytes), and the optional sections whose sizes the binary header
//! lists: for version 5 the formula, the note, data units, dimension units and labels,
//! and the end offsets of text elements. The 16-bit words of both headers (for versions 2
//! and 3 with the first 16 bytes of the data) sum to 0 (the checksum), which is
//! verified. Dimension labels come as 32-byte slots: the dimension's own label, then one
//! per element. Every offset is checked against the file's length;
//! a malformed file is an [`Error::Corrupt`] naming the field and the byte offset.

use crate::{Error, Result};
use std::path::Path;

/// The values of a wave.
#[derive(Clone, Debug, PartialEq)]
pub enum WaveData {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit floats.
    F64(Vec<f64>),
    /// Signed integers of 8, 16 and 32 bits, widened.
    Int(Vec<i64>),
    /// Unsigned integers of 8, 16 and 32 bits, widened.
    UInt(Vec<u64>),
    /// Complex values `(re, im)`.
    Complex(Vec<(f64, f64)>),
    /// Text: one byte string per element.
    Text(Vec<Vec<u8>>),
}

impl WaveData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            WaveData::F32(v) => v.len(),
            WaveData::F64(v) => v.len(),
            WaveData::Int(v) => v.len(),
            WaveData::UInt(v) => v.len(),
            WaveData::Complex(v) => v.len(),
            WaveData::Text(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Real numeric values as `f64` (`None` for complex and text waves).
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        match self {
            WaveData::F32(v) => Some(v.iter().map(|&x| f64::from(x)).collect()),
            WaveData::F64(v) => Some(v.clone()),
            WaveData::Int(v) => Some(v.iter().map(|&x| x as f64).collect()),
            WaveData::UInt(v) => Some(v.iter().map(|&x| x as f64).collect()),
            WaveData::Complex(_) | WaveData::Text(_) => None,
        }
    }
}

/// An Igor binary wave.
#[derive(Clone, Debug, PartialEq)]
pub struct IgorWave {
    /// File format version (2, 3 or 5).
    pub version: u16,
    /// Whether the file is big-endian (written on a Mac).
    pub big_endian: bool,
    /// The wave's name.
    pub name: String,
    /// Dimension sizes, first (fastest-varying, Igor's rows) first; `[n]` for 1-D waves.
    pub shape: Vec<usize>,
    /// The values, in file order (Igor's column-major order for multi-dimensional waves).
    pub data: WaveData,
    /// The wave note (Asylum Research files keep the scan parameters here as
    /// `key: value` lines), decoded lossily as UTF-8.
    pub note: String,
    /// Units of the data values.
    pub data_units: String,
    /// Units of each dimension.
    pub dim_units: Vec<String>,
    /// `(delta, offset)` of each dimension: element `i` sits at `offset + i·delta`.
    pub scaling: Vec<(f64, f64)>,
    /// Dimension labels as stored (one 32-byte slot per label, version 5 only).
    pub dim_labels: Vec<Vec<String>>,
}

/// Reads a byte buffer with the file's byte order, checking every access.
struct Reader<'a> {
    bytes: &'a [u8],
    big: bool,
}

impl Reader<'_> {
    fn take(&self, at: usize, n: usize, what: &str) -> Result<&[u8]> {
        at.checked_add(n).and_then(|end| self.bytes.get(at..end)).ok_or_else(|| {
            Error::corrupt(
                "IBW",
                format!("{what} at byte {at} ({n} bytes) lies beyond the end of the {}-byte file", self.bytes.len()),
            )
        })
    }
    fn array<const N: usize>(&self, at: usize, what: &str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(at, N, what)?);
        if !self.big {
            a.reverse();
        }
        Ok(a)
    }
    fn i16(&self, at: usize, what: &str) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array(at, what)?))
    }
    fn i32(&self, at: usize, what: &str) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array(at, what)?))
    }
    fn f64(&self, at: usize, what: &str) -> Result<f64> {
        Ok(f64::from_be_bytes(self.array(at, what)?))
    }
    /// A size field: non-negative.
    fn size(&self, at: usize, what: &str) -> Result<usize> {
        let v = self.i32(at, what)?;
        usize::try_from(v).map_err(|_| Error::corrupt("IBW", format!("{what} at byte {at} is negative ({v})")))
    }
    fn text(&self, at: usize, n: usize, what: &str) -> Result<String> {
        let raw = self.take(at, n, what)?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        Ok(String::from_utf8_lossy(&raw[..end]).into_owned())
    }
}

/// Parses an Igor binary wave from its bytes.
///
/// # Errors
/// [`Error::Corrupt`] for an unknown version, a bad checksum, an unknown data type, or
/// any section that does not fit in the bytes.
pub fn parse_ibw(bytes: &[u8]) -> Result<IgorWave> {
    let first = bytes
        .get(..2)
        .ok_or_else(|| Error::corrupt("IBW", format!("a {}-byte file has no version word", bytes.len())))?;
    let (le, be) = (u16::from_le_bytes([first[0], first[1]]), u16::from_be_bytes([first[0], first[1]]));
    let (version, big) = match (le, be) {
        (2 | 3 | 5, _) => (le, false),
        (_, 2 | 3 | 5) => (be, true),
        _ => {
            return Err(Error::corrupt(
                "IBW",
                format!("version word {le:#06x} is neither 2, 3 nor 5 in either byte order"),
            ));
        }
    };
    let r = Reader { bytes, big };
    let (bin_size, wave_header, data_offset_in_header) = match version {
        2 => (16, 126, 110),
        3 => (20, 126, 110),
        _ => (64, 320, 320),
    };
    // Checksum: the 16-bit words of both headers sum to zero (for versions 2 and 3 the
    // wave header's 16-byte `wData` field, the start of the data, included).
    let header_len = bin_size + wave_header;
    let mut sum = 0i16;
    for k in (0..header_len).step_by(2) {
        sum = sum.wrapping_add(r.i16(k, "header")?);
    }
    if sum != 0 {
        return Err(Error::corrupt(
            "IBW",
            format!("header checksum is {sum}, not 0 (the first {header_len} bytes are damaged)"),
        ));
    }
    let wfm_size = r.size(if version == 5 { 4 } else { 2 }, "wfmSize")?;
    let data_bytes = wfm_size.checked_sub(wave_header).ok_or_else(|| {
        Error::corrupt("IBW", format!("wfmSize {wfm_size} is smaller than the {wave_header}-byte wave header"))
    })?;
    let wh = bin_size; // start of the wave header
    let data_at = wh + data_offset_in_header;
    let (type_code, name, data_units, mut dim_units, scaling, dims, note_size, formula_size);
    let mut extra = Vec::new(); // version 5 section sizes after the note
    if version == 5 {
        type_code = r.i16(wh + 16, "type")?;
        name = r.text(wh + 28, 32, "bname")?;
        let mut d = Vec::new();
        let mut sc = Vec::new();
        for k in 0..4 {
            d.push(r.size(wh + 68 + 4 * k, "nDim")?);
            sc.push((r.f64(wh + 84 + 8 * k, "sfA")?, r.f64(wh + 116 + 8 * k, "sfB")?));
        }
        dims = d;
        scaling = sc;
        data_units = r.text(wh + 148, 4, "dataUnits")?;
        dim_units = (0..4).map(|k| r.text(wh + 152 + 4 * k, 4, "dimUnits")).collect::<Result<Vec<_>>>()?;
        formula_size = r.size(8, "formulaSize")?;
        note_size = r.size(12, "noteSize")?;
        for (k, what) in [
            (16, "dataEUnitsSize"),
            (20, "dimEUnitsSize"),
            (24, "dimEUnitsSize"),
            (28, "dimEUnitsSize"),
            (32, "dimEUnitsSize"),
        ] {
            extra.push((r.size(k, what)?, what));
        }
        for k in 0..4 {
            extra.push((r.size(36 + 4 * k, "dimLabelsSize")?, "dimLabels"));
        }
        extra.push((r.size(52, "sIndicesSize")?, "sIndices"));
    } else {
        type_code = r.i16(wh, "type")?;
        name = r.text(wh + 6, 20, "bname")?;
        data_units = r.text(wh + 34, 4, "dataUnits")?;
        dim_units = vec![r.text(wh + 38, 4, "xUnits")?];
        scaling = vec![(r.f64(wh + 48, "hsA")?, r.f64(wh + 56, "hsB")?)];
        dims = vec![];
        note_size = r.size(6, "noteSize")?;
        formula_size = if version == 3 { r.size(10, "formulaSize")? } else { 0 };
    }
    let raw = r.take(data_at, data_bytes, "wave data")?;
    // Sections after the wave data (version 2: note; version 3: note, then formula;
    // version 5: formula, note, units, labels, text end offsets).
    let mut at = wh + wfm_size;
    let note;
    let mut dim_labels = Vec::new();
    let mut text_ends = None;
    if version == 5 {
        at += formula_size;
        note = r.text(at, note_size, "note")?;
        at += note_size;
        for (k, (size, what)) in extra.iter().enumerate() {
            let section = r.take(at, *size, what)?;
            if (5..9).contains(&k) {
                dim_labels.push(
                    section
                        .chunks(32)
                        .map(|c| {
                            let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
                            String::from_utf8_lossy(&c[..end]).into_owned()
                        })
                        .collect(),
                );
            } else if k == 9 && *size > 0 {
                text_ends = Some(
                    section
                        .chunks_exact(4)
                        .map(|c| {
                            let a: [u8; 4] = [c[0], c[1], c[2], c[3]];
                            if big { i32::from_be_bytes(a) } else { i32::from_le_bytes(a) }
                        })
                        .collect::<Vec<i32>>(),
                );
            }
            at += size;
        }
    } else {
        note = r.text(at, note_size, "note")?;
        if version == 3 {
            r.take(at + note_size, formula_size, "formula")?;
        }
    }
    let data = decode(type_code, raw, big, text_ends)?;
    let n = data.len();
    let shape = if version == 5 {
        let mut s: Vec<usize> = dims.iter().copied().take_while(|&d| d > 0).collect();
        if s.is_empty() {
            s.push(0);
        }
        if s.iter().product::<usize>() != n {
            return Err(Error::corrupt("IBW", format!("dimensions {s:?} do not hold the {n} stored values")));
        }
        s
    } else {
        vec![n]
    };
    if version == 5 {
        dim_units.truncate(shape.len().max(1));
    }
    let mut scaling = scaling;
    scaling.truncate(shape.len().max(1));
    Ok(IgorWave { version, big_endian: big, name, shape, data, note, data_units, dim_units, scaling, dim_labels })
}

/// Decodes the data section for Igor's type code.
fn decode(type_code: i16, raw: &[u8], big: bool, text_ends: Option<Vec<i32>>) -> Result<WaveData> {
    fn words<const N: usize>(raw: &[u8], big: bool) -> impl Iterator<Item = [u8; N]> + '_ {
        raw.chunks_exact(N).map(move |c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            if !big {
                a.reverse();
            }
            a
        })
    }
    let complex = type_code & 0x01 != 0;
    let unsigned = type_code & 0x40 != 0;
    let base = type_code & !0x41;
    let element = match base {
        0 => 0,
        2 => 4,
        4 => 8,
        8 => 1,
        0x10 => 2,
        0x20 => 4,
        _ => return Err(Error::corrupt("IBW", format!("unknown data type code {type_code:#x}"))),
    };
    if base == 0 {
        // Text: the end offset of each element, cumulative over the concatenated bytes.
        let ends = text_ends.unwrap_or_default();
        let mut start = 0usize;
        let mut items = Vec::with_capacity(ends.len());
        for e in ends {
            let end = usize::try_from(e)
                .ok()
                .filter(|&e| e >= start && e <= raw.len())
                .ok_or_else(|| Error::corrupt("IBW", format!("text end offset {e} outside {start}..={}", raw.len())))?;
            items.push(raw[start..end].to_vec());
            start = end;
        }
        return Ok(WaveData::Text(items));
    }
    let per = element * if complex { 2 } else { 1 };
    if !raw.len().is_multiple_of(per) {
        return Err(Error::corrupt(
            "IBW",
            format!("{} data bytes are not a whole number of {per}-byte values", raw.len()),
        ));
    }
    if complex {
        let values: Vec<f64> = match base {
            2 => words::<4>(raw, big).map(|a| f64::from(f32::from_be_bytes(a))).collect(),
            4 => words::<8>(raw, big).map(f64::from_be_bytes).collect(),
            _ => return Err(Error::corrupt("IBW", format!("complex integer type {type_code:#x} is not supported"))),
        };
        return Ok(WaveData::Complex(values.chunks_exact(2).map(|c| (c[0], c[1])).collect()));
    }
    Ok(match (base, unsigned) {
        (2, _) => WaveData::F32(words::<4>(raw, big).map(f32::from_be_bytes).collect()),
        (4, _) => WaveData::F64(words::<8>(raw, big).map(f64::from_be_bytes).collect()),
        (8, false) => WaveData::Int(raw.iter().map(|&b| i64::from(b as i8)).collect()),
        (8, true) => WaveData::UInt(raw.iter().map(|&b| u64::from(b)).collect()),
        (0x10, false) => WaveData::Int(words::<2>(raw, big).map(|a| i64::from(i16::from_be_bytes(a))).collect()),
        (0x10, true) => WaveData::UInt(words::<2>(raw, big).map(|a| u64::from(u16::from_be_bytes(a))).collect()),
        (0x20, false) => WaveData::Int(words::<4>(raw, big).map(|a| i64::from(i32::from_be_bytes(a))).collect()),
        _ => WaveData::UInt(words::<4>(raw, big).map(|a| u64::from(u32::from_be_bytes(a))).collect()),
    })
}

/// Reads an Igor binary wave file.
///
/// # Errors
/// I/O errors and everything [`parse_ibw`] rejects, with the path.
pub fn read_ibw(path: impl AsRef<Path>) -> Result<IgorWave> {
    super::read_file(path.as_ref(), parse_ibw)
}
