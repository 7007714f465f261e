//! Choosing the device networks run on: `"cpu"`, `"cuda"`, `"cuda:1"`, `"metal"`, or
//! `"auto"` (the first GPU this build can open, else the CPU).
//!
//! A GPU backend exists only in builds with its cargo feature (`cuda`, `cudnn`, `metal`);
//! asking for one that was not compiled in is an [`Error::DeviceUnavailable`] that says
//! which feature to enable, never a silent fall-back to the CPU.
//!
//! ```
//! use nanoml_models::device::DeviceChoice;
//! let cpu = "cpu".parse::<DeviceChoice>()?.open()?;
//! assert!(cpu.is_cpu());
//! assert_eq!("cuda:1".parse::<DeviceChoice>()?, DeviceChoice::Cuda(1));
//! # Ok::<(), nanoml_models::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use candle_core::{Device, DeviceLocation};

use crate::{Error, Result};

/// A device asked for by name; [`DeviceChoice::open`] turns it into a candle [`Device`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DeviceChoice {
    /// The CPU (always available).
    #[default]
    Cpu,
    /// The CUDA GPU with this ordinal (feature `cuda`).
    Cuda(usize),
    /// The Metal GPU with this ordinal (feature `metal`).
    Metal(usize),
    /// CUDA GPU 0 if this build has CUDA and one opens, else Metal GPU 0 likewise, else
    /// the CPU.
    Auto,
}

/// The GPU backends compiled into this build, e.g. `["cuda"]`; empty for a CPU-only build.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut backends = Vec::new();
    if cfg!(feature = "cuda") {
        backends.push("cuda");
    }
    if cfg!(feature = "cudnn") {
        backends.push("cudnn");
    }
    if cfg!(feature = "metal") {
        backends.push("metal");
    }
    backends
}

impl DeviceChoice {
    /// Opens the device. A GPU that this build lacks, or that the driver cannot open, is
    /// an [`Error::DeviceUnavailable`].
    pub fn open(&self) -> Result<Device> {
        match *self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(ordinal) => open_cuda(ordinal),
            DeviceChoice::Metal(ordinal) => open_metal(ordinal),
            DeviceChoice::Auto => Ok(open_cuda(0).or_else(|_| open_metal(0)).unwrap_or(Device::Cpu)),
        }
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<Device> {
    let device = Device::new_cuda(ordinal).map_err(|e| unavailable(DeviceChoice::Cuda(ordinal), e.to_string()))?;
    // Allocate once, so that a driver that loads but cannot run fails here, by name,
    // rather than in the first layer.
    candle_core::Tensor::zeros(1, candle_core::DType::F32, &device)
        .map_err(|e| unavailable(DeviceChoice::Cuda(ordinal), e.to_string()))?;
    Ok(device)
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(ordinal: usize) -> Result<Device> {
    Err(unavailable(
        DeviceChoice::Cuda(ordinal),
        "this build has no CUDA backend; rebuild with `--features cuda`".into(),
    ))
}

#[cfg(feature = "metal")]
fn open_metal(ordinal: usize) -> Result<Device> {
    Device::new_metal(ordinal).map_err(|e| unavailable(DeviceChoice::Metal(ordinal), e.to_string()))
}

#[cfg(not(feature = "metal"))]
fn open_metal(ordinal: usize) -> Result<Device> {
    Err(unavailable(
        DeviceChoice::Metal(ordinal),
        "this build has no Metal backend; rebuild with `--features metal`".into(),
    ))
}

fn unavailable(choice: DeviceChoice, reason: String) -> Error {
    Error::DeviceUnavailable { device: choice.to_string(), reason }
}

/// The name of a candle device in the form [`DeviceChoice`] parses: `cpu`, `cuda:0`, `metal:0`.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        DeviceLocation::Cpu => "cpu".to_string(),
        DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceChoice::Metal(i) => write!(f, "metal:{i}"),
            DeviceChoice::Auto => write!(f, "auto"),
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("device", format!("{s:?}"), "cpu, cuda, cuda:N, metal, metal:N or auto");
        let lower = s.trim().to_ascii_lowercase();
        let (kind, ordinal) = match lower.split_once(':') {
            Some((kind, n)) => (kind, Some(n.parse::<usize>().map_err(|_| bad())?)),
            None => (lower.as_str(), None),
        };
        match (kind, ordinal) {
            ("cpu", None) => Ok(DeviceChoice::Cpu),
            ("auto", None) => Ok(DeviceChoice::Auto),
            ("cuda" | "gpu", n) => Ok(DeviceChoice::Cuda(n.unwrap_or(0))),
            ("metal", n) => Ok(DeviceChoice::Metal(n.unwrap_or(0))),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for (text, choice) in [
            ("cpu", DeviceChoice::Cpu),
            ("CUDA", DeviceChoice::Cuda(0)),
            ("cuda:3", DeviceChoice::Cuda(3)),
            ("gpu:1", DeviceChoice::Cuda(1)),
            ("metal", DeviceChoice::Metal(0)),
            (" auto ", DeviceChoice::Auto),
        ] {
            let parsed: DeviceChoice = text.parse().unwrap();
            assert_eq!(parsed, choice, "{text}");
            assert_eq!(parsed.to_string().parse::<DeviceChoice>().unwrap(), choice);
        }
        for bad in ["", "tpu", "cuda:", "cuda:-1", "cpu:0", "cuda:x"] {
            assert!(
                matches!(bad.parse::<DeviceChoice>(), Err(Error::InvalidParameter { name: "device", .. })),
                "{bad:?} parsed"
            );
        }
    }

    #[test]
    fn cpu_always_opens_and_auto_opens_something() {
        assert_eq!(device_name(&DeviceChoice::Cpu.open().unwrap()), "cpu");
        let auto = DeviceChoice::Auto.open().unwrap();
        assert!(["cpu", "cuda:0", "metal:0"].contains(&device_name(&auto).as_str()));
    }

    #[test]
    fn a_missing_backend_is_a_named_error() {
        if !cfg!(feature = "cuda") {
            let err = DeviceChoice::Cuda(0).open().unwrap_err();
            assert!(matches!(&err, Error::DeviceUnavailable { device, .. } if device == "cuda:0"));
            assert!(err.to_string().contains("--features cuda"), "{err}");
            assert!(compiled_backends().iter().all(|b| *b != "cuda"));
        }
        if !cfg!(feature = "metal") {
            let err = DeviceChoice::Metal(1).open().unwrap_err();
            assert!(err.to_string().contains("metal:1") && err.to_string().contains("--features metal"), "{err}");
        }
    }
}
