//! `trellis values-schema`: the Helm chart's values.schema.json, generated from
//! [`crate::chart::values::Values`].

use std::fs;
use std::path::PathBuf;

use super::exit;
use crate::chart::schema::{self, values_schema};

/// Print, write or check the Helm chart's values.schema.json.
///
/// Examples:
///   trellis values-schema --out charts/trellis/values.schema.json
///   trellis values-schema --check charts/trellis/values.schema.json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Write the schema to this file instead of printing it.
    #[arg(long, value_name = "FILE", conflicts_with = "check")]
    out: Option<PathBuf>,
    /// Compare this file with the generated schema; exit 1 when it differs.
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
}

pub fn run(args: Args) -> u8 {
    let generated = values_schema();
    match (args.out, args.check) {
        (Some(path), _) => match fs::write(&path, &generated) {
            Ok(()) => {
                println!("wrote {}", path.display());
                exit::OK
            }
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                exit::USAGE
            }
        },
        (None, Some(path)) => match fs::read_to_string(&path) {
            Ok(existing) if existing == generated => {
                println!("{} is up to date", path.display());
                exit::OK
            }
            Ok(_) => {
                eprintln!(
                    "{}: differs from the schema generated from operator/src/chart/values.rs; \
                     run `cargo run -p trellis-operator -- values-schema --out {}` and commit it",
                    path.display(),
                    path.display()
                );
                exit::PROBLEMS
            }
            Err(e) => {
                eprintln!(
                    "{}: cannot read it ({e}); run `cargo run -p trellis-operator -- values-schema --out {}`",
                    path.display(),
                    schema::PATH
                );
                exit::PROBLEMS
            }
        },
        (None, None) => {
            use std::io::Write;
            // A closed pipe (`trellis values-schema | head`) is not an error worth a panic.
            let _ = std::io::stdout().lock().write_all(generated.as_bytes());
            exit::OK
        }
    }
}
