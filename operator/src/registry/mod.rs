//! Local-mode workload registration (`Registry.Register`): a proxy says which workload it
//! serves, as a Pod appears in Kubernetes; the index matches Service selectors against it.
//!
//! ```text
//! proxy --Registration (first: register; later: replace)--> index: Update::Workload
//!       <--RegistrationStatus {identity, Services selecting it}--
//! stream ends --grace period, unless the workload registered again--> RemoveWorkload
//! ```
//!
//! With [`RegistryServer::persist`] the registrations survive an operator restart.

mod saved;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smi_crds::validate::{is_dns1123_label, is_dns1123_subdomain};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use trellis_proxy_api::v1 as api;

use crate::compile::spiffe_id;
use crate::index::{Index, ObjKey, Update, Workload, WorkloadPort};

/// How long a workload stays after its proxy's stream ended, by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct RegistryServer {
    index: Index,
    grace: Duration,
    /// The latest registration stream of each workload; a stream that ended removes the
    /// workload only if no newer one took over.
    streams: Arc<Mutex<HashMap<ObjKey, u64>>>,
    next: Arc<std::sync::atomic::AtomicU64>,
    /// Registrations kept across restarts ([`RegistryServer::persist`]).
    saved: Option<Arc<saved::Saved>>,
    /// Workloads restored at start whose proxy has not registered again yet.
    restored: Arc<Mutex<HashSet<ObjKey>>>,
}

impl RegistryServer {
    pub fn new(index: Index, grace: Duration) -> Self {
        Self {
            index,
            grace,
            streams: Arc::default(),
            next: Arc::default(),
            saved: None,
            restored: Arc::default(),
        }
    }

    /// Keeps registrations in `path` and restores the ones saved by the last run: each is
    /// in the index again at once, and removed after the grace period unless its proxy
    /// registers again (see [`saved`]). Returns how many were restored.
    pub fn persist(mut self, path: std::path::PathBuf) -> (Self, usize) {
        let saved = Arc::new(saved::Saved::load(path));
        let mut restored = 0;
        for registration in saved.all() {
            let Ok(workload) = workload_of(&registration) else {
                saved.remove(&registration.namespace, &registration.name);
                continue;
            };
            let key = workload.key.clone();
            self.index.update(Update::Workload(workload));
            self.restored
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone());
            restored += 1;
            let server = self.clone();
            let saved = saved.clone();
            tokio::spawn(async move {
                tokio::time::sleep(server.grace).await;
                let unclaimed = server
                    .restored
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                if unclaimed {
                    eprintln!(
                        "trellis operator: workload {key} removed: its proxy did not register again within {:?} of the restart",
                        server.grace
                    );
                    saved.remove(&key.namespace, &key.name);
                    server.index.update(Update::RemoveWorkload(key));
                }
            });
        }
        tokio::spawn(saved.clone().write_on_change());
        self.saved = Some(saved);
        (self, restored)
    }

    fn save(&self, registration: &api::Registration) {
        if let Some(saved) = &self.saved {
            saved.put(registration);
        }
    }

    pub fn service(self) -> api::registry_server::RegistryServer<Self> {
        api::registry_server::RegistryServer::new(self)
    }

    fn claim(&self, key: &ObjKey) -> u64 {
        self.restored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), id);
        id
    }

    /// Whether stream `id` is still the latest of `key` (and then forgets it).
    fn release(&self, key: &ObjKey, id: u64) -> bool {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if streams.get(key) == Some(&id) {
            streams.remove(key);
            true
        } else {
            false
        }
    }

    async fn status(&self, key: &ObjKey) -> api::RegistrationStatus {
        self.index.flush().await;
        let snapshot = self.index.snapshot();
        let reader = snapshot.reader();
        let trust_domain = reader.mesh_config().trust_domain;
        let Some(workload) = reader.workload(key) else {
            return api::RegistrationStatus::default();
        };
        api::RegistrationStatus {
            identity: spiffe_id(&trust_domain, &key.namespace, &workload.service_account),
            services: reader
                .services_in(&key.namespace)
                .into_iter()
                .filter(|s| {
                    s.selector
                        .as_ref()
                        .is_some_and(|sel| workload.selected_by(sel))
                })
                .map(|s| s.key.to_string())
                .collect(),
        }
    }
}

