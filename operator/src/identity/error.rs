//! What can go wrong setting up or changing the CA: every error names the file and what
//! is wrong with it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file of the identity directory exists but cannot be used.
    #[error("{}: {problem}", file.display())]
    File { file: PathBuf, problem: String },
    /// Reading, writing or creating a file failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// `reading`, `writing`, `creating`...
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Making a key or a certificate failed.
    #[error("generating {what}: {source}")]
    Generate {
        what: &'static str,
        source: rcgen::Error,
    },
    /// A request the files cannot satisfy (e.g. dropping the root the issuer needs).
    #[error("{0}")]
    Refused(String),
    #[error("registering the identity metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl IdentityError {
    pub(crate) fn file(file: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        IdentityError::File {
            file: file.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| IdentityError::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn generate(what: &'static str) -> impl FnOnce(rcgen::Error) -> Self {
        move |source| IdentityError::Generate { what, source }
    }
}
