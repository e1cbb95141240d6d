//! The end-to-end suite: one test binary, one module per concern (as svix-server's `tests/it`
//! does), so the whole server is linked once instead of once per file. Every module drives the
//! real server — in process on port 0 through the generated client, or as the real binary in a
//! subprocess — through the harness in `tests/src/`.
//!
//! Tests in one binary share a process: anything process-wide (the Prometheus recorder, the
//! rustls crypto provider) is only ever asserted with lower bounds or from a subprocess.

mod api;
mod callbacks;
mod cli;
mod conformance;
mod coverage;
mod crash;
mod delivery;
mod delivery_crash;
mod facility;
mod isolation;
mod operations;
mod ratelimit;
mod replicas;
mod routing;
mod rules;
mod spec_examples;
mod startup;
