//! Signed delivery end to end (docs/ARCHITECTURE.md §3 "Delivery"; §4 patterns 5–7): the in-process
//! server publishes events, its worker delivers them over real TLS to the in-test HTTPS
//! receiver (the server trusts the receiver's CA through `extra_ca_file` and may reach
//! `127.0.0.0/8`), and the receiver checks every signature with the receiver-side code of
//! `webhooks_client::signature`, never with the server's signer. The delivery log is read back
//! through `searchWebhookLogs`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use webhooks_client::signature::{
    verify, verify_at, VerifyError, DEFAULT_TOLERANCE, EVENT_ID_HEADER, SIGNATURE_HEADER,
};
use webhooks_client::types::{
    CreateUserWebhookRequest, EventType as Type, PublishEventRequest, PublishedEvent,
    UpdateUserWebhookRequest, UserWebhookEvent as Event,
};
use webhooks_e2e::process::{cli_token, server_command, ServerProcess};
use webhooks_e2e::receiver::{Mode, Receiver, Recorded, OK_BODY};
use webhooks_e2e::{error_parts, forbidden_body, trust_receiver, TestServer, PUBLISH_SCOPE};

const BIN: &str = env!("CARGO_BIN_EXE_webhooks-server-under-test");
const LOGS: &str = "/api/v2/public/webhooks/logs";
const EVENTS: &str = "/api/v2/internal/events";
/// Bound of every wait for something that should happen within a poll or two of the worker.
const WAIT: Duration = Duration::from_secs(15);
/// The owner's log entry of an attempt the SSRF guard refused.
const REFUSED: &str = "destination not allowed: not a public address";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A server that trusts `receiver` and may deliver to loopback, with `configure` applied after.
async fn server_for(
    receiver: &Receiver,
    configure: impl FnOnce(&mut webhooks_server::config::Settings),
) -> TestServer {
    TestServer::start_with(|settings| {
        trust_receiver(settings, receiver);
        configure(settings);
    })
    .await
}

/// Creates a webhook; returns its id.
async fn create(client: &webhooks_client::Client, url: &str, events: Vec<Event>, secrets: &[&str]) -> String {
    let secrets =
        (!secrets.is_empty()).then(|| secrets.iter().map(|s| s.parse().expect("a valid secret")).collect());
    let response = client
        .create_user_webhook(&CreateUserWebhookRequest { url: url.to_owned(), events, secrets })
        .await
        .expect("creating a webhook");
    assert_eq!(response.status(), 201);
    response.into_inner().data.id
}

fn request(event_type: Type, user: &str, data: Value, id: Option<&str>) -> PublishEventRequest {
    let Value::Object(data) = data else { panic!("data must be an object") };
    PublishEventRequest {
        data,
        event_type,
        id: id.map(|id| id.parse().expect("a valid event id")),
        user_id: Some(user.parse().expect("a valid user id")),
    }
}

/// Publishes through the generated client; asserts 202 and returns the published event.
async fn publish(
    publisher: &webhooks_client::Client,
    event_type: Type,
    user: &str,
    data: Value,
    id: Option<&str>,
) -> PublishedEvent {
    let response =
        publisher.publish_event(&request(event_type, user, data, id)).await.expect("publishing an event");
    assert_eq!(response.status(), 202);
    response.into_inner().data
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `GET /api/v2/public/webhooks/logs<query>` as `token`: (status, JSON body).
async fn get_logs(server: &TestServer, token: &str, query: &str) -> (u16, Value) {
    let authorization = bearer(token);
    let response =
        server.raw("GET", &format!("{LOGS}{query}"), &[("Authorization", &authorization)], None).await;
    (response.status, response.json())
}

/// The log entries `query` selects (asserting 200).
async fn log_entries(server: &TestServer, token: &str, query: &str) -> Vec<Value> {
    let (status, body) = get_logs(server, token, query).await;
    assert_eq!(status, 200, "GET {LOGS}{query}: {body}");
    body["data"].as_array().expect("data is an array").clone()
}

/// Polls the log until `done(entries)` holds; panics with the last entries after `timeout`.
async fn wait_for_log(
    server: &TestServer,
    token: &str,
    query: &str,
    timeout: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let entries = log_entries(server, token, query).await;
        if done(&entries) {
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "the log ({query:?}) did not reach the expected state within {timeout:?}: {entries:#?}"
        );
        tokio::time::sleep(ms(25)).await;
    }
}

/// The first attempt of the entry has been made (its outcome is recorded).
fn attempted(entry: &Value) -> bool {
    !entry["responseStatus"].is_null() || !entry["responseBody"].as_str().unwrap_or_default().is_empty()
}

fn succeeded(entry: &Value) -> bool {
    entry["status"] == "success"
}

/// Polls the receiver until `path` has at least `n` requests; panics after `timeout`.
async fn wait_for_path(receiver: &Receiver, path: &str, n: usize, timeout: Duration) -> Vec<Recorded> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = receiver.requests_to(path);
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "{path}: {} of {n} requests within {timeout:?}", got.len());
        tokio::time::sleep(ms(5)).await;
    }
}

/// Asserts that `r` carries a valid, fresh signature by `secret` and returns the signed `t`.
fn assert_signed_by(r: &Recorded, secret: &str) -> u64 {
    match verify(&r.headers, &r.body, &[secret], DEFAULT_TOLERANCE) {
        Ok(ok) => ok.timestamp,
        Err(e) => panic!("{} {}: signature does not verify with {secret:?}: {e}", r.method, r.path),
    }
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

fn event_id(r: &Recorded) -> &str {
    r.header(EVENT_ID_HEADER).unwrap_or_else(|| panic!("{}: no {EVENT_ID_HEADER} header", r.path))
}

fn v1_count(r: &Recorded) -> usize {
    r.header(SIGNATURE_HEADER)
        .expect("a signature header")
        .split(',')
        .filter(|p| p.starts_with("v1="))
        .count()
}

#[tokio::test]
async fn events_fan_out_to_the_matching_webhooks_of_their_user_only() {
    let receiver = Receiver::start().await;
    let server = server_for(&receiver, |_| {}).await;
    let a = server.client("client-a", "user-a");
    let b = server.client("client-b", "user-b");
    let a_all = create(&a, &receiver.url("/a/all"), vec![Event::All], &["a-all-secret"]).await;
    let a_typed =
        create(&a, &receiver.url("/a/typed"), vec![Event::FacilityCreationAccepted], &["a-typed-secret"])
            .await;
    let a_other = create(
        &a,
        &receiver.url("/a/other"),
        vec![Event::FacilityCreationRejected, Event::FacilityUserConnectionAccepted],
        &["a-other-secret"],
    )
    .await;
    let b_all = create(&b, &receiver.url("/b/all"), vec![Event::All], &["b-all-secret"]).await;

    let published = publish(
        &server.publisher(),
        Type::FacilityCreationAccepted,
        "user-a",
        json!({"facilityId": "NUR-1"}),
        None,
    )
    .await;
    assert_eq!(published.deliveries, 2, "the `all` and the typed webhook of user-a");
    assert_eq!(published.event_type, Type::FacilityCreationAccepted);
    assert!(!published.id.is_empty());

    // Deliveries are created with the event, in one transaction: once the two entries are
    // settled nothing else can arrive.
    let token_a = server.token("client-a", "user-a");
    let entries =
        wait_for_log(&server, &token_a, "", WAIT, |e| e.len() == 2 && e.iter().all(succeeded)).await;
    let logged: BTreeSet<&str> = entries.iter().map(|e| e["webhookId"].as_str().unwrap()).collect();
    assert_eq!(logged, BTreeSet::from([a_all.as_str(), a_typed.as_str()]));
    assert!(!logged.contains(a_other.as_str()));

    let got = receiver.requests();
    let mut paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["/a/all", "/a/typed"], "exactly the two matching webhooks were called");
    for r in &got {
        assert_eq!(r.method, "POST");
        assert_eq!(event_id(r), published.id);
        assert_signed_by(r, if r.path == "/a/all" { "a-all-secret" } else { "a-typed-secret" });
    }
    assert!(receiver.requests_to("/b/all").is_empty(), "user-b's webhook got nothing");
    assert!(receiver.requests_to("/a/other").is_empty(), "a webhook of another type got nothing");

    let token_b = server.token("client-b", "user-b");
    assert_eq!(log_entries(&server, &token_b, "").await, Vec::<Value>::new(), "user-b has no log entries");
    let query = format!("?webhookId={b_all}");
    assert_eq!(log_entries(&server, &token_b, &query).await, Vec::<Value>::new());
}

