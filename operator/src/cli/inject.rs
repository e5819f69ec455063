//! `trellis inject`: adds the Trellis proxy to the pod templates of YAML files.

/// Add the Trellis sidecar proxy to the workloads of YAML files (being built: issue 8).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> u8 {
    eprintln!("trellis inject: not built yet (issue 8)");
    super::exit::USAGE
}
