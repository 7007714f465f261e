//! The error type of `nanoml-models`.

/// Everything that can go wrong in `nanoml-models`.
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
    /// A metric or curve is undefined for the data given (e.g. a ROC curve without negatives).
    #[error("{what} is undefined: {reason}")]
    Undefined {
        /// The quantity asked for.
        what: &'static str,
        /// Why it is undefined.
        reason: String,
    },
    /// A checkpoint does not fit the network it is loaded into.
    #[error("incompatible checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: String,
        /// What does not fit.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON document could not be read or written.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: String,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A device was asked for that this build lacks or the driver cannot open.
    #[error("device {device} is unavailable: {reason}")]
    DeviceUnavailable {
        /// The device, as [`crate::device::DeviceChoice`] prints it (`cuda:0`).
        device: String,
        /// Why: the missing cargo feature, or the driver's error.
        reason: String,
    },
    /// An error from candle (tensor shapes, devices, safetensors).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An error from `nanoml-core`.
    #[error(transparent)]
    Core(#[from] nanoml_core::Error),
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(name: &'static str, value: impl std::fmt::Display, expected: impl Into<String>) -> Self {
        Error::InvalidParameter { name, value: value.to_string(), expected: expected.into() }
    }

    pub(crate) fn undefined(what: &'static str, reason: impl Into<String>) -> Self {
        Error::Undefined { what, reason: reason.into() }
    }
}
