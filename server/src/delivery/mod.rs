//! Signed delivery of published events to webhooks: at least once, retried on a schedule,
//! every attempt logged.

mod fair;
mod guard;
mod http;
mod signer;
mod worker;

pub use guard::{TargetPolicy, TargetRefused};
pub use http::{build_client, DeliveryHttp};
pub use signer::{signature_header, EVENT_ID_HEADER, SIGNATURE_HEADER, USER_AGENT};
pub use worker::{Worker, WorkerSettings};
