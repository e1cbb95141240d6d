//! The contract's operations, implemented over the store; facility webhooks in `facility.rs`.

mod facility;

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::Response;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::Value;
use tokio::sync::Notify;
use webhooks::rt::Rejection;
use webhooks::server::queries::SearchWebhookLogsSortDirection;
use webhooks::server::{responses, types, validate, Api, Operation};

use crate::auth::{Authenticator, Principal};
use crate::error::{self, Internal};
use crate::ratelimit::{RateLimiter, RetryAfter};
use crate::store::{
    AccessStore, DeliveryStore, LogEntry, LogQuery, NewEvent, NewWebhook, Owner, PublishedEvent, Store,
    StoreError, Webhook, WebhookKind, WebhookStore, WebhookUpdate,
};

/// Length of a generated webhook secret (`[A-Za-z0-9]`).
pub const GENERATED_SECRET_LEN: usize = 32;

pub struct WebhooksApi {
    pub store: Store,
    pub auth: Authenticator,
    pub body_limit: usize,
    /// The Public API's rate limit per client; `None` when it is off (`--rate-limit 0`).
    pub rate_limiter: Option<RateLimiter>,
    /// Most webhooks one owner (client and user) may have.
    pub max_webhooks_per_owner: u32,
    /// Largest published `data`, in bytes of compact JSON.
    pub event_data_limit: usize,
    /// Wakes this process's delivery worker when an event is published.
    pub waker: Option<Arc<Notify>>,
}

impl From<Principal> for Owner {
    fn from(p: Principal) -> Self {
        Owner { client_id: p.client_id, user_id: p.user_id }
    }
}

/// The stored events of `w` as the contract's enum of its kind; one that is not is a corrupt row.
fn stored_events<E: std::str::FromStr>(w: &Webhook) -> Result<Vec<E>, Internal>
where
    E::Err: std::fmt::Display,
{
    w.events
        .iter()
        .map(|e| e.parse::<E>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Internal(crate::store::StoreError::Corrupt { id: w.id.clone(), reason: e.to_string() }))
}

fn to_contract(w: Webhook) -> Result<types::UserWebhook, Internal> {
    let events = stored_events(&w)?;
    Ok(types::UserWebhook { id: w.id, url: w.url, events, client_id: w.client_id, secrets: w.secrets })
}

/// Events as stored: their names on the wire.
fn event_names<E: ToString>(events: &[E]) -> Vec<String> {
    events.iter().map(ToString::to_string).collect()
}

/// A fresh secret from the thread-local CSPRNG (ChaCha, seeded by the OS).
pub fn generate_secret() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), GENERATED_SECRET_LEN)
}

/// The secrets given, or one generated when there are none (absent, null or `[]`).
fn generate_secrets(given: Option<Vec<String>>) -> Vec<String> {
    match given {
        Some(secrets) if !secrets.is_empty() => secrets,
        _ => vec![generate_secret()],
    }
}

/// The event types an accepted request of a user grants that user `data.facilityId` by (the
/// documentation: "the connection between the user and the facility will be created").
const GRANTING_EVENTS: [types::EventType; 2] =
    [types::EventType::FacilityUserConnectionAccepted, types::EventType::FacilityCreationAccepted];

impl Api for WebhooksApi {
    type Principal = Principal;
    type Error = Internal;

    async fn authenticate(&self, operation: Operation, headers: &HeaderMap) -> Result<Principal, Rejection> {
        self.auth.authorize(headers, operation.required_scopes())
    }

    fn rate_limit(&self, _operation: Operation, principal: &Principal) -> Result<(), Rejection> {
        match &self.rate_limiter {
            Some(limiter) => limiter
                .check(principal)
                .map_err(|RetryAfter(retry_after_secs)| Rejection::TooManyRequests { retry_after_secs }),
            None => Ok(()),
        }
    }

    fn reject(&self, rejection: Rejection) -> Response {
        error::reject(rejection)
    }

