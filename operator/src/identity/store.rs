//! The CA's files in the data directory, and the CA in force kept in step with them.
//!
//! ```text
//! <data-dir>/identity/            (mode 0700)
//!   roots.pem        every trusted root, oldest first (0644)
//!   issuer.pem       the issuer, signed by one of the roots (0644)
//!   issuer.key.pem   the issuer's private key (0600)
//!   join-token.key   the local-mode join token key (0600, see tokens.rs)
//! ```
//!
//! Created on first start; checked on every start; re-read while running when they change
//! (a change that does not check out is reported and the material in force stays). Root
//! rotation ([`rotate_root`], [`drop_old_roots`]) edits them, and a running operator picks
//! the change up on its next poll.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::IdentityError;
use super::ca::{CaMaterial, CaPem, Root};
use super::x509::{certificate_pem, certificates};

/// How often a running operator looks for changed CA files.
pub const POLL: Duration = Duration::from_secs(2);

/// Where the identity files live under a data directory.
#[derive(Clone, Debug)]
pub struct Layout {
    /// `<data-dir>/identity`.
    pub dir: PathBuf,
    pub roots: PathBuf,
    pub issuer: PathBuf,
    pub issuer_key: PathBuf,
    pub join_token_key: PathBuf,
}

impl Layout {
    pub fn new(data_dir: &Path) -> Layout {
        let dir = data_dir.join("identity");
        Layout {
            roots: dir.join("roots.pem"),
            issuer: dir.join("issuer.pem"),
            issuer_key: dir.join("issuer.key.pem"),
            join_token_key: dir.join("join-token.key"),
            dir,
        }
    }

    fn ca_files(&self) -> [&Path; 3] {
        [&self.roots, &self.issuer, &self.issuer_key]
    }

    /// The three CA files' contents.
    pub fn read(&self) -> Result<CaPem, IdentityError> {
        let read = |path: &Path| {
            fs::read_to_string(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => IdentityError::file(
                    path,
                    "missing: the operator creates the CA on its first start with this data directory; restore the file if it had one",
                ),
                _ => IdentityError::io("reading", path)(e),
            })
        };
        Ok(CaPem {
            roots: read(&self.roots)?,
            issuer: read(&self.issuer)?,
            issuer_key: read(&self.issuer_key)?,
        })
    }

    /// Writes the CA files, each replaced atomically: roots first (so that a reader never
    /// sees an issuer whose root is missing), then the key and the issuer.
    pub fn write(&self, pem: &CaPem) -> Result<(), IdentityError> {
        self.create_dir()?;
        write_atomic(&self.roots, pem.roots.as_bytes(), 0o644)?;
        write_atomic(&self.issuer_key, pem.issuer_key.as_bytes(), 0o600)?;
        write_atomic(&self.issuer, pem.issuer.as_bytes(), 0o644)
    }

    /// Creates `<data-dir>/identity` (mode 0700) if it is missing.
    pub fn create_dir(&self) -> Result<(), IdentityError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(IdentityError::io("creating", &self.dir))
    }

    /// What the CA files look like now, to notice a change.
    fn stamp(&self) -> Stamp {
        self.ca_files().map(|path| {
            fs::metadata(path)
                .ok()
                .map(|m| (m.modified().ok(), m.len(), m.ino()))
        })
    }
}

/// Modification time, length and inode of each CA file (`None`: missing).
type Stamp = [Option<(Option<SystemTime>, u64, u64)>; 3];

/// Writes `bytes` to a temporary file beside `path` with `mode`, then renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IdentityError> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(IdentityError::io("creating", &tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(IdentityError::io("writing", &tmp))?;
    fs::rename(&tmp, path).map_err(IdentityError::io("replacing", path))
}

/// The CA in force and the files it came from.
#[derive(Debug)]
pub struct CaStore {
    layout: Layout,
    material: Arc<CaMaterial>,
    seen: Stamp,
    created: bool,
}

