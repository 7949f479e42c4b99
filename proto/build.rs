//! Compiles the protobuf contracts with protox (pure Rust, no system protoc) and generates
//! prost messages plus tonic client and server code; also writes the descriptor set for gRPC reflection.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &["messaging/v1/feed.proto", "messaging/v1/templates.proto", "messaging/bus/v1/bus.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("descriptor.bin"), descriptors.encode_to_vec())?;
    // Maps as BTreeMap: an event encodes to the same bytes every time it is built.
    tonic_prost_build::configure().btree_map(".").build_client(true).build_server(true).compile_fds(descriptors)?;
    Ok(())
}
