//! The Operations endpoints of the contract: liveness, readiness, Prometheus metrics, and the
//! request id every answer carries.

use webhooks_e2e::TestServer;

#[tokio::test]
async fn health_and_readiness_answer_without_a_token() {
    let server = TestServer::start().await;
    let health = server.raw("GET", "/healthz", &[], None).await;
    assert_eq!((health.status, health.text()), (200, r#"{"status":"ok"}"#));
    let ready = server.raw("GET", "/readyz", &[], None).await;
    assert_eq!((ready.status, ready.text()), (200, r#"{"status":"ok"}"#));
}

#[tokio::test]
async fn metrics_count_requests_by_operation_and_status() {
    let server = TestServer::start().await;
    let token = server.token("client-a", "user-1");
    let auth = format!("Bearer {token}");
    for _ in 0..3 {
        let listed =
            server.raw("GET", "/api/v2/public/webhooks/user", &[("Authorization", &auth)], None).await;
        assert_eq!(listed.status, 200);
    }
    let refused = server.raw("GET", "/api/v2/public/webhooks/user", &[], None).await;
    assert_eq!(refused.status, 401);

    let metrics = server.raw("GET", "/metrics", &[], None).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.content_type.as_deref().unwrap_or_default().starts_with("text/plain"));
    let text = metrics.text();
    // The recorder is process-wide (other tests' servers count too), so compare lower bounds.
    let count = |series: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
    };
    assert!(count(r#"http_requests_total{operation="listUserWebhooks",status="200"}"#) >= 3);
    assert!(count(r#"http_requests_total{operation="listUserWebhooks",status="401"}"#) >= 1);
    assert!(text.contains(r#"http_request_duration_seconds_bucket{operation="listUserWebhooks",le="0.005"}"#));
    assert!(text.contains("webhook_deliveries_due "), "backlog gauge missing");
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_keeps_the_callers() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let generated = http.get(format!("{}/nope", server.base_url)).send().await.unwrap();
    assert_eq!(generated.status(), 404);
    let id =
        generated.headers().get("x-request-id").expect("x-request-id on a 404").to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let kept = http
        .get(format!("{}/healthz", server.base_url))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers().get("x-request-id").unwrap(), "trace-me-42");
}

#[tokio::test]
async fn open_operations_ignore_credentials() {
    let server = TestServer::start().await;
    let nurse = format!("Bearer {}", server.token_with_role("client-a", "user-1", webhooks_e2e::NURSE_USER));
    for path in ["/healthz", "/readyz", "/metrics"] {
        for auth in ["Bearer not-a-token", "Basic abc", nurse.as_str()] {
            let answer = server.raw("GET", path, &[("Authorization", auth)], None).await;
            assert_eq!(answer.status, 200, "{path} with {auth}");
        }
    }
}
