//! `trellis`: the Trellis CLI and control plane.

fn main() -> std::process::ExitCode {
    trellis_operator::cli::run()
}
