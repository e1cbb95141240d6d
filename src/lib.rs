//! The User Webhooks API contract and everything generated from it.
//!
//! `openapi.yaml` (at the repository root) is the single source of truth. `build.rs` turns it
//! into the server side ([`server`]: models, the [`server::Api`] trait, response enums,
//! validators, router) and the client side ([`client`]: a progenitor client). Nothing here
//! is hand-written except [`rt`], the small runtime the generated server code calls.

/// The contract, exactly as checked in (served at `/api-docs/openapi.yaml`).
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");

pub mod rt;

#[cfg(any(test, feature = "testing"))]
pub mod strategies;

/// Generated server side of the contract.
#[cfg(feature = "server")]
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod server {
    include!(concat!(env!("OUT_DIR"), "/server.rs"));
}

/// Generated progenitor client of the contract.
#[cfg(feature = "client")]
#[allow(clippy::all, clippy::pedantic, missing_docs, unused_imports, dead_code)]
pub mod client {
    include!(concat!(env!("OUT_DIR"), "/client.rs"));
}

#[cfg(all(test, feature = "server"))]
mod tests {
    /// The generated server code is reviewed through this snapshot: a change to the spec
    /// or the generator shows up here as a diff.
    #[test]
    fn generated_server_code() {
        insta::assert_snapshot!(include_str!(concat!(env!("OUT_DIR"), "/server.rs")));
    }
}
