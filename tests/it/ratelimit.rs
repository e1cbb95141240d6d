//! The Public API's rate limit, end to end: 100 requests a minute per OAuth client by default,
//! then 429 in the contract's shape with `Retry-After`; other clients unaffected; requests
//! turned away as 401 or 403 spend nothing; `0` turns it off; the generated client decodes the
//! 429 as its own error type. The limiter's arithmetic (refill, rounding, purging) is tested
//! with a fake clock in `server/src/ratelimit.rs`.

use std::time::{Duration, Instant};

use serde_json::json;
use webhooks_client::types;
use webhooks_e2e::process::{server_command, ServerProcess};
use webhooks_e2e::{too_many_requests_body, RawResponse, TestServer, NURSE_USER};
use webhooks_server::config::DEFAULT_RATE_LIMIT;

const BIN: &str = env!("CARGO_BIN_EXE_webhooks-server-under-test");
const COLLECTION: &str = "/api/v2/public/webhooks/user";
const LOGS: &str = "/api/v2/public/webhooks/logs";
const JSON: (&str, &str) = ("Content-Type", "application/json");

async fn limited(per_minute: u32) -> TestServer {
    TestServer::start_with(|settings| settings.rate_limit = per_minute).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The `Retry-After` of an answer, in seconds.
fn retry_after(response: &RawResponse) -> u64 {
    let value = response.headers.get("retry-after").unwrap_or_else(|| panic!("no Retry-After: {response:?}"));
    value.to_str().ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("Retry-After {value:?}"))
}

fn assert_too_many_requests(response: &RawResponse, what: &str) {
    assert_eq!(response.status, 429, "{what}: {}", response.text());
    assert_eq!(response.text(), too_many_requests_body(), "{what}");
    assert_eq!(response.content_type.as_deref(), Some("application/json"), "{what}");
}

/// A request of each kind a client may send, cycling: a list, an unknown id (404 after the
/// limit), an invalid body (400 after the limit), a log search.
async fn some_request(server: &TestServer, auth: &str, n: usize) -> RawResponse {
    let unknown = format!("{COLLECTION}/{}", uuid::Uuid::new_v4());
    let headers = [JSON, ("Authorization", auth)];
    match n % 4 {
        0 => server.raw("GET", COLLECTION, &headers, None).await,
        1 => server.raw("GET", &unknown, &headers, None).await,
        2 => server.raw("POST", COLLECTION, &headers, Some(b"{}".to_vec())).await,
        _ => server.raw("GET", LOGS, &headers, None).await,
    }
}

#[tokio::test]
async fn the_101st_request_of_a_client_within_a_minute_is_429() {
    let server = limited(DEFAULT_RATE_LIMIT).await;
    assert_eq!(DEFAULT_RATE_LIMIT, 100);
    let a = bearer(&server.token("client-a", "user-1"));
    let started = Instant::now();
    for n in 0..100 {
        let response = some_request(&server, &a, n).await;
        assert!([200, 400, 404].contains(&response.status), "request {}: {response:?}", n + 1);
    }
    let refused = some_request(&server, &a, 100).await;
    let elapsed = started.elapsed();
    // One more request is allowed every 600 ms: this holds as long as the 101 requests took
    // less (tens of milliseconds here).
    assert!(elapsed < Duration::from_millis(600), "101 requests took {elapsed:?}");
    assert_too_many_requests(&refused, "the 101st request");
    assert_eq!(retry_after(&refused), 1, "the next slot is at most 600 ms away");

    // Every public operation draws on the same budget, whatever user of the client calls.
    let a2 = bearer(&server.token("client-a", "user-2"));
    for n in 0..4 {
        assert_too_many_requests(&some_request(&server, &a2, n).await, "another user of client-a");
    }
    // Another client has a budget of its own.
    let b = bearer(&server.token("client-b", "user-1"));
    for n in 0..4 {
        assert_ne!(some_request(&server, &b, n).await.status, 429, "client-b");
    }

    // Never limited: the operations outside the Public API, the docs and the spec.
    for path in
        ["/healthz", "/readyz", "/metrics", "/docs/", "/api-docs/openapi.json", "/api-docs/openapi.yaml"]
    {
        for _ in 0..3 {
            let response = server.raw("GET", path, &[("Authorization", &a)], None).await;
            assert_eq!(response.status, 200, "{path}");
        }
    }
    let metrics = server.raw("GET", "/metrics", &[], None).await;
    assert!(
        metrics.text().lines().any(|l| l.starts_with("http_requests_total")
            && l.contains("operation=\"listUserWebhooks\"")
            && l.contains("status=\"429\"")),
        "429s are counted: {}",
        metrics.text()
    );
}

