//! One image type for every reader: channels with name, unit, physical size, scan
//! direction and data, plus the file's metadata.
//!
//! Orientation: `data[[row, col]]` with row 0 at the top of the displayed image and the
//! fast scan axis along a row, whatever the file's own order. Igor waves store the first
//! dimension fastest and Asylum Research puts the fast axis first, so an `.ibw` wave of
//! shape `[n0, n1, layers]` becomes `n1` rows of `n0` columns per layer, with the rows
//! flipped so that the last stored line is at the top (Igor displays images with y
//! increasing upwards). This follows TN003 and Asylum's layout as documented; no Asylum
//! file is among the test data yet, so it is unverified against one. Gwyddion's fields
//! are row-major with row 0 at the top already. Nanonis frames follow Gwyddion: backward
//! frames mirrored left–right, frames scanned upwards flipped (see [`crate::io::sxm`]).

use crate::io::gwy::GwyChannel;
use crate::io::ibw::IgorWave;
use crate::io::sxm::SxmFile;
use crate::{Error, Result};
use ndarray::Array2;

/// Scan direction of a channel along the fast axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScanDirection {
    /// Left to right (trace, forward).
    #[default]
    Forward,
    /// Right to left (retrace, backward); the data are stored as displayed, left to right.
    Backward,
}

/// One channel of a scan.
#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    /// Name as the instrument or program gave it (`"HeightRetrace"`, `"Z"`, …).
    pub name: String,
    /// Unit of the values (`"m"`, `"V"`, `""` when unknown).
    pub unit: String,
    /// Physical width and height of the image, in `size_unit` (`None` when unknown).
    pub size: Option<(f64, f64)>,
    /// Unit of `size`.
    pub size_unit: String,
    /// Fast-scan direction.
    pub direction: ScanDirection,
    /// Values, `[row, col]`.
    pub data: Array2<f64>,
}

/// A scanning-probe image: its channels and the file's metadata.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SpmImage {
    /// The channels, in file order.
    pub channels: Vec<Channel>,
    /// Key–value metadata (Igor wave-note lines `key: value`, …), in file order.
    pub metadata: Vec<(String, String)>,
}