/// A registration as a workload; the error names the field and what would be valid.
pub fn workload_of(r: &api::Registration) -> Result<Workload, Status> {
    let invalid =
        |field: &str, message: String| Status::invalid_argument(format!("{field}: {message}"));
    if !is_dns1123_label(&r.namespace) {
        return Err(invalid(
            "namespace",
            format!(
                "{:?} is not a namespace name (lower-case letters, digits and '-')",
                r.namespace
            ),
        ));
    }
    if !is_dns1123_subdomain(&r.name) {
        return Err(invalid(
            "name",
            format!(
                "{:?} is not a workload name (lower-case letters, digits, '-' and '.')",
                r.name
            ),
        ));
    }
    if !is_dns1123_subdomain(&r.service_account) {
        return Err(invalid(
            "service_account",
            format!("{:?} is not a ServiceAccount name", r.service_account),
        ));
    }
    let addresses = r
        .addresses
        .iter()
        .map(|a| {
            a.parse::<IpAddr>()
                .map_err(|_| invalid("addresses", format!("{a:?} is not an IP address")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addresses.is_empty() {
        return Err(invalid(
            "addresses",
            "at least one IP address is required".into(),
        ));
    }
    let port = |field: &str, p: u32| {
        u16::try_from(p)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| invalid(field, format!("{p} is not a port number (1-65535)")))
    };
    let ports = r
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(WorkloadPort {
                name: p.name.clone(),
                port: port(&format!("ports[{i}].port"), p.port)?,
                protocol: p.protocol(),
            })
        })
        .collect::<Result<Vec<_>, Status>>()?;
    Ok(Workload {
        key: ObjKey::new(&r.namespace, &r.name),
        service_account: r.service_account.clone(),
        labels: Arc::new(r.labels.clone().into_iter().collect()),
        addresses,
        ports,
        ready: r.ready,
        meshed: true,
        inbound_port: match r.inbound_port {
            0 => None,
            p => Some(port("inbound_port", p)?),
        },
        admin_port: match r.admin_port {
            0 => None,
            p => Some(port("admin_port", p)?),
        },
    })
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<api::RegistrationStatus, Status>> + Send>>;

#[tonic::async_trait]
impl api::registry_server::Registry for RegistryServer {
    type RegisterStream = StatusStream;

    async fn register(
        &self,
        request: Request<Streaming<api::Registration>>,
    ) -> Result<Response<StatusStream>, Status> {
        let mut requests = request.into_inner();
        let first = requests
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the stream ended before the registration"))?;
        let workload = workload_of(&first)?;
        let key = workload.key.clone();
        let id = self.claim(&key);
        eprintln!(
            "trellis operator: workload {key} registered ({})",
            summary(&workload)
        );
        self.index.update(Update::Workload(workload));
        self.save(&first);
        let (tx, rx) = mpsc::channel(4);
        let _ = tx.send(Ok(self.status(&key).await)).await;
        let server = self.clone();
        tokio::spawn(async move {
            while let Ok(Some(next)) = requests.message().await {
                match workload_of(&next) {
                    Ok(w) if w.key == key => {
                        server.index.update(Update::Workload(w));
                        server.save(&next);
                        let _ = tx.send(Ok(server.status(&key).await)).await;
                    }
                    Ok(w) => {
                        let _ = tx
                            .send(Err(Status::invalid_argument(format!(
                                "namespace/name: a registration stream serves one workload ({key}), got {}",
                                w.key
                            ))))
                            .await;
                        break;
                    }
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                }
            }
            drop(tx);
            tokio::time::sleep(server.grace).await;
            if server.release(&key, id) {
                eprintln!(
                    "trellis operator: workload {key} removed: its proxy has been gone for {:?}",
                    server.grace
                );
                if let Some(saved) = &server.saved {
                    saved.remove(&key.namespace, &key.name);
                }
                server.index.update(Update::RemoveWorkload(key));
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn summary(w: &Workload) -> String {
    let addresses: Vec<String> = w.addresses.iter().map(ToString::to_string).collect();
    format!(
        "sa {}, {}{}, {}",
        w.service_account,
        addresses.join(","),
        w.inbound_port
            .map(|p| format!(" via :{p}"))
            .unwrap_or_default(),
        if w.ready { "ready" } else { "not ready" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(admin_port: u32) -> api::Registration {
        api::Registration {
            namespace: "shop".into(),
            name: "web-1".into(),
            service_account: "web".into(),
            addresses: vec!["127.0.0.1".into()],
            ready: true,
            admin_port,
            ..api::Registration::default()
        }
    }

    #[test]
    fn the_admin_port_registered_is_where_the_workloads_metrics_are_scraped() {
        assert_eq!(
            workload_of(&registration(4191)).unwrap().admin_port,
            Some(4191)
        );
        assert_eq!(
            workload_of(&registration(0)).unwrap().admin_port,
            None,
            "0: an older proxy that does not say"
        );
        let refused = workload_of(&registration(70_000)).unwrap_err();
        assert_eq!(
            refused.message(),
            "admin_port: 70000 is not a port number (1-65535)"
        );
    }
}
