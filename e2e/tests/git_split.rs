//! Routing in the local mode driven by Git, end to end: TrafficSplits committed to a real
//! repository that a real `trellis operator --local --git` follows move real calls between
//! two versions of an app (`trellis demo-app`s behind registered `trellis-proxy` sidecars).
//! A commit is applied whole or refused whole, force-pushes are followed, and the proxies
//! ride out an operator restart.
//!
//! ```text
//! git commit --> operator --outbound config--> client-1's proxy
//! client-1 app /call --> client-1 proxy ==mTLS==> web-v1 proxy --> web-v1 app (v1)
//!                                       ==mTLS==> web-v2 proxy --> web-v2 app (v2)
//! ```
//!
//! The mesh is permissive (MeshConfig): no TrafficTargets, splits only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use trellis_e2e::client::{self, Http1Conn, Reply};
use trellis_e2e::mesh::{GitMesh, MeshedApp, call_path, registered, version_of};

/// `web` is what clients call; its own endpoints are the stable version (v1), so calls no
/// split takes go to v1. `web-v1` and `web-v2` are the backends splits name.
const SERVICES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web, version: v1}, ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: shop}
spec: {selector: {app: web, version: v1}, ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: shop}
spec: {selector: {app: web, version: v2}, ports: [{name: http, port: 80, targetPort: http}]}
";

const PERMISSIVE: &str = "\
apiVersion: trellis.dev/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec: {permissive: true}
";

fn split(v1: u32, v2: u32) -> String {
    format!(
        "\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {{name: web-rollout, namespace: shop}}
spec:
  service: web
  backends:
  - {{service: web-v1, weight: {v1}}}
  - {{service: web-v2, weight: {v2}}}
"
    )
}

/// A/B: calls with `x-canary: true` go to web-v2; the others to web's own endpoints.
const AB_CANARY: &str = "\
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: canary-users, namespace: shop}
spec:
  matches:
  - name: canary-header
    headers: [{x-canary: 'true'}]
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web-canary, namespace: shop}
spec:
  service: web
  matches: [{kind: HTTPRouteGroup, name: canary-users}]
  backends: [{service: web-v2, weight: 1}]
";

/// An HTTPRouteGroup whose `pathRegex` (line 7) does not compile.
const BROKEN_ROUTES: &str = "\
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: beta-users, namespace: shop}
spec:
  matches:
  - name: beta
    pathRegex: /beta(
";

/// How many calls a distribution is measured over.
const N: usize = 200;

/// The operator following the repository, web-v1, web-v2 and the client calling web.
struct Mesh {
    git: GitMesh,
    client: MeshedApp,
    _web_v1: MeshedApp,
    _web_v2: MeshedApp,
}

impl Mesh {
    /// A permissive mesh with SERVICES and `split.yaml` (when given) committed.
    async fn start(split: Option<String>) -> Option<Mesh> {
        let mut files = vec![
            ("services.yaml", SERVICES),
            ("mesh-config.yaml", PERMISSIVE),
        ];
        if let Some(split) = &split {
            files.push(("split.yaml", split));
        }
        let git = GitMesh::start(&files).await.unwrap()?;
        let web_v1 = web(&git, "v1").await;
        let web_v2 = web(&git, "v2").await;
        let client = MeshedApp::builder("shop", "client-1")
            .service_account("client")
            .calls_out()
            .start(&git.operator)
            .await
            .unwrap();
        git.wait_registered(&[&web_v1, &web_v2, &client])
            .await
            .unwrap();
        Some(Mesh {
            git,
            client,
            _web_v1: web_v1,
            _web_v2: web_v2,
        })
    }

    /// `n` calls to web from the client app, counted by the version that answered.
    async fn versions(&self, n: usize) -> BTreeMap<String, usize> {
        self.client.versions("web.shop", n).await
    }

    /// Waits until a call to web is answered by `version`.
    async fn eventually_reaches(&self, version: &str) {
        let what = format!("a call reaches {version}");
        self.client
            .call_until(Method::GET, "web.shop", "/", &what, |r| {
                r.status == 200 && version_of(r) == version
            })
            .await
            .unwrap();
    }

    /// Waits until 20 calls in a row reach `version` (a split sending a quarter of the
    /// calls elsewhere would do that about once in a trillion tries).
    async fn eventually_only(&self, version: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let counts = self.versions(20).await;
            if counts == only(version, 20) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "calls never all reached {version}: last {counts:?}"
            );
        }
    }
}