    fn body_limit(&self) -> usize {
        self.body_limit
    }

    async fn create_user_webhook(
        &self,
        principal: Principal,
        body: types::CreateUserWebhookRequest,
    ) -> Result<responses::CreateUserWebhook, Internal> {
        let secrets = generate_secrets(body.secrets.map(|s| s.into_iter().map(String::from).collect()));
        let new = NewWebhook {
            url: body.url,
            events: event_names(&body.events),
            secrets,
            kind: WebhookKind::User,
            facilities: None,
        };
        let limit = self.max_webhooks_per_owner;
        Ok(match self.store.create(&principal.into(), new, limit).await? {
            Some(webhook) => responses::CreateUserWebhook::Created(types::CreateUserWebhookResponse {
                data: to_contract(webhook)?,
            }),
            None => responses::CreateUserWebhook::BadRequest(error::webhook_limit_reached(limit)),
        })
    }

    async fn list_user_webhooks(
        &self,
        principal: Principal,
    ) -> Result<responses::ListUserWebhooks, Internal> {
        let webhooks = self.store.list(&principal.into(), WebhookKind::User).await?;
        let data = webhooks.into_iter().map(to_contract).collect::<Result<_, _>>()?;
        Ok(responses::ListUserWebhooks::Ok(types::ListUserWebhooksResponse { data }))
    }

    async fn get_user_webhook(
        &self,
        principal: Principal,
        webhook_id: String,
    ) -> Result<responses::GetUserWebhook, Internal> {
        Ok(match self.store.get(&principal.into(), WebhookKind::User, &webhook_id).await? {
            Some(w) => responses::GetUserWebhook::Ok(types::GetUserWebhookResponse { data: to_contract(w)? }),
            None => responses::GetUserWebhook::NotFound(error::webhook_not_found()),
        })
    }

    async fn update_user_webhook(
        &self,
        principal: Principal,
        webhook_id: String,
        body: types::UpdateUserWebhookRequest,
    ) -> Result<responses::UpdateUserWebhook, Internal> {
        let update = WebhookUpdate {
            url: body.url,
            events: Some(event_names(&body.events)),
            secrets: body
                .secrets
                .filter(|s| !s.is_empty())
                .map(|s| s.into_iter().map(String::from).collect()),
            facilities: None,
        };
        Ok(match self.store.update(&principal.into(), WebhookKind::User, &webhook_id, update).await? {
            Some(w) => {
                responses::UpdateUserWebhook::Ok(types::UpdateUserWebhookResponse { data: to_contract(w)? })
            }
            None => responses::UpdateUserWebhook::NotFound(error::webhook_not_found()),
        })
    }

    async fn publish_event(
        &self,
        principal: Principal,
        body: types::PublishEventRequest,
    ) -> Result<responses::PublishEvent, Internal> {
        let published = match publish(&self.store, self.event_data_limit, principal.client_id, body).await? {
            Ok(published) => published,
            Err(errors) => {
                return Ok(responses::PublishEvent::BadRequest(error::bad_request(
                    types::BadRequestErrorMessage::Array(errors),
                )))
            }
        };
        if published.deliveries > 0 && !published.duplicate {
            if let Some(waker) = &self.waker {
                waker.notify_one();
            }
        }
        // A repeated id answers with the event as first published, whatever this request says.
        let event_type = published.event_type.parse::<types::EventType>().map_err(|e| {
            Internal(crate::store::StoreError::Corrupt { id: published.id.clone(), reason: e.to_string() })
        })?;
        Ok(responses::PublishEvent::Accepted(types::PublishEventResponse {
            data: types::PublishedEvent { id: published.id, event_type, deliveries: published.deliveries },
        }))
    }

