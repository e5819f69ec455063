//! Placeholder: filled in by issue 6.

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> u8 {
    eprintln!("not built yet");
    crate::cli::exit::USAGE
}