#[tokio::test]
async fn deliveries_are_signed_with_every_current_secret_and_rotation_retires_the_old_ones() {
    let receiver = Receiver::start().await;
    let server = server_for(&receiver, |_| {}).await;
    let owner = server.client("client-a", "user-a");
    let hook =
        create(&owner, &receiver.url("/rotating"), vec![Event::All], &["secret-one", "secret-two"]).await;
    let publisher = server.publisher();

    let data = json!({"facilityId": "NUR-123456", "userId": "user-a"});
    let first = publish(&publisher, Type::FacilityUserConnectionAccepted, "user-a", data.clone(), None).await;
    assert_eq!(first.deliveries, 1);
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/rotating"));
    // The documented body, `data` first, exactly (the keys of `data` are in sorted order so the
    // expected bytes do not depend on how the server orders them).
    assert_eq!(
        r.body_text(),
        r#"{"data":{"facilityId":"NUR-123456","userId":"user-a"},"eventType":"facility.user-connection.accepted"}"#
    );
    assert_eq!(r.body_json(), json!({"data": data, "eventType": "facility.user-connection.accepted"}));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(event_id(r), first.id, "the event id header is the id the 202 reported");
    let user_agent = r.header("user-agent").expect("a User-Agent");
    assert!(user_agent.starts_with("webhooks-server/"), "{user_agent}");

    // `t=<unix>,v1=<hex>,v1=<hex>`: one v1 per current secret; either secret alone verifies.
    let header = r.header(SIGNATURE_HEADER).expect("a signature header");
    assert!(header.starts_with("t="), "{header}");
    assert_eq!(v1_count(r), 2, "{header}");
    assert_eq!(verify(&r.headers, &r.body, &["secret-one"], DEFAULT_TOLERANCE).unwrap().secret_index, 0);
    assert_eq!(verify(&r.headers, &r.body, &["secret-two"], DEFAULT_TOLERANCE).unwrap().secret_index, 0);
    assert_eq!(
        verify(&r.headers, &r.body, &["not-a-secret", "secret-two"], DEFAULT_TOLERANCE).unwrap().secret_index,
        1
    );
    assert_eq!(
        verify(&r.headers, &r.body, &["not-a-secret"], DEFAULT_TOLERANCE),
        Err(VerifyError::NoMatchingSignature)
    );
    // Signed now, so a receiver's replay window applies: fresh within seconds, stale later.
    let now = now_unix();
    let t = verify_at(&r.headers, &r.body, &["secret-one"], Duration::from_secs(30), now).unwrap().timestamp;
    assert!(matches!(
        verify_at(&r.headers, &r.body, &["secret-one"], DEFAULT_TOLERANCE, t + 3600),
        Err(VerifyError::TimestampOutsideTolerance { .. })
    ));
    // The signature covers the body: one changed byte fails.
    let mut tampered = r.body.clone();
    tampered[10] ^= 1;
    assert_eq!(
        verify(&r.headers, &tampered, &["secret-one", "secret-two"], DEFAULT_TOLERANCE),
        Err(VerifyError::NoMatchingSignature)
    );

    // Rotate: the secrets become [secret-new].
    let updated = owner
        .update_user_webhook(
            &hook,
            &UpdateUserWebhookRequest {
                events: vec![Event::All],
                secrets: Some(vec!["secret-new".parse().unwrap()]),
                url: None,
            },
        )
        .await
        .expect("rotating the secrets");
    assert_eq!(updated.status(), 200);
    assert_eq!(updated.into_inner().data.secrets, ["secret-new"]);

    receiver.clear();
    let second = publish(
        &publisher,
        Type::FacilityCreationRejected,
        "user-a",
        json!({"facilityName": "Ward 7"}),
        None,
    )
    .await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(event_id(r), second.id);
    assert_eq!(
        r.body_text(),
        r#"{"data":{"facilityName":"Ward 7"},"eventType":"facility.creation.rejected"}"#
    );
    assert_eq!(v1_count(r), 1, "{:?}", r.header(SIGNATURE_HEADER));
    assert_signed_by(r, "secret-new");
    for old in ["secret-one", "secret-two"] {
        assert_eq!(
            verify(&r.headers, &r.body, &[old], DEFAULT_TOLERANCE),
            Err(VerifyError::NoMatchingSignature),
            "{old} no longer verifies"
        );
    }
}

#[tokio::test]
async fn publishing_the_same_id_twice_delivers_once() {
    let receiver = Receiver::start().await;
    let server = server_for(&receiver, |_| {}).await;
    let owner = server.client("client-a", "user-a");
    create(&owner, &receiver.url("/idem"), vec![Event::All], &["idem-secret"]).await;
    let publisher = server.publisher();

    let data = json!({"facilityId": "NUR-1"});
    let first =
        publish(&publisher, Type::FacilityCreationAccepted, "user-a", data.clone(), Some("evt-idem-1")).await;
    assert_eq!((first.id.as_str(), first.deliveries), ("evt-idem-1", 1));
    let again = publish(&publisher, Type::FacilityCreationAccepted, "user-a", data, Some("evt-idem-1")).await;
    assert_eq!((again.id.as_str(), again.deliveries, again.event_type), ("evt-idem-1", 1, first.event_type));
    // Same id, another payload: still the first event; nothing new is scheduled.
    let other = publish(
        &publisher,
        Type::FacilityCreationAccepted,
        "user-a",
        json!({"facilityId": "NUR-2"}),
        Some("evt-idem-1"),
    )
    .await;
    assert_eq!((other.id.as_str(), other.deliveries), ("evt-idem-1", 1));

    let token = server.token("client-a", "user-a");
    let entries = wait_for_log(&server, &token, "", WAIT, |e| e.iter().all(succeeded)).await;
    assert_eq!(entries.len(), 1, "one delivery for one id: {entries:#?}");
    assert_eq!(entries[0]["eventId"], "evt-idem-1");
    let got = receiver.requests();
    assert_eq!(got.len(), 1, "delivered once");
    assert_eq!(event_id(&got[0]), "evt-idem-1");
    assert_eq!(got[0].body_json()["data"], json!({"facilityId": "NUR-1"}), "the first payload");
    assert_signed_by(&got[0], "idem-secret");

    // Ids are unique per publisher: another publisher's "evt-idem-1" is an event of its own,
    // neither refused as a repeat nor able to pre-empt the first publisher's id.
    let other_publisher = server.client_with_token(&server.token_with_scopes(
        "another-publisher",
        "event-source",
        &[webhooks_e2e::PUBLISH_SCOPE],
    ));
    let theirs = publish(
        &other_publisher,
        Type::FacilityCreationRejected,
        "user-a",
        json!({"facilityName": "Elsewhere"}),
        Some("evt-idem-1"),
    )
    .await;
    assert_eq!(
        (theirs.id.as_str(), theirs.deliveries, theirs.event_type),
        ("evt-idem-1", 1, Type::FacilityCreationRejected)
    );
    let arrived = receiver.wait_for(2, WAIT).await;
    assert_eq!(arrived[1].body_json()["data"], json!({"facilityName": "Elsewhere"}));
    assert_eq!(event_id(&arrived[1]), "evt-idem-1");
}