    async fn search_webhook_logs(
        &self,
        principal: Principal,
        query: webhooks::server::queries::SearchWebhookLogs,
    ) -> Result<responses::SearchWebhookLogs, Internal> {
        let bad = |message: &str| {
            Ok(responses::SearchWebhookLogs::BadRequest(error::bad_request(
                types::BadRequestErrorMessage::Array(vec![message.to_owned()]),
            )))
        };
        // The generated layer has parsed both instants (rt::date), so only their order is left.
        let start_ms = query.start_date.map(|t| t.timestamp_millis());
        let end_ms = query.end_date.map(|t| t.timestamp_millis());
        if let (Some(start), Some(end)) = (start_ms, end_ms) {
            if start >= end {
                return bad("startDate must be before endDate");
            }
        }
        let log_query = LogQuery {
            client_id: principal.client_id,
            user_id: principal.user_id,
            event_type: query.event_type.map(|t| t.to_string()),
            start_ms,
            end_ms,
            webhook_id: query.webhook_id,
            facility_ids: query.facilities_ids.unwrap_or_default(),
            limit: query.limit,
            offset: query.offset,
            ascending: query.sort_direction == SearchWebhookLogsSortDirection::Asc,
        };
        let entries = self.store.search_logs(&log_query).await?;
        let data = entries.into_iter().map(log_entry).collect::<Result<_, _>>()?;
        Ok(responses::SearchWebhookLogs::Ok(types::SearchWebhookLogsResponse { data }))
    }

    async fn create_facility_webhook(
        &self,
        principal: Principal,
        body: types::CreateWebhookRequest,
    ) -> Result<responses::CreateFacilityWebhook, Internal> {
        self.create_facility(principal, body).await
    }

    async fn list_facility_webhooks(
        &self,
        principal: Principal,
    ) -> Result<responses::ListFacilityWebhooks, Internal> {
        self.list_facility(principal).await
    }

    async fn get_facility_webhook(
        &self,
        principal: Principal,
        webhook_id: String,
    ) -> Result<responses::GetFacilityWebhook, Internal> {
        self.get_facility(principal, webhook_id).await
    }

    async fn update_facility_webhook(
        &self,
        principal: Principal,
        webhook_id: String,
        body: types::UpdateWebhookRequest,
    ) -> Result<responses::UpdateFacilityWebhook, Internal> {
        self.update_facility(principal, webhook_id, body).await
    }

    async fn delete_facility_webhook(
        &self,
        principal: Principal,
        webhook_id: String,
    ) -> Result<responses::DeleteFacilityWebhook, Internal> {
        self.delete_facility(principal, webhook_id).await
    }

    async fn set_user_facilities(
        &self,
        _principal: Principal,
        user_id: String,
        body: types::SetUserFacilitiesRequest,
    ) -> Result<responses::SetUserFacilities, Internal> {
        self.set_facilities(user_id, body).await
    }

    async fn get_health(&self) -> Result<responses::GetHealth, Internal> {
        Ok(responses::GetHealth::Ok(types::HealthStatus { status: types::HealthStatusStatus::Ok }))
    }

    async fn get_readiness(&self) -> Result<responses::GetReadiness, Internal> {
        Ok(match self.store.ping().await {
            Ok(()) => {
                responses::GetReadiness::Ok(types::HealthStatus { status: types::HealthStatusStatus::Ok })
            }
            Err(e) => {
                tracing::warn!(error = %e, "not ready: the database does not answer");
                responses::GetReadiness::ServiceUnavailable(types::HealthStatus {
                    status: types::HealthStatusStatus::Unavailable,
                })
            }
        })
    }

    /// Only renders: the backlog gauge is kept current by [`crate::metrics::refresh_backlog`].
    async fn get_metrics(&self) -> Result<responses::GetMetrics, Internal> {
        Ok(responses::GetMetrics::Ok(crate::metrics::handle().render()))
    }

    async fn delete_user_webhook(
        &self,
        principal: Principal,
        webhook_id: String,
    ) -> Result<responses::DeleteUserWebhook, Internal> {
        Ok(if self.store.delete(&principal.into(), WebhookKind::User, &webhook_id).await? {
            responses::DeleteUserWebhook::NoContent
        } else {
            responses::DeleteUserWebhook::NotFound(error::webhook_not_found())
        })
    }
}

