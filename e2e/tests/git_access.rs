//! Access in the local mode driven by Git, end to end: TrafficTargets committed to a real
//! repository that a real `trellis operator --local --git` follows decide which calls
//! between real apps (`trellis demo-app` behind registered `trellis-proxy` sidecars) the
//! called side's proxy lets through.
//!
//! ```text
//! git commit --> operator --inbound policy--> web-v1's proxy
//! client-1 app /call --> client-1 proxy ==mTLS (sa client)==> web-v1 proxy --> web-v1 app
//!                                                        403 <--'  (denied: never reaches the app)
//! ```

use http::Method;
use trellis_e2e::client::Reply;
use trellis_e2e::mesh::{GitMesh, MeshedApp, version_of};

const SERVICES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}
";

/// The client may connect to web's app port (a TCPRoute rule: any request on it). The
/// port is the app's own, which the TrafficTarget's destination (a ServiceAccount) receives
/// on: the Service's targetPort, not its port 80.
fn access_by_port(app_port: u16) -> String {
    format!(
        "\
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {{name: web-app-port, namespace: shop}}
spec:
  matches:
    ports: [{app_port}]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {{name: client-to-web, namespace: shop}}
spec:
  destination: {{kind: ServiceAccount, name: web, namespace: shop}}
  sources:
  - {{kind: ServiceAccount, name: client, namespace: shop}}
  rules:
  - {{kind: TCPRoute, name: web-app-port}}
"
    )
}

/// The client may only read items: GET /items and GET /items/<number>. The group's
/// `admin` match is not selected by the rule, so it allows nothing.
const ACCESS_READ_ITEMS: &str = "\
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: web-routes, namespace: shop}
spec:
  matches:
  - {name: read-items, pathRegex: '/items(/[0-9]+)?$', methods: [GET]}
  - {name: admin, pathRegex: /admin}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: client-to-web, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web, namespace: shop}
  sources:
  - {kind: ServiceAccount, name: client, namespace: shop}
  rules:
  - {kind: HTTPRouteGroup, name: web-routes, matches: [read-items]}
";

async fn call(client: &MeshedApp, method: Method, path: &str) -> Reply {
    client.call(method, "web.shop", path).await.unwrap()
}

/// Waits until a call of `method path` is answered with `status` (a commit takes a moment
/// to reach the proxies) and `ok` holds for the answer.
async fn until(
    client: &MeshedApp,
    (method, path): (Method, &str),
    status: u16,
    ok: impl Fn(&Reply) -> bool,
) -> Reply {
    let what = format!("{method} {path} answered {status}");
    client
        .call_until(method, "web.shop", path, &what, |r| {
            r.status == status && ok(r)
        })
        .await
        .unwrap()
}

fn any(_: &Reply) -> bool {
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_denied_until_a_committed_traffic_target_allows_them() {
    let files = [("services.yaml", SERVICES)];
    let Some(mesh) = GitMesh::start(&files).await.unwrap() else {
        return;
    };
    let web = MeshedApp::builder("shop", "web-v1")
        .service_account("web")
        .label("app", "web")
        .start(&mesh.operator)
        .await
        .unwrap();
    let client = MeshedApp::builder("shop", "client-1")
        .service_account("client")
        .calls_out()
        .start(&mesh.operator)
        .await
        .unwrap();
    mesh.wait_registered(&[&web, &client]).await.unwrap();

    // No TrafficTarget: SMI denies, at web's proxy, before the app sees anything.
    until(&client, (Method::GET, "/items"), 403, |r| {
        r.proxy_error().as_deref() == Some("default_deny")
    })
    .await;
    for _ in 0..5 {
        assert_eq!(call(&client, Method::GET, "/items").await.status, 403);
    }
    assert_eq!(
        web.app.stats().await.unwrap().requests,
        0,
        "a denied call never reaches the app"
    );

    // Committed: a TrafficTarget for the client's ServiceAccount on web's app port.
    let access = access_by_port(web.addr().port());
    mesh.commit("access.yaml", &access, "shop: client may call web");
    until(&client, (Method::GET, "/items"), 200, any).await;
    for (method, path) in [(Method::GET, "/items"), (Method::POST, "/admin")] {
        let reply = call(&client, method.clone(), path).await;
        assert_eq!(reply.status, 200, "{method} {path}: {reply}");
        assert_eq!(version_of(&reply), "v1", "web's app answered");
    }

    // Deleted by a commit: denied again.
    mesh.delete("access.yaml", "shop: revoke client -> web");
    until(&client, (Method::GET, "/items"), 403, any).await;
    let served = web.app.stats().await.unwrap().requests;
    for _ in 0..5 {
        let reply = call(&client, Method::GET, "/items").await;
        assert_eq!(reply.status, 403, "{reply}");
    }
    assert_eq!(web.app.stats().await.unwrap().requests, served);

    // An HTTPRouteGroup rule: the client may read items, nothing else.
    mesh.commit(
        "access.yaml",
        ACCESS_READ_ITEMS,
        "shop: client may read items",
    );
    until(&client, (Method::GET, "/items"), 200, any).await;
    let served = web.app.stats().await.unwrap().requests;
    for (method, path, status) in [
        (Method::GET, "/items", 200),
        (Method::GET, "/items/42", 200),
        (Method::POST, "/items", 403),
        (Method::GET, "/items/abc", 403),
        (Method::GET, "/admin", 403),
    ] {
        let reply = call(&client, method.clone(), path).await;
        assert_eq!(reply.status, status, "{method} {path}: {reply}");
        if status == 403 {
            assert_eq!(
                reply.proxy_error().as_deref(),
                Some("route_not_allowed"),
                "{method} {path}"
            );
        }
    }
    assert_eq!(
        web.app.stats().await.unwrap().requests,
        served + 2,
        "only the two allowed calls reached the app"
    );
}
