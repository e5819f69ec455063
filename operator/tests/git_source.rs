//! The Git source, end to end: a real `trellis operator --local --git` process following a
//! real repository that the test commits to. Each commit is applied whole or refused whole;
//! the applied commit is what `/status` reports, with every problem's file and line.

use std::time::Duration;

use serde_json::Value;
use trellis_e2e::client;
use trellis_e2e::git::GitRepo;
use trellis_e2e::operator::Operator;

const SERVICES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: shop}
spec: {selector: {app: web-v2}, ports: [{port: 80}]}
";

fn split(weights: (i64, i64)) -> String {
    format!(
        "apiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\nmetadata: {{name: web-rollout, namespace: shop}}\n\
         spec:\n  service: web\n  backends:\n  - {{service: web, weight: {}}}\n  - {{service: web-v2, weight: {}}}\n",
        weights.0, weights.1
    )
}

fn repo_with_services() -> Option<GitRepo> {
    let repo = GitRepo::new().ok()?;
    repo.write("shop/services.yaml", SERVICES);
    repo.write("shop/split.yaml", &split((90, 10)));
    repo.commit("shop: services and a 90/10 split").unwrap();
    Some(repo)
}

async fn resource(operator: &Operator, kind: &str, name: &str) -> Option<Value> {
    let status = operator.status().await.unwrap();
    status["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == kind && r["name"] == name)
        .cloned()
}

#[tokio::test]
async fn each_commit_pushed_is_applied_and_its_revision_recorded() {
    let Some(repo) = repo_with_services() else {
        return;
    };
    let first = repo.head().unwrap();
    let operator = Operator::start_git(&repo.url(), &[]).await.unwrap();
    let source = operator
        .wait_git_source("the first commit", |s| s["revision"] == first)
        .await;
    assert_eq!(source["synced"], true);
    assert_eq!(source["objects"], 3, "two Services and a TrafficSplit");
    assert_eq!(source["headSummary"], "shop: services and a 90/10 split");
    let ts = resource(&operator, "TrafficSplit", "web-rollout")
        .await
        .unwrap();
    assert_eq!(ts["origin"]["revision"], first.as_str());
    assert_eq!(ts["origin"]["file"], "shop/split.yaml");

    repo.write("shop/split.yaml", &split((50, 50)));
    let second = repo.commit("shop: 50/50").unwrap();
    operator
        .wait_git_source("the second commit", |s| s["revision"] == second)
        .await;
    let ts = resource(&operator, "TrafficSplit", "web-rollout")
        .await
        .unwrap();
    assert_eq!(ts["origin"]["revision"], second.as_str());
}

#[tokio::test]
async fn a_commit_with_an_invalid_manifest_is_refused_whole_and_the_last_good_one_stays() {
    let Some(repo) = repo_with_services() else {
        return;
    };
    let good = repo.head().unwrap();
    let operator = Operator::start_git(&repo.url(), &[]).await.unwrap();
    operator
        .wait_git_source("the good commit", |s| s["revision"] == good)
        .await;

    // One commit: a new Service (fine) and a split with a negative weight (line 7).
    repo.write(
        "shop/extra.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: shop}\nspec: {ports: [{port: 80}]}\n",
    );
    repo.write("shop/split.yaml", &split((-5, 10)));
    let bad = repo.commit("shop: broken weights").unwrap();
    let source = operator
        .wait_git_source("the refusal", |s| s["rejectedRevision"] == bad)
        .await;
    assert_eq!(
        source["revision"],
        good.as_str(),
        "the last good commit stays in force"
    );
    let errors = source["errors"].to_string();
    assert!(
        errors
            .contains("shop/split.yaml:7: TrafficSplit shop/web-rollout: spec.backends[0].weight"),
        "the problem names file, line, resource and field: {errors}"
    );
    let status = operator.status().await.unwrap();
    assert!(
        !status["resources"].to_string().contains("\"extra\"") && status["counts"]["services"] == 2,
        "nothing of the refused commit is applied: {status:#}"
    );
    let ts = resource(&operator, "TrafficSplit", "web-rollout")
        .await
        .unwrap();
    assert_eq!(ts["origin"]["revision"], good.as_str());

    // Fixing it in a new commit applies the whole new commit.
    repo.write("shop/split.yaml", &split((0, 10)));
    let fixed = repo.commit("shop: fix weights").unwrap();
    let source = operator
        .wait_git_source("the fix", |s| s["revision"] == fixed)
        .await;
    assert!(source.get("errors").is_none(), "{source:#}");
    assert_eq!(operator.status().await.unwrap()["counts"]["services"], 3);
}

#[tokio::test]
async fn a_force_push_to_an_older_commit_is_followed() {
    let Some(repo) = repo_with_services() else {
        return;
    };
    let old = repo.head().unwrap();
    let operator = Operator::start_git(&repo.url(), &[]).await.unwrap();
    repo.write("shop/split.yaml", &split((0, 100)));
    let new = repo.commit("shop: all to v2").unwrap();
    operator
        .wait_git_source("the new commit", |s| s["revision"] == new)
        .await;

    repo.reset_hard(&old).unwrap();
    let source = operator
        .wait_git_source("the branch rewound", |s| s["revision"] == old)
        .await;
    assert_eq!(source["forcePushes"], 1);
    assert!(
        operator.stderr_text().contains("was force-pushed"),
        "{}",
        operator.stderr_text()
    );
}

#[tokio::test]
async fn a_commit_deleting_everything_is_refused_unless_allowed() {
    let Some(repo) = repo_with_services() else {
        return;
    };
    let good = repo.head().unwrap();
    let operator = Operator::start_git(&repo.url(), &[]).await.unwrap();
    operator
        .wait_git_source("the good commit", |s| s["revision"] == good)
        .await;
    repo.remove("shop/services.yaml");
    repo.remove("shop/split.yaml");
    repo.write("README.md", "moved elsewhere\n");
    let empty = repo.commit("remove everything").unwrap();
    let source = operator
        .wait_git_source("the refusal", |s| s["rejectedRevision"] == empty)
        .await;
    assert!(
        source["errors"][0]
            .as_str()
            .unwrap()
            .contains("--allow-delete-all"),
        "{source:#}"
    );
    assert_eq!(operator.status().await.unwrap()["counts"]["services"], 2);
    drop(operator);

    let allowed = Operator::start_git(&repo.url(), &["--allow-delete-all"])
        .await
        .unwrap();
    allowed
        .wait_git_source("the empty commit applied", |s| s["revision"] == empty)
        .await;
    assert_eq!(allowed.status().await.unwrap()["counts"]["services"], 0);
}

#[tokio::test]
async fn path_and_tag_select_what_is_read() {
    let Some(repo) = repo_with_services() else {
        return;
    };
    repo.write(
        "staging/services.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: staging-only, namespace: shop}\nspec: {ports: [{port: 80}]}\n",
    );
    let v1 = repo.commit("staging").unwrap();
    repo.tag("v1").unwrap();
    repo.write("shop/split.yaml", &split((1, 1)));
    repo.commit("after the tag").unwrap();

    let operator = Operator::start_git(&repo.url(), &["--path", "shop", "--tag", "v1"])
        .await
        .unwrap();
    let source = operator
        .wait_git_source("the tag", |s| s["revision"] == v1)
        .await;
    assert_eq!(source["objects"], 3, "only shop/ is read: {source:#}");
    assert!(
        source["location"]
            .as_str()
            .unwrap()
            .contains("tag v1, path shop")
    );
}

#[tokio::test]
async fn the_webhook_triggers_a_sync_at_once_for_a_caller_with_the_secret() {
    let Some(repo) = repo_with_services() else {
        return;
    };
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "s3cret\n").unwrap();
    let secret_path = secret.path().to_str().unwrap();
    let operator = Operator::start_git(
        &repo.url(),
        &["--interval", "1h", "--git-webhook-secret-file", secret_path],
    )
    .await
    .unwrap();
    let first = repo.head().unwrap();
    operator
        .wait_git_source("the first commit", |s| s["revision"] == first)
        .await;
    repo.write("shop/split.yaml", &split((0, 1)));
    let second = repo.commit("shop: all to v2").unwrap();

    let hook = |header: &str, value: &str| {
        client::request(http::Method::POST, "operator", "/hooks/git")
            .header(header, value)
            .body(client::empty())
            .unwrap()
    };
    let refused = client::send_once(operator.admin, hook("authorization", "Bearer guess"))
        .await
        .unwrap();
    assert_eq!(refused.status, 401, "{refused}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        operator.git_source().await.unwrap()["revision"],
        first.as_str()
    );

    let accepted = client::send_once(operator.admin, hook("x-gitlab-token", "s3cret"))
        .await
        .unwrap();
    assert_eq!(accepted.status, 202, "{accepted}");
    operator
        .wait_git_source("the pushed commit", |s| s["revision"] == second)
        .await;
}

#[tokio::test]
async fn after_a_restart_with_the_remote_gone_the_last_applied_commit_is_served() {
    let Some(repo) = repo_with_services() else {
        return;
    };
    let head = repo.head().unwrap();
    let mut operator = Operator::start_git(&repo.url(), &[]).await.unwrap();
    operator
        .wait_git_source("the commit", |s| s["revision"] == head)
        .await;
    let before = operator.status().await.unwrap()["resources"].clone();

    std::fs::rename(repo.path(), repo.path().with_extension("moved")).unwrap();
    operator.restart().await.unwrap();
    let source = operator
        .wait_git_source("the remote unreachable", |s| s["fetchError"].is_string())
        .await;
    assert_eq!(source["revision"], head.as_str(), "served from the mirror");
    assert_eq!(operator.status().await.unwrap()["resources"], before);
    std::fs::rename(repo.path().with_extension("moved"), repo.path()).unwrap();
}
