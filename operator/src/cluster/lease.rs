//! Leader election with a `coordination.k8s.io/v1` Lease: only the leader writes status
//! and Events; every replica serves proxies and webhooks.
//!
//! ```text
//! every RENEW: GET lease --absent--> create it, holder = me ------------------> leader
//!                        --held by me--> renewTime = now (PUT, resourceVersion) --> leader
//!                        --expired or unheld--> take it over (PUT, transitions+1) --> leader
//!                        --held by another, not expired--------------------------> follower
//!              a 409 Conflict (someone else wrote first) or an error -> follower
//! ```
//!
//! [`decide`] is the pure rule; [`Elector`] the thin adapter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

/// How long a lease holds without renewal.
pub const DURATION: Duration = Duration::from_secs(15);
/// How often the lease is renewed (or tried).
pub const RENEW: Duration = Duration::from_secs(5);

/// What to do with the lease as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or the holder let it expire: take it over.
    Take,
    /// It is ours: renew it.
    Renew,
    /// Someone else holds it.
    Follow { holder: String },
}

/// The rule, given the lease's spec and the time now.
pub fn decide(spec: &LeaseSpec, me: &str, now: Timestamp) -> Decision {
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() {
        return Decision::Take;
    }
    if holder == me {
        return Decision::Renew;
    }
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0);
    let duration = i64::from(
        spec.lease_duration_seconds
            .unwrap_or(DURATION.as_secs() as i32),
    );
    let expired = renewed.is_none_or(|t| now.as_second() > t.as_second() + duration);
    if expired {
        Decision::Take
    } else {
        Decision::Follow {
            holder: holder.to_owned(),
        }
    }
}

pub fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    Timestamp::from_microsecond(micros as i64).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Takes and renews one Lease for one identity (the operator's Pod name).
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
}

impl Elector {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
        }
    }

    /// One round: whether this replica leads afterwards.
    pub async fn step(&self) -> kube::Result<bool> {
        let now = now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.held(now, 0, now)),
            };
            return conflict_is_no(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        lease.spec = Some(match decide(&spec, &self.identity, now) {
            Decision::Follow { .. } => return Ok(false),
            Decision::Renew => LeaseSpec {
                renew_time: Some(MicroTime(now)),
                lease_duration_seconds: Some(DURATION.as_secs() as i32),
                ..spec
            },
            Decision::Take => self.held(now, transitions + 1, now),
        });
        // The resourceVersion read makes the write fail if another replica wrote first.
        conflict_is_no(
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await,
        )
    }

    fn held(&self, acquired: Timestamp, transitions: i32, now: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(DURATION.as_secs() as i32),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Runs [`Elector::step`] every [`RENEW`]; the receiver says whether this replica leads.
    /// An error makes it a follower until the next round (a leader that cannot renew stops
    /// writing before its lease can expire and be taken over).
    pub fn spawn(self) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(RENEW);
            loop {
                ticks.tick().await;
                let leading = match self.step().await {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("trellis operator: lease {}: {e}", self.name);
                        false
                    }
                };
                tx.send_if_modified(|was| {
                    let changed = *was != leading;
                    if changed {
                        eprintln!(
                            "trellis operator: {} the leader (lease {}): {}",
                            if leading { "now" } else { "no longer" },
                            self.name,
                            if leading {
                                "writing status and Events"
                            } else {
                                "another replica writes status"
                            }
                        );
                    }
                    *was = leading;
                    changed
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        rx
    }
}

fn conflict_is_no<T>(result: kube::Result<T>) -> kube::Result<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            ..LeaseSpec::default()
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    #[test]
    fn an_unheld_lease_is_taken_and_our_own_is_renewed() {
        assert_eq!(decide(&spec(None, 100), "op-a", at(101)), Decision::Take);
        assert_eq!(
            decide(&spec(Some("op-a"), 100), "op-a", at(101)),
            Decision::Renew
        );
    }

    #[test]
    fn another_holder_is_followed_until_its_lease_expires() {
        assert_eq!(
            decide(&spec(Some("op-b"), 100), "op-a", at(115)),
            Decision::Follow {
                holder: "op-b".into()
            }
        );
        assert_eq!(
            decide(&spec(Some("op-b"), 100), "op-a", at(116)),
            Decision::Take
        );
    }
}
