//! Gwyddion native files (`.gwy`, the `GWYP` serialisation; gwyddion.net's "Gwyddion
//! native file format"): read and write, so that results open in Gwyddion.
//!
//! A file is `GWYP` and one serialised object, the top-level `GwyContainer`. An object is
//! its NUL-terminated type name, a little-endian `u32` byte count of its components, and
//! the components: a NUL-terminated name, a type character and the value (`b` bool, `c`
//! char, `i` i32, `q` i64, `d` f64, `s` NUL-terminated string, `o` object; upper case for
//! arrays, a `u32` count and the items). Channels are `GwyDataField` objects under the
//! container keys `/N/data`, titled by `/N/data/title`; their values are row-major
//! (`yres` rows of `xres`), with physical sizes `xreal`, `yreal` and units in
//! `GwySIUnit` objects.

use crate::{Error, Result};
use ndarray::Array2;
use std::path::Path;

/// A serialised value.
#[derive(Clone, Debug, PartialEq)]
pub enum GwyValue {
    /// `b`
    Bool(bool),
    /// `c`
    Char(u8),
    /// `i`
    Int(i32),
    /// `q`
    Int64(i64),
    /// `d`
    Double(f64),
    /// `s`
    Str(String),
    /// `o`
    Object(GwyObject),
    /// `C`
    Chars(Vec<u8>),
    /// `I`
    Ints(Vec<i32>),
    /// `Q`
    Int64s(Vec<i64>),
    /// `D`
    Doubles(Vec<f64>),
    /// `S`
    Strs(Vec<String>),
    /// `O`
    Objects(Vec<GwyObject>),
}

/// A serialised object: its type name and its named components, in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct GwyObject {
    /// The type name (`GwyContainer`, `GwyDataField`, …).
    pub name: String,
    /// The components.
    pub components: Vec<(String, GwyValue)>,
}

