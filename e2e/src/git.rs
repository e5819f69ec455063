//! A real Git repository the test commits to, with the `git` command line, as a platform
//! team would: write files, commit, force-push an older commit.
//!
//! ```text
//! let repo = GitRepo::new()?;
//! repo.write("shop/services.yaml", SERVICES);
//! let first = repo.commit("services")?;
//! repo.reset_hard(&first)?;            // a force-push back to `first`
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub struct GitRepo {
    dir: tempfile::TempDir,
}

impl GitRepo {
    /// An empty repository with `main` checked out.
    pub fn new() -> anyhow::Result<GitRepo> {
        crate::require_tool("git").context("git is needed for the Git source tests")?;
        let repo = GitRepo {
            dir: tempfile::tempdir()?,
        };
        repo.git(&["init", "--quiet", "--initial-branch", "main"])?;
        repo.git(&["config", "user.name", "Trellis Test"])?;
        repo.git(&["config", "user.email", "test@trellis.invalid"])?;
        repo.git(&["config", "commit.gpgsign", "false"])?;
        Ok(repo)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `file://` URL of the repository.
    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }

    /// Writes a file (directories created).
    pub fn write(&self, file: &str, content: &str) {
        let path = self.dir.path().join(file);
        std::fs::create_dir_all(path.parent().expect("a file in the repo")).unwrap();
        std::fs::write(path, content).unwrap();
    }

    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.dir.path().join(file)).unwrap();
    }

    /// Stages everything and commits; returns the commit's id.
    pub fn commit(&self, message: &str) -> anyhow::Result<String> {
        self.git(&["add", "--all"])?;
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message])?;
        self.head()
    }

    pub fn head(&self) -> anyhow::Result<String> {
        Ok(self.git(&["rev-parse", "HEAD"])?.trim().to_owned())
    }

    /// Moves `main` to `commit` (what a force-push does to the remote's branch).
    pub fn reset_hard(&self, commit: &str) -> anyhow::Result<()> {
        self.git(&["reset", "--quiet", "--hard", commit])
            .map(|_| ())
    }

    pub fn tag(&self, name: &str) -> anyhow::Result<()> {
        self.git(&["tag", "--force", name]).map(|_| ())
    }

    /// Copies a tree of files (e.g. `gitops-examples/`) into the repository at `into`.
    pub fn copy_tree(&self, from: &Path, into: &str) -> anyhow::Result<()> {
        fn walk(from: &Path, to: &PathBuf) -> std::io::Result<()> {
            std::fs::create_dir_all(to)?;
            for entry in std::fs::read_dir(from)? {
                let entry = entry?;
                let target = to.join(entry.file_name());
                if entry.file_type()?.is_dir() {
                    walk(&entry.path(), &target)?;
                } else {
                    std::fs::copy(entry.path(), target)?;
                }
            }
            Ok(())
        }
        walk(from, &self.dir.path().join(into)).context("copying into the repo")
    }

    fn git(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.dir.path())
            .args(args)
            .output()
            .context("running git")?;
        if !out.status.success() {
            bail!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }
}
