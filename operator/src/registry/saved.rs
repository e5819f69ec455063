//! Registrations kept across operator restarts, in `<data-dir>/registrations.json`.
//!
//! A restarted operator would otherwise start with no workloads: the proxies reconnect
//! their watches and their registrations in parallel, and a watch answered first would get
//! a config without the workloads (no endpoints; an inbound policy for an unknown
//! workload), so calls fail for a moment. Restoring the last registrations makes the first
//! configs after a restart equal to the last ones before it (same content, same version:
//! nothing is pushed). A restored workload whose proxy does not register again within the
//! registration grace period is removed, as if its stream had just ended.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use trellis_proxy_api::v1 as api;

/// How long changes are gathered before the file is written (many proxies registering at
/// once cost one write).
const WRITE_DELAY: Duration = Duration::from_millis(200);

pub struct Saved {
    path: PathBuf,
    entries: Mutex<BTreeMap<String, api::Registration>>,
    changed: Notify,
}

fn key(r: &api::Registration) -> String {
    format!("{}/{}", r.namespace, r.name)
}

impl Saved {
    /// Reads the file (a missing or unreadable file is an empty set, said on stderr).
    pub fn load(path: PathBuf) -> Saved {
        let entries: BTreeMap<String, api::Registration> = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Vec<api::Registration>>(&bytes) {
                Ok(list) => list.into_iter().map(|r| (key(&r), r)).collect(),
                Err(e) => {
                    eprintln!(
                        "trellis operator: {}: {e}; starting without saved registrations",
                        path.display()
                    );
                    BTreeMap::new()
                }
            },
            Err(_) => BTreeMap::new(),
        };
        Saved {
            path,
            entries: Mutex::new(entries),
            changed: Notify::new(),
        }
    }

    pub fn all(&self) -> Vec<api::Registration> {
        self.lock().values().cloned().collect()
    }

    pub fn put(&self, registration: &api::Registration) {
        let previous = self.lock().insert(key(registration), registration.clone());
        if previous.as_ref() != Some(registration) {
            self.changed.notify_one();
        }
    }

    pub fn remove(&self, namespace: &str, name: &str) {
        if self.lock().remove(&format!("{namespace}/{name}")).is_some() {
            self.changed.notify_one();
        }
    }

    /// Writes the file after each burst of changes, until dropped.
    pub async fn write_on_change(self: std::sync::Arc<Self>) {
        loop {
            self.changed.notified().await;
            tokio::time::sleep(WRITE_DELAY).await;
            let list = self.all();
            let json = serde_json::to_vec_pretty(&list).expect("registrations serialize");
            let tmp = self.path.with_extension("json.tmp");
            let written =
                std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, &self.path));
            if let Err(e) = written {
                eprintln!(
                    "trellis operator: saving registrations to {}: {e}",
                    self.path.display()
                );
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, api::Registration>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(name: &str, ready: bool) -> api::Registration {
        api::Registration {
            namespace: "shop".into(),
            name: name.into(),
            service_account: "web".into(),
            addresses: vec!["127.0.0.1".into()],
            ready,
            admin_port: 4191,
            ..api::Registration::default()
        }
    }

    #[tokio::test]
    async fn registrations_written_are_read_back_by_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registrations.json");
        let saved = std::sync::Arc::new(Saved::load(path.clone()));
        let writer = tokio::spawn(saved.clone().write_on_change());
        saved.put(&registration("web-1", true));
        saved.put(&registration("web-2", false));
        saved.remove("shop", "web-2");
        tokio::time::sleep(WRITE_DELAY * 3).await;
        writer.abort();
        let next = Saved::load(path);
        assert_eq!(next.all(), vec![registration("web-1", true)]);
    }

    #[test]
    fn a_file_saved_before_admin_ports_were_registered_is_read_with_the_port_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registrations.json");
        let old = r#"[{"namespace": "shop", "name": "web-1", "service_account": "web",
                       "addresses": ["127.0.0.1"], "ready": true, "inbound_port": 5001}]"#;
        std::fs::write(&path, old).unwrap();
        let read = Saved::load(path).all();
        assert_eq!(
            read,
            vec![api::Registration {
                inbound_port: 5001,
                admin_port: 0,
                ..registration("web-1", true)
            }]
        );
    }

    #[test]
    fn an_unreadable_file_is_an_empty_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registrations.json");
        std::fs::write(&path, "{not json").unwrap();
        assert!(Saved::load(path).all().is_empty());
    }
}
