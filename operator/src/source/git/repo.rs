//! The operator's mirror of the remote: a bare repository in the data directory holding
//! the fetched commits and `refs/trellis/applied`, the last commit applied (kept across
//! restarts so the operator can serve its last good state before the remote answers).
//! Every function here blocks: call it from `spawn_blocking`.

use std::path::{Path, PathBuf};

use git2::{Direction, FetchOptions, Oid, Repository};

use super::auth::Credentials;

/// What to follow in the remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    Branch(String),
    Tag(String),
    /// A pinned commit: fetched once, never moves.
    Commit(String),
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Branch(b) => write!(f, "branch {b}"),
            Reference::Tag(t) => write!(f, "tag {t}"),
            Reference::Commit(c) => write!(f, "commit {c}"),
        }
    }
}

const FETCHED: &str = "refs/trellis/fetched";
const APPLIED: &str = "refs/trellis/applied";

pub struct Mirror {
    repo: Repository,
    url: String,
}

impl Mirror {
    /// Opens the mirror in `dir`, creating it when absent.
    pub fn open(dir: &Path, url: &str) -> Result<Mirror, git2::Error> {
        let repo = match Repository::open_bare(dir) {
            Ok(repo) => repo,
            Err(_) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    git2::Error::from_str(&format!("creating {}: {e}", dir.display()))
                })?;
                Repository::init_bare(dir)?
            }
        };
        Ok(Mirror {
            repo,
            url: url.to_owned(),
        })
    }

    /// The commit the remote's reference points at now, asking only for the remote's
    /// list of references (no objects are downloaded): the cheap check made at every poll.
    /// `None` for a pinned commit (nothing to ask).
    pub fn remote_head(
        &self,
        reference: &Reference,
        credentials: &Credentials,
    ) -> Result<Option<Oid>, git2::Error> {
        let names = match reference {
            Reference::Branch(b) => vec![format!("refs/heads/{b}")],
            // An annotated tag's commit is the peeled entry.
            Reference::Tag(t) => vec![format!("refs/tags/{t}^{{}}"), format!("refs/tags/{t}")],
            Reference::Commit(_) => return Ok(None),
        };
        let mut remote = self.repo.remote_anonymous(&self.url)?;
        let connection = remote
            .connect_auth(
                Direction::Fetch,
                Some(credentials.callbacks(&self.url)),
                None,
            )
            .map_err(|e| credentials.explain(e))?;
        let heads = connection.list()?;
        for name in &names {
            if let Some(head) = heads.iter().find(|h| h.name() == name) {
                return Ok(Some(head.oid()));
            }
        }
        Err(git2::Error::from_str(&format!(
            "{} has no {reference}",
            self.url
        )))
    }

    /// Fetches the reference (forced: a force-pushed branch replaces what was fetched)
    /// and returns its commit.
    pub fn fetch(
        &self,
        reference: &Reference,
        credentials: &Credentials,
    ) -> Result<Oid, git2::Error> {
        let refspecs = match reference {
            Reference::Branch(b) => vec![format!("+refs/heads/{b}:{FETCHED}")],
            Reference::Tag(t) => vec![format!("+refs/tags/{t}:{FETCHED}")],
            Reference::Commit(c) => {
                if let Ok(commit) = Oid::from_str(c).and_then(|oid| self.repo.find_commit(oid)) {
                    return Ok(commit.id());
                }
                vec![
                    "+refs/heads/*:refs/trellis/heads/*".to_owned(),
                    "+refs/tags/*:refs/trellis/tags/*".to_owned(),
                ]
            }
        };
        let mut options = FetchOptions::new();
        options.remote_callbacks(credentials.callbacks(&self.url));
        options.download_tags(git2::AutotagOption::None);
        let mut remote = self.repo.remote_anonymous(&self.url)?;
        remote
            .fetch(&refspecs, Some(&mut options), None)
            .map_err(|e| credentials.explain(e))?;
        match reference {
            Reference::Commit(c) => {
                let object = self.repo.revparse_single(c).map_err(|_| {
                    git2::Error::from_str(&format!(
                        "commit {c} is on no branch or tag of {}",
                        self.url
                    ))
                })?;
                Ok(object.peel_to_commit()?.id())
            }
            _ => Ok(self.repo.find_reference(FETCHED)?.peel_to_commit()?.id()),
        }
    }

    /// Whether `new` has `old` in its history (a fast-forward). A force-push makes it
    /// false.
    pub fn follows(&self, new: Oid, old: Oid) -> bool {
        new == old || self.repo.graph_descendant_of(new, old).unwrap_or(false)
    }

    /// The last applied commit, kept across restarts.
    pub fn applied(&self) -> Option<Oid> {
        self.repo
            .find_reference(APPLIED)
            .ok()?
            .peel_to_commit()
            .ok()
            .map(|c| c.id())
    }

    pub fn set_applied(&self, commit: Oid) -> Result<(), git2::Error> {
        self.repo
            .reference(APPLIED, commit, true, "trellis: applied")
            .map(|_| ())
    }

    /// The commit's summary line (shown in status and logs).
    pub fn summary(&self, commit: Oid) -> Option<String> {
        self.repo
            .find_commit(commit)
            .ok()?
            .summary_bytes()
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }

    /// Writes the YAML files of `commit` under `path` (a directory inside the repository;
    /// empty for the root) into `dest`, which is emptied first. Returns the directory to
    /// read (`dest/path`), or `None` when the commit has no such directory.
    pub fn export(
        &self,
        commit: Oid,
        path: &str,
        dest: &Path,
    ) -> Result<Option<PathBuf>, git2::Error> {
        let io = |e: std::io::Error| git2::Error::from_str(&format!("{}: {e}", dest.display()));
        if dest.exists() {
            std::fs::remove_dir_all(dest).map_err(io)?;
        }
        std::fs::create_dir_all(dest).map_err(io)?;
        let tree = self.repo.find_commit(commit)?.tree()?;
        let path = path.trim_matches('/');
        let root = if path.is_empty() || path == "." {
            tree
        } else {
            match tree.get_path(Path::new(path)) {
                Ok(entry) if entry.kind() == Some(git2::ObjectType::Tree) => {
                    self.repo.find_tree(entry.id())?
                }
                _ => return Ok(None),
            }
        };
        let base = dest.join(path);
        let mut result = Ok(());
        root.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            let name = entry.name().unwrap_or_default();
            let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
            // Regular files only (mode 100644/100755): symlinks could point outside.
            let regular = matches!(entry.filemode(), 0o100644 | 0o100755);
            if entry.kind() != Some(git2::ObjectType::Blob) || !yaml || !regular {
                return git2::TreeWalkResult::Ok;
            }
            let written = self.repo.find_blob(entry.id()).and_then(|blob| {
                let file = base.join(dir).join(name);
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                std::fs::write(&file, blob.content()).map_err(io)
            });
            match written {
                Ok(()) => git2::TreeWalkResult::Ok,
                Err(e) => {
                    result = Err(e);
                    git2::TreeWalkResult::Abort
                }
            }
        })?;
        result?;
        std::fs::create_dir_all(&base).map_err(io)?;
        Ok(Some(base))
    }
}
