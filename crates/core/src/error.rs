//! The error type of `nanoml-core`.

use std::path::PathBuf;

/// Everything that can go wrong in `nanoml-core`.
///
/// Variants name the offending parameter, the value that was given and what was allowed,
/// so that a message can be acted on without reading the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter lies outside its allowed range.
    #[error("invalid parameter `{name}` = {value}: expected {expected}")]
    InvalidParameter {
        /// Name of the parameter as it appears in the API.
        name: &'static str,
        /// The value that was passed, formatted.
        value: String,
        /// The allowed range or set, in words.
        expected: String,
    },
    /// Two arrays that must agree in shape do not.
    #[error("shape mismatch in {op}: {left:?} vs {right:?}")]
    ShapeMismatch {
        /// The operation that compared the shapes.
        op: &'static str,
        /// Shape of the first operand.
        left: Vec<usize>,
        /// Shape of the second operand.
        right: Vec<usize>,
    },
    /// An input array is empty where data is required.
    #[error("empty input `{name}` in {op}")]
    EmptyInput {
        /// The operation.
        op: &'static str,
        /// Name of the empty input.
        name: &'static str,
    },
    /// A file could not be opened, read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is not what the format requires.
    #[error("malformed {format} data{}: {reason}", .path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Format {
        /// The format being read (`"NPY"`, `"PNG"`, …).
        format: &'static str,
        /// The file, when reading from a file.
        path: Option<PathBuf>,
        /// What is wrong and where.
        reason: String,
    },
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidParameter`].
    pub fn invalid(name: &'static str, value: impl std::fmt::Display, expected: impl Into<String>) -> Self {
        Error::InvalidParameter { name, value: value.to_string(), expected: expected.into() }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn format(format: &'static str, reason: impl Into<String>) -> Self {
        Error::Format { format, path: None, reason: reason.into() }
    }

    /// Attaches a path to a [`Error::Format`] error that has none.
    pub(crate) fn at_path(self, p: &std::path::Path) -> Self {
        match self {
            Error::Format { format, path: None, reason } => {
                Error::Format { format, path: Some(p.to_path_buf()), reason }
            }
            other => other,
        }
    }
}

/// Returns early with [`Error::InvalidParameter`] unless `cond` holds.
///
/// ```
/// use nanoml_core::{ensure_param, Result};
/// fn sqrt_checked(x: f64) -> Result<f64> {
///     ensure_param!(x >= 0.0, "x", x, "x >= 0");
///     Ok(x.sqrt())
/// }
/// assert!(sqrt_checked(-1.0).is_err());
/// ```
#[macro_export]
macro_rules! ensure_param {
    ($cond:expr, $name:expr, $value:expr, $expected:expr $(,)?) => {
        if !$cond {
            return Err($crate::Error::invalid($name, $value, $expected).into());
        }
    };
}