/// `publishEvent` once the generated validator has passed `body` (the API and `webhooks-server
/// publish` alike): the rules left to the server (`data`'s size and required fields), the access
/// an accepted request grants, then the event and its deliveries.
/// `Ok(Err(messages))`: refused, nothing stored.
pub async fn publish(
    store: &Store,
    data_limit: usize,
    publisher: String,
    body: types::PublishEventRequest,
) -> Result<Result<PublishedEvent, Vec<String>>, StoreError> {
    let audience = audience(body.event_type);
    let errors = data_errors(body.event_type, &body.data, data_limit);
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let user_id = body.user_id.map(String::from).unwrap_or_default();
    let facility_id = crate::store::facility_of(&body.data);
    if let (true, Some(facility)) = (GRANTING_EVENTS.contains(&body.event_type), &facility_id) {
        store.grant(&user_id, facility).await?;
    }
    let event = NewEvent {
        publisher,
        id: body.id.map(String::from),
        event_type: body.event_type.to_string(),
        user_id,
        data: body.data,
        facility_id,
        audience,
    };
    store.publish(event).await.map(Ok)
}

/// Which webhooks an event of `event_type` goes to: facility events (`FacilityEventType`) to
/// facility webhooks, the others to user webhooks.
pub fn audience(event_type: types::EventType) -> WebhookKind {
    match event_type.to_string().parse::<types::FacilityEventType>() {
        Ok(_) => WebhookKind::Facility,
        Err(_) => WebhookKind::User,
    }
}

/// What is wrong with the payload of `event_type`: its size as compact JSON (what is stored
/// and delivered) above `limit` bytes, then the fields the contract requires of that type
/// (`x-required-data`, checked by the generated validator).
pub fn data_errors(
    event_type: types::EventType,
    data: &serde_json::Map<String, Value>,
    limit: usize,
) -> Vec<String> {
    let size = serde_json::to_vec(data).map_or(usize::MAX, |json| json.len());
    let too_large =
        (size > limit).then(|| format!("data must be shorter than or equal to {limit} bytes as JSON"));
    too_large.into_iter().chain(validate::publish_event_request_data(&event_type.to_string(), data)).collect()
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn log_entry(entry: LogEntry) -> Result<types::WebhookLog, Internal> {
    let corrupt =
        |reason: String| Internal(crate::store::StoreError::Corrupt { id: entry.id.clone(), reason });
    let event_type = entry.event_type.parse::<types::EventType>().map_err(|e| corrupt(e.to_string()))?;
    let request_payload = match &entry.request_payload {
        Value::Object(map) => map.clone(),
        _ => return Err(corrupt("stored body is not an object".into())),
    };
    let mut attempts = entry.attempts.into_iter();
    let first = attempts.next();
    let retries = attempts
        .map(|a| types::WebhookLogRetry {
            retry_attempt: a.attempt,
            response_status: a.status_code,
            response_body: a.response_body,
            created_at: rfc3339(a.created_at_ms),
        })
        .collect();
    Ok(types::WebhookLog {
        id: entry.id,
        webhook_id: entry.webhook_id,
        event_id: entry.event_id,
        event_type,
        facility_id: entry.facility_id,
        request_payload,
        response_status: first.as_ref().and_then(|a| a.status_code),
        response_body: first.as_ref().map(|a| a.response_body.clone()).unwrap_or_default(),
        url: first.map(|a| a.url).unwrap_or(entry.url),
        retries,
        status: if entry.status == "success" {
            types::WebhookLogStatus::Success
        } else {
            types::WebhookLogStatus::Failure
        },
        created_at: rfc3339(entry.created_at_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_32_alphanumerics_and_differ() {
        let a = generate_secret();
        let b = generate_secret();
        assert_eq!(a.len(), GENERATED_SECRET_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