/// What [`publishing_the_same_id_twice_delivers_once`] leaves out: the id's *type* changes.
/// The spec: "Publishing the same id again returns the same event".
#[tokio::test]
async fn republishing_an_id_with_another_type_returns_the_stored_event() {
    let server = TestServer::start_with(|s| s.no_worker = true).await;
    let owner = server.client("client-a", "user-a");
    create(&owner, "https://example.com/hook", vec![Event::All], &[]).await;
    let publisher = server.publisher();
    let first = publish(
        &publisher,
        Type::FacilityCreationAccepted,
        "user-a",
        json!({"facilityId": "F"}),
        Some("evt-x"),
    )
    .await;
    let again = publish(
        &publisher,
        Type::FacilityCreationRejected,
        "user-a",
        json!({"facilityName": "N"}),
        Some("evt-x"),
    )
    .await;
    assert_eq!(first.event_type, Type::FacilityCreationAccepted);
    assert_eq!(again.event_type, Type::FacilityCreationAccepted, "the stored event, not the request");
    assert_eq!((again.id.as_str(), again.deliveries), ("evt-x", first.deliveries));
}

#[tokio::test]
async fn failed_attempts_are_retried_on_the_schedule_until_a_2xx_or_the_end_of_it() {
    let receiver = Receiver::start().await;
    let schedule = [ms(100), ms(200), ms(400)];
    let server = server_for(&receiver, |s| s.retry_schedule = schedule.to_vec()).await;
    let owner = server.client("client-a", "user-a");
    // `/flaky` answers 500 twice, then 200; `/down` always answers 503.
    receiver.set_path_mode("/down", Some(Mode::Status(503)));
    receiver.script([Mode::Status(500), Mode::Status(500)]);
    let flaky = create(&owner, &receiver.url("/flaky"), vec![Event::All], &["flaky-secret"]).await;
    let down = create(&owner, &receiver.url("/down"), vec![Event::All], &["down-secret"]).await;
    let published = publish(
        &server.publisher(),
        Type::FacilityCreationAccepted,
        "user-a",
        json!({"facilityId": "F"}),
        None,
    )
    .await;
    assert_eq!(published.deliveries, 2);

    let tries = wait_for_path(&receiver, "/flaky", 3, WAIT).await;
    assert_eq!(
        tries.iter().map(|r| r.answer).collect::<Vec<_>>(),
        [Mode::Status(500), Mode::Status(500), Mode::Ok]
    );
    for (i, r) in tries.iter().enumerate() {
        assert_eq!(r.body, tries[0].body, "try {i}: the stored bytes, sent identically");
        assert_eq!(event_id(r), published.id, "try {i}: a stable event id");
        assert_signed_by(r, "flaky-secret");
    }
    for (i, pair) in tries.windows(2).enumerate() {
        let gap = pair[1].received_at - pair[0].received_at;
        assert!(
            gap >= schedule[i],
            "retry {} came {gap:?} after the previous try (schedule: {:?})",
            i + 1,
            schedule[i]
        );
        assert!(gap < schedule[i] + Duration::from_secs(5), "retry {} came {gap:?} late", i + 1);
    }

    let token = server.token("client-a", "user-a");
    let entry = wait_for_log(&server, &token, &format!("?webhookId={flaky}"), WAIT, |e| {
        e.len() == 1 && succeeded(&e[0])
    })
    .await
    .remove(0);
    assert_eq!(entry["responseStatus"], 500);
    let retries: Vec<(i64, i64)> = entry["retries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["retryAttempt"].as_i64().unwrap(), r["responseStatus"].as_i64().unwrap()))
        .collect();
    assert_eq!(retries, [(1, 500), (2, 200)]);

    // The receiver that never succeeds gets the first try and one per scheduled retry, then no more.
    let down_tries = wait_for_path(&receiver, "/down", 1 + schedule.len(), WAIT).await;
    assert!(down_tries.iter().all(|r| r.answer == Mode::Status(503)));
    let entry = wait_for_log(&server, &token, &format!("?webhookId={down}"), WAIT, |e| {
        e.len() == 1 && e[0]["retries"].as_array().is_some_and(|r| r.len() == schedule.len())
    })
    .await
    .remove(0);
    assert_eq!(entry["status"], "failure");
    tokio::time::sleep(ms(600)).await;
    assert_eq!(receiver.requests_to("/down").len(), 1 + schedule.len(), "retried past the schedule");
}

#[tokio::test]
async fn the_worker_can_be_stepped_one_synchronous_round_at_a_time() {
    let receiver = Receiver::start().await;
    let server = server_for(&receiver, |s| {
        s.no_worker = true;
        s.retry_schedule = vec![Duration::ZERO];
    })
    .await;
    let owner = server.client("client-a", "user-a");
    create(&owner, &receiver.url("/step"), vec![Event::All], &[]).await;
    receiver.script([Mode::Status(500)]);
    publish(&server.publisher(), Type::FacilityCreationAccepted, "user-a", json!({"facilityId": "F"}), None)
        .await;
    tokio::time::sleep(ms(200)).await;
    assert!(receiver.requests().is_empty(), "nothing is sent without a worker step");

    assert_eq!(server.worker.deliver_due().await.unwrap(), 1, "the first try (answered 500)");
    assert_eq!(receiver.requests().len(), 1);
    assert_eq!(server.worker.deliver_due().await.unwrap(), 1, "the retry (answered 200)");
    assert_eq!(
        receiver.requests().iter().map(|r| r.answer).collect::<Vec<_>>(),
        [Mode::Status(500), Mode::Ok]
    );
    assert_eq!(server.worker.deliver_due().await.unwrap(), 0, "nothing left to do");
}

/// Whether `host` resolves to a loopback address on this machine.
async fn resolves_to_loopback(host: &str) -> bool {
    match tokio::net::lookup_host((host, 443)).await {
        Ok(mut addrs) => addrs.any(|a| a.ip().is_loopback()),
        Err(_) => false,
    }
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let receiver = Receiver::start().await;
    // Trusts the receiver's CA but allows no private network: the SSRF guard must refuse.
    let server = server_for(&receiver, |s| s.allowed_targets.clear()).await;
    let owner = server.client("client-a", "user-a");
    let port = receiver.addr().port();
    let mut urls =
        vec![format!("https://127.0.0.1:{port}/private-v4"), format!("https://[::1]:{port}/private-v6")];
    // A host name that resolves to loopback is refused at resolution. The URL validator rejects
    // `localhost` itself, so this needs a dotted name the resolver maps to loopback.
    if resolves_to_loopback("localhost.localdomain").await {
        urls.push(format!("https://localhost.localdomain:{port}/private-name"));
    } else {
        eprintln!(
            "localhost.localdomain does not resolve to loopback here: the resolver path is not exercised"
        );
    }
    for url in &urls {
        create(&owner, url, vec![Event::All], &[]).await;
    }

    let published = publish(
        &server.publisher(),
        Type::FacilityCreationAccepted,
        "user-a",
        json!({"facilityId": "F"}),
        None,
    )
    .await;
    assert_eq!(published.deliveries as usize, urls.len());
    let token = server.token("client-a", "user-a");
    let entries =
        wait_for_log(&server, &token, "", WAIT, |e| e.len() == urls.len() && e.iter().all(attempted)).await;
    for entry in &entries {
        assert_eq!(entry["responseStatus"], Value::Null, "{entry:#}");
        // Neither the address nor what a name resolved to: the owner's log is no probe of the
        // server's network (the server's own log has them, see
        // `refusals_name_the_address_in_the_server_log_only`).
        assert_eq!(entry["responseBody"], REFUSED, "{entry:#}");
        assert_eq!(entry["status"], "failure");
        assert_eq!(entry["retries"], json!([]));
    }
    assert!(receiver.requests().is_empty(), "nothing was delivered");
    assert_eq!(receiver.connection_count(), 0, "the guard refused before connecting");
}

#[tokio::test]
async fn a_receiver_that_never_answers_costs_one_timeout_not_the_worker() {
    let receiver = Receiver::start().await;
    let server = server_for(&receiver, |s| {
        s.delivery_timeout = Duration::from_secs(1);
        s.delivery_lease = Duration::from_secs(5);
        s.retry_schedule = Vec::new();
    })
    .await;
    receiver.set_path_mode("/hang", Some(Mode::Hang));
    let owner = server.client("client-a", "user-a");
    let hang = create(&owner, &receiver.url("/hang"), vec![Event::FacilityCreationAccepted], &[]).await;
    let ok = create(&owner, &receiver.url("/ok"), vec![Event::All], &["ok-secret"]).await;
    let publisher = server.publisher();
    let token = server.token("client-a", "user-a");

    let started = Instant::now();
    let first =
        publish(&publisher, Type::FacilityCreationAccepted, "user-a", json!({"facilityId": "F"}), None).await;
    assert_eq!(first.deliveries, 2);
    let arrived = wait_for_path(&receiver, "/ok", 1, WAIT).await;
    let ok_after = arrived[0].received_at - started;
    assert!(ok_after < ms(800), "the answering receiver waited for the hanging one ({ok_after:?})");
    assert_signed_by(&arrived[0], "ok-secret");

    // While the hanging attempt is in flight, a new event still goes out at once.
    let second =
        publish(&publisher, Type::FacilityCreationRejected, "user-a", json!({"facilityName": "N"}), None)
            .await;
    assert_eq!(second.deliveries, 1);
    let arrived = wait_for_path(&receiver, "/ok", 2, WAIT).await;
    assert_eq!(event_id(&arrived[1]), second.id);

    let hang_query = format!("?webhookId={hang}");
    let entries =
        wait_for_log(&server, &token, &hang_query, WAIT, |e| e.len() == 1 && attempted(&e[0])).await;
    let timed_out_after = started.elapsed();
    // The hanging attempt started after `started` and cannot time out before 1 s later: what
    // arrived before that arrived while it was in flight.
    let second_after = arrived[1].received_at - started;
    assert!(
        second_after < Duration::from_secs(1),
        "the second event waited for the timeout ({second_after:?})"
    );
    assert!(
        timed_out_after >= Duration::from_secs(1),
        "logged after {timed_out_after:?}, before the timeout"
    );
    assert!(timed_out_after < Duration::from_secs(5), "logged only after {timed_out_after:?}");
    let entry = &entries[0];
    assert_eq!(entry["responseStatus"], Value::Null, "{entry:#}");
    assert!(entry["responseBody"].as_str().unwrap().contains("timed out"), "{entry:#}");
    assert_eq!(entry["status"], "failure");
    assert_eq!(receiver.requests_to("/hang").len(), 1, "the hanging receiver did get the request");

    let ok_query = format!("?webhookId={ok}");
    let ok_entries = log_entries(&server, &token, &ok_query).await;
    assert_eq!(ok_entries.len(), 2);
    assert!(ok_entries.iter().all(succeeded), "{ok_entries:#?}");
}

/// Under load the worker claims once a few slots are free (an eighth of them), not after every
/// delivery; but when slow receivers hold all but one slot, a due delivery still goes out
/// within a poll interval (500 ms), not when one of them times out.
#[tokio::test]
async fn slots_held_by_slow_receivers_do_not_hold_back_due_deliveries() {
    const CONCURRENCY: usize = 16;
    let receiver = Receiver::start().await;
    let server = server_for(&receiver, |s| {
        s.delivery_concurrency = CONCURRENCY;
        // One receiver, one destination: its share is the whole worker here (and, once it has
        // answered, the half for receivers not known to answer does not apply to it).
        s.delivery_per_host_concurrency = Some(CONCURRENCY);
        s.delivery_timeout = Duration::from_secs(8);
        s.delivery_lease = Duration::from_secs(30);
        s.retry_schedule = Vec::new();
    })
    .await;
    receiver.set_path_mode("/hang", Some(Mode::Hang));
    let owner = server.client("client-a", "user-a");
    for _ in 0..CONCURRENCY - 1 {
        create(&owner, &receiver.url("/hang"), vec![Event::FacilityCreationAccepted], &[]).await;
    }
    create(&owner, &receiver.url("/ok"), vec![Event::FacilityCreationRejected], &["ok-secret"]).await;
    let publisher = server.publisher();
    publish(&publisher, Type::FacilityCreationRejected, "user-a", json!({"facilityName": "N"}), None).await;
    wait_for_path(&receiver, "/ok", 1, WAIT).await;

    let held =
        publish(&publisher, Type::FacilityCreationAccepted, "user-a", json!({"facilityId": "F"}), None).await;
    assert_eq!(held.deliveries as usize, CONCURRENCY - 1);
    wait_for_path(&receiver, "/hang", CONCURRENCY - 1, WAIT).await;

    // One slot is free: fewer than the eighth the worker waits for under load.
    let started = Instant::now();
    let due =
        publish(&publisher, Type::FacilityCreationRejected, "user-a", json!({"facilityName": "N"}), None)
            .await;
    assert_eq!(due.deliveries, 1);
    let arrived = wait_for_path(&receiver, "/ok", 2, WAIT).await;
    let after = arrived[1].received_at - started;
    assert!(after < Duration::from_secs(3), "the due delivery waited for a slow receiver ({after:?})");
    assert_eq!(event_id(&arrived[1]), due.id);
    assert_signed_by(&arrived[1], "ok-secret");
}

/// Receivers that accept and never answer hold at most their per-host share of the worker.
/// Four of them (each its own port: its own destination) with many due deliveries, published
/// first and so claimed first, would otherwise take every slot for a whole delivery timeout
/// (60 s here): every delivery to a healthy receiver still arrives, long before that, while
/// the tarpits hang. What is over a tarpit's share goes back to the store unattempted: it is
/// neither sent nor logged.
#[tokio::test]
async fn tarpits_hold_only_their_share_of_the_worker() {
    const TARPITS: usize = 4;
    const PER_HOST: usize = 2;
    // The tarpits' shares take 8 of the 20 slots (8 of the 10 for receivers not yet seen to
    // answer, which the healthy one is at first).
    const CONCURRENCY: usize = 20;
    const HOOKS_PER_TARPIT: usize = 5;
    const TARPIT_EVENTS: usize = 10;
    const HEALTHY_EVENTS: usize = 20;
    let healthy = Receiver::start().await;
    let mut tarpits = Vec::new();
    for _ in 0..TARPITS {
        let tarpit = Receiver::start().await;
        tarpit.set_mode(Mode::Hang);
        tarpits.push(tarpit);
    }
    let server = TestServer::start_with(|s| {
        trust_all(s, tarpits.iter().chain([&healthy]));
        s.delivery_concurrency = CONCURRENCY;
        s.delivery_per_host_concurrency = Some(PER_HOST);
        s.delivery_timeout = Duration::from_secs(60);
        s.delivery_lease = Duration::from_secs(120);
        s.retry_schedule = Vec::new();
    })
    .await;
    let owner = server.client("client-a", "user-a");
    for (t, tarpit) in tarpits.iter().enumerate() {
        for h in 0..HOOKS_PER_TARPIT {
            let url = tarpit.url(&format!("/tarpit-{t}/{h}"));
            create(&owner, &url, vec![Event::FacilityCreationAccepted], &[]).await;
        }
    }
    create(&owner, &healthy.url("/healthy"), vec![Event::FacilityCreationRejected], &["healthy-secret"])
        .await;
    let publisher = server.publisher();

    let started = Instant::now();
    for _ in 0..TARPIT_EVENTS {
        let held =
            publish(&publisher, Type::FacilityCreationAccepted, "user-a", json!({"facilityId": "F"}), None)
                .await;
        assert_eq!(held.deliveries as usize, TARPITS * HOOKS_PER_TARPIT);
    }
    let mut healthy_ids = BTreeSet::new();
    for _ in 0..HEALTHY_EVENTS {
        let due =
            publish(&publisher, Type::FacilityCreationRejected, "user-a", json!({"facilityName": "N"}), None)
                .await;
        healthy_ids.insert(due.id);
    }

    // A liveness bound a third of the tarpits' timeout: without the per-host share, nothing
    // would arrive before the 60 s timeout.
    let arrived = healthy.wait_for(HEALTHY_EVENTS, Duration::from_secs(20)).await;
    let after = started.elapsed();
    let got: BTreeSet<String> = arrived.iter().map(|r| event_id(r).to_owned()).collect();
    assert_eq!(got, healthy_ids, "every healthy delivery arrived, once, within {after:?}");
    for r in &arrived {
        assert_signed_by(r, "healthy-secret");
    }
    // The tarpits hang still: each got exactly its share, none has finished.
    for (t, tarpit) in tarpits.iter().enumerate() {
        assert_eq!(tarpit.requests().len(), PER_HOST, "tarpit {t}");
    }
    let token = server.token("client-a", "user-a");
    let query = "?eventType=facility.creation.accepted&limit=100";
    let mut entries = log_entries(&server, &token, query).await;
    entries.extend(log_entries(&server, &token, &format!("{query}&offset=100")).await);
    assert_eq!(entries.len(), TARPIT_EVENTS * TARPITS * HOOKS_PER_TARPIT);
    assert!(
        entries.iter().all(|e| !attempted(e) && e["retries"] == json!([])),
        "given back unattempted, in flight unrecorded: {:#?}",
        entries.iter().filter(|e| attempted(e)).collect::<Vec<_>>()
    );
    assert!(started.elapsed() < Duration::from_secs(60), "checked while the tarpits still hang");
}

/// More tarpits than the per-host shares keep apart (eight of them, two slots each, eight
/// slots in all): destinations not known to answer fast together get at most half the slots,
/// so a receiver that has answered before keeps the other half, and its deliveries go out at
/// once, not when the tarpits' attempts time out.
#[tokio::test]
async fn tarpits_together_hold_at_most_half_the_worker() {
    const TARPITS: usize = 8;
    const HOOKS_PER_TARPIT: usize = 5;
    const TARPIT_EVENTS: usize = 4;
    const HEALTHY_EVENTS: usize = 10;
    let timeout = Duration::from_secs(6);
    let healthy = Receiver::start().await;
    let mut tarpits = Vec::new();
    for _ in 0..TARPITS {
        let tarpit = Receiver::start().await;
        tarpit.set_mode(Mode::Hang);
        tarpits.push(tarpit);
    }
    let server = TestServer::start_with(|s| {
        trust_all(s, tarpits.iter().chain([&healthy]));
        s.delivery_concurrency = 8;
        s.delivery_per_host_concurrency = Some(2);
        s.delivery_timeout = timeout;
        s.delivery_lease = Duration::from_secs(30);
        s.retry_schedule = Vec::new();
    })
    .await;
    let owner = server.client("client-a", "user-a");
    for (t, tarpit) in tarpits.iter().enumerate() {
        for h in 0..HOOKS_PER_TARPIT {
            create(&owner, &tarpit.url(&format!("/t{t}/{h}")), vec![Event::FacilityCreationAccepted], &[])
                .await;
        }
    }
    create(&owner, &healthy.url("/healthy"), vec![Event::FacilityCreationRejected], &[]).await;
    let publisher = server.publisher();
    // The healthy receiver answers once: it is known to be fast.
    publish(&publisher, Type::FacilityCreationRejected, "user-a", json!({"facilityName": "N"}), None).await;
    assert_eq!(healthy.wait_for(1, WAIT).await.len(), 1);
    for _ in 0..TARPIT_EVENTS {
        publish(&publisher, Type::FacilityCreationAccepted, "user-a", json!({"facilityId": "F"}), None).await;
    }
    let deadline = Instant::now() + WAIT;
    let held = || tarpits.iter().map(|t| t.requests().len()).sum::<usize>();
    while held() < 4 && Instant::now() < deadline {
        tokio::time::sleep(ms(20)).await;
    }
    // Past the hold limit (a second): the tarpits are seen not to answer.
    tokio::time::sleep(ms(1200)).await;
    assert_eq!(held(), 4, "the tarpits hold half the slots");

    let started = Instant::now();
    for _ in 0..HEALTHY_EVENTS {
        publish(&publisher, Type::FacilityCreationRejected, "user-a", json!({"facilityName": "N"}), None)
            .await;
    }
    // Half the timeout: with every slot taken by the tarpits, nothing would arrive before
    // their attempts time out.
    let arrived = healthy.wait_for(1 + HEALTHY_EVENTS, timeout / 2).await;
    assert_eq!(arrived.len(), 1 + HEALTHY_EVENTS, "within {:?}", started.elapsed());
    assert_eq!(held(), 4, "checked while the tarpits still hang");
}

/// Trusts every receiver's CA (one bundle in the data dir) and allows loopback targets.
fn trust_all<'a>(
    settings: &mut webhooks_server::config::Settings,
    receivers: impl Iterator<Item = &'a Receiver>,
) {
    let bundle: String = receivers.map(Receiver::ca_pem).collect();
    let ca_file = settings.data_dir.join("receivers-ca.pem");
    std::fs::write(&ca_file, bundle).expect("writing the CA bundle");
    settings.extra_ca_file = Some(ca_file);
    settings.allowed_targets = vec!["127.0.0.0/8".parse().expect("CIDR")];
}