#[tokio::test]
async fn within_a_small_limit_the_answer_says_how_long_to_wait() {
    // 3 a minute: a slot every 20 s, so the 4th request is refused for about 20 s.
    let server = limited(3).await;
    let a = bearer(&server.token("client-a", "user-1"));
    for n in 0..3 {
        assert_ne!(some_request(&server, &a, n).await.status, 429, "request {}", n + 1);
    }
    let refused = some_request(&server, &a, 3).await;
    assert_too_many_requests(&refused, "the 4th request");
    // 20 s after the first request, less the milliseconds the four took, rounded up.
    let wait = retry_after(&refused);
    assert_eq!(wait, 20);
    // Refused requests do not push the wait further out.
    for n in 0..5 {
        let again = some_request(&server, &a, n).await;
        assert_too_many_requests(&again, "again");
        assert!(retry_after(&again) <= wait, "{} > {wait}", retry_after(&again));
    }
}

#[tokio::test]
async fn requests_turned_away_before_the_limit_spend_none_of_it() {
    let server = limited(2).await;
    let a = server.token("client-a", "user-1");
    let nurse = server.token_with_role("client-a", "user-1", NURSE_USER);
    let foreign = TestServer::start().await.token("client-a", "user-1");
    let too_large = vec![b' '; server_body_limit() + 1];
    // 401 and 403 (and 413 and unknown routes, which come before authentication): none of
    // them is client-a's request as far as the limit knows.
    for _ in 0..10 {
        let no_token = server.raw("GET", COLLECTION, &[], None).await;
        assert_eq!(no_token.status, 401);
        let garbage = server.raw("GET", COLLECTION, &[("Authorization", "Bearer not-a-token")], None).await;
        assert_eq!(garbage.status, 401);
        let foreign_key = server.raw("GET", COLLECTION, &[("Authorization", &bearer(&foreign))], None).await;
        assert_eq!(foreign_key.status, 401);
        let forbidden = server.raw("GET", COLLECTION, &[("Authorization", &bearer(&nurse))], None).await;
        assert_eq!(forbidden.status, 403);
        let large = server
            .raw("POST", COLLECTION, &[JSON, ("Authorization", &bearer(&a))], Some(too_large.clone()))
            .await;
        assert_eq!(large.status, 413);
        let no_route =
            server.raw("GET", "/api/v2/public/nothing", &[("Authorization", &bearer(&a))], None).await;
        assert_eq!(no_route.status, 404);
    }
    // client-a's whole budget is still there.
    let auth = bearer(&a);
    assert_eq!(server.raw("GET", COLLECTION, &[("Authorization", &auth)], None).await.status, 200);
    assert_eq!(server.raw("GET", LOGS, &[("Authorization", &auth)], None).await.status, 200);
    let refused = server.raw("GET", COLLECTION, &[("Authorization", &auth)], None).await;
    assert_too_many_requests(&refused, "the 3rd request");

    // Where 429 sits: after 413, 401 and 403, before the input checks (400) and existence (404).
    let unknown = format!("{COLLECTION}/{}", uuid::Uuid::new_v4());
    let order = [
        (
            "413",
            server.raw("POST", COLLECTION, &[JSON, ("Authorization", &auth)], Some(too_large)).await,
            413,
        ),
        ("401", server.raw("GET", COLLECTION, &[], None).await, 401),
        ("403", server.raw("GET", COLLECTION, &[("Authorization", &bearer(&nurse))], None).await, 403),
        (
            "400",
            server.raw("POST", COLLECTION, &[JSON, ("Authorization", &auth)], Some(b"{}".to_vec())).await,
            429,
        ),
        (
            "400 query",
            server.raw("GET", &format!("{LOGS}?limit=1000"), &[("Authorization", &auth)], None).await,
            429,
        ),
        ("404", server.raw("GET", &unknown, &[("Authorization", &auth)], None).await, 429),
    ];
    for (what, response, status) in order {
        assert_eq!(
            response.status, status,
            "an exhausted client's request that would be {what}: {response:?}"
        );
    }
}

/// The server's body limit (the default: the harness does not change it).
fn server_body_limit() -> usize {
    webhooks_server::config::DEFAULT_BODY_LIMIT
}

#[tokio::test]
async fn publishing_events_is_not_limited_and_spends_nothing() {
    let server = limited(1).await;
    let publisher = server.publisher();
    for n in 0..5 {
        let body: types::PublishEventRequest = serde_json::from_value(json!({
            "id": format!("evt-{n}"),
            "eventType": "facility.creation.accepted",
            "userId": "user-1",
            "data": {"facilityId": "F"}
        }))
        .unwrap();
        let published = publisher.publish_event(&body).await.expect("publish is never 429");
        assert_eq!(published.status(), 202);
    }
    // The publisher's client still has its one public request.
    let same_client = server.client("publisher", "event-source");
    same_client.list_user_webhooks().await.expect("the budget is untouched");
    let refused = same_client.list_user_webhooks().await.expect_err("the second is over the limit");
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(429));
}

#[tokio::test]
async fn a_limit_of_0_never_limits() {
    // The harness's default: the rate limit is off.
    let server = TestServer::start().await;
    let a = bearer(&server.token("client-a", "user-1"));
    for n in 0..300 {
        let response = some_request(&server, &a, n).await;
        assert_ne!(response.status, 429, "request {}", n + 1);
    }
}

