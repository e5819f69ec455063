//! The Git source over HTTPS, against a real smart-HTTP server (`git http-backend` behind
//! TLS and HTTP Basic auth): a token from a file authenticates, a wrong token fails naming
//! the flag, and a server whose certificate is not trusted is refused.

use trellis_e2e::git::GitRepo;
use trellis_e2e::git_http::GitHttps;
use trellis_e2e::operator::Operator;

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n";

struct Setup {
    server: GitHttps,
    repo: GitRepo,
    dir: tempfile::TempDir,
}

fn setup() -> Option<Setup> {
    let repo = GitRepo::new().ok()?;
    repo.write("services.yaml", SERVICE);
    repo.commit("a Service").unwrap();
    // Served as https://localhost:PORT/<repo dir name>.
    let root = repo.path().parent().unwrap();
    let server = GitHttps::start(root, "ci-bot", "t0ken").unwrap()?;
    Some(Setup {
        server,
        repo,
        dir: tempfile::tempdir().unwrap(),
    })
}

impl Setup {
    fn url(&self) -> String {
        let name = self.repo.path().file_name().unwrap().to_str().unwrap();
        self.server.url(name)
    }

    async fn operator(&self, token: &str, trusted: bool) -> Operator {
        let (user, password) = (self.dir.path().join("user"), self.dir.path().join("token"));
        std::fs::write(&user, "ci-bot\n").unwrap();
        std::fs::write(&password, format!("{token}\n")).unwrap();
        let ca = self.server.ca();
        let bogus = self.dir.path().join("no-roots.pem");
        std::fs::write(&bogus, "").unwrap();
        let roots = if trusted { ca } else { bogus };
        Operator::start_git_env(
            &self.url(),
            &[
                "--git-username-file",
                user.to_str().unwrap(),
                "--git-password-file",
                password.to_str().unwrap(),
            ],
            &[("SSL_CERT_FILE", roots.to_str().unwrap())],
        )
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn a_token_from_a_file_syncs_the_repository_over_https() {
    let Some(s) = setup() else { return };
    let head = s.repo.head().unwrap();
    let operator = s.operator("t0ken", true).await;
    let source = operator
        .wait_git_source("the commit", |v| v["revision"] == head)
        .await;
    assert_eq!(source["objects"], 1);
}

#[tokio::test]
async fn a_refused_token_fails_naming_the_flag() {
    let Some(s) = setup() else { return };
    let operator = s.operator("wrong", true).await;
    let source = operator
        .wait_git_source("a fetch error", |v| v["fetchError"].is_string())
        .await;
    let error = source["fetchError"].as_str().unwrap();
    assert!(error.contains("--git-password-file"), "{error}");
    assert_eq!(source["synced"], false);
}

#[tokio::test]
async fn a_server_certificate_that_is_not_trusted_is_refused() {
    let Some(s) = setup() else { return };
    let operator = s.operator("t0ken", false).await;
    let source = operator
        .wait_git_source("a fetch error", |v| v["fetchError"].is_string())
        .await;
    let error = source["fetchError"].as_str().unwrap().to_lowercase();
    assert!(error.contains("certificate"), "{error}");
    assert_eq!(source["synced"], false);
}