/// The 400 of a query / body with exactly these messages.
fn bad_request(messages: &[&str]) -> Value {
    json!({"message": messages, "error": "Bad Request", "statusCode": 400})
}

#[tokio::test]
async fn the_log_filters_sorts_pages_validates_and_stays_private() {
    let receiver = Receiver::start().await;
    let server = server_for(&receiver, |_| {}).await;
    let owner = server.client("client-a", "user-a");
    let token = server.token("client-a", "user-a");
    let w1 = create(&owner, &receiver.url("/l1"), vec![Event::All], &[]).await;
    let w2 = create(&owner, &receiver.url("/l2"), vec![Event::FacilityCreationRejected], &[]).await;
    let publisher = server.publisher();

    // e1 → w1; e2 → w1, w2; e3 → w1. Apart in time, so their createdAt differ.
    let e1 =
        publish(&publisher, Type::FacilityCreationAccepted, "user-a", json!({"facilityId": "F"}), Some("e1"))
            .await;
    tokio::time::sleep(ms(20)).await;
    let e2 = publish(
        &publisher,
        Type::FacilityCreationRejected,
        "user-a",
        json!({"facilityName": "N"}),
        Some("e2"),
    )
    .await;
    tokio::time::sleep(ms(20)).await;
    let e3 = publish(
        &publisher,
        Type::FacilityUserConnectionAccepted,
        "user-a",
        json!({"facilityId": "F", "userId": "user-a"}),
        Some("e3"),
    )
    .await;
    assert_eq!((e1.deliveries, e2.deliveries, e3.deliveries), (1, 2, 1));
    let all = wait_for_log(&server, &token, "", WAIT, |e| e.len() == 4 && e.iter().all(succeeded)).await;
    let ids = |entries: &[Value]| -> Vec<(String, String)> {
        entries
            .iter()
            .map(|e| (e["eventId"].as_str().unwrap().to_owned(), e["webhookId"].as_str().unwrap().to_owned()))
            .collect()
    };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter().map(|(e, w)| ((*e).to_owned(), (*w).to_owned())).collect()
    };

    // Default: newest first (DESC); e2's two entries share a createdAt, the later-created first.
    let newest_first = ids(&all);
    assert_eq!(&newest_first[0], &("e3".to_owned(), w1.clone()));
    assert_eq!(&newest_first[3], &("e1".to_owned(), w1.clone()));
    assert_eq!(
        newest_first[1..3].iter().cloned().collect::<BTreeSet<_>>(),
        pairs(&[("e2", &w1), ("e2", &w2)]).into_iter().collect()
    );
    assert_eq!(ids(&log_entries(&server, &token, "?sortDirection=DESC").await), newest_first);
    let mut oldest_first = newest_first.clone();
    oldest_first.reverse();
    assert_eq!(ids(&log_entries(&server, &token, "?sortDirection=ASC").await), oldest_first);

    // Every entry describes its delivery.
    for entry in &all {
        let request = receiver
            .requests()
            .into_iter()
            .find(|r| event_id(r) == entry["eventId"] && entry["url"] == receiver.url(&r.path))
            .expect("a request for every entry");
        assert_eq!(entry["requestPayload"], request.body_json());
        assert_eq!(
            (entry["responseStatus"].clone(), entry["responseBody"].clone()),
            (json!(200), json!(OK_BODY))
        );
        assert_eq!(entry["retries"], json!([]));
    }

    // Filters.
    let by_type = log_entries(&server, &token, "?eventType=facility.creation.rejected").await;
    assert_eq!(
        ids(&by_type).into_iter().collect::<BTreeSet<_>>(),
        pairs(&[("e2", &w1), ("e2", &w2)]).into_iter().collect()
    );
    assert_eq!(ids(&log_entries(&server, &token, &format!("?webhookId={w2}")).await), pairs(&[("e2", &w2)]));
    let w1_and_type = format!("?webhookId={w1}&eventType=facility.creation.accepted");
    assert_eq!(ids(&log_entries(&server, &token, &w1_and_type).await), pairs(&[("e1", &w1)]));
    assert_eq!(log_entries(&server, &token, "?webhookId=no-such-webhook").await, Vec::<Value>::new());

    // Pages.
    assert_eq!(ids(&log_entries(&server, &token, "?limit=1").await), newest_first[..1]);
    assert_eq!(ids(&log_entries(&server, &token, "?limit=2&offset=1").await), newest_first[1..3]);
    assert_eq!(ids(&log_entries(&server, &token, "?limit=2&offset=3").await), newest_first[3..]);
    assert_eq!(
        ids(&log_entries(&server, &token, "?limit=1&offset=1&sortDirection=ASC").await),
        oldest_first[1..2]
    );
    assert_eq!(log_entries(&server, &token, "?offset=4").await, Vec::<Value>::new());
    assert_eq!(log_entries(&server, &token, "?limit=0").await, Vec::<Value>::new());
    assert_eq!(log_entries(&server, &token, "?limit=100").await.len(), 4);

    // Dates: startDate inclusive, endDate exclusive (createdAt values are RFC 3339, `Z`).
    let created = |event: &str| -> String {
        all.iter().find(|e| e["eventId"] == event).unwrap()["createdAt"].as_str().unwrap().to_owned()
    };
    let (t1, t2, t3) = (created("e1"), created("e2"), created("e3"));
    assert!(t1 < t2 && t2 < t3, "{t1} {t2} {t3}");
    let since_e2 = log_entries(&server, &token, &format!("?startDate={t2}&sortDirection=ASC")).await;
    assert_eq!(ids(&since_e2), oldest_first[1..]);
    let before_e3 = log_entries(&server, &token, &format!("?endDate={t3}&sortDirection=ASC")).await;
    assert_eq!(ids(&before_e3), oldest_first[..3]);
    let only_e2 = log_entries(&server, &token, &format!("?startDate={t2}&endDate={t3}")).await;
    assert_eq!(
        ids(&only_e2).into_iter().collect::<BTreeSet<_>>(),
        pairs(&[("e2", &w1), ("e2", &w2)]).into_iter().collect()
    );
    assert_eq!(
        log_entries(&server, &token, "?startDate=2000-01-01&endDate=2000-01-02").await,
        Vec::<Value>::new()
    );
    assert_eq!(log_entries(&server, &token, "?startDate=2000-01-01T00:00:00Z").await.len(), 4);

    // Validation: 400 with class-validator messages.
    for (query, messages) in [
        ("?limit=101", vec!["limit must not be greater than 100"]),
        ("?limit=-1", vec!["limit must not be less than 0"]),
        ("?offset=-1", vec!["offset must not be less than 0"]),
        ("?sortDirection=up", vec!["sortDirection must be one of the following values: ASC, DESC"]),
        ("?startDate=yesterday", vec!["startDate must be a valid ISO 8601 date string"]),
        ("?endDate=2026-13-45", vec!["endDate must be a valid ISO 8601 date string"]),
        (
            "?eventType=all",
            vec!["eventType must be one of the following values: facility.user-connection.accepted, facility.user-connection.rejected, facility.creation.accepted, facility.creation.rejected, shift.request.created, shift.request.cancelled, shift.report.created, shift.scheduled.cancelled, shift.scheduled, shift.created, shift.report.accepted-automatically, shift.report.accepted, shift.report.rejected, shift.cancelled"],
        ),
        ("?startDate=2026-11-02T00:00:00Z&endDate=2026-11-01T00:00:00Z", vec!["startDate must be before endDate"]),
        ("?limit=101&sortDirection=up", vec![
            "limit must not be greater than 100",
            "sortDirection must be one of the following values: ASC, DESC",
        ]),
    ] {
        let (status, body) = get_logs(&server, &token, query).await;
        assert_eq!((status, body), (400, bad_request(&messages)), "GET logs{query}");
    }
    let (status, body) = get_logs(&server, &token, "?limit=ten").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_array().unwrap().contains(&json!("limit must be an integer number")),
        "{body}"
    );

    // The generated client: same entries, typed.
    let typed = owner
        .search_webhook_logs(
            None,
            Some(Type::FacilityCreationRejected),
            None,
            Some(1),
            Some(0),
            None,
            None,
            Some(&w2),
        )
        .await
        .expect("searching the log");
    assert_eq!(typed.status(), 200);
    let typed = typed.into_inner().data;
    assert_eq!(typed.len(), 1);
    assert_eq!((typed[0].event_id.as_str(), typed[0].webhook_id.as_str()), ("e2", w2.as_str()));
    let error = owner
        .search_webhook_logs(None, None, None, Some(101), None, None, None, None)
        .await
        .expect_err("limit 101 is refused");
    let (status, body) = error_parts(error).await;
    assert_eq!((status, body), (400, bad_request(&["limit must not be greater than 100"])));

    // Nobody else sees them: another client of the same user, another user of the same client.
    for (client_id, user) in [("client-b", "user-a"), ("client-a", "user-b")] {
        let other = server.token(client_id, user);
        assert_eq!(log_entries(&server, &other, "").await, Vec::<Value>::new(), "{client_id}/{user}");
        assert_eq!(log_entries(&server, &other, &format!("?webhookId={w1}")).await, Vec::<Value>::new());
    }
}