impl GwyObject {
    /// The value of a component.
    pub fn get(&self, name: &str) -> Option<&GwyValue> {
        self.components.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// One channel of a file.
#[derive(Clone, Debug, PartialEq)]
pub struct GwyChannel {
    /// Its number `N` (the container key `/N/data`).
    pub id: u32,
    /// Its title (`/N/data/title`), or `""`.
    pub title: String,
    /// Heights, `[row, col]`.
    pub data: Array2<f64>,
    /// Physical width and height (in `xy_unit`).
    pub real_size: (f64, f64),
    /// Units of the lateral sizes and of the values (e.g. `"m"`).
    pub xy_unit: String,
    /// Units of the values.
    pub z_unit: String,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn fail(&self, what: &str) -> Error {
        Error::corrupt(
            "GWY",
            format!("{what} at byte {} runs past the end of the {}-byte data", self.at, self.bytes.len()),
        )
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| self.fail(what))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn cstr(&mut self, what: &str) -> Result<String> {
        let rest = &self.bytes[self.at.min(self.bytes.len())..];
        let len = rest.iter().position(|&b| b == 0).ok_or_else(|| self.fail(what))?;
        let s = String::from_utf8_lossy(&rest[..len]).into_owned();
        self.at += len + 1;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn count(&mut self, size: usize, what: &str) -> Result<usize> {
        let n = self.u32(what)? as usize;
        // Every item takes at least `size` bytes: refuse counts the data cannot hold.
        if n.saturating_mul(size) > self.bytes.len() - self.at.min(self.bytes.len()) {
            return Err(Error::corrupt(
                "GWY",
                format!("{what} at byte {} claims {n} items, more than the data holds", self.at),
            ));
        }
        Ok(n)
    }
    fn object(&mut self, depth: usize) -> Result<GwyObject> {
        if depth > 64 {
            return Err(Error::corrupt("GWY", format!("objects nested deeper than 64 at byte {}", self.at)));
        }
        let name = self.cstr("object name")?;
        let size = self.u32("object size")? as usize;
        let end =
            self.at.checked_add(size).filter(|&e| e <= self.bytes.len()).ok_or_else(|| self.fail("object body"))?;
        let mut components = Vec::new();
        while self.at < end {
            let cname = self.cstr("component name")?;
            let kind = self.take(1, "component type")?[0];
            let value = self.value(kind, depth)?;
            components.push((cname, value));
        }
        if self.at != end {
            return Err(Error::corrupt(
                "GWY",
                format!("object {name} ends at byte {} but claims to end at {end}", self.at),
            ));
        }
        Ok(GwyObject { name, components })
    }
    fn value(&mut self, kind: u8, depth: usize) -> Result<GwyValue> {
        let le4 = |b: &[u8]| [b[0], b[1], b[2], b[3]];
        let le8 = |b: &[u8]| [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
        Ok(match kind {
            b'b' => GwyValue::Bool(self.take(1, "bool")?[0] != 0),
            b'c' => GwyValue::Char(self.take(1, "char")?[0]),
            b'i' => GwyValue::Int(i32::from_le_bytes(le4(self.take(4, "int")?))),
            b'q' => GwyValue::Int64(i64::from_le_bytes(le8(self.take(8, "int64")?))),
            b'd' => GwyValue::Double(f64::from_le_bytes(le8(self.take(8, "double")?))),
            b's' => GwyValue::Str(self.cstr("string")?),
            b'o' => GwyValue::Object(self.object(depth + 1)?),
            b'C' => {
                let n = self.count(1, "char array")?;
                GwyValue::Chars(self.take(n, "char array")?.to_vec())
            }
            b'I' => {
                let n = self.count(4, "int array")?;
                GwyValue::Ints(
                    self.take(4 * n, "int array")?.chunks_exact(4).map(|c| i32::from_le_bytes(le4(c))).collect(),
                )
            }
            b'Q' => {
                let n = self.count(8, "int64 array")?;
                GwyValue::Int64s(
                    self.take(8 * n, "int64 array")?.chunks_exact(8).map(|c| i64::from_le_bytes(le8(c))).collect(),
                )
            }
            b'D' => {
                let n = self.count(8, "double array")?;
                GwyValue::Doubles(
                    self.take(8 * n, "double array")?.chunks_exact(8).map(|c| f64::from_le_bytes(le8(c))).collect(),
                )
            }
            b'S' => {
                let n = self.count(1, "string array")?;
                GwyValue::Strs((0..n).map(|_| self.cstr("string array")).collect::<Result<_>>()?)
            }
            b'O' => {
                let n = self.count(6, "object array")?;
                GwyValue::Objects((0..n).map(|_| self.object(depth + 1)).collect::<Result<_>>()?)
            }
            other => {
                return Err(Error::corrupt(
                    "GWY",
                    format!("unknown component type {:?} at byte {}", other as char, self.at - 1),
                ));
            }
        })
    }
}

/// Parses a `.gwy` file's bytes into its top-level object.
///
/// # Errors
/// [`Error::Corrupt`]: a missing `GWYP` magic, unknown types, sizes that do not fit.
pub fn parse_gwy(bytes: &[u8]) -> Result<GwyObject> {
    if bytes.get(..4) != Some(b"GWYP") {
        return Err(Error::corrupt("GWY", "the file does not start with the magic GWYP"));
    }
    let mut c = Cursor { bytes, at: 4 };
    let top = c.object(0)?;
    if c.at != bytes.len() {
        return Err(Error::corrupt("GWY", format!("{} bytes follow the top-level object", bytes.len() - c.at)));
    }
    Ok(top)
}

fn unit(field: &GwyObject, name: &str) -> String {
    match field.get(name) {
        Some(GwyValue::Object(u)) => match u.get("unitstr") {
            Some(GwyValue::Str(s)) => s.clone(),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

/// The channels (`/N/data` data fields) of a parsed file, in order of `N`.
///
/// # Errors
/// [`Error::Corrupt`] when a data field lacks its sizes or its values do not fill them.
pub fn channels(top: &GwyObject) -> Result<Vec<GwyChannel>> {
    let mut out = Vec::new();
    for (key, value) in &top.components {
        let Some(id) = key.strip_prefix('/').and_then(|k| k.strip_suffix("/data")).and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let GwyValue::Object(field) = value else { continue };
        let int = |name: &str| match field.get(name) {
            Some(GwyValue::Int(v)) if *v > 0 => Ok(*v as usize),
            _ => Err(Error::corrupt("GWY", format!("channel {id}: {name} missing or not positive"))),
        };
        let real = |name: &str| match field.get(name) {
            Some(GwyValue::Double(v)) => *v,
            _ => 1.0,
        };
        let (xres, yres) = (int("xres")?, int("yres")?);
        let Some(GwyValue::Doubles(values)) = field.get("data") else {
            return Err(Error::corrupt("GWY", format!("channel {id}: no data array")));
        };
        if values.len() != xres * yres {
            return Err(Error::corrupt("GWY", format!("channel {id}: {} values for {yres}×{xres}", values.len())));
        }
        let data =
            Array2::from_shape_vec((yres, xres), values.clone()).map_err(|e| Error::corrupt("GWY", e.to_string()))?;
        let title = match top.get(&format!("/{id}/data/title")) {
            Some(GwyValue::Str(s)) => s.clone(),
            _ => String::new(),
        };
        out.push(GwyChannel {
            id,
            title,
            data,
            real_size: (real("xreal"), real("yreal")),
            xy_unit: unit(field, "si_unit_xy"),
            z_unit: unit(field, "si_unit_z"),
        });
    }
    out.sort_by_key(|c| c.id);
    Ok(out)
}

/// Reads the channels of a `.gwy` file.
///
/// # Errors
/// I/O errors and everything [`parse_gwy`] and [`channels`] reject, with the path.
pub fn read_gwy(path: impl AsRef<Path>) -> Result<Vec<GwyChannel>> {
    super::read_file(path.as_ref(), |bytes| parse_gwy(bytes).and_then(|top| channels(&top)))
}

fn put_object(out: &mut Vec<u8>, object: &GwyObject) {
    out.extend_from_slice(object.name.as_bytes());
    out.push(0);
    let mut body = Vec::new();
    for (name, value) in &object.components {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        put_value(&mut body, value);
    }
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
}

fn put_value(out: &mut Vec<u8>, value: &GwyValue) {
    let count = |out: &mut Vec<u8>, n: usize| out.extend_from_slice(&(n as u32).to_le_bytes());
    match value {
        GwyValue::Bool(b) => out.extend_from_slice(&[b'b', u8::from(*b)]),
        GwyValue::Char(c) => out.extend_from_slice(&[b'c', *c]),
        GwyValue::Int(v) => {
            out.push(b'i');
            out.extend_from_slice(&v.to_le_bytes());
        }
        GwyValue::Int64(v) => {
            out.push(b'q');
            out.extend_from_slice(&v.to_le_bytes());
        }
        GwyValue::Double(v) => {
            out.push(b'd');
            out.extend_from_slice(&v.to_le_bytes());
        }
        GwyValue::Str(s) => {
            out.push(b's');
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        GwyValue::Object(o) => {
            out.push(b'o');
            put_object(out, o);
        }
        GwyValue::Chars(v) => {
            out.push(b'C');
            count(out, v.len());
            out.extend_from_slice(v);
        }
        GwyValue::Ints(v) => {
            out.push(b'I');
            count(out, v.len());
            v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        }
        GwyValue::Int64s(v) => {
            out.push(b'Q');
            count(out, v.len());
            v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        }
        GwyValue::Doubles(v) => {
            out.push(b'D');
            count(out, v.len());
            v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        }
        GwyValue::Strs(v) => {
            out.push(b'S');
            count(out, v.len());
            for s in v {
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            }
        }
        GwyValue::Objects(v) => {
            out.push(b'O');
            count(out, v.len());
            v.iter().for_each(|o| put_object(out, o));
        }
    }
}

/// Serialises an object as a `.gwy` file's bytes (`GWYP` and the object).
pub fn to_gwy_bytes(top: &GwyObject) -> Vec<u8> {
    let mut out = b"GWYP".to_vec();
    put_object(&mut out, top);
    out
}

/// A `GwyContainer` holding the channels (as Gwyddion writes them: a `GwyDataField` per
/// channel at `/N/data` with its title at `/N/data/title`).
pub fn container(channels: &[GwyChannel]) -> GwyObject {
    let si = |u: &str| {
        GwyValue::Object(GwyObject {
            name: "GwySIUnit".into(),
            components: vec![("unitstr".into(), GwyValue::Str(u.into()))],
        })
    };
    let mut components = Vec::new();
    for ch in channels {
        let (yres, xres) = ch.data.dim();
        let field = GwyObject {
            name: "GwyDataField".into(),
            components: vec![
                ("xres".into(), GwyValue::Int(xres as i32)),
                ("yres".into(), GwyValue::Int(yres as i32)),
                ("xreal".into(), GwyValue::Double(ch.real_size.0)),
                ("yreal".into(), GwyValue::Double(ch.real_size.1)),
                ("si_unit_xy".into(), si(&ch.xy_unit)),
                ("si_unit_z".into(), si(&ch.z_unit)),
                ("data".into(), GwyValue::Doubles(ch.data.iter().copied().collect())),
            ],
        };
        components.push((format!("/{}/data/title", ch.id), GwyValue::Str(ch.title.clone())));
        components.push((format!("/{}/data", ch.id), GwyValue::Object(field)));
    }
    GwyObject { name: "GwyContainer".into(), components }
}

/// Writes channels as a `.gwy` file Gwyddion opens.
///
/// # Errors
/// Channels larger than `i32::MAX` pixels across; I/O errors with the path.
pub fn write_gwy(path: impl AsRef<Path>, channels: &[GwyChannel]) -> Result<()> {
    for ch in channels {
        let (r, c) = ch.data.dim();
        if r > i32::MAX as usize || c > i32::MAX as usize || r == 0 || c == 0 {
            return Err(Error::invalid("channel", format!("{r}×{c}"), "1 ..= 2³¹ − 1 pixels per side"));
        }
    }
    let path = path.as_ref();
    std::fs::write(path, to_gwy_bytes(&container(channels)))
        .map_err(|source| nanoml_core::Error::Io { path: path.to_path_buf(), source }.into())
}
