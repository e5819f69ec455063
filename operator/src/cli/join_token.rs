//! `trellis join-token`: the local-mode token proving one namespace/service account.

use std::path::PathBuf;

use super::exit;
use crate::identity::spiffe::valid_part;
use crate::identity::{JoinTokens, Layout};

/// Arguments of `trellis join-token` (its help text is on `cli::Command::JoinToken`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The operator's data directory; the key is DIR/identity/join-token.key.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// The workload's namespace.
    #[arg(long, short, value_name = "NS")]
    namespace: String,
    /// The workload's service account.
    #[arg(long, value_name = "SA")]
    service_account: String,
}

pub fn run(args: Args) -> u8 {
    for (flag, value) in [
        ("--namespace", &args.namespace),
        ("--service-account", &args.service_account),
    ] {
        if !valid_part(value) {
            eprintln!(
                "error: {flag} {value:?} is not valid: use a non-empty name of lowercase letters, digits, '-', '.' and '_'"
            );
            return exit::USAGE;
        }
    }
    let (tokens, created) = match JoinTokens::load_or_create(&args.data_dir) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::PROBLEMS;
        }
    };
    if created {
        eprintln!(
            "note: made a new join token key {}; an operator started with --data-dir {} accepts the tokens it makes",
            Layout::new(&args.data_dir).join_token_key.display(),
            args.data_dir.display()
        );
    }
    println!(
        "{}",
        tokens.token_for(&args.namespace, &args.service_account)
    );
    exit::OK
}
