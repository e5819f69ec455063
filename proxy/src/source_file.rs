//! Static config source: reads the file at start and whenever it changes (polled, so it
//! works on any filesystem and with editors that replace the file). A file that does not
//! parse or validate is refused whole, with the file, field and reason on stderr and on
//! `/config`; the last good config stays in force.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::file;
use crate::store::Store;
use crate::telemetry::Metrics;

/// Why the file could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Reading failed (missing, unreadable); reported by whoever loads.
    #[error("{0}")]
    Unreadable(String),
    /// Read but refused; already reported on stderr and `/config`.
    #[error("{0}")]
    Refused(String),
}

pub struct FileSource {
    pub path: PathBuf,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub poll: Duration,
}

impl FileSource {
    /// Loads the file once; returns the error when it is unusable.
    pub fn load(&self, last: &mut Option<String>) -> Result<bool, LoadError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| {
            LoadError::Unreadable(format!("{}: cannot read: {e}", self.path.display()))
        })?;
        if last.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        *last = Some(text.clone());
        let counter = |result| {
            self.metrics
                .config_updates
                .with_label_values(&["file", result])
                .inc();
        };
        match file::parse(&self.path, &text) {
            Ok(parsed) => {
                self.store.replace_all(parsed.outbound, parsed.inbound);
                counter("applied");
                Ok(true)
            }
            Err(e) => {
                counter("rejected");
                // Said before it shows on /config, so whoever sees one can find the other.
                eprintln!("trellis-proxy: {e}; the last good config stays in force");
                self.store.reject("", "", &e.to_string());
                Err(LoadError::Refused(e.to_string()))
            }
        }
    }

    /// Watches the file until the process ends.
    pub async fn watch(self, mut last: Option<String>) {
        let mut last_error = None;
        loop {
            tokio::time::sleep(self.poll).await;
            match self.load(&mut last) {
                Ok(true) => {
                    eprintln!("trellis-proxy: applied {}", self.path.display());
                    last_error = None;
                }
                Ok(false) => {}
                // A refused file was reported by `load`; an unreadable one once here.
                Err(LoadError::Unreadable(e)) => {
                    if last_error.as_ref() != Some(&e) {
                        eprintln!("trellis-proxy: {e}; the last good config stays in force");
                        last_error = Some(e);
                    }
                }
                Err(LoadError::Refused(_)) => last_error = None,
            }
        }
    }
}
