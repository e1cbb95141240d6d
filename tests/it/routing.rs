//! Routing as the reference stack routes (Express, neither strict nor case-sensitive): a
//! trailing slash or another letter case reaches the same operation, path parameters keep
//! their case, the query is kept; the probes, `/metrics`, the docs and the spec keep their
//! exact paths; a 404 names the path as it was sent. Raw requests, byte-level answers.

use serde_json::{json, Value};
use webhooks_e2e::{RawResponse, TestServer, PUBLISH_SCOPE};

const COLLECTION: &str = "/api/v2/public/webhooks/user";

fn no_route(method: &str, path: &str) -> String {
    format!(r#"{{"message":"Cannot {method} {path}","error":"Not Found","statusCode":404}}"#)
}

fn answer(response: &RawResponse) -> (u16, String) {
    (response.status, response.text().to_owned())
}

struct Caller<'a> {
    server: &'a TestServer,
    auth: String,
}

impl Caller<'_> {
    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> RawResponse {
        let mut headers = vec![("Authorization", self.auth.as_str())];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.server.raw(method, path, &headers, body.map(|b| b.to_string().into_bytes())).await
    }
}

#[tokio::test]
async fn a_trailing_slash_and_any_letter_case_reach_the_same_operation() {
    let server = TestServer::start().await;
    let caller = Caller { server: &server, auth: format!("Bearer {}", server.token("client-a", "user-1")) };

    let created = caller
        .send(
            "POST",
            "/API/V2/PUBLIC/WEBHOOKS/USER/",
            Some(json!({"url": "https://example.com/hook", "events": ["all"]})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let webhook = created.json()["data"].clone();
    let id = webhook["id"].as_str().expect("an id").to_owned();

    let listed = caller.send("GET", COLLECTION, None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["data"], json!([webhook]));
    for path in
        ["/API/V2/PUBLIC/WEBHOOKS/USER/", "/Api/v2/Public/Webhooks/User", "/api/v2/public/webhooks/user/"]
    {
        assert_eq!(answer(&caller.send("GET", path, None).await), answer(&listed), "GET {path}");
    }

    let item = format!("{COLLECTION}/{id}");
    let got = caller.send("GET", &item, None).await;
    assert_eq!((got.status, got.json()["data"].clone()), (200, webhook.clone()));
    for path in [format!("{item}/"), format!("/API/V2/PUBLIC/WEBHOOKS/USER/{id}/")] {
        assert_eq!(answer(&caller.send("GET", &path, None).await), answer(&got), "GET {path}");
    }
    // The id is passed as given: in upper case it names no webhook.
    let shouted =
        caller.send("GET", &format!("/API/V2/PUBLIC/WEBHOOKS/USER/{}/", id.to_uppercase()), None).await;
    assert_eq!(
        answer(&shouted),
        (404, r#"{"message":"Webhook not found","error":"Not Found","statusCode":404}"#.to_owned())
    );

    let patched = caller
        .send(
            "PATCH",
            &format!("/api/V2/public/WEBHOOKS/user/{id}/"),
            Some(json!({"events": ["facility.creation.accepted"]})),
        )
        .await;
    assert_eq!(
        (patched.status, patched.json()["data"]["events"].clone()),
        (200, json!(["facility.creation.accepted"]))
    );

    let publisher = Caller {
        server: &server,
        auth: format!("Bearer {}", server.token_with_scopes("publisher", "source", &[PUBLISH_SCOPE])),
    };
    let event =
        json!({"eventType": "facility.creation.accepted", "userId": "user-1", "data": {"facilityId": "F-1"}});
    let published = publisher.send("POST", "/API/V2/INTERNAL/EVENTS/", Some(event)).await;
    assert_eq!((published.status, published.json()["data"]["deliveries"].clone()), (202, json!(1)));

    let deleted = caller.send("DELETE", &format!("/API/V2/PUBLIC/WEBHOOKS/USER/{id}/"), None).await;
    assert_eq!(answer(&deleted), (204, String::new()));
    assert_eq!(caller.send("GET", &item, None).await.status, 404);
}

#[tokio::test]
async fn the_query_string_survives_the_rewrite() {
    let server = TestServer::start().await;
    let caller = Caller { server: &server, auth: format!("Bearer {}", server.token("client-a", "user-1")) };
    // Without its query the canonical path answers 200: the same 400 means the query arrived.
    assert_eq!(caller.send("GET", "/api/v2/public/webhooks/logs", None).await.status, 200);
    let canonical =
        caller.send("GET", "/api/v2/public/webhooks/logs?limit=0&sortDirection=sideways", None).await;
    assert_eq!(canonical.status, 400, "{}", canonical.text());
    let rewritten =
        caller.send("GET", "/API/V2/PUBLIC/WEBHOOKS/LOGS/?limit=0&sortDirection=sideways", None).await;
    assert_eq!(answer(&rewritten), answer(&canonical));
}

#[tokio::test]
async fn authentication_still_comes_first() {
    let server = TestServer::start().await;
    let nurse = format!("Bearer {}", server.token_with_role("client-a", "user-1", webhooks_e2e::NURSE_USER));
    let anonymous = server.raw("GET", "/API/V2/PUBLIC/WEBHOOKS/USER/", &[], None).await;
    assert_eq!(answer(&anonymous), (401, webhooks_e2e::unauthorized_body()));
    let forbidden =
        server.raw("GET", "/api/v2/public/webhooks/USER/", &[("Authorization", &nurse)], None).await;
    assert_eq!(answer(&forbidden), (403, webhooks_e2e::forbidden_body()));
}

#[tokio::test]
async fn unknown_routes_name_the_path_as_sent_and_other_endpoints_are_exact() {
    let server = TestServer::start().await;
    let auth = format!("Bearer {}", server.token("client-a", "user-1"));
    let id = uuid::Uuid::new_v4();
    let requests = [
        ("PUT", "/API/V2/PUBLIC/WEBHOOKS/USER/".to_owned()),
        ("POST", format!("/API/V2/PUBLIC/WEBHOOKS/USER/{id}/")),
        ("GET", "/API/V2/PUBLIC/WEBHOOKS/".to_owned()),
        ("GET", "/API/V2/PUBLIC/WEBHOOKS/NOTHING/?limit=1".to_owned()),
        ("GET", "/api/v2/public/webhooks/user//".to_owned()),
        ("GET", format!("/api/v2/public/webhooks/user/{id}//")),
        ("GET", "/API/V2/PUBLIC/WEBHOOKS/USER/%FF".to_owned()),
        ("GET", "/HEALTHZ".to_owned()),
        ("GET", "/healthz/".to_owned()),
        ("GET", "/Readyz".to_owned()),
        ("GET", "/readyz/".to_owned()),
        ("GET", "/METRICS".to_owned()),
        ("GET", "/metrics/".to_owned()),
        ("GET", "/DOCS".to_owned()),
        ("GET", "/Docs/".to_owned()),
        ("GET", "/API-DOCS/openapi.json".to_owned()),
        ("GET", "/api-docs/openapi.json/".to_owned()),
        ("GET", "/api-docs/OPENAPI.YAML".to_owned()),
    ];
    for (method, path) in &requests {
        let response = server.raw(method, path, &[("Authorization", &auth)], None).await;
        assert_eq!(answer(&response), (404, no_route(method, path)), "{method} {path}");
    }
    // The exact paths answer as they always did.
    for (path, status) in [
        ("/healthz", 200),
        ("/readyz", 200),
        ("/metrics", 200),
        ("/docs/", 200),
        ("/api-docs/openapi.json", 200),
    ] {
        assert_eq!(server.raw("GET", path, &[], None).await.status, status, "GET {path}");
    }
}
