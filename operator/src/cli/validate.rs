//! `trellis validate <dir|file>...`: an offline linter for a repo of SMI manifests.

use std::io::Write;
use std::path::PathBuf;

use smi_crds::validate::DEFAULT_NAMESPACE;

use super::exit;
use crate::{lint, manifest};

/// Arguments of `trellis validate` (its help text is on `cli::Command::Validate`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories to check (directories are read recursively: *.yaml, *.yml).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Text)]
    output: Format,
    /// Namespace of objects that do not name one (as `kubectl apply -n` would use).
    #[arg(long, short, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Treat warnings as problems (exit 1).
    #[arg(long)]
    strict: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(args: Args) -> u8 {
    let manifests = match manifest::load(&args.paths) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    if manifests.files == 0 && manifests.templates_skipped == 0 {
        let paths: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "error: no YAML files (*.yaml, *.yml) under {}",
            paths.join(", ")
        );
        return exit::USAGE;
    }
    let report = lint::lint(&manifests, &args.namespace);
    let mut stdout = std::io::stdout().lock();
    match args.output {
        Format::Json => {
            let _ = serde_json::to_writer_pretty(&mut stdout, &report);
            let _ = writeln!(stdout);
        }
        Format::Text => {
            for finding in &report.findings {
                let _ = writeln!(stdout, "{finding}");
            }
            eprintln!("{}", summary_line(&report.summary));
        }
    }
    let failed = report.summary.errors > 0 || (args.strict && report.summary.warnings > 0);
    if failed { exit::PROBLEMS } else { exit::OK }
}

fn summary_line(s: &lint::Summary) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut line = format!(
        "{}, {} in {} ({} checked, {} of other kinds skipped",
        plural(s.errors, "error"),
        plural(s.warnings, "warning"),
        plural(s.files, "file"),
        plural(s.checked, "resource"),
        s.skipped,
    );
    if s.templates_skipped > 0 {
        line += &format!(", {} skipped", plural(s.templates_skipped, "Helm template"));
    }
    line + ")"
}