impl SpmImage {
    /// The channel with this name.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] listing the channels there are.
    pub fn channel(&self, name: &str) -> Result<&Channel> {
        self.channels.iter().find(|c| c.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.channels.iter().map(|c| c.name.as_str()).collect();
            Error::invalid("channel", name, format!("one of {names:?}"))
        })
    }

    /// The image of a Nanonis scan: one channel per frame, named like Gwyddion names
    /// them (`"Z (Forward)"`, `"Z (Backward)"`), sizes in metres; the metadata are the
    /// header tags.
    pub fn from_sxm(file: &SxmFile) -> Self {
        let channels = file
            .channels
            .iter()
            .map(|c| Channel {
                name: format!(
                    "{} ({})",
                    c.name,
                    if c.direction == ScanDirection::Backward { "Backward" } else { "Forward" }
                ),
                unit: c.unit.clone(),
                size: Some(file.range),
                size_unit: "m".into(),
                direction: c.direction,
                data: c.data.clone(),
            })
            .collect();
        SpmImage { channels, metadata: file.header.clone() }
    }

    /// The image of Gwyddion channels.
    pub fn from_gwy(channels: &[GwyChannel]) -> Self {
        let channels = channels
            .iter()
            .map(|c| Channel {
                name: if c.title.is_empty() { format!("channel {}", c.id) } else { c.title.clone() },
                unit: c.z_unit.clone(),
                size: Some(c.real_size),
                size_unit: c.xy_unit.clone(),
                direction: ScanDirection::Forward,
                data: c.data.clone(),
            })
            .collect();
        SpmImage { channels, metadata: Vec::new() }
    }

    /// The image of an Igor wave of 2 or 3 dimensions (layers are channels, named by the
    /// wave's layer labels, e.g. Asylum Research's `HeightRetrace`; names ending in
    /// `Retrace` are backward scans). The wave note's `key: value` lines become metadata.
    ///
    /// # Errors
    /// Text or complex waves, and waves of other dimensionality.
    pub fn from_igor(wave: &IgorWave) -> Result<Self> {
        let values = wave.data.to_f64().ok_or_else(|| Error::invalid("wave", &wave.name, "a real numeric wave"))?;
        let (n0, n1, layers) = match wave.shape[..] {
            [a, b] => (a, b, 1),
            [a, b, c] => (a, b, c),
            _ => return Err(Error::invalid("wave", format!("shape {:?}", wave.shape), "2 or 3 dimensions")),
        };
        let labels = wave.dim_labels.get(2).cloned().unwrap_or_default();
        let size = match (wave.scaling.first(), wave.scaling.get(1)) {
            (Some(&(dx, _)), Some(&(dy, _))) => Some((dx * n0 as f64, dy * n1 as f64)),
            _ => None,
        };
        let mut channels = Vec::with_capacity(layers);
        for layer in 0..layers {
            // Element (i, j, k) of the wave sits at i + n0·(j + n1·k).
            let data = Array2::from_shape_fn((n1, n0), |(r, c)| values[c + n0 * ((n1 - 1 - r) + n1 * layer)]);
            let name = labels
                .get(layer + 1)
                .filter(|l| !l.is_empty())
                .cloned()
                .unwrap_or_else(|| format!("{} {layer}", wave.name));
            let direction = if name.ends_with("Retrace") { ScanDirection::Backward } else { ScanDirection::Forward };
            channels.push(Channel {
                name,
                unit: wave.data_units.clone(),
                size,
                size_unit: wave.dim_units.first().cloned().unwrap_or_default(),
                direction,
                data,
            });
        }
        let metadata = wave
            .note
            .lines()
            .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
            .collect();
        Ok(SpmImage { channels, metadata })
    }

    /// Reads any supported file, recognised by its first bytes (Gwyddion `GWYP`, Nanonis
    /// `:NANONIS_VERSION:`) or else its extension (`.ibw`; `.dat` for the raw f64 height
    /// maps of [`crate::io::raw`]).
    ///
    /// # Errors
    /// I/O errors, everything the format's reader rejects, and files of no supported
    /// format (the error lists them).
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
        crate::io::read_file(path, |bytes| {
            if bytes.starts_with(b"GWYP") {
                crate::io::gwy::parse_gwy(bytes)
                    .and_then(|top| crate::io::gwy::channels(&top))
                    .map(|c| Self::from_gwy(&c))
            } else if bytes.starts_with(b":NANONIS_VERSION:") {
                crate::io::sxm::parse_sxm(bytes).map(|f| Self::from_sxm(&f))
            } else if ext == "ibw" {
                crate::io::ibw::parse_ibw(bytes).and_then(|w| Self::from_igor(&w))
            } else if ext == "dat" {
                crate::io::raw::parse_raw_f64(bytes).map(|d| Self::from_heights("height", "", d))
            } else {
                Err(Error::Unsuitable {
                    what: "SPM file",
                    reason: format!(
                        "{} is none of the supported formats (Gwyddion .gwy, Nanonis .sxm, Igor .ibw, raw f64 .dat)",
                        path.display()
                    ),
                })
            }
        })
    }

    /// A one-channel image of a bare height map (`size` unknown).
    pub fn from_heights(name: &str, unit: &str, data: Array2<f64>) -> Self {
        SpmImage {
            channels: vec![Channel {
                name: name.into(),
                unit: unit.into(),
                size: None,
                size_unit: String::new(),
                direction: ScanDirection::Forward,
                data,
            }],
            metadata: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::ibw::WaveData;

    #[test]
    fn igor_layers_become_channels_with_rows_top_down() {
        // 3 columns (fast axis) × 2 lines × 2 layers, values = index.
        let wave = IgorWave {
            version: 5,
            big_endian: false,
            name: "scan".into(),
            shape: vec![3, 2, 2],
            data: WaveData::F32((0..12).map(|v| v as f32).collect()),
            note: "ScanSize: 5e-06\nScanRate: 1\n".into(),
            data_units: "m".into(),
            dim_units: vec!["m".into(), "m".into(), String::new()],
            scaling: vec![(1e-6, 0.0), (2e-6, 0.0), (1.0, 0.0)],
            dim_labels: vec![vec![], vec![], vec![String::new(), "HeightTrace".into(), "HeightRetrace".into()]],
        };
        let img = SpmImage::from_igor(&wave).unwrap();
        assert_eq!(img.channels.len(), 2);
        let h = img.channel("HeightTrace").unwrap();
        assert_eq!(h.data, ndarray::array![[3.0, 4.0, 5.0], [0.0, 1.0, 2.0]]);
        assert_eq!(h.size, Some((3e-6, 4e-6)));
        assert_eq!(img.channel("HeightRetrace").unwrap().direction, ScanDirection::Backward);
        assert_eq!(img.metadata[0], ("ScanSize".to_string(), "5e-06".to_string()));
        let err = img.channel("Phase").unwrap_err().to_string();
        assert!(err.contains("HeightTrace"), "{err}");
    }
}
