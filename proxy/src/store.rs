//! The config in force: one snapshot, replaced whole on every change.
//!
//! Writers (the file watcher, one Discovery watch per destination) apply configs through
//! [`Store`]; a config that does not validate is refused (a NACK) and the previous one stays
//! in force. Readers (the route layer, `/config`) take the current snapshot from a
//! `tokio::sync::watch`, so a new config applies to the next request, on existing
//! connections too, and no lock is held across an `.await`.
//!
//! The inbound policy is part of the snapshot (a file applies its outbound and inbound parts
//! together) and is also published on a watch of its own ([`Store::inbound_watch`]) for the
//! inbound authorize layer and the inbound listener.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use trellis_proxy_api::v1 as api;

use crate::config::{ConfigError, Inbound, Outbound};

/// One destination's config in force.
#[derive(Debug)]
pub struct Destination {
    pub config: Arc<Outbound>,
    /// The message it was built from (shown on `/config`).
    pub source: api::OutboundConfig,
    pub applied_at: SystemTime,
    last_used: AtomicU64,
}

impl Destination {
    /// Milliseconds since the store started at which a request last used this config.
    pub fn last_used_ms(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }
}

/// The inbound policy in force.
#[derive(Debug)]
pub struct InboundPolicy {
    pub config: Arc<Inbound>,
    /// The message it was built from (shown on `/config`).
    pub source: api::InboundConfig,
    pub applied_at: SystemTime,
}

/// Key of a refused inbound policy in [`Snapshot::rejected`].
pub const INBOUND_KEY: &str = "inbound";

/// A config that was refused, with the reason sent back as the NACK.
#[derive(Clone, Debug)]
pub struct Rejected {
    pub version: String,
    pub reason: String,
    pub at: SystemTime,
}

/// Everything in force at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// By authority as requested (lower case).
    pub outbound: BTreeMap<String, Arc<Destination>>,
    /// The inbound policy; `None`: none has arrived yet.
    pub inbound: Option<Arc<InboundPolicy>>,
    /// The last refused config per authority (`""` for a whole file, [`INBOUND_KEY`] for
    /// the inbound policy).
    pub rejected: BTreeMap<String, Rejected>,
    /// Why the proxy is not ready, if it is not.
    pub not_ready: Option<String>,
    /// Where configs come from (`file:proxy.yaml`, `grpc:http://...`).
    pub source: String,
    /// This proxy's mTLS identity, when it has one (or waits for one).
    pub identity: IdentityStatus,
}

/// The certificate in force, as `/ready` and `/config` show it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IdentityStatus {
    /// The SPIFFE id of the certificate in force.
    pub id: Option<String>,
    pub valid_until: Option<SystemTime>,
    pub renew_at: Option<SystemTime>,
    /// Why the proxy is not ready as far as its identity goes (no certificate yet).
    pub not_ready: Option<String>,
    /// The last renewal failure, kept until a renewal succeeds.
    pub last_error: Option<String>,
}

impl Snapshot {
    /// The destination for an authority as a request wrote it: exactly, then without port.
    pub fn lookup(&self, authority: &str) -> Option<&Arc<Destination>> {
        let key = normalize(authority);
        self.outbound.get(&*key).or_else(|| {
            let host = strip_port(&key)?;
            self.outbound.get(host)
        })
    }
}

/// Lower case, without the trailing dot of a fully qualified name (`web.shop.` or
/// `web.shop.:80`).
pub fn normalize(authority: &str) -> Cow<'_, str> {
    let plain = !authority.bytes().any(|b| b.is_ascii_uppercase())
        && !authority.ends_with('.')
        && !authority.contains(".:");
    if plain {
        return Cow::Borrowed(authority);
    }
    let lower = authority.to_ascii_lowercase();
    match lower.rsplit_once(':') {
        Some((host, port)) if host.ends_with('.') && port.bytes().all(|b| b.is_ascii_digit()) => {
            Cow::Owned(format!("{}:{port}", host.trim_end_matches('.')))
        }
        _ => Cow::Owned(lower.trim_end_matches('.').to_owned()),
    }
}

fn strip_port(authority: &str) -> Option<&str> {
    let (host, port) = authority.rsplit_once(':')?;
    (port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(':')).then_some(host)
}

/// The config store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    tx: watch::Sender<Arc<Snapshot>>,
    inbound_tx: watch::Sender<Option<Arc<Inbound>>>,
    started: Instant,
    /// Discovery mode: authorities never seen are sent here to be subscribed.
    on_demand: OnceLock<mpsc::UnboundedSender<String>>,
}

