//! `trellis values-schema`: the Helm chart's values.schema.json.

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> u8 {
    eprintln!("trellis values-schema: not built yet (issue 8)");
    super::exit::USAGE
}
