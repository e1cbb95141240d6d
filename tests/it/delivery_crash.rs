//! At-least-once delivery across `kill -9` (docs/ARCHITECTURE.md §3 "Delivery"): the real binary (built
//! from `server/src/main.rs` as `webhooks-server-under-test`) delivers a stream of published
//! events to the in-test HTTPS receiver, is killed with SIGKILL in the middle of it, and is
//! restarted on the same data directory. Every event must arrive (duplicates are allowed:
//! an attempt sent but not yet recorded is sent again once its claim expires); none may be lost.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::task::JoinSet;
use webhooks_client::signature::{verify, DEFAULT_TOLERANCE, EVENT_ID_HEADER};
use webhooks_client::types::{
    CreateUserWebhookRequest, EventType as Type, PublishEventRequest, UserWebhookEvent as Event,
};
use webhooks_e2e::process::{cli_token, server_command, ServerProcess};
use webhooks_e2e::receiver::{Mode, Receiver, Recorded};
use webhooks_e2e::{raw_http_client, PUBLISH_SCOPE};

const BIN: &str = env!("CARGO_BIN_EXE_webhooks-server-under-test");
const EVENTS: usize = 500;
/// Events published (and acknowledged) before any worker runs: the backlog the kill interrupts.
const BACKLOG: usize = 400;
/// Publishes in flight at once.
const PUBLISHERS: usize = 16;
/// The server is killed once the receiver has seen this many deliveries.
const KILL_AFTER: usize = 50;
/// Deliveries the receiver holds without answering until the kill.
const HELD: usize = 5;
const SECRET: &str = "crash-delivery-secret";
const USER: &str = "crash-user";
/// Bound of the wait for every event after the restart.
const RECOVERY: Duration = Duration::from_secs(60);

/// The binary with the delivery settings of this test (and `extra` flags), trusting `ca_file`
/// and allowed to reach loopback.
async fn start(data_dir: &Path, ca_file: &Path, log: &Path, extra: &[&str]) -> ServerProcess {
    let mut command = server_command(BIN, data_dir);
    command.args(["--allow-target", "127.0.0.0/8"]).args(extra).arg("--extra-ca-file").arg(ca_file).args([
        "--delivery-lease",
        "3s",
        "--delivery-timeout",
        "2s",
        "--retry-schedule",
        "200ms,400ms",
    ]);
    ServerProcess::spawn(command, log).await
}

fn event_id(i: usize) -> String {
    format!("crash-evt-{i:03}")
}

fn publish_request(i: usize) -> PublishEventRequest {
    let Value::Object(data) = json!({"facilityId": event_id(i), "seq": i}) else { unreachable!() };
    PublishEventRequest {
        data,
        event_type: Type::FacilityCreationAccepted,
        id: Some(event_id(i).parse().expect("event id")),
        user_id: Some(USER.parse().expect("user id")),
    }
}

/// Publishes the events `indices`, `PUBLISHERS` at a time; returns the indices that got no
/// answer (the server died under them).
async fn publish_all(client: webhooks_client::Client, indices: Vec<usize>) -> Vec<usize> {
    let indices = Arc::new(indices);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..PUBLISHERS {
        let (client, indices, next) = (client.clone(), indices.clone(), next.clone());
        tasks.spawn(async move {
            let mut unacknowledged = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = indices.get(k) else { return unacknowledged };
                match client.publish_event(&publish_request(i)).await {
                    Ok(response) if response.status() == 202 => {
                        assert_eq!(response.into_inner().data.deliveries, 1, "event {i}");
                    }
                    Ok(response) => panic!("event {i}: unexpected status {}", response.status()),
                    Err(_) => unacknowledged.push(i),
                }
            }
        });
    }
    let mut unacknowledged = Vec::new();
    while let Some(done) = tasks.join_next().await {
        unacknowledged.extend(done.expect("a publisher task"));
    }
    unacknowledged.sort_unstable();
    unacknowledged
}

