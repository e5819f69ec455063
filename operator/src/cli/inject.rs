//! `trellis inject`: adds the Trellis proxy to the pod templates of YAML files.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::exit;
use crate::inject::Config;
use crate::inject::files::{self, Injected};

/// Add the Trellis sidecar proxy to the workloads of Kubernetes YAML files.
///
/// Reads YAML streams (several documents per file) and adds the proxy to the pod template
/// of every Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController,
/// Job and CronJob (`kind: List` items too), as the injection webhook would: the
/// trellis-proxy container, the trellis-init container (iptables), the identity token
/// volume and the trellis.dev/injected annotation. Every other document is written back
/// byte for byte. Pods labelled trellis.dev/inject=disabled, already injected, or on
/// hostNetwork are left as they are.
///
/// The result goes to stdout (or back into each file with --in-place); what was done to
/// each object goes to stderr. Exit status: 0 when done, 1 when a document cannot be
/// injected (nothing is written then), 2 on a usage error.
///
/// Examples:
///   trellis inject deploy.yaml | kubectl apply -f -
///   kubectl get deploy web -o yaml | trellis inject - | kubectl apply -f -
///   trellis inject --config inject.yaml --native-sidecars k8s/
///   trellis inject --in-place k8s/apps/
///
/// The config file is inject.yaml as the ConfigMap trellis-inject holds it (image,
/// controlPlane, trustDomain, resources, skip lists, ...); without --config the
/// built-in defaults apply. See docs/injection.md.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Files or directories (read recursively: *.yaml, *.yml); `-` reads stdin.
    #[arg(required = true, value_name = "FILE|DIR|-")]
    paths: Vec<PathBuf>,
    /// The injection config (inject.yaml); default: the built-in defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Add the proxy as a native sidecar (an init container with restartPolicy Always;
    /// Kubernetes >= 1.29), whatever the config's sidecarMode says. Without it the
    /// config's sidecarMode decides: `native`, or else an ordinary container.
    #[arg(long)]
    native_sidecars: bool,
    /// Write each changed file back instead of printing the result.
    #[arg(long, short = 'i')]
    in_place: bool,
}

pub fn run(args: Args) -> u8 {
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        },
        None => Config::default(),
    };
    let native = args.native_sidecars || config.sidecar_mode.native(false);
    let inputs = match inputs(&args.paths, args.in_place) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let mut results: Vec<(Input, Injected)> = Vec::new();
    let mut failed = false;
    for input in inputs {
        match files::inject_stream(&input.text, &config, native) {
            Ok(injected) => {
                for r in &injected.reports {
                    eprintln!("{}:{}: {}: {}", input.name, r.line, r.object, r.outcome);
                }
                results.push((input, injected));
            }
            Err(errors) => {
                failed = true;
                for e in errors {
                    eprintln!("{}: {e}", input.name);
                }
            }
        }
    }
    if failed {
        eprintln!("error: nothing written; fix the documents above");
        return exit::PROBLEMS;
    }
    if args.in_place {
        for (input, injected) in &results {
            if !injected.changed {
                continue;
            }
            let path = input.path.as_ref().expect("--in-place reads files only");
            if let Err(e) = std::fs::write(path, &injected.text) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return exit::PROBLEMS;
            }
            eprintln!("wrote {}", path.display());
        }
        return exit::OK;
    }
    let mut stdout = std::io::stdout().lock();
    for (i, (_, injected)) in results.iter().enumerate() {
        let mut text = injected.text.clone();
        if i > 0 && !text.starts_with("---") {
            text.insert_str(0, "---\n");
        }
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        // A closed pipe (`trellis inject | head`) is not worth a panic.
        if stdout.write_all(text.as_bytes()).is_err() {
            break;
        }
    }
    exit::OK
}

/// One stream to inject: a file, or stdin.
struct Input {
    name: String,
    path: Option<PathBuf>,
    text: String,
}

/// The streams named by `paths`, in order (a directory's YAML files sorted by path).
fn inputs(paths: &[PathBuf], in_place: bool) -> Result<Vec<Input>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            if in_place {
                return Err("--in-place cannot write back to stdin (-)".into());
            }
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read stdin: {e}"))?;
            files.push(Input {
                name: "(stdin)".into(),
                path: None,
                text,
            });
        } else if path.is_dir() {
            let mut found = Vec::new();
            yaml_files(path, &mut found)?;
            if found.is_empty() {
                return Err(format!(
                    "no YAML files (*.yaml, *.yml) under {}",
                    path.display()
                ));
            }
            found.sort();
            for file in found {
                files.push(read(&file)?);
            }
        } else {
            files.push(read(path)?);
        }
    }
    Ok(files)
}

fn read(path: &Path) -> Result<Input, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(Input {
        name: path.display().to_string(),
        path: Some(path.to_owned()),
        text,
    })
}

fn yaml_files(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            yaml_files(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            found.push(path);
        }
    }
    Ok(())
}
