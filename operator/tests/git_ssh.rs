//! The Git source over SSH, against a real OpenSSH server on loopback: the operator
//! authenticates with a key file and accepts the server only when its host key is in the
//! known_hosts file given; every refusal says what to do.

use trellis_e2e::git::GitRepo;
use trellis_e2e::operator::Operator;
use trellis_e2e::sshd::Sshd;

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n";

struct Setup {
    sshd: Sshd,
    repo: GitRepo,
    dir: tempfile::TempDir,
}

fn setup() -> Option<Setup> {
    let sshd = Sshd::start().unwrap()?;
    let repo = GitRepo::new().ok()?;
    repo.write("services.yaml", SERVICE);
    repo.commit("a Service").unwrap();
    Some(Setup {
        sshd,
        repo,
        dir: tempfile::tempdir().unwrap(),
    })
}

impl Setup {
    fn known_hosts(&self, content: &str) -> String {
        let path = self.dir.path().join("known_hosts");
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }

    async fn operator(&self, key: &std::path::Path, known_hosts: &str) -> Operator {
        Operator::start_git(
            &self.sshd.url(self.repo.path()),
            &[
                "--git-ssh-key-file",
                key.to_str().unwrap(),
                "--git-known-hosts-file",
                known_hosts,
            ],
        )
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn a_known_host_and_an_authorized_key_sync_the_repository_over_ssh() {
    let Some(s) = setup() else { return };
    let head = s.repo.head().unwrap();
    let operator = s
        .operator(
            &s.sshd.client_key(),
            &s.known_hosts(&s.sshd.known_hosts_line()),
        )
        .await;
    let source = operator
        .wait_git_source("the commit", |v| v["revision"] == head)
        .await;
    assert_eq!(source["objects"], 1, "{source:#}\nsshd:\n{}", s.sshd.log());
}

#[tokio::test]
async fn an_unknown_host_is_refused_with_the_command_that_adds_it() {
    let Some(s) = setup() else { return };
    let operator = s
        .operator(&s.sshd.client_key(), &s.known_hosts("# empty\n"))
        .await;
    let source = operator
        .wait_git_source("a fetch error", |v| v["fetchError"].is_string())
        .await;
    let error = source["fetchError"].as_str().unwrap();
    assert!(
        error.contains("host 127.0.0.1 is not in") && error.contains("ssh-keyscan -p"),
        "{error}"
    );
    assert_eq!(source["synced"], false);
}

#[tokio::test]
async fn a_host_presenting_another_key_than_known_is_refused() {
    let Some(s) = setup() else { return };
    let operator = s
        .operator(
            &s.sshd.client_key(),
            &s.known_hosts(&s.sshd.wrong_known_hosts_line()),
        )
        .await;
    let source = operator
        .wait_git_source("a fetch error", |v| v["fetchError"].is_string())
        .await;
    assert!(
        source["fetchError"]
            .as_str()
            .unwrap()
            .contains("possible man in the middle"),
        "{source:#}"
    );
}

#[tokio::test]
async fn a_key_the_server_refuses_fails_naming_the_flag() {
    let Some(s) = setup() else { return };
    let operator = s
        .operator(
            &s.sshd.other_key(),
            &s.known_hosts(&s.sshd.known_hosts_line()),
        )
        .await;
    let source = operator
        .wait_git_source("a fetch error", |v| v["fetchError"].is_string())
        .await;
    let error = source["fetchError"].as_str().unwrap();
    assert!(error.contains("--git-ssh-key-file"), "{error}");
}
