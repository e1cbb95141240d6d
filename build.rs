//! openapi.yaml -> OUT_DIR/{server.rs, client.rs}. See `codegen/`.

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let spec = root.join("openapi.yaml");
    println!("cargo:rerun-if-changed={}", spec.display());
    if let Err(e) = webhooks_codegen::build(&spec, &out) {
        // A spec the generator cannot honour must stop the build, with the reason.
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
