//! The canary controller's adapter as a specification: a real index fed the way the Git
//! source and registered proxies feed it, the controller ticked by hand (the analysis
//! interval is 10 ms: each tick waits past it), webhooks served by real HTTP servers on
//! loopback. No proxies: the Canaries have no metrics, so only webhooks can fail a check.
//!
//! ```text
//! git: Services web, web-stable, web-canary + Canary shop/web (+ a TrafficSplit)
//! workloads: web-stable-1 (app=web-stable, version=v1), web-canary-1 (app=web-canary, version=v2)
//!   --> Controller::tick --> source `canary`: TrafficSplit shop/web (web-stable, web-canary)
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use trellis_operator::canary::controller::{CanaryView, Controller};
use trellis_operator::index::{Index, ObjKey, Options, Update, Workload, WorkloadPort};
use trellis_operator::metrics::Metrics;
use trellis_operator::{manifest, source};
use trellis_proxy_api::v1::ProtocolHint;

const SERVICES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-stable, namespace: shop}
spec: {selector: {app: web-stable}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-canary, namespace: shop}
spec: {selector: {app: web-canary}, ports: [{name: http, port: 80, targetPort: 8080}]}
";

/// The analysis interval of every Canary here; a tick waits longer than this.
const INTERVAL: Duration = Duration::from_millis(10);

/// Canary shop/web moving `web` from `web-stable` to `web-canary`; `analysis` is the rest
/// of `spec.analysis`, indented by 4.
fn mk_canary(analysis: &str) -> String {
    format!(
        "apiVersion: trellis.dev/v1alpha1
kind: Canary
metadata: {{name: web, namespace: shop, uid: 0b9c4e1e-7d4a-4f6e-9a57-5c2d1f0e8a31}}
spec:
  service: web
  stable: web-stable
  canary: web-canary
  analysis:
    interval: {}ms
{analysis}",
        INTERVAL.as_millis()
    )
}

/// A TrafficSplit shop/web committed to Git: the name the Canary generates.
const GIT_SPLIT: &str = "\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web, namespace: shop}
spec:
  service: web
  backends: [{service: web-stable, weight: 90}, {service: web-canary, weight: 10}]
";

/// A registered workload behind backend `app` running `version`.
fn mk_workload(name: &str, app: &str, version: &str, ip: &str) -> Workload {
    Workload {
        key: ObjKey::new("shop", name),
        service_account: app.into(),
        labels: Arc::new(BTreeMap::from([
            ("app".to_owned(), app.to_owned()),
            ("version".to_owned(), version.to_owned()),
        ])),
        addresses: vec![ip.parse().unwrap()],
        ports: vec![WorkloadPort {
            name: "http".into(),
            port: 8080,
            protocol: ProtocolHint::Unspecified,
        }],
        ready: true,
        meshed: true,
        inbound_port: None,
        admin_port: None,
    }
}

fn stable(version: &str) -> Workload {
    mk_workload("web-stable-1", "web-stable", version, "127.0.0.1")
}

fn canary(version: &str) -> Workload {
    mk_workload("web-canary-1", "web-canary", version, "127.0.0.2")
}

/// What a Git sync of `manifests` gives the index, read as the Git source reads a commit.
fn git(manifests: &[&str]) -> Update {
    let dir = tempfile::tempdir().unwrap();
    for (i, text) in manifests.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{i}.yaml")), text).unwrap();
    }
    let loaded = manifest::load(&[dir.path().to_owned()]).unwrap();
    let read = source::manifests::read(&loaded, "git", dir.path(), Some("c0ffee"));
    assert!(read.file_errors.is_empty(), "{:?}", read.file_errors);
    Update::Source {
        name: "git".into(),
        objects: read.objects,
    }
}

/// An index holding `manifests` (from Git) and the two workloads: stable v1, canary v2.
async fn mk_index(manifests: &[&str]) -> Index {
    let index = Index::spawn(Options {
        endpoints_from_workloads: true,
    });
    index.update(git(manifests));
    index.update(Update::Workload(stable("v1")));
    index.update(Update::Workload(canary("v2")));
    index.flush().await;
    index
}

struct Mesh {
    index: Index,
    controller: Controller,
}

impl Mesh {
    /// The Services and `canary_yaml` in Git, stable v1 and canary v2 registered.
    async fn start(canary_yaml: &str) -> Mesh {
        Mesh::with(&[SERVICES, canary_yaml]).await
    }

    async fn with(manifests: &[&str]) -> Mesh {
        let index = mk_index(manifests).await;
        let controller = Controller::new(index.clone(), Arc::new(Metrics::new()));
        Mesh { index, controller }
    }

    /// One tick once the Canary is due; returns once its split is in the index.
    async fn tick(&mut self) {
        tokio::time::sleep(INTERVAL * 2).await;
        self.controller.tick().await;
        self.index.flush().await;
    }

