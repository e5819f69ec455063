//! The demo's Git repository: `gitops-examples/` (built into the binary, so the demo runs
//! from anywhere) committed to a fresh repository, then changed commit by commit as a
//! platform team would.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use git2::{IndexAddOption, Oid, Repository, Signature};

/// `gitops-examples/`, file by file.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "mesh-config.yaml",
        include_str!("../../../gitops-examples/mesh-config.yaml"),
    ),
    (
        "shop/namespace.yaml",
        include_str!("../../../gitops-examples/shop/namespace.yaml"),
    ),
    (
        "shop/services.yaml",
        include_str!("../../../gitops-examples/shop/services.yaml"),
    ),
    (
        "shop/routes.yaml",
        include_str!("../../../gitops-examples/shop/routes.yaml"),
    ),
    (
        "shop/access.yaml",
        include_str!("../../../gitops-examples/shop/access.yaml"),
    ),
    (
        "shop/split.yaml",
        include_str!("../../../gitops-examples/shop/split.yaml"),
    ),
];

pub struct Repo {
    repo: Repository,
    path: PathBuf,
}

impl Repo {
    /// A new repository at `path` holding [`EXAMPLES`] in one commit on `main`.
    pub fn create(path: &Path) -> anyhow::Result<(Repo, Oid)> {
        let mut options = git2::RepositoryInitOptions::new();
        options.initial_head("main");
        let repo = Repository::init_opts(path, &options)
            .with_context(|| format!("creating a Git repository in {}", path.display()))?;
        let repo = Repo {
            repo,
            path: path.to_owned(),
        };
        for (file, content) in EXAMPLES {
            repo.write(file, content)?;
        }
        let commit = repo.commit("Import gitops-examples/")?;
        Ok((repo, commit))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&self, file: &str, content: &str) -> anyhow::Result<()> {
        let path = self.path.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))
    }

    pub fn remove(&self, file: &str) -> anyhow::Result<()> {
        let path = self.path.join(file);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))
    }

    pub fn read(&self, file: &str) -> anyhow::Result<String> {
        std::fs::read_to_string(self.path.join(file)).with_context(|| format!("reading {file}"))
    }

    /// Commits every change in the work tree to `main` (as `git commit -a` plus new files).
    pub fn commit(&self, message: &str) -> anyhow::Result<Oid> {
        let mut index = self.repo.index()?;
        index.add_all(["*"], IndexAddOption::DEFAULT, None)?;
        index.update_all(["*"], None)?;
        index.write()?;
        let tree = self.repo.find_tree(index.write_tree()?)?;
        let author = Signature::now("Trellis demo", "demo@trellis.invalid")?;
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        Ok(self
            .repo
            .commit(Some("HEAD"), &author, &author, message, &tree, &parents)?)
    }
}