#[tokio::test]
async fn the_binary_takes_the_limit_from_its_flag() {
    webhooks_e2e::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let http = webhooks_e2e::raw_http_client();
    for (limit, requests, expected_refusals) in [("3", 5, 2), ("0", 150, 0)] {
        let data_dir = dir.path().join(format!("limit-{limit}"));
        let mut command = server_command(BIN, &data_dir);
        command.args(["--rate-limit", limit]);
        let server = ServerProcess::spawn(command, &dir.path().join(format!("limit-{limit}.log"))).await;
        let token = webhooks_e2e::process::cli_token(BIN, &data_dir, "client-a", "user-1", &[]).await;
        let mut refusals = 0;
        for _ in 0..requests {
            let response = http
                .get(format!("{}{COLLECTION}", server.base_url))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            match response.status().as_u16() {
                200 => {}
                429 => {
                    assert!(response.headers().contains_key("retry-after"));
                    refusals += 1;
                }
                other => panic!("--rate-limit {limit}: {other}"),
            }
        }
        assert_eq!(refusals, expected_refusals, "--rate-limit {limit}: {requests} requests");
    }
}

/// Status, `Retry-After` and body of an error answer of the generated client.
fn refusal<E: std::fmt::Debug>(
    result: Result<impl std::fmt::Debug, webhooks_client::Error<E>>,
) -> (u16, String, E) {
    match result {
        Err(webhooks_client::Error::ErrorResponse(response)) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (status, retry_after, response.into_inner())
        }
        other => panic!("expected an error answer, got {other:?}"),
    }
}

/// The decoded 429 body is the documented one.
fn assert_documented(error: &types::TooManyRequestsError) {
    let documented = webhooks_e2e::json(&too_many_requests_body());
    assert_eq!(serde_json::to_value(error).unwrap(), documented);
}

#[tokio::test]
async fn the_generated_client_decodes_a_429_as_its_own_error() {
    use types::{
        CreateUserWebhookError as Create, DeleteUserWebhookError as Delete, GetUserWebhookError as Get,
        ListUserWebhooksError as List, SearchWebhookLogsError as Search, UpdateUserWebhookError as Update,
    };
    let server = limited(1).await;
    let create: types::CreateUserWebhookRequest =
        serde_json::from_value(json!({"url": "https://example.com/h", "events": ["all"]})).unwrap();
    let update: types::UpdateUserWebhookRequest = serde_json::from_value(json!({"events": ["all"]})).unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    // Each operation with a client of its own: the first call spends the one request, the
    // second is decoded as the 429 variant of that operation's error type (the untagged enum
    // would take any other variant the body fits, were `statusCode` not pinned per type).
    let fresh = |name: &str| server.client(name, "user-1");

    let c = fresh("c-create");
    let _ = c.create_user_webhook(&create).await;
    let (status, wait, body) = refusal(c.create_user_webhook(&create).await);
    assert_eq!(status, 429);
    // One a minute: the next one is about a minute away.
    let wait: u64 = wait.parse().expect("Retry-After in seconds");
    assert!((55..=60).contains(&wait), "Retry-After {wait}");
    let Create::TooManyRequestsError(e) = &body else { panic!("decoded as {body:?}") };
    assert_documented(e);

    let c = fresh("c-list");
    let _ = c.list_user_webhooks().await;
    let (status, _, body) = refusal(c.list_user_webhooks().await);
    assert_eq!(status, 429);
    let List::TooManyRequestsError(e) = &body else { panic!("decoded as {body:?}") };
    assert_documented(e);

    let c = fresh("c-get");
    let _ = c.get_user_webhook(&id).await;
    let (status, _, body) = refusal(c.get_user_webhook(&id).await);
    assert_eq!(status, 429);
    let Get::TooManyRequestsError(e) = &body else { panic!("decoded as {body:?}") };
    assert_documented(e);

    let c = fresh("c-update");
    let _ = c.update_user_webhook(&id, &update).await;
    let (status, _, body) = refusal(c.update_user_webhook(&id, &update).await);
    assert_eq!(status, 429);
    let Update::TooManyRequestsError(e) = &body else { panic!("decoded as {body:?}") };
    assert_documented(e);

    let c = fresh("c-delete");
    let _ = c.delete_user_webhook(&id).await;
    let (status, _, body) = refusal(c.delete_user_webhook(&id).await);
    assert_eq!(status, 429);
    let Delete::TooManyRequestsError(e) = &body else { panic!("decoded as {body:?}") };
    assert_documented(e);

    let c = fresh("c-logs");
    let search = || c.search_webhook_logs(None, None, None, None, None, None, None, None);
    let _ = search().await;
    let (status, _, body) = refusal(search().await);
    assert_eq!(status, 429);
    let Search::TooManyRequestsError(e) = &body else { panic!("decoded as {body:?}") };
    assert_documented(e);
}