impl Store {
    pub fn new(source: impl Into<String>) -> Self {
        let snapshot = Snapshot {
            source: source.into(),
            not_ready: Some("no config read yet".into()),
            ..Snapshot::default()
        };
        Self {
            inner: Arc::new(Inner {
                tx: watch::channel(Arc::new(snapshot)).0,
                inbound_tx: watch::channel(None).0,
                started: Instant::now(),
                on_demand: OnceLock::new(),
            }),
        }
    }

    /// Sends destinations never seen to `subscribe` (the Discovery client).
    pub fn subscribe_on_demand(&self, subscribe: mpsc::UnboundedSender<String>) {
        let _ = self.inner.on_demand.set(subscribe);
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.tx.borrow().clone()
    }

    pub fn watch(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.inner.tx.subscribe()
    }

    /// The inbound policy in force, `None` until one arrives.
    pub fn inbound_watch(&self) -> watch::Receiver<Option<Arc<Inbound>>> {
        self.inner.inbound_tx.subscribe()
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.inner.started.elapsed().as_millis() as u64
    }

    /// The destination config for `authority`. In discovery mode an authority never seen
    /// is subscribed to and waited for, up to `wait`.
    pub async fn resolve(&self, authority: &str, wait: Duration) -> Option<Arc<Destination>> {
        let now = self.elapsed_ms();
        if let Some(dest) = self.snapshot().lookup(authority) {
            dest.last_used.store(now, Ordering::Relaxed);
            return Some(dest.clone());
        }
        let subscribe = self.inner.on_demand.get()?;
        let key = normalize(authority).into_owned();
        let mut rx = self.watch();
        let _ = subscribe.send(key.clone());
        let found = tokio::time::timeout(
            wait,
            rx.wait_for(|s| s.lookup(&key).is_some() || s.rejected.contains_key(&key)),
        )
        .await
        .ok()?
        .ok()?
        .lookup(&key)
        .cloned();
        if let Some(dest) = &found {
            dest.last_used.store(now, Ordering::Relaxed);
        }
        found
    }

    /// Validates and applies one destination's config; on error the previous one stays.
    pub fn apply(&self, authority: &str, source: api::OutboundConfig) -> Result<(), ConfigError> {
        let key = normalize(authority).into_owned();
        match Outbound::try_from(source.clone()) {
            Ok(config) => {
                let dest = self.destination(config, source);
                self.inner.tx.send_modify(|s| {
                    let s = Arc::make_mut(s);
                    s.outbound.insert(key.clone(), dest);
                    s.rejected.remove(&key);
                });
                Ok(())
            }
            Err(e) => {
                self.reject(&key, &source.version, &e.to_string());
                Err(e)
            }
        }
    }

    /// Validates and applies an inbound policy; on error the previous one stays.
    pub fn apply_inbound(&self, source: api::InboundConfig) -> Result<(), ConfigError> {
        match Inbound::try_from(source.clone()) {
            Ok(config) => {
                let policy = inbound_policy(config, source);
                self.inner.tx.send_modify(|s| {
                    let s = Arc::make_mut(s);
                    s.inbound = Some(policy.clone());
                    s.rejected.remove(INBOUND_KEY);
                });
                self.inner
                    .inbound_tx
                    .send_replace(Some(policy.config.clone()));
                Ok(())
            }
            Err(e) => {
                self.reject(INBOUND_KEY, &source.version, &e.to_string());
                Err(e)
            }
        }
    }

    /// Replaces every destination and the inbound policy at once (a whole config file).
    pub fn replace_all(
        &self,
        configs: Vec<(String, Outbound, api::OutboundConfig)>,
        inbound: (Inbound, api::InboundConfig),
    ) {
        let inbound = inbound_policy(inbound.0, inbound.1);
        let outbound = configs
            .into_iter()
            .map(|(authority, config, source)| {
                (
                    normalize(&authority).into_owned(),
                    self.destination(config, source),
                )
            })
            .collect();
        self.inner.tx.send_modify(|s| {
            let s = Arc::make_mut(s);
            s.outbound = outbound;
            s.inbound = Some(inbound.clone());
            s.rejected.clear();
            s.not_ready = None;
        });
        self.inner
            .inbound_tx
            .send_replace(Some(inbound.config.clone()));
    }

    /// Records a refused config; everything in force stays.
    pub fn reject(&self, authority: &str, version: &str, reason: &str) {
        let rejected = Rejected {
            version: version.to_owned(),
            reason: reason.to_owned(),
            at: SystemTime::now(),
        };
        self.inner.tx.send_modify(|s| {
            Arc::make_mut(s)
                .rejected
                .insert(normalize(authority).into_owned(), rejected);
        });
    }

