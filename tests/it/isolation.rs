//! Tenant isolation: a webhook belongs to the pair (clientId, sub). Any other caller — another
//! OAuth client with the same user, or the same client with another user — cannot see, change
//! or delete it, and gets the same 404 as for an id that does not exist.

use serde_json::{json, Value};
use webhooks_client::types::{CreateUserWebhookRequest, UpdateUserWebhookRequest, UserWebhookEvent as Event};
use webhooks_e2e::{error_parts, not_found_body, TestServer};

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("serializable")
}

#[tokio::test]
async fn other_clients_and_users_cannot_reach_a_webhook() {
    other_callers_cannot_reach_a_webhook(&TestServer::start().await).await;
}

#[tokio::test]
async fn other_clients_and_users_cannot_reach_a_webhook_on_postgres() {
    let test = "isolation::other_clients_and_users_cannot_reach_a_webhook_on_postgres";
    let Some(server) = TestServer::start_postgres(test).await else { return };
    other_callers_cannot_reach_a_webhook(&server).await;
}

/// The isolation checks against `server` (either backend).
async fn other_callers_cannot_reach_a_webhook(server: &TestServer) {
    let owner = server.client("client-a", "user-1");
    let theirs = owner
        .create_user_webhook(&CreateUserWebhookRequest {
            url: "https://a.example.com/hook".into(),
            events: vec![Event::FacilityCreationAccepted],
            secrets: Some(vec!["owner-secret".parse().unwrap()]),
        })
        .await
        .unwrap()
        .into_inner()
        .data;
    let not_found = (404, webhooks_e2e::json(&not_found_body()));

    for (who, client_id, sub) in
        [("other client, same user", "client-b", "user-1"), ("same client, other user", "client-a", "user-2")]
    {
        let other = server.client(client_id, sub);
        // The other caller has a webhook of its own, so an empty list proves nothing by itself.
        let own = other
            .create_user_webhook(&CreateUserWebhookRequest {
                url: "https://b.example.com/hook".into(),
                events: vec![Event::All],
                secrets: None,
            })
            .await
            .unwrap()
            .into_inner()
            .data;

        let get = other.get_user_webhook(&theirs.id).await.unwrap_err();
        assert_eq!(error_parts(get).await, not_found, "{who}: get");
        let update = UpdateUserWebhookRequest {
            events: vec![Event::All],
            url: Some("https://attacker.example.com/hook".into()),
            secrets: Some(vec!["attacker-secret".parse().unwrap()]),
        };
        let patch = other.update_user_webhook(&theirs.id, &update).await.unwrap_err();
        assert_eq!(error_parts(patch).await, not_found, "{who}: patch");
        let delete = other.delete_user_webhook(&theirs.id).await.unwrap_err();
        assert_eq!(error_parts(delete).await, not_found, "{who}: delete");

        let listed = other.list_user_webhooks().await.unwrap().into_inner().data;
        assert_eq!(to_json(&listed), json!([to_json(&own)]), "{who}: lists only its own");
        // And the owner never sees the other caller's webhook either.
        let get = owner.get_user_webhook(&own.id).await.unwrap_err();
        assert_eq!(error_parts(get).await, not_found, "{who}: owner gets theirs");
    }

    // Unchanged, and still the owner's only webhook.
    let stored = owner.get_user_webhook(&theirs.id).await.unwrap().into_inner().data;
    assert_eq!(to_json(&stored), to_json(&theirs));
    let listed = owner.list_user_webhooks().await.unwrap().into_inner().data;
    assert_eq!(to_json(&listed), json!([to_json(&theirs)]));
}
