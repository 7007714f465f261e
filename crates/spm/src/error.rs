//! The error type of `nanoml-spm`.

/// Everything that can go wrong in `nanoml-spm`.
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
    /// The data cannot give what was asked (e.g. fewer grey levels than classes).
    #[error("{what}: {reason}")]
    Unsuitable {
        /// What was asked for.
        what: &'static str,
        /// Why the data cannot give it.
        reason: String,
    },
    /// A file's bytes are not what its format requires.
    #[error("malformed {format} data{}: {reason}", .path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Corrupt {
        /// The format being read (`"IBW"`, …).
        format: &'static str,
        /// The file, when reading from a file.
        path: Option<std::path::PathBuf>,
        /// What is wrong and where (byte offsets).
        reason: String,
    },
    /// An error from `nanoml-core` (I/O, windows, …).
    #[error(transparent)]
    Core(#[from] nanoml_core::Error),
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn corrupt(format: &'static str, reason: impl Into<String>) -> Self {
        Error::Corrupt { format, path: None, reason: reason.into() }
    }

    pub(crate) fn invalid(name: &'static str, value: impl std::fmt::Display, expected: impl Into<String>) -> Self {
        Error::InvalidParameter { name, value: value.to_string(), expected: expected.into() }
    }
}
