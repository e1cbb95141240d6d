//! The contract's operations, implemented over the store.

use axum::http::HeaderMap;
use axum::response::Response;
use rand::distr::{Alphanumeric, SampleString};
use webhooks::rt::Rejection;
use webhooks::server::{responses, types, Api, Operation};

use crate::auth::{Authenticator, Principal};
use crate::error::{self, Internal};
use crate::store::{NewWebhook, Owner, Store, Webhook, WebhookUpdate};

/// Length of a generated webhook secret (`[A-Za-z0-9]`).
pub const GENERATED_SECRET_LEN: usize = 32;

pub struct WebhooksApi {
    pub store: Store,
    pub auth: Authenticator,
    pub body_limit: usize,
}

impl From<Principal> for Owner {
    fn from(p: Principal) -> Self {
        Owner {
            client_id: p.client_id,
            user_id: p.user_id,
        }
    }
}

fn to_contract(w: Webhook) -> Result<types::UserWebhook, Internal> {
    let events = w
        .events
        .iter()
        .map(|e| e.parse::<types::UserWebhookEvent>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            Internal(crate::store::StoreError::Corrupt {
                id: w.id.clone(),
                reason: e.to_string(),
            })
        })?;
    Ok(types::UserWebhook {
        id: w.id,
        url: w.url,
        events,
        client_id: w.client_id,
        secrets: w.secrets,
    })
}

fn event_names(events: &[types::UserWebhookEvent]) -> Vec<String> {
    events.iter().map(ToString::to_string).collect()
}

/// A fresh secret from the thread-local CSPRNG (ChaCha, seeded by the OS).
pub fn generate_secret() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), GENERATED_SECRET_LEN)
}

impl Api for WebhooksApi {
    type Principal = Principal;
    type Error = Internal;

    async fn authenticate(&self, operation: Operation, headers: &HeaderMap) -> Result<Principal, Rejection> {
        self.auth.authorize(headers, operation.required_scopes())
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
        let secrets = match body.secrets {
            Some(secrets) if !secrets.is_empty() => secrets,
            _ => vec![generate_secret()],
        };
        let new = NewWebhook {
            url: body.url,
            events: event_names(&body.events),
            secrets,
        };
        let webhook = self.store.create(&principal.into(), new).await?;
        Ok(responses::CreateUserWebhook::Created(
            types::CreateUserWebhookResponse {
                data: to_contract(webhook)?,
            },
        ))
    }

    async fn list_user_webhooks(
        &self,
        principal: Principal,
    ) -> Result<responses::ListUserWebhooks, Internal> {
        let webhooks = self.store.list(&principal.into()).await?;
        let data = webhooks.into_iter().map(to_contract).collect::<Result<_, _>>()?;
        Ok(responses::ListUserWebhooks::Ok(types::ListUserWebhooksResponse {
            data,
        }))
    }

    async fn get_user_webhook(
        &self,
        principal: Principal,
        webhook_id: String,
    ) -> Result<responses::GetUserWebhook, Internal> {
        Ok(match self.store.get(&principal.into(), &webhook_id).await? {
            Some(w) => responses::GetUserWebhook::Ok(types::GetUserWebhookResponse {
                data: to_contract(w)?,
            }),
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
            events: event_names(&body.events),
            secrets: body.secrets.filter(|s| !s.is_empty()),
        };
        Ok(
            match self.store.update(&principal.into(), &webhook_id, update).await? {
                Some(w) => responses::UpdateUserWebhook::Ok(types::UpdateUserWebhookResponse {
                    data: to_contract(w)?,
                }),
                None => responses::UpdateUserWebhook::NotFound(error::webhook_not_found()),
            },
        )
    }

    async fn delete_user_webhook(
        &self,
        principal: Principal,
        webhook_id: String,
    ) -> Result<responses::DeleteUserWebhook, Internal> {
        Ok(if self.store.delete(&principal.into(), &webhook_id).await? {
            responses::DeleteUserWebhook::NoContent
        } else {
            responses::DeleteUserWebhook::NotFound(error::webhook_not_found())
        })
    }
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
