//! The error type of `nanoml-hrtem`.

/// Everything that can go wrong in `nanoml-hrtem`.
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
    /// A construction cannot give what was asked (e.g. no finite Wulff cluster).
    #[error("{what}: {reason}")]
    Unsuitable {
        /// What was asked for.
        what: &'static str,
        /// Why it cannot be given.
        reason: String,
    },
    /// An error from `nanoml-core` (I/O, …).
    #[error(transparent)]
    Core(#[from] nanoml_core::Error),
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(name: &'static str, value: impl std::fmt::Display, expected: impl Into<String>) -> Self {
        Error::InvalidParameter { name, value: value.to_string(), expected: expected.into() }
    }
}
