//! `trellis identity`: the CA's roots in a data directory, and rotating them.

use std::path::PathBuf;
use std::time::Duration;

use super::exit;
use crate::identity::{self, Root};

/// Arguments of `trellis identity` (its help text is on `cli::Command::Identity`).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List the trusted roots: fingerprint (SHA-256), expiry, name, and which signed the
    /// issuer in force.
    Roots(DataDir),
    /// Rotation step 1: add a new root and replace the issuer with one it signs.
    ///
    /// The old roots stay trusted, so certificates already issued keep working. New
    /// certificates chain to the new root from the operator's next poll of its files (2 s).
    /// Then wait until every workload has renewed (one workload certificate lifetime,
    /// MeshConfig spec.certificates.workloadLifetime, 24h by default) and run
    /// `trellis identity drop-old-roots`.
    ///
    /// Also the way out when the issuer has expired.
    ///
    /// Example:
    ///   trellis identity rotate-root --data-dir /var/lib/trellis
    #[command(verbatim_doc_comment)]
    RotateRoot(RotateRoot),
    /// Rotation step 3: keep only the root that signed the issuer in force.
    ///
    /// Run it once every workload holds a certificate from the new root; a workload still
    /// holding one from an old root is refused by its peers once they see the new roots.
    DropOldRoots(DataDir),
    /// Remove one root, named by its fingerprint (at least 8 hex digits, see `roots`).
    DropRoot {
        #[command(flatten)]
        data_dir: DataDir,
        /// SHA-256 fingerprint of the root, or its first 8 or more hex digits.
        fingerprint: String,
    },
}

#[derive(Debug, clap::Args)]
struct DataDir {
    /// The operator's data directory (the CA is in DIR/identity).
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
struct RotateRoot {
    #[command(flatten)]
    data_dir: DataDir,
    /// Trust domain in the new root's name [default: that of the newest root].
    #[arg(long, value_name = "DOMAIN")]
    trust_domain: Option<String>,
    /// How long the new root and issuer live (MeshConfig spec.certificates.rootLifetime).
    #[arg(long, value_name = "DURATION", default_value = "87600h", value_parser = lifetime)]
    root_lifetime: Duration,
}

fn lifetime(text: &str) -> Result<Duration, String> {
    smi_crds::validate::parse_duration(text)
}

pub fn run(args: Args) -> u8 {
    let outcome = match args.command {
        Command::Roots(DataDir { data_dir }) => identity::store::CaStore::load(&data_dir).map(|s| {
            let ca = s.material();
            for root in ca.roots() {
                let signs = root.fingerprint == ca.issuer_root().fingerprint;
                println!(
                    "{}{}",
                    describe(root),
                    if signs { "  (signed the issuer)" } else { "" }
                );
            }
        }),
        Command::RotateRoot(RotateRoot {
            data_dir: DataDir { data_dir },
            trust_domain,
            root_lifetime,
        }) => identity::rotate_root(&data_dir, trust_domain.as_deref(), root_lifetime).map(|r| {
            println!("added root {}", describe(&r.new_root));
            println!("the issuer is now signed by it; trusted roots:");
            for root in &r.roots {
                println!("  {}", describe(root));
            }
            println!(
                "next: once every workload has renewed its certificate (one workload lifetime), run `trellis identity drop-old-roots --data-dir {}`",
                data_dir.display()
            );
        }),
        Command::DropOldRoots(DataDir { data_dir }) => {
            identity::drop_old_roots(&data_dir).map(|dropped| {
                if dropped.is_empty() {
                    println!("only one root is trusted: nothing to drop");
                }
                for root in dropped {
                    println!("dropped root {}", describe(&root));
                }
            })
        }
        Command::DropRoot {
            data_dir: DataDir { data_dir },
            fingerprint,
        } => identity::drop_root(&data_dir, &fingerprint)
            .map(|root| println!("dropped root {}", describe(&root))),
    };
    match outcome {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            exit::PROBLEMS
        }
    }
}

fn describe(root: &Root) -> String {
    format!(
        "sha256:{}  expires {}  {}",
        root.fingerprint, root.not_after_text, root.subject
    )
}