    /// A new Git commit holding `manifests`.
    async fn sync(&self, manifests: &[&str]) {
        self.index.update(git(manifests));
        self.index.flush().await;
    }

    async fn register(&self, workload: Workload) {
        self.index.update(Update::Workload(workload));
        self.index.flush().await;
    }

    /// The (stable, canary) weights of TrafficSplit shop/web in the index.
    fn weights(&self) -> Option<(u32, u32)> {
        weights(&self.index)
    }

    fn view(&self) -> CanaryView {
        let views = self.controller.views();
        let views = views.lock().unwrap();
        assert_eq!(views.len(), 1, "{views:?}");
        views[0].clone()
    }

    fn phase(&self) -> String {
        self.view().status.phase.unwrap_or_default()
    }

    /// The reasons of the Canary's events, oldest first.
    fn events(&self) -> Vec<String> {
        self.view().events.into_iter().map(|e| e.reason).collect()
    }
}

fn weights(index: &Index) -> Option<(u32, u32)> {
    let snapshot = index.snapshot();
    let split = snapshot.traffic_split(&ObjKey::new("shop", "web"))?;
    let backends: Vec<(&str, u32)> = split
        .spec
        .backends
        .iter()
        .map(|b| (b.service.as_str(), b.weight.whole().expect("whole weights")))
        .collect();
    match backends.as_slice() {
        [("web-stable", stable), ("web-canary", canary)] => Some((*stable, *canary)),
        other => panic!("backends {other:?}"),
    }
}

/// The source the index says TrafficSplit shop/web comes from.
fn split_source(index: &Index) -> Option<String> {
    index
        .snapshot()
        .statuses()
        .into_iter()
        .find(|(r, _)| r.to_string() == "TrafficSplit shop/web")
        .map(|(_, s)| s.origin.source.clone())
}

