//! Compiles `proto/ferry.proto` and KEDA's `proto/externalscaler.proto` with
//! protox (a pure-Rust protobuf compiler), so a fresh machine needs no `protoc`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["../proto/ferry.proto", "../proto/externalscaler.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["../proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
