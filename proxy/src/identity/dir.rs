//! Credentials from files: `cert.pem` (leaf, then intermediates), `key.pem`, `roots.pem`
//! (every trusted root; during a rotation the old and the new). Checked every second;
//! a change that does not load is reported and the credentials in force stay.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::put_in_force;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::tls::{Credentials, Tls};

const POLL: Duration = Duration::from_secs(1);

/// The three files' contents, to notice a change.
fn read_all(dir: &std::path::Path) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    for name in ["cert.pem", "key.pem", "roots.pem"] {
        all.extend(std::fs::read(dir.join(name)).ok()?);
        all.push(0);
    }
    Some(all)
}

pub async fn watch(dir: PathBuf, tls: Arc<Tls>, store: Store, metrics: Arc<Metrics>) {
    let mut seen = read_all(&dir);
    loop {
        tokio::time::sleep(POLL).await;
        let now = read_all(&dir);
        if now.is_none() || now == seen {
            continue;
        }
        seen = now;
        match Credentials::load(&dir) {
            Ok(credentials) => {
                let id = credentials.identity.to_string();
                match put_in_force(&tls, credentials, &store, &metrics, SystemTime::now()) {
                    Ok(_) => eprintln!(
                        "trellis-proxy: new credentials from {} in force ({id})",
                        dir.display()
                    ),
                    Err(e) => eprintln!(
                        "trellis-proxy: {}: {e}; the credentials in force stay",
                        dir.display()
                    ),
                }
            }
            Err(e) => eprintln!("trellis-proxy: {e}; the credentials in force stay"),
        }
    }
}