/// web-v1 or web-v2: ServiceAccount `web`, labels `app: web` and `version`.
async fn web(git: &GitMesh, version: &str) -> MeshedApp {
    MeshedApp::builder("shop", &format!("web-{version}"))
        .service_account("web")
        .label("app", "web")
        .label("version", version)
        .version(version)
        .start(&git.operator)
        .await
        .unwrap()
}

fn only(version: &str, n: usize) -> BTreeMap<String, usize> {
    BTreeMap::from([(version.to_owned(), n)])
}

fn count(counts: &BTreeMap<String, usize>, version: &str) -> usize {
    counts.get(version).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_split_weights_move_calls_between_versions() {
    let Some(mesh) = Mesh::start(Some(split(1, 0))).await else {
        return;
    };
    mesh.eventually_only("v1").await;
    assert_eq!(mesh.versions(N).await, only("v1", N), "weights 1/0");

    // A new split is in effect once a call reaches a version the previous one never sent
    // to, or (0/1) once 20 calls in a row reach v2.
    mesh.git.commit("split.yaml", &split(75, 25), "shop: 75/25");
    mesh.eventually_reaches("v2").await;
    let counts = mesh.versions(N).await;
    assert_eq!(
        counts.values().sum::<usize>(),
        N,
        "every call answered: {counts:?}"
    );
    let (v1, v2) = (count(&counts, "v1"), count(&counts, "v2"));
    assert!(v1 > v2 && v2 > 0, "75/25: {counts:?}");

    mesh.git.commit("split.yaml", &split(0, 1), "shop: 0/1");
    mesh.eventually_only("v2").await;
    assert_eq!(mesh.versions(N).await, only("v2", N), "weights 0/1");

    mesh.git.commit("split.yaml", &split(25, 75), "shop: 25/75");
    mesh.eventually_reaches("v1").await;
    let counts = mesh.versions(N).await;
    assert_eq!(
        counts.values().sum::<usize>(),
        N,
        "every call answered: {counts:?}"
    );
    let (v1, v2) = (count(&counts, "v1"), count(&counts, "v2"));
    assert!(v2 > v1 && v1 > 0, "25/75: {counts:?}");
}

/// `GET /` on web with `x-canary` (if given), sent straight to the client's proxy as the
/// client app would (the demo app's `/call` adds no headers).
async fn call_with_canary_header(client: &MeshedApp, canary: Option<&str>) -> Reply {
    let mut request = client::request(Method::GET, "web.shop", "/");
    if let Some(value) = canary {
        request = request.header("x-canary", value);
    }
    let mut conn = Http1Conn::connect(client.proxy.outbound).await.unwrap();
    conn.send(request.body(client::empty()).unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ab_split_sends_only_matching_calls_to_the_canary() {
    let Some(mesh) = Mesh::start(None).await else {
        return;
    };
    mesh.eventually_only("v1").await;

    mesh.git
        .commit("ab.yaml", AB_CANARY, "shop: canary users to v2");
    let deadline = Instant::now() + Duration::from_secs(10);
    while version_of(&call_with_canary_header(&mesh.client, Some("true")).await) != "v2" {
        assert!(Instant::now() < deadline, "the A/B split never took effect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..20 {
        let canary = call_with_canary_header(&mesh.client, Some("true")).await;
        assert_eq!(
            (canary.status.as_u16(), version_of(&canary)),
            (200, "v2".into()),
            "x-canary: true goes to the canary: {canary}"
        );
        // The header's regex must match the whole value.
        for other in [None, Some("false"), Some("true-ish")] {
            let reply = call_with_canary_header(&mesh.client, other).await;
            assert_eq!(
                (reply.status.as_u16(), version_of(&reply)),
                (200, "v1".into()),
                "x-canary {other:?} goes to web's own endpoints: {reply}"
            );
        }
    }
    assert_eq!(
        mesh.versions(50).await,
        only("v1", 50),
        "calls without the header"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_with_an_invalid_manifest_is_refused_whole_and_the_last_good_split_stays() {
    let Some(mesh) = Mesh::start(Some(split(1, 0))).await else {
        return;
    };
    let good = mesh.git.repo.head().unwrap();
    mesh.eventually_only("v1").await;

    // One commit: a valid move to v2 and a route group whose regex does not compile.
    mesh.git.repo.write("mesh/split.yaml", &split(0, 1));
    mesh.git.repo.write("mesh/beta-routes.yaml", BROKEN_ROUTES);
    let bad = mesh
        .git
        .repo
        .commit("shop: all to v2, beta routes")
        .unwrap();
    let source = mesh
        .git
        .source_shows("the refusal", |s| s["rejectedRevision"] == bad)
        .await
        .unwrap();
    assert_eq!(
        source["revision"],
        good.as_str(),
        "the good commit stays in force"
    );
    assert_eq!(
        mesh.versions(N).await,
        only("v1", N),
        "the last good split holds"
    );

    // `trellis status` says which file, line, resource and field to fix.
    let out = std::process::Command::new(trellis_e2e::binary("trellis"))
        .args(["status", "--admin", &mesh.git.operator.admin_url()])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "trellis status: {out:?}");
    assert!(
        table.contains(
            "error: mesh/beta-routes.yaml:7: HTTPRouteGroup shop/beta-users: \
             spec.matches[0].pathRegex: invalid regex \"/beta(\""
        ),
        "trellis status names file:line, resource, field and problem:\n{table}"
    );
    assert!(
        table.contains(&good[..12]),
        "the revision in force:\n{table}"
    );

    // The fix applies the whole commit, the split's move included.
    let fixed = BROKEN_ROUTES.replace("/beta(", "/beta");
    let fix = mesh
        .git
        .commit("beta-routes.yaml", &fixed, "shop: fix the beta regex");
    let source = mesh.git.applied(&fix).await.unwrap();
    assert!(source.get("errors").is_none(), "no errors left: {source:#}");
    mesh.eventually_only("v2").await;
    assert_eq!(mesh.versions(N).await, only("v2", N));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_force_push_to_an_older_commit_brings_its_routing_back() {
    let Some(mesh) = Mesh::start(Some(split(1, 0))).await else {
        return;
    };
    let all_to_v1 = mesh.git.repo.head().unwrap();
    mesh.eventually_only("v1").await;
    let all_to_v2 = mesh
        .git
        .commit("split.yaml", &split(0, 1), "shop: all to v2");
    mesh.git.applied(&all_to_v2).await.unwrap();
    mesh.eventually_only("v2").await;

    mesh.git.repo.reset_hard(&all_to_v1).unwrap();
    let source = mesh.git.applied(&all_to_v1).await.unwrap();
    assert_eq!(source["forcePushes"], 1, "{source:#}");
    mesh.eventually_only("v1").await;
    assert_eq!(mesh.versions(N).await, only("v1", N));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_operator_restart_the_same_commit_is_in_force_and_every_workload_is_back() {
    let Some(mut mesh) = Mesh::start(Some(split(0, 1))).await else {
        return;
    };
    mesh.eventually_only("v2").await;
    let before = mesh.git.operator.status().await.unwrap();

    mesh.git.operator.restart().await.unwrap();
    let after = mesh
        .git
        .operator
        .wait_status("every workload registered again", |s| {
            registered(s) == registered(&before)
        })
        .await
        .unwrap();
    assert_eq!(
        after["sources"][0]["revision"], before["sources"][0]["revision"],
        "the same commit in force"
    );
    assert_eq!(
        after["resources"], before["resources"],
        "the same resources"
    );
    mesh.eventually_only("v2").await;
    assert_eq!(mesh.versions(N).await, only("v2", N));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_keep_succeeding_while_the_operator_restarts() {
    let Some(mut mesh) = Mesh::start(Some(split(0, 1))).await else {
        return;
    };
    mesh.eventually_only("v2").await;
    let workloads = registered(&mesh.git.operator.status().await.unwrap());

    // The client app calls web over and over, recording each answer.
    let answers = Arc::new(Mutex::new(Vec::<String>::new()));
    let caller = tokio::spawn({
        let (app, answers) = (mesh.client.addr(), answers.clone());
        let path = call_path(Method::GET, "web.shop", "/");
        async move {
            loop {
                let answer = match client::get(app, &path).await {
                    Ok(r) if r.status == 200 => format!("200 {}", version_of(&r)),
                    Ok(r) => format!("{} {}", r.status.as_u16(), r.text().trim()),
                    Err(e) => format!("error: {e:#}"),
                };
                answers.lock().unwrap().push(answer);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let calls_made = |n: usize| {
        let answers = answers.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while answers.lock().unwrap().len() < n {
                assert!(Instant::now() < deadline, "the calls stalled");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };

    calls_made(10).await;
    mesh.git.operator.restart().await.unwrap();
    mesh.git
        .operator
        .wait_status("every workload registered again", |s| {
            registered(s) == workloads
        })
        .await
        .unwrap();
    let so_far = answers.lock().unwrap().len();
    calls_made(so_far + 20).await;
    caller.abort();

    let answers = answers.lock().unwrap().clone();
    let failed: Vec<&String> = answers.iter().filter(|a| *a != "200 v2").collect();
    assert!(
        failed.is_empty(),
        "{} of {} calls around the restart were not answered by v2: {failed:?}",
        failed.len(),
        answers.len()
    );
}