/// A webhook receiver on loopback answering its current status, keeping the `type` of
/// every call.
struct Gate {
    url: String,
    status: Arc<AtomicU16>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Gate {
    async fn start(status: u16) -> Gate {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/gate", listener.local_addr().unwrap());
        let status = Arc::new(AtomicU16::new(status));
        let calls: Arc<Mutex<Vec<String>>> = Arc::default();
        let (answer, seen) = (status.clone(), calls.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (answer, seen) = (answer.clone(), seen.clone());
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (answer, seen) = (answer.clone(), seen.clone());
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        seen.lock()
                            .unwrap()
                            .push(body["type"].as_str().unwrap().to_owned());
                        let status = StatusCode::from_u16(answer.load(Ordering::SeqCst));
                        Ok::<_, std::convert::Infallible>(
                            Response::builder()
                                .status(status.unwrap())
                                .body(Full::new(Bytes::from_static(b"gate closed")))
                                .unwrap(),
                        )
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Gate { url, status, calls }
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// `spec.analysis.webhooks` with this gate as a webhook of `type_`.
    fn webhooks(&self, type_: &str) -> String {
        format!(
            "    webhooks:\n    - {{name: gate, type: {type_}, url: \"{}\", timeout: 2s}}\n",
            self.url
        )
    }
}

#[tokio::test]
async fn the_generated_split_starts_all_on_stable_owned_by_the_canary_and_steps_to_promotion() {
    let mut mesh = Mesh::start(&mk_canary("    stepWeight: 50\n")).await;
    assert_eq!(mesh.weights(), None, "nothing before the first tick");

    mesh.tick().await;
    assert_eq!(mesh.weights(), Some((100, 0)));
    let snapshot = mesh.index.snapshot();
    let split = snapshot.traffic_split(&ObjKey::new("shop", "web")).unwrap();
    let owner = &split.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("Canary", "web", "0b9c4e1e-7d4a-4f6e-9a57-5c2d1f0e8a31")
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(split_source(&mesh.index).as_deref(), Some("canary"));
    assert_eq!(mesh.phase(), "Progressing");

    let mut seen = Vec::new();
    for _ in 0..3 {
        mesh.tick().await;
        seen.push((mesh.weights().unwrap(), mesh.phase()));
    }
    assert_eq!(
        seen,
        [
            ((50, 50), "Progressing".to_owned()),
            ((0, 100), "Progressing".to_owned()),
            ((0, 100), "Succeeded".to_owned()),
        ],
        "stepWeight 50 up to maxWeight 100, then promotion"
    );
    assert_eq!(
        mesh.events(),
        ["Started", "Advanced", "Advanced", "Succeeded"]
    );
    let status = mesh.view().status;
    assert_eq!(status.target.as_deref(), Some("v2"));
    assert_eq!(
        (
            status.conditions[0].status.as_str(),
            status.conditions[0].reason.as_str()
        ),
        ("True", "Succeeded")
    );
}

#[tokio::test]
async fn a_new_version_on_the_canary_backend_mid_run_restarts_the_run_at_weight_0() {
    let mut mesh = Mesh::start(&mk_canary("    stepWeight: 20\n")).await;
    mesh.tick().await;
    mesh.tick().await;
    mesh.tick().await;
    assert_eq!(mesh.weights(), Some((60, 40)));

    mesh.register(canary("v3")).await;
    mesh.tick().await;
    assert_eq!(mesh.weights(), Some((100, 0)));
    let view = mesh.view();
    assert_eq!(view.status.target.as_deref(), Some("v3"));
    assert_eq!(view.status.phase.as_deref(), Some("Progressing"));
    let last = view.events.last().unwrap();
    assert_eq!(last.reason, "Restarted");
    assert_eq!(
        last.message,
        "new canary target v3: analysis starts at weight 0"
    );

    mesh.tick().await;
    assert_eq!(mesh.weights(), Some((80, 20)), "the new run steps again");
}

#[tokio::test]
async fn a_split_of_the_canarys_name_in_git_is_a_conflict_and_nothing_is_published() {
    let mut mesh = Mesh::with(&[SERVICES, &mk_canary("    stepWeight: 50\n"), GIT_SPLIT]).await;
    mesh.tick().await;
    mesh.tick().await;
    assert_eq!(mesh.weights(), Some((90, 10)), "Git's split stays in force");
    assert_eq!(split_source(&mesh.index).as_deref(), Some("git"));
    let status = mesh.view().status;
    let ready = &status.conditions[0];
    assert_eq!(
        (
            ready.type_.as_str(),
            ready.status.as_str(),
            ready.reason.as_str()
        ),
        ("Ready", "False", "Conflicted")
    );
    assert_eq!(
        ready.message,
        "TrafficSplit shop/web comes from git (2.yaml): the Canary generates and owns that split; delete it from Git or set spec.trafficSplit to another name"
    );
    assert_eq!(status.message.as_ref(), Some(&ready.message));

    // Once the split leaves Git, the Canary's own takes its place.
    mesh.sync(&[SERVICES, &mk_canary("    stepWeight: 50\n")])
        .await;
    mesh.tick().await;
    assert_eq!(split_source(&mesh.index).as_deref(), Some("canary"));
    assert_ne!(mesh.view().status.conditions[0].reason, "Conflicted");
}

// A split committed to Git under the generated name mid-run is Git's from then on: the
// controller stops publishing its own, and its next publish (without the split) does not
// delete the object Git now holds (the index writer only deletes what no other source
// holds).
#[tokio::test]
async fn a_split_of_the_canarys_name_committed_to_git_mid_run_stays_in_force() {
    let mut mesh = Mesh::start(&mk_canary("    stepWeight: 50\n")).await;
    mesh.tick().await;
    mesh.tick().await;
    assert_eq!(mesh.weights(), Some((50, 50)));

    mesh.sync(&[SERVICES, &mk_canary("    stepWeight: 50\n"), GIT_SPLIT])
        .await;
    for _ in 0..3 {
        mesh.tick().await;
        assert_eq!(mesh.weights(), Some((90, 10)), "Git's split stays in force");
        assert_eq!(split_source(&mesh.index).as_deref(), Some("git"));
        assert_eq!(mesh.view().status.conditions[0].reason, "Conflicted");
    }
}

#[tokio::test]
async fn a_pre_rollout_webhook_answering_500_is_a_failed_check_and_moves_no_traffic() {
    let gate = Gate::start(500).await;
    let analysis = format!("    stepWeight: 50\n{}", gate.webhooks("pre-rollout"));
    let mut mesh = Mesh::start(&mk_canary(&analysis)).await;
    mesh.tick().await;
    mesh.tick().await;
    assert_eq!(gate.calls(), ["pre-rollout"]);
    assert_eq!(mesh.weights(), Some((100, 0)));
    let view = mesh.view();
    assert_eq!(view.status.failed_checks, 1);
    assert_eq!(view.status.phase.as_deref(), Some("Progressing"));
    let last = view.events.last().unwrap();
    assert_eq!(last.reason, "CheckFailed");
    assert_eq!(
        last.message,
        "check failed (1 of 5 allowed): pre-rollout webhook: gate: answered 500 Internal Server Error: gate closed"
    );

    gate.answer(200);
    mesh.tick().await;
    assert_eq!(mesh.weights(), Some((50, 50)), "pre-rollout passed");
    assert_eq!(
        mesh.view().status.failed_checks,
        1,
        "failed checks count over the run"
    );
}

#[tokio::test]
async fn a_confirm_promotion_webhook_answering_503_holds_the_run_until_it_answers_200() {
    let gate = Gate::start(503).await;
    let analysis = format!(
        "    stepWeight: 50\n    maxWeight: 50\n{}",
        gate.webhooks("confirm-promotion")
    );
    let mut mesh = Mesh::start(&mk_canary(&analysis)).await;
    mesh.tick().await;
    mesh.tick().await;
    assert_eq!(mesh.weights(), Some((50, 50)));
    assert!(gate.calls().is_empty(), "not asked before the last step");

    for _ in 0..3 {
        mesh.tick().await;
        assert_eq!(mesh.phase(), "WaitingPromotion");
        assert_eq!(mesh.weights(), Some((50, 50)));
    }
    let view = mesh.view();
    assert_eq!(view.status.failed_checks, 0, "waiting is not failing");
    assert_eq!(
        view.events.last().unwrap().message,
        "confirm-promotion webhook: gate: answered 503 Service Unavailable: gate closed"
    );

    gate.answer(200);
    mesh.tick().await;
    assert_eq!(mesh.phase(), "Succeeded");
    assert_eq!(mesh.weights(), Some((0, 100)));
    assert_eq!(gate.calls().len(), 4);
}

#[tokio::test]
async fn after_a_restart_the_saved_run_is_published_before_any_tick_and_continues_where_it_was() {
    let data = tempfile::tempdir().unwrap();
    let saved = data.path().join("canaries.json");
    let canary_yaml = mk_canary("    stepWeight: 50\n");
    let manifests = [SERVICES, canary_yaml.as_str()];

    let index = mk_index(&manifests).await;
    let (mut before, restored) =
        Controller::new(index.clone(), Arc::new(Metrics::new())).persist(saved.clone());
    assert_eq!(restored, 0);
    for _ in 0..2 {
        tokio::time::sleep(INTERVAL * 2).await;
        before.tick().await;
    }
    index.flush().await;
    assert_eq!(weights(&index), Some((50, 50)));
    let created = index
        .snapshot()
        .traffic_split(&ObjKey::new("shop", "web"))
        .unwrap()
        .metadata
        .creation_timestamp
        .clone();
    drop(before);
    drop(index);

    // A new operator: a new index from Git and the registrations, and no canary source yet.
    let index = mk_index(&manifests).await;
    assert_eq!(weights(&index), None);
    let (controller, restored) =
        Controller::new(index.clone(), Arc::new(Metrics::new())).persist(saved);
    assert_eq!(restored, 1);
    let mut mesh = Mesh { index, controller };
    mesh.controller.publish_restored();
    mesh.index.flush().await;
    assert_eq!(mesh.weights(), Some((50, 50)), "before any tick");
    let snapshot = mesh.index.snapshot();
    let split = snapshot.traffic_split(&ObjKey::new("shop", "web")).unwrap();
    assert_eq!(
        split.metadata.creation_timestamp, created,
        "the same split: its age decides which split without matches is in force"
    );

    mesh.tick().await;
    assert_eq!(mesh.weights(), Some((0, 100)), "the run goes on from 50");
    assert_eq!(
        mesh.events(),
        ["Started", "Advanced", "Advanced"],
        "the same run: no new Started"
    );
}

#[tokio::test]
async fn deleting_the_canary_removes_its_generated_split() {
    let mut mesh = Mesh::start(&mk_canary("    stepWeight: 50\n")).await;
    mesh.tick().await;
    mesh.tick().await;
    assert_eq!(mesh.weights(), Some((50, 50)));

    mesh.sync(&[SERVICES]).await;
    mesh.tick().await;
    assert_eq!(mesh.weights(), None);
    assert_eq!(split_source(&mesh.index), None);
    assert!(mesh.controller.views().lock().unwrap().is_empty());
}

#[tokio::test]
async fn once_the_stable_backend_runs_the_promoted_version_traffic_goes_back_to_it() {
    let mut mesh = Mesh::start(&mk_canary("    stepWeight: 50\n    maxWeight: 50\n")).await;
    for _ in 0..3 {
        mesh.tick().await;
    }
    assert_eq!(mesh.phase(), "Succeeded");
    assert_eq!(mesh.weights(), Some((0, 100)));
    mesh.tick().await;
    assert_eq!(
        mesh.weights(),
        Some((0, 100)),
        "the stable backend still runs v1"
    );

    mesh.register(stable("v2")).await;
    mesh.tick().await;
    assert_eq!(mesh.weights(), Some((100, 0)));
    assert_eq!(mesh.phase(), "Succeeded");
    assert_eq!(
        mesh.events(),
        ["Started", "Advanced", "Succeeded", "Finalized"]
    );
    assert_eq!(
        mesh.view().events.last().unwrap().message,
        "the stable backend runs v2: traffic back on it, the canary backend is free for the next version"
    );

    mesh.tick().await;
    assert_eq!(mesh.weights(), Some((100, 0)), "and stays there");
    assert_eq!(mesh.events().len(), 4);
}
