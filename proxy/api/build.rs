//! Generates the `trellis.proxy.v1` code from `proto/` with protox (a protobuf compiler in
//! Rust), so building needs no `protoc` on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "trellis/proxy/v1/identity.proto",
        "trellis/proxy/v1/discovery.proto",
    ];
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