#[tokio::test]
async fn publishing_needs_the_scope_and_the_documented_payload() {
    let receiver = Receiver::start().await;
    let server = server_for(&receiver, |_| {}).await;
    let owner = server.client("client-a", "user-a");
    create(&owner, &receiver.url("/pub"), vec![Event::All], &["pub-secret"]).await;
    let valid = br#"{"eventType":"facility.creation.accepted","userId":"user-a","data":{"facilityId":"F"}}"#;
    let post = |token: String, body: &'static [u8]| {
        let server = &server;
        async move {
            let authorization = bearer(&token);
            server
                .raw(
                    "POST",
                    EVENTS,
                    &[("Authorization", &authorization), ("Content-Type", "application/json")],
                    Some(body.to_vec()),
                )
                .await
        }
    };

    // A valid token without the scope: 403, and nothing is published.
    let response = post(server.token("client-a", "user-a"), valid).await;
    assert_eq!((response.status, response.text()), (403, forbidden_body().as_str()));
    let response = post(server.token_with_scopes("client-a", "user-a", &["events:read"]), valid).await;
    assert_eq!((response.status, response.text()), (403, forbidden_body().as_str()));
    // The generated client says the same.
    let error = owner
        .publish_event(&request(Type::FacilityCreationAccepted, "user-a", json!({"facilityId": "F"}), None))
        .await
        .expect_err("no scope");
    assert_eq!(error_parts(error).await, (403, webhooks_e2e::json(&forbidden_body())));
    let token = server.token("client-a", "user-a");
    assert_eq!(log_entries(&server, &token, "").await, Vec::<Value>::new());

    // `data` must carry the documented fields of the event type, each a string.
    let publisher = server.token_with_scopes("publisher", "event-source", &[PUBLISH_SCOPE]);
    for (body, messages) in [
        (
            &br#"{"eventType":"facility.user-connection.accepted","userId":"user-a","data":{}}"#[..],
            vec!["data.facilityId must be a string", "data.userId must be a string"],
        ),
        (
            br#"{"eventType":"facility.user-connection.rejected","userId":"user-a","data":{"facilityId":"F","userId":7}}"#,
            vec!["data.userId must be a string"],
        ),
        (br#"{"eventType":"facility.creation.accepted","userId":"user-a","data":{"facilityName":"N"}}"#, vec!["data.facilityId must be a string"]),
        (br#"{"eventType":"facility.creation.rejected","userId":"user-a","data":{"facilityName":null}}"#, vec!["data.facilityName must be a string"]),
        (
            br#"{"eventType":"all","userId":"","data":[]}"#,
            vec![
                "eventType must be one of the following values: facility.user-connection.accepted, facility.user-connection.rejected, facility.creation.accepted, facility.creation.rejected, shift.request.created, shift.request.cancelled, shift.report.created, shift.scheduled.cancelled, shift.scheduled, shift.created, shift.report.accepted-automatically, shift.report.accepted, shift.report.rejected, shift.cancelled",
                "userId must be longer than or equal to 1 characters",
                "data must be an object",
            ],
        ),
        (
            br#"{"id":"","eventType":"facility.creation.accepted","userId":"user-a","data":{"facilityId":"F"}}"#,
            vec!["id must be longer than or equal to 1 characters"],
        ),
    ] {
        let response = post(publisher.clone(), body).await;
        assert_eq!(
            (response.status, response.json()),
            (400, bad_request(&messages)),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(log_entries(&server, &token, "").await, Vec::<Value>::new(), "nothing was published");
    assert!(receiver.requests().is_empty());

    // With the scope and a valid payload: 202 and one delivery. Extra fields in `data` are kept.
    let response = post(publisher.clone(), br#"{"eventType":"facility.creation.accepted","userId":"user-a","data":{"facilityId":"F","extra":{"n":1}}}"#).await;
    assert_eq!(response.status, 202, "{}", response.text());
    let body = response.json();
    assert_eq!(body["data"]["eventType"], "facility.creation.accepted");
    assert_eq!(body["data"]["deliveries"], 1);
    let id = body["data"]["id"].as_str().expect("a generated id").to_owned();
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(event_id(&got[0]), id);
    assert_eq!(
        got[0].body_json(),
        json!({"data": {"facilityId": "F", "extra": {"n": 1}}, "eventType": "facility.creation.accepted"})
    );
    assert_signed_by(&got[0], "pub-secret");

    // A user without webhooks: 202 with no deliveries.
    let nobody = publish(
        &server.publisher(),
        Type::FacilityCreationAccepted,
        "user-without-webhooks",
        json!({"facilityId": "F"}),
        None,
    )
    .await;
    assert_eq!(nobody.deliveries, 0);
}

/// The binary, configured by flags only (no `WEBHOOKS_*` of whoever runs the tests).
/// The binary's CLI on `server`'s data dir and database.
fn cli(server: &TestServer) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("WEBHOOKS_") {
            command.env_remove(name);
        }
    }
    command.arg("--data-dir").arg(server.data_dir.path()).arg("--database-url").arg(&server.database_url);
    command
}

#[tokio::test]
async fn the_publish_command_writes_an_event_the_running_worker_delivers() {
    let receiver = Receiver::start().await;
    let server = server_for(&receiver, |_| {}).await;
    let owner = server.client("client-a", "user-a");
    create(&owner, &receiver.url("/cli"), vec![Event::FacilityUserConnectionRejected], &["cli-secret"]).await;
    let data = r#"{"facilityId":"NUR-9","userId":"user-a"}"#;
    let args = ["publish", "--type", "facility.user-connection.rejected", "--user", "user-a", "--data", data];

    // Into the same database, from another process; the server's worker finds it on its next poll.
    let output = cli(&server).args(args).args(["--id", "evt-cli-1"]).output().await.unwrap();
    assert!(output.status.success(), "publish failed: {}", String::from_utf8_lossy(&output.stderr));
    let printed: Value = serde_json::from_slice(&output.stdout).expect("publish prints JSON");
    assert_eq!(
        printed,
        json!({"id": "evt-cli-1", "eventType": "facility.user-connection.rejected", "deliveries": 1, "duplicate": false})
    );
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    assert_eq!(event_id(&got[0]), "evt-cli-1");
    assert_eq!(
        got[0].body_text(),
        format!(r#"{{"data":{data},"eventType":"facility.user-connection.rejected"}}"#)
    );
    assert_signed_by(&got[0], "cli-secret");

    // Idempotent there too.
    let output = cli(&server).args(args).args(["--id", "evt-cli-1"]).output().await.unwrap();
    assert!(output.status.success());
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((printed["deliveries"].clone(), printed["duplicate"].clone()), (json!(1), json!(true)));

    // The same payload rules as the API.
    let output = cli(&server)
        .args(["publish", "--type", "facility.user-connection.rejected", "--user", "user-a", "--data", "{}"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("data.facilityId must be a string"), "{stderr}");

    let token = server.token("client-a", "user-a");
    let entries = wait_for_log(&server, &token, "", WAIT, |e| e.iter().all(succeeded)).await;
    assert_eq!(entries.len(), 1);
    tokio::time::sleep(ms(600)).await;
    assert_eq!(receiver.requests().len(), 1, "delivered once");
}

/// A server binary (`--allow-target 127.0.0.0/8`, trusting `receiver`) in `dir` with `env`
/// set: the environment of a process of its own, not this test binary's, shared by every test.
async fn server_process(
    dir: &std::path::Path,
    receiver: &Receiver,
    allow: &str,
    env: &[(&str, &str)],
) -> ServerProcess {
    // This test's own clients (reqwest) need it, whatever ran before in this binary.
    webhooks_e2e::install_crypto_provider();
    let mut command = server_command(BIN, dir);
    command.args(["--allow-target", allow]).arg("--extra-ca-file").arg(receiver.write_ca_file(dir));
    for name in [
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    ServerProcess::spawn(command, &dir.join("server.log")).await
}

/// `HTTPS_PROXY` / `ALL_PROXY` in the server's environment are ignored: a proxy would resolve
/// the receiver's name itself, out of the SSRF guard's sight. The proxy here is a listener
/// that must see no connection; the delivery goes straight to the receiver.
#[tokio::test]
async fn deliveries_never_go_through_a_proxy_from_the_environment() {
    let receiver = Receiver::start().await;
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the proxy");
    let proxy_url = format!("http://{}", proxy.local_addr().expect("proxy address"));
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let proxy_task = tokio::spawn(async move {
        // Accepts and drops: a request sent through it fails.
        while let Ok((_socket, _)) = proxy.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let dir = tempfile::tempdir().expect("a temporary dir");
    let env: Vec<(&str, &str)> = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .map(|name| (name, proxy_url.as_str()))
        .to_vec();
    let server = server_process(dir.path(), &receiver, "127.0.0.0/8", &env).await;
    let token = cli_token(BIN, dir.path(), "client-a", "user-a", &[]).await;
    let owner = webhooks_client::with_token(&server.base_url, &token).expect("a client");
    create(&owner, &receiver.url("/direct"), vec![Event::All], &["direct-secret"]).await;
    let publisher_token = cli_token(BIN, dir.path(), "publisher", "event-source", &[PUBLISH_SCOPE]).await;
    let publisher = webhooks_client::with_token(&server.base_url, &publisher_token).expect("a client");
    let published =
        publish(&publisher, Type::FacilityCreationAccepted, "user-a", json!({"facilityId": "F"}), None).await;

    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1, "delivered directly; the server's log:\n{}", server.log_text());
    assert_eq!(event_id(&got[0]), published.id);
    assert_signed_by(&got[0], "direct-secret");
    assert_eq!(connections.load(Ordering::SeqCst), 0, "the proxy saw a connection");
    proxy_task.abort();
}

/// The owner's log says only that the destination is not allowed; the server's own log names
/// the refused address, for its operators.
#[tokio::test]
async fn refusals_name_the_address_in_the_server_log_only() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("a temporary dir");
    // 127.0.0.2 is loopback, outside the one address allowed.
    let server = server_process(dir.path(), &receiver, "127.0.0.1/32", &[]).await;
    let token = cli_token(BIN, dir.path(), "client-a", "user-a", &[]).await;
    let owner = webhooks_client::with_token(&server.base_url, &token).expect("a client");
    let url = format!("https://127.0.0.2:{}/refused", receiver.addr().port());
    create(&owner, &url, vec![Event::All], &[]).await;
    let publisher_token = cli_token(BIN, dir.path(), "publisher", "event-source", &[PUBLISH_SCOPE]).await;
    let publisher = webhooks_client::with_token(&server.base_url, &publisher_token).expect("a client");
    publish(&publisher, Type::FacilityCreationAccepted, "user-a", json!({"facilityId": "F"}), None).await;

    let deadline = Instant::now() + WAIT;
    let entry = loop {
        let (status, body) = get_logs_at(&server.base_url, &token).await;
        assert_eq!(status, 200, "{body}");
        if let Some(entry) = body["data"].as_array().and_then(|e| e.first()).filter(|e| attempted(e)) {
            break entry.clone();
        }
        assert!(Instant::now() < deadline, "no attempt logged: {body}");
        tokio::time::sleep(ms(50)).await;
    };
    assert_eq!(entry["responseBody"], REFUSED, "{entry:#}");
    let log = server.log_text();
    assert!(log.contains("127.0.0.2 is not a public address"), "the server's log:\n{log}");
    assert!(receiver.requests().is_empty());
}

/// `GET` of the log from a server at `base_url`: (status, JSON body).
async fn get_logs_at(base_url: &str, token: &str) -> (u16, Value) {
    let response = webhooks_e2e::raw_http_client()
        .get(format!("{base_url}{LOGS}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET the log");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}
