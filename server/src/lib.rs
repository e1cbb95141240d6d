//! The User Webhooks API server: implements the contract generated from `openapi.yaml`.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod delivery;
pub mod error;
mod keys;
pub mod metrics;
pub mod ratelimit;
pub mod redact;
pub mod routing;
pub mod serve;
pub mod store;

#[cfg(test)]
mod layering;