    /// Drops a destination (its subscription ended as idle).
    pub fn remove(&self, authority: &str) {
        self.inner.tx.send_modify(|s| {
            let s = Arc::make_mut(s);
            s.outbound.remove(authority);
            s.rejected.remove(authority);
        });
    }

    /// Records the state of the proxy's certificate.
    pub fn set_identity(&self, status: IdentityStatus) {
        self.inner.tx.send_if_modified(|s| {
            if s.identity == status {
                return false;
            }
            Arc::make_mut(s).identity = status;
            true
        });
    }

    /// Marks the proxy ready (`None`) or not, with the reason.
    pub fn set_not_ready(&self, reason: Option<String>) {
        self.inner.tx.send_if_modified(|s| {
            if s.not_ready == reason {
                return false;
            }
            Arc::make_mut(s).not_ready = reason;
            true
        });
    }

    fn destination(&self, config: Outbound, source: api::OutboundConfig) -> Arc<Destination> {
        Arc::new(Destination {
            config: Arc::new(config),
            source,
            applied_at: SystemTime::now(),
            last_used: AtomicU64::new(self.elapsed_ms()),
        })
    }
}

fn inbound_policy(config: Inbound, source: api::InboundConfig) -> Arc<InboundPolicy> {
    Arc::new(InboundPolicy {
        config: Arc::new(config),
        source,
        applied_at: SystemTime::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_config(version: &str, path_regex: &str) -> api::OutboundConfig {
        api::OutboundConfig {
            version: version.into(),
            routes: vec![api::Route {
                name: "default".into(),
                matches: vec![api::HttpMatch {
                    path_regex: path_regex.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_refused_config_keeps_the_last_good_one_in_force() {
        let store = Store::new("test");
        store.apply("web", mk_config("1", "/")).unwrap();
        let err = store.apply("web", mk_config("2", "(")).unwrap_err();
        assert_eq!(err.field, "routes[0].matches[0].path_regex");
        let s = store.snapshot();
        assert_eq!(s.lookup("web").unwrap().config.version, "1");
        assert_eq!(s.rejected["web"].version, "2");
    }

    #[test]
    fn an_authority_is_found_with_or_without_its_port_and_in_any_case() {
        let store = Store::new("test");
        store.apply("web.shop", mk_config("1", "")).unwrap();
        let s = store.snapshot();
        assert!(s.lookup("WEB.shop:8080").is_some());
        assert!(s.lookup("web.shop").is_some());
        assert!(s.lookup("web.shop.").is_some(), "a fully qualified name");
        assert!(s.lookup("web.shop.:80").is_some());
        assert!(s.lookup("web").is_none());
    }

    #[test]
    fn an_inbound_policy_is_in_the_snapshot_and_on_its_watch_and_a_bad_one_is_refused() {
        let store = Store::new("test");
        let inbound = store.inbound_watch();
        assert!(inbound.borrow().is_none(), "no policy before one arrives");
        let good = api::InboundConfig {
            version: "1".into(),
            ..Default::default()
        };
        store.apply_inbound(good).unwrap();
        let bad = api::InboundConfig {
            version: "2".into(),
            ports: vec![api::InboundPort::default()],
            ..Default::default()
        };
        let err = store.apply_inbound(bad).unwrap_err();

        assert_eq!(err.field, "ports[0].port");
        assert_eq!(inbound.borrow().as_ref().unwrap().version, "1");
        let s = store.snapshot();
        assert_eq!(s.inbound.as_ref().unwrap().config.version, "1");
        assert_eq!(s.rejected[INBOUND_KEY].version, "2");
    }

    #[test]
    fn a_whole_file_replaces_outbound_and_inbound_together() {
        let store = Store::new("test");
        let outbound = Outbound::try_from(mk_config("1", "/")).unwrap();
        store.replace_all(
            vec![("web".into(), outbound, mk_config("1", "/"))],
            (Inbound::permissive("f1"), api::InboundConfig::default()),
        );
        let s = store.snapshot();
        assert!(s.lookup("web").is_some());
        assert_eq!(s.inbound.as_ref().unwrap().config.version, "f1");
        assert_eq!(
            store.inbound_watch().borrow().as_ref().unwrap().version,
            "f1"
        );
    }

    #[tokio::test]
    async fn an_unknown_authority_is_subscribed_and_waited_for() {
        let store = Store::new("test");
        let (tx, mut rx) = mpsc::unbounded_channel();
        store.subscribe_on_demand(tx);
        let writer = store.clone();
        tokio::spawn(async move {
            let authority = rx.recv().await.unwrap();
            writer.apply(&authority, mk_config("7", "")).unwrap();
        });
        let dest = store.resolve("api:80", Duration::from_secs(5)).await;
        assert_eq!(dest.unwrap().config.version, "7");
    }
}
