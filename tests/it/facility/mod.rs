//! Facility webhooks end to end (docs/ARCHITECTURE.md §6): the reference cases, access and
//! isolation, and shift events delivered over TLS.

mod access;
mod conformance;

use webhooks_e2e::TestServer;

/// The internal scope that keeps users' facilities.
pub const FACILITIES_SCOPE: &str = "facilities:write";

/// Replaces what `user` can access, through `setUserFacilities`; the new set as answered.
pub async fn set_facilities(server: &TestServer, user: &str, facilities: &[&str]) -> Vec<String> {
    let token = server.token_with_scopes("facilities-admin", "ops", &[FACILITIES_SCOPE]);
    let body = serde_json::to_vec(&serde_json::json!({ "facilities": facilities })).unwrap();
    let response = server
        .raw(
            "PUT",
            &format!("/api/v2/internal/users/{user}/facilities"),
            &[("Content-Type", "application/json"), ("Authorization", &format!("Bearer {token}"))],
            Some(body),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let answer = response.json();
    assert_eq!(answer["data"]["userId"], user);
    serde_json::from_value(answer["data"]["facilities"].clone()).unwrap()
}
