//! The demo's story, step by step: each step changes the Git repository (or not), sends
//! traffic and checks what a user would see. A failed check does not stop the demo; the
//! summary lists every check and the exit status says whether all held.

use super::Mesh;
use super::traffic::Tally;

/// One thing the demo showed, and whether it held.
#[derive(Clone, Debug)]
pub struct Check {
    pub title: String,
    /// What was observed (`200 x 200 (v1 90%, v2 10%)`).
    pub observed: String,
    pub failure: Option<String>,
    pub requests: usize,
    pub ok: usize,
    pub denied: usize,
}

pub(super) const SPLIT_FILE: &str = "shop/split.yaml";

fn split(v1: u32, v2: u32) -> String {
    format!(
        "# {v2} % of the API's traffic goes to v2. Change the weights and commit to shift it.\n\
         apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata:\n  name: api-rollout\n  namespace: shop\n\
         spec:\n  service: api\n  backends:\n  - service: api-v1\n    weight: {v1}\n  - service: api-v2\n    weight: {v2}\n"
    )
}

const HEALTH_ACCESS: &str = "\
# The API's health route, for web's readiness checks.
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata:
  name: web-to-api-health
  namespace: shop
spec:
  destination:
    kind: ServiceAccount
    name: api
    namespace: shop
  rules:
  - kind: HTTPRouteGroup
    name: api-routes
    matches: [health]
  sources:
  - kind: ServiceAccount
    name: web
    namespace: shop
";

fn all_ok(t: &Tally) -> Result<(), String> {
    if t.ok() == t.total() {
        Ok(())
    } else {
        Err(format!("expected every request to succeed, got {t}"))
    }
}

fn all_status(status: u16) -> impl Fn(&Tally) -> Result<(), String> {
    move |t| {
        if t.status(status) == t.total() {
            Ok(())
        } else {
            Err(format!("expected every request to get {status}, got {t}"))
        }
    }
}

pub(super) fn all_on(version: &'static str) -> impl Fn(&Tally) -> Result<(), String> {
    move |t| {
        all_ok(t)?;
        if t.version(version) == t.ok() {
            Ok(())
        } else {
            Err(format!("expected every request on {version}, got {t}"))
        }
    }
}

fn share_of_v2(min: f64, max: f64) -> impl Fn(&Tally) -> Result<(), String> {
    move |t| {
        all_ok(t)?;
        let share = t.share("v2");
        if (min..=max).contains(&share) && t.version("v1") + t.version("v2") == t.ok() {
            Ok(())
        } else {
            Err(format!(
                "expected v2 to serve {:.0}-{:.0}% of requests, got {t}",
                min * 100.0,
                max * 100.0
            ))
        }
    }
}

impl Mesh {
    /// Runs the story and returns every check.
    pub async fn story(&self) -> anyhow::Result<Vec<Check>> {
        let mut checks = Vec::new();

        self.progress(
            "traffic: web calls GET /items on api through its proxy (split 90/10 from Git)",
        );
        // 90/10: v2 gets a few percent; bounds leave room for chance (200 requests).
        checks.push(
            self.step(
                "90/10 split in force",
                "GET",
                "/items",
                &share_of_v2(0.02, 0.25),
            )
            .await,
        );
        self.progress("traffic: web calls DELETE /items: no TrafficTarget rule allows it");
        checks.push(
            self.step(
                "DELETE /items denied by the TrafficTarget (SMI deny by default)",
                "DELETE",
                "/items",
                &all_status(403),
            )
            .await,
        );

        let (commit, _) = self
            .commit("api: shift to 50/50", |r| {
                r.write(SPLIT_FILE, &split(50, 50))
            })
            .await?;
        self.progress(&format!(
            "commit {}: api-rollout weights 50/50 (webhook -> operator applied it)",
            &commit.to_string()[..12]
        ));
        checks.push(
            self.step(
                "50/50 after a commit",
                "GET",
                "/items",
                &share_of_v2(0.35, 0.65),
            )
            .await,
        );

        let (commit, _) = self
            .commit("api: promote v2", |r| r.write(SPLIT_FILE, &split(0, 100)))
            .await?;
        self.progress(&format!(
            "commit {}: api-rollout weights 0/100 (promote v2)",
            &commit.to_string()[..12]
        ));
        checks.push(
            self.step("0/100: every request on v2", "GET", "/items", &all_on("v2"))
                .await,
        );

        self.progress("traffic: web calls GET /healthz on api: not allowed yet");
        checks.push(
            self.step(
                "GET /healthz denied before its TrafficTarget",
                "GET",
                "/healthz",
                &all_status(403),
            )
            .await,
        );
        let (commit, _) = self
            .commit("api: allow web to call /healthz", |r| {
                r.write("shop/health-access.yaml", HEALTH_ACCESS)
            })
            .await?;
        self.progress(&format!(
            "commit {}: new TrafficTarget web-to-api-health",
            &commit.to_string()[..12]
        ));
        checks.push(
            self.step(
                "GET /healthz allowed by the new TrafficTarget",
                "GET",
                "/healthz",
                &all_ok,
            )
            .await,
        );

        let good = self.repo.read(SPLIT_FILE)?;
        let broken = good.replace("weight: 0\n", "weight: -10\n");
        anyhow::ensure!(
            broken != good,
            "the split in force has no weight 0 to break"
        );
        let (commit, refused) = self
            .commit("api: broken weights", |r| r.write(SPLIT_FILE, &broken))
            .await?;
        let errors = refused.unwrap_or_default();
        self.progress(&format!(
            "commit {}: a negative weight; the operator refused the commit:",
            &commit.to_string()[..12]
        ));
        for e in &errors {
            println!("           {e}");
        }
        let mut check = self
            .step(
                "broken commit refused; traffic stays on the last good commit (0/100)",
                "GET",
                "/items",
                &all_on("v2"),
            )
            .await;
        let named = errors
            .iter()
            .any(|e| e.starts_with(&format!("{SPLIT_FILE}:")) && e.contains("weight"));
        if !named && check.failure.is_none() {
            check.failure = Some(format!(
                "expected the refusal to name {SPLIT_FILE}:<line> and the weight field, got {errors:?}"
            ));
        }
        checks.push(check);

        let (commit, _) = self
            .commit("api: fix weights", |r| r.write(SPLIT_FILE, &good))
            .await?;
        self.progress(&format!(
            "commit {}: fixed; applied again",
            &commit.to_string()[..12]
        ));

        self.canary_story(&mut checks).await?;
        Ok(checks)
    }

    pub(super) async fn step(
        &self,
        title: &str,
        method: &str,
        path: &str,
        check: &dyn Fn(&Tally) -> Result<(), String>,
    ) -> Check {
        let (tally, verdict) = self.measure(method, path, check).await;
        let mark = if verdict.is_ok() { "ok" } else { "FAILED" };
        self.progress(&format!("  {mark}: {title}: {tally}"));
        Check {
            title: title.to_owned(),
            observed: tally.to_string(),
            failure: verdict.err(),
            requests: tally.total(),
            ok: tally.ok(),
            denied: tally.status(403),
        }
    }
}