/// Event id → how many times it was accepted (answered 2xx) by the receiver.
fn delivered(requests: &[Recorded]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in requests.iter().filter(|r| r.answer == Mode::Ok) {
        let id = r.header(EVENT_ID_HEADER).expect("an event id header");
        *counts.entry(id.to_owned()).or_default() += 1;
    }
    counts
}

/// The owner's whole delivery log, page by page (100 is the largest page).
async fn whole_log(base_url: &str, token: &str) -> Vec<Value> {
    let http = raw_http_client();
    let mut entries = Vec::new();
    loop {
        let url = format!("{base_url}/api/v2/public/webhooks/logs?limit=100&offset={}", entries.len());
        let response = http.get(url).bearer_auth(token).send().await.expect("reading the log");
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.expect("JSON");
        let page = page["data"].as_array().expect("data").clone();
        if page.is_empty() {
            return entries;
        }
        entries.extend(page);
    }
}

/// SIGKILL, and check it was that.
async fn kill_9(server: &mut ServerProcess) {
    let status = server.kill_9().await;
    assert_eq!(status.signal(), Some(9), "the server died of SIGKILL ({status})");
}

#[tokio::test]
async fn kill_9_mid_delivery_loses_no_event() {
    webhooks_e2e::install_crypto_provider();
    let receiver = Receiver::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let ca_file = receiver.write_ca_file(scratch.path());
    let log = |name: &str| scratch.path().join(name);
    let owner_token = cli_token(BIN, data_dir.path(), "crash-client", USER, &[]).await;
    let publisher_token =
        cli_token(BIN, data_dir.path(), "crash-publisher", "event-source", &[PUBLISH_SCOPE]).await;

    // 1. No worker yet: the webhook and a backlog of BACKLOG events, all acknowledged (202).
    let mut first = start(data_dir.path(), &ca_file, &log("first.log"), &["--no-worker"]).await;
    let owner = webhooks_client::with_token(&first.base_url, &owner_token).unwrap();
    let created = owner
        .create_user_webhook(&CreateUserWebhookRequest {
            url: receiver.url("/crash"),
            events: vec![Event::All],
            secrets: Some(vec![SECRET.parse().unwrap()]),
        })
        .await
        .expect("creating the webhook");
    assert_eq!(created.status(), 201);
    let publisher = webhooks_client::with_token(&first.base_url, &publisher_token).unwrap();
    let unanswered = publish_all(publisher, (0..BACKLOG).collect()).await;
    assert!(unanswered.is_empty(), "publishes failed: {unanswered:?}");
    kill_9(&mut first).await;
    assert!(receiver.requests().is_empty(), "nothing is delivered without a worker");

    // 2. With the worker: the backlog streams out while the rest is published concurrently;
    //    SIGKILL as soon as the receiver has seen KILL_AFTER deliveries. The first HELD
    //    requests never get an answer: those attempts are surely in flight at the kill (the
    //    delivery timeout is 2 s), claimed and unrecorded.
    receiver.script([Mode::Hang; HELD]);
    let mut second = start(data_dir.path(), &ca_file, &log("second.log"), &[]).await;
    let started = Instant::now();
    let publisher = webhooks_client::with_token(&second.base_url, &publisher_token).unwrap();
    let publishing = tokio::spawn(publish_all(publisher, (BACKLOG..EVENTS).collect()));
    let seen = receiver.wait_for(KILL_AFTER, Duration::from_secs(60)).await;
    kill_9(&mut second).await;
    let killed_after = started.elapsed();
    let requests_at_kill = receiver.requests();
    let at_kill = delivered(&requests_at_kill);
    let held: Vec<String> = requests_at_kill
        .iter()
        .filter(|r| r.answer == Mode::Hang)
        .map(|r| r.header(EVENT_ID_HEADER).expect("an event id header").to_owned())
        .collect();
    assert!(
        seen.len() >= KILL_AFTER,
        "only {} deliveries within 60 s: nothing to kill mid-stream",
        seen.len()
    );
    assert_eq!(held.len(), HELD, "the held requests reached the receiver");
    assert!(
        killed_after < Duration::from_secs(2),
        "killed after {killed_after:?}: the held attempts had timed out"
    );
    assert!(
        at_kill.len() < BACKLOG,
        "the whole backlog had arrived before the kill ({} distinct): the kill was not mid-stream",
        at_kill.len()
    );
    let unanswered = publishing.await.expect("the publishers");
    eprintln!(
        "killed {killed_after:?} after the worker started: {} events accepted by the receiver so far, \
         {} of {} concurrent publishes unanswered",
        at_kill.len(),
        unanswered.len(),
        EVENTS - BACKLOG
    );

    // 3. Restart on the same data dir (same database, keys and tokens). Publishes that got no
    //    answer are published again under their id (idempotent: one already recorded is not
    //    doubled; the log check below proves it).
    let third = start(data_dir.path(), &ca_file, &log("third.log"), &[]).await;
    let restarted = Instant::now();
    if !unanswered.is_empty() {
        let publisher = webhooks_client::with_token(&third.base_url, &publisher_token).unwrap();
        let failed = publish_all(publisher, unanswered).await;
        assert!(failed.is_empty(), "publishes failed against the restarted server: {failed:?}");
    }
    let all_ids: BTreeSet<String> = (0..EVENTS).map(event_id).collect();
    let deadline = Instant::now() + RECOVERY;
    let counts = loop {
        let counts = delivered(&receiver.requests());
        if counts.len() == EVENTS {
            break counts;
        }
        if Instant::now() >= deadline {
            let missing: Vec<&String> = all_ids.iter().filter(|id| !counts.contains_key(*id)).collect();
            let text = std::fs::read_to_string(log("third.log")).unwrap_or_default();
            panic!(
                "{} of {EVENTS} events lost {RECOVERY:?} after the restart: {missing:?}\nlog of the restarted server:\n{text}",
                missing.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let recovered_after = restarted.elapsed();
    assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), all_ids, "exactly the published ids arrived");
    for id in &held {
        assert!(
            !at_kill.contains_key(id) && counts.contains_key(id),
            "{id}, in flight at the kill, was retaken"
        );
    }

    // Every arrival (accepted or not) is signed by the webhook's secret, and its body belongs
    // to its event id.
    let requests = receiver.requests();
    for r in &requests {
        verify(&r.headers, &r.body, &[SECRET], DEFAULT_TOLERANCE)
            .unwrap_or_else(|e| panic!("an arrival's signature does not verify: {e}"));
        let body = r.body_json();
        assert_eq!(body["eventType"], "facility.creation.accepted");
        assert_eq!(
            body["data"]["facilityId"].as_str(),
            r.header(EVENT_ID_HEADER),
            "body and id header agree"
        );
    }
    let accepted: usize = counts.values().sum();
    let duplicates = accepted - EVENTS;
    eprintln!(
        "all {EVENTS} events arrived {recovered_after:?} after the restart; {} requests, {accepted} accepted, \
         {duplicates} duplicate deliveries (at least once), max {} per event",
        requests.len(),
        counts.values().max().unwrap()
    );

    // The log agrees: one entry per event (re-publishing doubled nothing), all successful.
    let owner = owner_token.as_str();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let entries = whole_log(&third.base_url, owner).await;
        let ids: BTreeSet<&str> = entries.iter().map(|e| e["eventId"].as_str().unwrap()).collect();
        assert_eq!(entries.len(), EVENTS, "one log entry per event");
        assert_eq!(ids.len(), EVENTS);
        let pending = entries.iter().filter(|e| e["status"] != "success").count();
        if pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{pending} entries still not successful");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
