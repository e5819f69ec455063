//! The `trellis` command line: one module per subcommand.

mod crds;
mod demo;
mod demo_app;
mod identity;
mod inject;
mod join_token;
mod operator;
mod status;
mod validate;
mod values_schema;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Trellis: an SMI-first, GitOps-driven service mesh.
#[derive(Debug, Parser)]
#[command(name = "trellis", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    // The subcommands without a comment here take their help from their `Args`' doc
    // comment, examples included.
    Operator(Box<operator::Args>),
    /// Check a repository of SMI and Trellis manifests, offline.
    ///
    /// Reads every YAML file under the paths: SMI resources of every served version
    /// (TrafficSplit, TrafficTarget, HTTPRouteGroup, TCPRoute, UDPRoute), Trellis resources
    /// and Services, and checks each resource and the references between them.
    ///
    /// Every problem is printed as `file:line: kind/namespace/name: field: message`.
    /// Exit status: 0 when there is no error (warnings allowed), 1 when there are
    /// problems, 2 on a usage error. Objects of other kinds are skipped and counted.
    #[command(verbatim_doc_comment)]
    Validate(validate::Args),
    /// Print or write the CustomResourceDefinitions Trellis serves.
    Crds(crds::Args),
    /// Print a join token: a workload's proof of its identity in local mode.
    ///
    /// A proxy presents the token (--identity-token-file) to the operator's Identity API
    /// and gets a certificate for spiffe://<trust-domain>/ns/<NS>/sa/<SA>, and for no other
    /// identity. The token is made with the key DIR/identity/join-token.key (created, with a
    /// note on stderr, when missing); an operator with the same --data-dir accepts it.
    /// Anyone holding the token can get that identity's certificate: keep it as secret
    /// as a password.
    ///
    /// Example:
    ///   trellis join-token --data-dir /var/lib/trellis --namespace shop --service-account web > web.token
    ///   trellis-proxy --identity spiffe://cluster.local/ns/shop/sa/web \
    ///     --identity-token-file web.token --identity-url http://127.0.0.1:8090 ...
    #[command(verbatim_doc_comment)]
    JoinToken(join_token::Args),
    /// The identity CA's roots: list them, rotate them (see docs/identity.md).
    Identity(identity::Args),
    /// What a running operator has: synced revision, resources and their conditions,
    /// registered workloads and connected proxies.
    Status(status::Args),
    Demo(demo::Args),
    /// A small HTTP app for demos and tests: a version string, latency and errors on
    /// demand, and /call to call another service through its proxy.
    DemoApp(demo_app::Args),
    Inject(inject::Args),
    /// Print or check the Helm chart's values.schema.json (generated from the Rust types).
    ValuesSchema(values_schema::Args),
}

/// Exit codes shared by every subcommand.
pub mod exit {
    /// Everything is fine.
    pub const OK: u8 = 0;
    /// The command ran and found problems.
    pub const PROBLEMS: u8 = 1;
    /// The command was used wrongly (bad flag, missing path).
    pub const USAGE: u8 = 2;
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Operator(args) => operator::run(*args),
        Command::Validate(args) => validate::run(args),
        Command::Crds(args) => crds::run(args),
        Command::JoinToken(args) => join_token::run(args),
        Command::Identity(args) => identity::run(args),
        Command::Status(args) => status::run(args),
        Command::Demo(args) => demo::run(args),
        Command::DemoApp(args) => demo_app::run(args),
        Command::Inject(args) => inject::run(args),
        Command::ValuesSchema(args) => values_schema::run(args),
    };
    ExitCode::from(code)
}