impl CaStore {
    /// Loads the CA from `<data_dir>/identity`, or generates it there (a root for
    /// `trust_domain` and an issuer, both valid for `root_lifetime`) when none of its files
    /// exist. Some files present and others missing is an error, as is any file that does
    /// not check out ([`CaMaterial::parse`]).
    pub fn load_or_create(
        data_dir: &Path,
        trust_domain: &str,
        root_lifetime: Duration,
    ) -> Result<CaStore, IdentityError> {
        let layout = Layout::new(data_dir);
        let present: Vec<&Path> = layout
            .ca_files()
            .into_iter()
            .filter(|p| p.exists())
            .collect();
        if present.is_empty() {
            let pem = CaPem::generate(trust_domain, root_lifetime, SystemTime::now())?;
            layout.write(&pem)?;
            let mut store = Self::load(data_dir)?;
            store.created = true;
            return Ok(store);
        }
        if let Some(missing) = layout.ca_files().into_iter().find(|p| !p.exists()) {
            return Err(IdentityError::file(
                missing,
                format!(
                    "missing, while {} exists: restore it from a backup, or remove {} to start a new CA (every workload then needs a new certificate)",
                    present[0].display(),
                    layout.dir.display()
                ),
            ));
        }
        Self::load(data_dir)
    }

    /// Loads the CA from `<data_dir>/identity`; every file must exist and check out.
    pub fn load(data_dir: &Path) -> Result<CaStore, IdentityError> {
        let layout = Layout::new(data_dir);
        let seen = layout.stamp();
        let material = CaMaterial::parse(&layout.read()?, &layout, SystemTime::now())?;
        Ok(CaStore {
            layout,
            material: Arc::new(material),
            seen,
            created: false,
        })
    }

    /// Whether [`CaStore::load_or_create`] generated the CA just now.
    pub fn created(&self) -> bool {
        self.created
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The CA in force.
    pub fn material(&self) -> Arc<CaMaterial> {
        self.material.clone()
    }

    /// Re-reads the files if they changed since the last look: `Ok(Some)` with the new CA
    /// now in force, `Ok(None)` when nothing changed, `Err` when the changed files do not
    /// check out (the CA in force stays; the same files are not reported twice).
    pub fn reload_if_changed(&mut self) -> Result<Option<Arc<CaMaterial>>, IdentityError> {
        let stamp = self.layout.stamp();
        if stamp == self.seen {
            return Ok(None);
        }
        self.seen = stamp;
        let material = CaMaterial::parse(&self.layout.read()?, &self.layout, SystemTime::now())?;
        self.material = Arc::new(material);
        Ok(Some(self.material.clone()))
    }

    /// Polls the files every `every` in a background task and publishes each new CA on
    /// the returned channel. The task ends when every receiver is dropped.
    pub fn watch(self, every: Duration) -> watch::Receiver<Arc<CaMaterial>> {
        let (tx, rx) = watch::channel(self.material());
        let mut store = self;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tx.closed() => return,
                    () = tokio::time::sleep(every) => {}
                }
                match store.reload_if_changed() {
                    Ok(None) => {}
                    Ok(Some(material)) => {
                        eprintln!(
                            "trellis operator: new CA from {} in force: {} root(s), issuer signed by {} (sha256 {})",
                            store.layout.dir.display(),
                            material.roots().len(),
                            material.issuer_root().subject,
                            material.issuer_root().fingerprint
                        );
                        tx.send_replace(material);
                    }
                    Err(e) => eprintln!("trellis operator: {e}; the CA in force stays"),
                }
            }
        });
        rx
    }
}

/// The roots in `roots.pem` of `data_dir`, checked as the CA checks them.
pub fn read_roots(data_dir: &Path) -> Result<Vec<Root>, IdentityError> {
    let layout = Layout::new(data_dir);
    Ok(
        CaMaterial::parse(&layout.read()?, &layout, SystemTime::now())?
            .roots()
            .to_vec(),
    )
}

/// What [`rotate_root`] did.
#[derive(Debug)]
pub struct Rotation {
    /// The root just made; it signed the new issuer.
    pub new_root: Root,
    /// Every root now trusted, oldest first.
    pub roots: Vec<Root>,
}

