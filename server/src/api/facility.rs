//! Facility webhooks (docs/ARCHITECTURE.md §6): the sibling resource of user webhooks, owned
//! the same way, whose facilities are checked against what its user can access. A webhook
//! without facilities follows all of its user's, so its answers show the current set.

use webhooks::server::{responses, types};

use super::{event_names, generate_secrets, stored_events, WebhooksApi};
use crate::auth::Principal;
use crate::error::{self, Internal};
use crate::store::{AccessStore, NewWebhook, Owner, Webhook, WebhookKind, WebhookStore, WebhookUpdate};

/// `items` without repeats, first occurrence kept.
pub(super) fn dedup(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items.into_iter().filter(|item| seen.insert(item.clone())).collect()
}

/// The facilities of `requested` the user cannot access (request order, no repeats); `None`
/// when there are none.
fn inaccessible(requested: &[String], accessible: &[String]) -> Option<Vec<String>> {
    let denied: Vec<String> = requested.iter().filter(|f| !accessible.contains(f)).cloned().collect();
    (!denied.is_empty()).then(|| dedup(denied))
}

fn to_contract(w: Webhook, accessible: &[String]) -> Result<types::FacilityWebhook, Internal> {
    let events = stored_events(&w)?;
    Ok(types::FacilityWebhook {
        id: w.id,
        url: w.url,
        events,
        client_id: w.client_id,
        facilities: w.facilities.unwrap_or_else(|| accessible.to_vec()),
        secrets: w.secrets,
    })
}

impl WebhooksApi {
    /// The owner's facility webhook `id` as the contract shows it, if any.
    async fn facility_webhook(
        &self,
        owner: &Owner,
        id: &str,
    ) -> Result<Option<types::FacilityWebhook>, Internal> {
        let Some(webhook) = self.store.get(owner, WebhookKind::Facility, id).await? else {
            return Ok(None);
        };
        let accessible = self.store.facilities_of(&owner.user_id).await?;
        Ok(Some(to_contract(webhook, &accessible)?))
    }

    pub(super) async fn create_facility(
        &self,
        principal: Principal,
        body: types::CreateWebhookRequest,
    ) -> Result<responses::CreateFacilityWebhook, Internal> {
        let owner = Owner::from(principal);
        let accessible = self.store.facilities_of(&owner.user_id).await?;
        // Absent, null or empty: the webhook follows all of its user's facilities.
        let facilities = body.facilities.filter(|f| !f.is_empty()).map(dedup);
        if let Some(denied) = facilities.as_deref().and_then(|f| inaccessible(f, &accessible)) {
            return Ok(responses::CreateFacilityWebhook::BadRequest(error::facilities_not_accessible(
                &denied,
            )));
        }
        let new = NewWebhook {
            url: body.url,
            events: event_names(&body.events),
            secrets: generate_secrets(body.secrets.map(|s| s.into_iter().map(String::from).collect())),
            kind: WebhookKind::Facility,
            facilities,
        };
        let limit = self.max_webhooks_per_owner;
        Ok(match self.store.create(&owner, new, limit).await? {
            Some(webhook) => responses::CreateFacilityWebhook::Created(types::CreateWebhookResponse {
                data: to_contract(webhook, &accessible)?,
            }),
            None => responses::CreateFacilityWebhook::BadRequest(error::webhook_limit_reached(limit)),
        })
    }

    pub(super) async fn list_facility(
        &self,
        principal: Principal,
    ) -> Result<responses::ListFacilityWebhooks, Internal> {
        let owner = Owner::from(principal);
        let webhooks = self.store.list(&owner, WebhookKind::Facility).await?;
        let accessible = self.store.facilities_of(&owner.user_id).await?;
        let data = webhooks.into_iter().map(|w| to_contract(w, &accessible)).collect::<Result<_, _>>()?;
        Ok(responses::ListFacilityWebhooks::Ok(types::ListFacilityWebhooksResponse { data }))
    }

    pub(super) async fn get_facility(
        &self,
        principal: Principal,
        id: String,
    ) -> Result<responses::GetFacilityWebhook, Internal> {
        Ok(match self.facility_webhook(&principal.into(), &id).await? {
            Some(data) => responses::GetFacilityWebhook::Ok(types::GetFacilityWebhookResponse { data }),
            None => responses::GetFacilityWebhook::NotFound(error::webhook_not_found()),
        })
    }

    pub(super) async fn update_facility(
        &self,
        principal: Principal,
        id: String,
        body: types::UpdateWebhookRequest,
    ) -> Result<responses::UpdateFacilityWebhook, Internal> {
        let owner = Owner::from(principal);
        let accessible = self.store.facilities_of(&owner.user_id).await?;
        // Present and empty: follow all; present with ids: exactly those, checked before the
        // webhook is looked up (a 400 comes before a 404).
        let facilities = body.facilities.map(|f| Some(dedup(f)).filter(|f| !f.is_empty()));
        if let Some(denied) =
            facilities.as_ref().and_then(|f| f.as_deref()).and_then(|f| inaccessible(f, &accessible))
        {
            return Ok(responses::UpdateFacilityWebhook::BadRequest(error::facilities_not_accessible(
                &denied,
            )));
        }
        let update = WebhookUpdate {
            url: body.url,
            events: body.events.as_deref().map(event_names),
            secrets: body
                .secrets
                .filter(|s| !s.is_empty())
                .map(|s| s.into_iter().map(String::from).collect()),
            facilities,
        };
        Ok(match self.store.update(&owner, WebhookKind::Facility, &id, update).await? {
            Some(w) => responses::UpdateFacilityWebhook::Ok(types::UpdateFacilityWebhookResponse {
                data: to_contract(w, &accessible)?,
            }),
            None => responses::UpdateFacilityWebhook::NotFound(error::webhook_not_found()),
        })
    }

    pub(super) async fn delete_facility(
        &self,
        principal: Principal,
        id: String,
    ) -> Result<responses::DeleteFacilityWebhook, Internal> {
        Ok(if self.store.delete(&principal.into(), WebhookKind::Facility, &id).await? {
            responses::DeleteFacilityWebhook::NoContent
        } else {
            responses::DeleteFacilityWebhook::NotFound(error::webhook_not_found())
        })
    }

    pub(super) async fn set_facilities(
        &self,
        user_id: String,
        body: types::SetUserFacilitiesRequest,
    ) -> Result<responses::SetUserFacilities, Internal> {
        let requested = dedup(body.facilities.into_iter().map(String::from));
        let facilities = self.store.set_facilities(&user_id, &requested).await?;
        Ok(responses::SetUserFacilities::Ok(types::SetUserFacilitiesResponse {
            data: types::SetUserFacilitiesResponseData { user_id, facilities },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_facilities_keep_request_order_without_repeats() {
        let accessible = ["P-1".to_owned(), "P-2".to_owned()];
        let requested = ["P-9", "P-1", "P-3", "P-9", ""].map(String::from);
        assert_eq!(
            inaccessible(&requested, &accessible),
            Some(["P-9", "P-3", ""].map(String::from).to_vec())
        );
        assert_eq!(inaccessible(&accessible, &accessible), None);
        assert_eq!(dedup(["b", "a", "b"].map(String::from)), ["b", "a"]);
    }
}
