//! Generates the `trellis.proxy.v1` code from `proto/` with protox (a protobuf compiler in
//! Rust), so building needs no `protoc` on the machine. pbjson adds serde implementations
//! following the canonical protobuf JSON mapping, so the static config file (YAML or JSON)
//! and the admin `/config` dump use the same model as the gRPC API.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "trellis/proxy/v1/identity.proto",
        "trellis/proxy/v1/discovery.proto",
        "trellis/proxy/v1/registry.proto",
    ];
    let descriptors = protox::compile(files, ["proto"])?;
    let encoded = descriptors.encode_to_vec();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_well_known_types(true)
        .codec_path("crate::codec::SmallBufferCodec")
        // Ordered maps: the same config always encodes to the same bytes, so the operator
        // can version a config by the hash of its encoding.
        .btree_map(".")
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(descriptors)?;
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .preserve_proto_field_names()
        .btree_map(["."])
        .build(&[".trellis.proxy.v1"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
