//! A `201` is on disk: `kill -9` right after the last one loses nothing — user webhooks,
//! facility webhooks, and the access set they depend on. Runs the real binary (built from
//! `server/src/main.rs` as `webhooks-server-under-test`) as a subprocess.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use serde_json::Value;
use webhooks_client::types::{
    CreateUserWebhookRequest, CreateWebhookRequest, FacilityWebhookEvent as ShiftEvent,
    UserWebhookEvent as Event,
};
use webhooks_e2e::process::{cli_token, server_command, ServerProcess};
use webhooks_e2e::raw_http_client;

use crate::facility::FACILITIES_SCOPE;

const BIN: &str = env!("CARGO_BIN_EXE_webhooks-server-under-test");
const WEBHOOKS: usize = 20;
/// What the user is granted before any facility webhook is created.
const GRANTED: [&str; 3] = ["NUR-1", "NUR-2", "NUR-3"];
/// One facility webhook after every `FACILITY_EVERY`th user webhook: the last one is the last
/// `201` before the kill.
const FACILITY_EVERY: usize = 4;

/// The caller's webhooks by id.
async fn list(client: &webhooks_client::Client) -> BTreeMap<String, Value> {
    let listed = client.list_user_webhooks().await.expect("listing");
    assert_eq!(listed.status(), 200);
    listed.into_inner().data.into_iter().map(|w| (w.id.clone(), serde_json::to_value(w).unwrap())).collect()
}

/// The caller's facility webhooks by id.
async fn list_facility(client: &webhooks_client::Client) -> BTreeMap<String, Value> {
    let listed = client.list_facility_webhooks().await.expect("listing facility webhooks");
    assert_eq!(listed.status(), 200);
    listed.into_inner().data.into_iter().map(|w| (w.id.clone(), serde_json::to_value(w).unwrap())).collect()
}

/// The `k`th facility webhook: explicit lists (one with a repeat, which is dropped), and one
/// that names none and so follows every facility the user can access.
fn facility_request(k: usize) -> CreateWebhookRequest {
    let (events, facilities): (Vec<ShiftEvent>, Option<&[&str]>) = match k % 5 {
        0 => (vec![ShiftEvent::ShiftCreated], Some(&["NUR-1"])),
        1 => (vec![ShiftEvent::ShiftCancelled, ShiftEvent::ShiftCreated], Some(&["NUR-2", "NUR-3"])),
        2 => (vec![ShiftEvent::All], None),
        3 => (vec![ShiftEvent::ShiftScheduled], Some(&["NUR-3", "NUR-1", "NUR-3"])),
        _ => (vec![ShiftEvent::ShiftReportAccepted, ShiftEvent::All], Some(&["NUR-2"])),
    };
    CreateWebhookRequest {
        url: format!("https://facility-hook-{k}.example.com/path"),
        events,
        facilities: facilities.map(|f| f.iter().map(|s| s.to_string()).collect()),
        // As for user webhooks: given and generated secrets must both survive.
        secrets: k.is_multiple_of(2).then(|| vec![format!("given-facility-secret-{k}").parse().unwrap()]),
    }
}

/// Each facility webhook's `facilities`, by url.
fn facilities_by_url(webhooks: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    webhooks.values().map(|w| (w["url"].as_str().unwrap().to_owned(), w["facilities"].clone())).collect()
}

/// What [`facility_request`]'s webhooks list once created with [`GRANTED`] access.
fn expected_facilities() -> BTreeMap<String, Value> {
    (0..WEBHOOKS / FACILITY_EVERY)
        .map(|k| {
            let listed = match k % 5 {
                0 => serde_json::json!(["NUR-1"]),
                1 => serde_json::json!(["NUR-2", "NUR-3"]),
                2 => serde_json::json!(GRANTED),
                3 => serde_json::json!(["NUR-3", "NUR-1"]),
                _ => serde_json::json!(["NUR-2"]),
            };
            (facility_request(k).url, listed)
        })
        .collect()
}