/// Step 1 of a root rotation: appends a new root to `roots.pem` (the old roots stay
/// trusted) and replaces the issuer with one signed by the new root. The trust domain in
/// the new root's name is `trust_domain`, or that of the newest root.
///
/// Works when the issuer in force has expired (that is how to recover from it); the roots
/// must check out.
pub fn rotate_root(
    data_dir: &Path,
    trust_domain: Option<&str>,
    lifetime: Duration,
) -> Result<Rotation, IdentityError> {
    let layout = Layout::new(data_dir);
    let old = layout.read()?;
    let old_roots = certificates(&old.roots).map_err(|e| IdentityError::file(&layout.roots, e))?;
    let trust_domain = match trust_domain {
        Some(td) => td.to_owned(),
        None => old_roots
            .last()
            .and_then(|der| trust_domain_of(der))
            .ok_or_else(|| {
                IdentityError::file(
                    &layout.roots,
                    "the newest root's name does not say the trust domain: pass --trust-domain",
                )
            })?,
    };
    let new = old.rotated(&trust_domain, lifetime, SystemTime::now())?;
    // Checks the old roots and the new pair before anything is written.
    let material = CaMaterial::parse(&new, &layout, SystemTime::now())?;
    layout.write(&new)?;
    Ok(Rotation {
        new_root: material.issuer_root().clone(),
        roots: material.roots().to_vec(),
    })
}

/// Step 3 of a root rotation: removes every root but the one that signed the issuer in
/// force. Returns the roots removed (none when there was only one).
pub fn drop_old_roots(data_dir: &Path) -> Result<Vec<Root>, IdentityError> {
    let layout = Layout::new(data_dir);
    let material = CaMaterial::parse(&layout.read()?, &layout, SystemTime::now())?;
    let keep = material.issuer_root().fingerprint.clone();
    let dropped: Vec<Root> = material
        .roots()
        .iter()
        .filter(|r| r.fingerprint != keep)
        .cloned()
        .collect();
    if !dropped.is_empty() {
        write_roots(&layout, &[material.issuer_root().clone()])?;
    }
    Ok(dropped)
}

/// Removes the root whose SHA-256 fingerprint is, or starts with, `fingerprint` (at least
/// 8 hex digits; `:` separators and a `sha256:` prefix are ignored). The root that signed
/// the issuer in force cannot be removed.
pub fn drop_root(data_dir: &Path, fingerprint: &str) -> Result<Root, IdentityError> {
    let wanted: String = fingerprint
        .trim()
        .trim_start_matches("sha256:")
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if wanted.len() < 8 || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(IdentityError::Refused(format!(
            "{fingerprint:?} is not a fingerprint: give at least 8 hex digits of a root's SHA-256 (see `trellis identity roots`)"
        )));
    }
    let layout = Layout::new(data_dir);
    let material = CaMaterial::parse(&layout.read()?, &layout, SystemTime::now())?;
    let matching: Vec<&Root> = material
        .roots()
        .iter()
        .filter(|r| r.fingerprint.starts_with(&wanted))
        .collect();
    let root = match matching[..] {
        [root] => root.clone(),
        [] => {
            return Err(IdentityError::Refused(format!(
                "no root in {} has the fingerprint {wanted}",
                layout.roots.display()
            )));
        }
        _ => {
            return Err(IdentityError::Refused(format!(
                "{} roots in {} have fingerprints starting with {wanted}: give more digits",
                matching.len(),
                layout.roots.display()
            )));
        }
    };
    if root.fingerprint == material.issuer_root().fingerprint {
        return Err(IdentityError::Refused(format!(
            "root {} signed the issuer in force and cannot be dropped: run `trellis identity rotate-root` first",
            root.fingerprint
        )));
    }
    let kept: Vec<Root> = material
        .roots()
        .iter()
        .filter(|r| r.fingerprint != root.fingerprint)
        .cloned()
        .collect();
    write_roots(&layout, &kept)?;
    Ok(root)
}

fn write_roots(layout: &Layout, roots: &[Root]) -> Result<(), IdentityError> {
    let text: String = roots.iter().map(|r| certificate_pem(&r.der)).collect();
    write_atomic(&layout.roots, text.as_bytes(), 0o644)
}

/// The trust domain in a Trellis root's common name (`Trellis root CA <trust-domain>`).
fn trust_domain_of(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    cn.strip_prefix("Trellis root CA ").map(str::to_owned)
}