#[tokio::test]
async fn kill_9_right_after_201_loses_nothing() {
    webhooks_e2e::install_crypto_provider();
    let data_dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let dir = data_dir.path();
    let start = |log: &str| {
        let log = logs.path().join(log);
        async move { ServerProcess::spawn(server_command(BIN, dir), &log).await }
    };
    let mut first = start("first.log").await;
    let token = cli_token(BIN, dir, "crash-client", "crash-user", &[]).await;
    let client = webhooks_client::with_token(&first.base_url, &token).unwrap();

    // Access first: a facility webhook may only name facilities its user can access.
    let admin = cli_token(BIN, dir, "crash-admin", "ops", &[FACILITIES_SCOPE]).await;
    let granted = raw_http_client()
        .put(format!("{}/api/v2/internal/users/crash-user/facilities", first.base_url))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "facilities": GRANTED }))
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), 200);
    let granted: Value = granted.json().await.unwrap();
    assert_eq!(granted["data"]["facilities"], serde_json::json!(GRANTED), "{granted}");

    let mut created = BTreeMap::new();
    let mut created_facility = BTreeMap::new();
    for i in 0..WEBHOOKS {
        // Half with given secrets, half with generated ones: both must survive.
        let secrets = (i % 2 == 0).then(|| vec![format!("given-secret-{i}").parse().unwrap()]);
        let request = CreateUserWebhookRequest {
            url: format!("https://hook-{i}.example.com/path"),
            events: vec![Event::FacilityCreationAccepted, Event::All],
            secrets,
        };
        let response = client.create_user_webhook(&request).await.unwrap();
        assert_eq!(response.status(), 201);
        let w = response.into_inner().data;
        created.insert(w.id.clone(), serde_json::to_value(w).unwrap());
        if i % FACILITY_EVERY == FACILITY_EVERY - 1 {
            let response =
                client.create_facility_webhook(&facility_request(i / FACILITY_EVERY)).await.unwrap();
            assert_eq!(response.status(), 201);
            let w = response.into_inner().data;
            created_facility.insert(w.id.clone(), serde_json::to_value(w).unwrap());
        }
    }
    assert_eq!(
        facilities_by_url(&created_facility),
        expected_facilities(),
        "explicit lists as given (repeats dropped); the one following all lists the grant"
    );

    // SIGKILL immediately after the last 201: no graceful shutdown, no pool close.
    let status = first.kill_9().await;
    assert_eq!(status.signal(), Some(9), "the server died of SIGKILL ({status})");

    let second = start("second.log").await;
    // The same data dir keeps the signing key: the old token is still accepted.
    let client = webhooks_client::with_token(&second.base_url, &token).unwrap();
    let listed = list(&client).await;
    assert_eq!(listed.len(), WEBHOOKS);
    assert_eq!(listed, created, "ids, urls, events and secrets all survived");
    // Facility webhooks too, each with its facilities: the explicit lists as stored, and the
    // one that follows all listing the access set, which therefore survived as well.
    let listed_facility = list_facility(&client).await;
    assert_eq!(listed_facility.len(), WEBHOOKS / FACILITY_EVERY);
    assert_eq!(listed_facility, created_facility, "facility webhooks survived, facilities and all");
    assert_eq!(
        facilities_by_url(&listed_facility),
        expected_facilities(),
        "the access set survived: the webhook following all still lists every granted facility"
    );
}

/// The SQLite backend is served by one process (its list cache relies on seeing every write):
/// a second `serve` on the same database refuses to start and says why; once the first is gone
/// (even by SIGKILL), a new one starts.
#[tokio::test]
async fn a_second_server_on_one_sqlite_database_refuses_to_start() {
    let data_dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut first =
        ServerProcess::spawn(server_command(BIN, data_dir.path()), &logs.path().join("first.log")).await;
    // Bounded: a second server that did start would never exit on its own.
    let second =
        server_command(BIN, data_dir.path()).args(["--bind", "127.0.0.1:0"]).kill_on_drop(true).output();
    let second = tokio::time::timeout(Duration::from_secs(60), second)
        .await
        .expect("a second server on the same database kept running")
        .expect("running a second server");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second server started: {stderr}");
    assert!(
        stderr.contains("another webhooks-server is serving the SQLite database"),
        "the refusal says why: {stderr}"
    );
    first.kill_9().await;
    let third =
        ServerProcess::spawn(server_command(BIN, data_dir.path()), &logs.path().join("third.log")).await;
    assert!(third.base_url.starts_with("http://127.0.0.1:"));
}
