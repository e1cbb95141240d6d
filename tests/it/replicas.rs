//! Several replicas on one PostgreSQL database (needs `WEBHOOKS_TEST_DATABASE_URL`; skipped with
//! a printed reason without it). Two processes of the real binary share a fresh database and the
//! same `--jwt-secret` and `--secrets-key`; 1,000 events are published alternately to both, and
//! an in-test HTTPS receiver checks that each arrives, signed, and how many arrive twice. A third
//! of them are shift events for a facility webhook (its facility granted through one replica, the
//! webhook created through the other), the rest user events for a user webhook; the log names
//! each event's facility.
//!
//! - Without a kill: every event arrives exactly once (0 duplicates: `SKIP LOCKED` claims keep
//!   the two workers apart) and the log reads the same through either replica.
//! - With one replica killed (SIGKILL) midway: every event still arrives at least once (the
//!   survivor retakes the dead one's claims when their lease ends); duplicates are counted and
//!   printed (a delivery the dead replica sent but had not recorded is sent again).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use webhooks_client::signature::{verify, EVENT_ID_HEADER};
use webhooks_e2e::process::{server_command, ServerProcess};
use webhooks_e2e::receiver::{Receiver, Recorded};
use webhooks_e2e::{install_crypto_provider, raw_http_client, TestDatabase, FACILITY_USER, PUBLISH_SCOPE};
use webhooks_server::auth::{AuthOptions, Authenticator};

use crate::facility::FACILITIES_SCOPE;

const BIN: &str = env!("CARGO_BIN_EXE_webhooks-server-under-test");
const EVENTS: usize = 1000;
/// Publications in flight at once.
const PUBLISHERS: usize = 16;
const JWT_SECRET: &str = "replicas-test-hs256-secret-of-some-length";
/// 32 bytes, base64.
const SECRETS_KEY: &str = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=";
const WEBHOOK_SECRET: &str = "replicas-webhook-secret";
const CLIENT: &str = "replicas-client";
const USER: &str = "replicas-user";
const LEASE: Duration = Duration::from_secs(3);
/// The facility the owner is granted and its facility webhook names.
const SHIFT_FACILITY: &str = "NUR-SHIFTS";
/// Where each kind of webhook receives.
const USER_PATH: &str = "/hook";
const FACILITY_PATH: &str = "/facility";

/// The two tests take turns: four replicas at once on two cores would test the machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One replica: the real binary as a subprocess.
struct Replica {
    name: &'static str,
    process: ServerProcess,
}

impl std::ops::Deref for Replica {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.process
    }
}

/// What every replica shares: the database, the keys, the receiver's CA.
struct Cluster {
    database_url: String,
    dir: tempfile::TempDir,
    ca_file: PathBuf,
}

impl Cluster {
    /// Starts a replica on port 0 (a restarted one appends to its predecessor's log).
    async fn start(&self, name: &'static str) -> Replica {
        let data_dir = self.dir.path().join(name);
        std::fs::create_dir_all(&data_dir).unwrap();
        let mut command = server_command(BIN, &data_dir);
        command
            .args(["--database-url", &self.database_url])
            .args(["--jwt-secret", JWT_SECRET, "--secrets-key", SECRETS_KEY])
            .arg("--extra-ca-file")
            .arg(&self.ca_file)
            .args(["--allow-target", "127.0.0.0/8"])
            .args(["--delivery-lease", "3s", "--delivery-timeout", "2s", "--retry-schedule", "200ms,400ms"])
            .env("RUST_LOG", "warn");
        let process = ServerProcess::spawn(command, &self.dir.path().join(format!("{name}.log"))).await;
        Replica { name, process }
    }
}

/// Tokens the replicas accept (they share the HS256 secret): the webhooks' owner, a publisher,
/// and an administrator who keeps users' facilities.
fn tokens() -> (String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let options = AuthOptions { jwt_secret: Some(JWT_SECRET.into()), ..AuthOptions::in_dir(dir.path()) };
    let auth = Authenticator::new(&options).unwrap();
    let hour = Duration::from_secs(3600);
    let owner = auth.mint(CLIENT, USER, FACILITY_USER, &[], hour).unwrap();
    let publisher =
        auth.mint("publisher", "event-source", FACILITY_USER, &[PUBLISH_SCOPE.into()], hour).unwrap();
    let admin =
        auth.mint("facilities-admin", "ops", FACILITY_USER, &[FACILITIES_SCOPE.into()], hour).unwrap();
    (owner, publisher, admin)
}

fn event_id(i: usize) -> String {
    format!("replica-event-{i:04}")
}

/// Every third event is a shift event; since the replicas alternate by parity, they too go to
/// both replicas in turn.
fn is_shift(i: usize) -> bool {
    i % 3 == 2
}

/// The facility event `i` names: its own for a user event, the shared one for a shift event.
fn facility_of(i: usize) -> String {
    if is_shift(i) {
        SHIFT_FACILITY.to_owned()
    } else {
        format!("NUR-{i}")
    }
}

/// Event `i`'s type and the delivery body its webhook receives (the published `data` as is).
fn delivered(i: usize) -> (&'static str, Value) {
    // Shift types by pairs of shift events, so that each replica publishes both.
    let event_type = match (is_shift(i), (i / 6) % 2) {
        (false, _) => "facility.creation.accepted",
        (true, 0) => "shift.created",
        (true, _) => "shift.cancelled",
    };
    let data = if is_shift(i) {
        json!({"facilityId": SHIFT_FACILITY, "shiftId": format!("S-{i}")})
    } else {
        json!({"facilityId": facility_of(i)})
    };
    (event_type, json!({"data": data, "eventType": event_type}))
}

/// Where event `i` must arrive.
fn path_of(i: usize) -> &'static str {
    if is_shift(i) {
        FACILITY_PATH
    } else {
        USER_PATH
    }
}

/// Publishes event `i` to `first`, or to `second` when `first` does not answer 202 (a load
/// balancer routing around a dead replica; the same id keeps it one event).
async fn publish(http: reqwest::Client, token: String, i: usize, first: String, second: String) -> String {
    let (event_type, delivery) = delivered(i);
    let mut body = json!({"id": event_id(i), "eventType": event_type, "data": delivery["data"]});
    // A shift event goes by its facility alone (`userId` is optional for it and unused).
    if !is_shift(i) {
        body["userId"] = json!(USER);
    }
    let mut problems = Vec::new();
    for base_url in [&first, &second, &first, &second] {
        let sent = http
            .post(format!("{base_url}/api/v2/internal/events"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status() == 202 => {
                let answer: Value = response.json().await.unwrap();
                assert_eq!(answer["data"]["id"], event_id(i));
                assert_eq!(answer["data"]["deliveries"], 1, "event {i}: {answer}");
                return base_url.clone();
            }
            Ok(response) => problems.push(format!("{base_url}: {}", response.status())),
            Err(e) => problems.push(format!("{base_url}: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("event {i} was not accepted: {problems:?}")
}

/// Every log entry of the owner through `base_url`, oldest first (pages of 100).
async fn log(http: &reqwest::Client, token: &str, base_url: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    loop {
        let response = http
            .get(format!("{base_url}/api/v2/public/webhooks/logs"))
            .query(&[("limit", "100"), ("offset", &entries.len().to_string()), ("sortDirection", "ASC")])
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        let page = page["data"].as_array().unwrap().clone();
        let done = page.len() < 100;
        entries.extend(page);
        if done {
            return entries;
        }
    }
}

/// Arrivals by event id; checks each one's signature and body on the way.
fn arrivals(requests: &[Recorded]) -> BTreeMap<String, usize> {
    let mut by_event = BTreeMap::new();
    for r in requests {
        verify(&r.headers, &r.body, &[WEBHOOK_SECRET], Duration::from_secs(300))
            .unwrap_or_else(|e| panic!("a delivery's signature does not verify: {e}"));
        let id = r.header(EVENT_ID_HEADER).expect("event id header").to_owned();
        let i: usize =
            id.strip_prefix("replica-event-").and_then(|n| n.parse().ok()).expect("a published id");
        assert_eq!(r.path, path_of(i), "event {i} reached the wrong webhook");
        assert_eq!(r.body_json(), delivered(i).1);
        *by_event.entry(id).or_insert(0) += 1;
    }
    by_event
}

async fn run(test: &str, kill_midway: bool) {
    let Some(database) = TestDatabase::from_env(test).await else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    install_crypto_provider();
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = receiver.write_ca_file(dir.path());
    let cluster = Cluster { database_url: database.url.clone(), dir, ca_file };
    // Both at once on the empty database: migrations must serialize.
    let (a, mut b) = tokio::join!(cluster.start("replica-a"), cluster.start("replica-b"));
    let (owner, publisher, admin) = tokens();
    let http = raw_http_client();

    let created = http
        .post(format!("{}/api/v2/public/webhooks/user", a.base_url))
        .bearer_auth(&owner)
        .json(&json!({"url": receiver.url(USER_PATH), "events": ["all"], "secrets": [WEBHOOK_SECRET]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // The other replica sees it at once: one database.
    let listed: Value = http
        .get(format!("{}/api/v2/public/webhooks/user", b.base_url))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
    // And it is in PostgreSQL (not in some SQLite file a binary without PostgreSQL would make).
    let db = sqlx::PgPool::connect(&database.url).await.unwrap();
    let count = |sql: &'static str| {
        let db = db.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&db).await.unwrap() }
    };
    assert_eq!(count("SELECT COUNT(*) FROM webhooks").await, 1, "the replicas do not use the database");

    // The facility webhook: access granted through b, the webhook created through a (which
    // must see the grant to accept the name), listed through b.
    let granted = http
        .put(format!("{}/api/v2/internal/users/{USER}/facilities", b.base_url))
        .bearer_auth(&admin)
        .json(&json!({"facilities": [SHIFT_FACILITY]}))
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), 200);
    let created = http
        .post(format!("{}/api/v2/public/webhooks/facility", a.base_url))
        .bearer_auth(&owner)
        .json(&json!({
            "url": receiver.url(FACILITY_PATH),
            "events": ["shift.created", "shift.cancelled"],
            "facilities": [SHIFT_FACILITY],
            "secrets": [WEBHOOK_SECRET],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap_or_default());
    let listed: Value = http
        .get(format!("{}/api/v2/public/webhooks/facility", b.base_url))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"][0]["facilities"], json!([SHIFT_FACILITY]), "{listed}");
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
    let facility_webhook = listed["data"][0]["id"].clone();

    let started = Instant::now();
    let limit = Arc::new(Semaphore::new(PUBLISHERS));
    let mut publications = JoinSet::new();
    let mut killed_at = None;
    for i in 0..EVENTS {
        if kill_midway && i == EVENTS / 2 {
            // SIGKILL while it is publishing and delivering: no shutdown, claims left behind.
            let status = b.process.kill_9().await;
            assert_eq!(status.signal(), Some(9), "{} died of SIGKILL ({status})", b.name);
            killed_at = Some(Instant::now());
            eprintln!("killed {} after {} publications were started", b.name, i);
        }
        let permit = limit.clone().acquire_owned().await.unwrap();
        let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let task =
            publish(http.clone(), publisher.clone(), i, first.base_url.clone(), second.base_url.clone());
        publications.spawn(async move {
            let accepted_by = task.await;
            drop(permit);
            accepted_by
        });
    }
    let mut accepted_by: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(done) = publications.join_next().await {
        *accepted_by.entry(done.expect("a publication panicked")).or_default() += 1;
    }
    eprintln!("published {EVENTS} events in {:?}; accepted by {accepted_by:?}", started.elapsed());
    assert_eq!(accepted_by.values().sum::<usize>(), EVENTS);

    // Every event arrives at least once (after the lease, for the dead replica's claims).
    let deadline = Instant::now() + Duration::from_secs(120);
    let by_event = loop {
        let by_event = arrivals(&receiver.requests());
        if by_event.len() == EVENTS || Instant::now() > deadline {
            break by_event;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let expected: BTreeSet<String> = (0..EVENTS).map(event_id).collect();
    let missing: Vec<&String> = expected.iter().filter(|id| !by_event.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {EVENTS} events never arrived, e.g. {:?}\nreplica a log:\n{}\nreplica b log:\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        a.log_text(),
        b.log_text()
    );
    // Late duplicates (a retaken claim the dead replica had sent) arrive within a lease or so.
    tokio::time::sleep(LEASE + Duration::from_secs(1)).await;
    let requests = receiver.requests();
    let by_event = arrivals(&requests);
    let duplicates: usize = by_event.values().map(|n| n - 1).sum();
    let late = killed_at.map(|at| requests.iter().filter(|r| r.received_at >= at + LEASE).count());
    eprintln!(
        "{test}: {} deliveries of {EVENTS} events, all signed; duplicates: {duplicates}{}",
        requests.len(),
        late.map(|n| format!(
            "; {n} arrived a lease or more after the kill (retaken claims or published after it)"
        ))
        .unwrap_or_default()
    );
    assert_eq!(by_event.len(), EVENTS);
    // The shift events among them (each checked above to have reached the facility webhook).
    let shifts = (0..EVENTS).filter(|i| is_shift(*i)).count();
    let shift_arrivals = requests.iter().filter(|r| r.path == FACILITY_PATH).count();
    eprintln!("{test}: {shift_arrivals} deliveries of {shifts} shift events");
    assert!(shift_arrivals >= shifts);
    if !kill_midway {
        assert_eq!(duplicates, 0, "two replicas sent one delivery twice");
        assert_eq!(shift_arrivals, shifts, "a shift event arrived twice");
    }

    // The log: one entry per event, its first attempt a 200, the same through either replica
    // (a restarted one after a kill).
    if kill_midway {
        b = cluster.start("replica-b").await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let through_a = loop {
        let entries = log(&http, &owner, &a.base_url).await;
        let settled = entries.len() == EVENTS && entries.iter().all(|e| e["responseStatus"] == 200);
        if settled || Instant::now() > deadline {
            break entries;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(through_a.len(), EVENTS);
    let logged: BTreeSet<String> =
        through_a.iter().map(|e| e["eventId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(logged, expected);
    for entry in &through_a {
        assert_eq!((&entry["status"], &entry["responseStatus"]), (&json!("success"), &json!(200)), "{entry}");
        // Each entry names its event's facility, and a shift event's is the facility webhook's.
        let i: usize = entry["eventId"]
            .as_str()
            .and_then(|id| id.strip_prefix("replica-event-"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(entry["facilityId"], json!(facility_of(i)), "{entry}");
        assert_eq!(entry["eventType"], json!(delivered(i).0), "{entry}");
        if is_shift(i) {
            assert_eq!(entry["webhookId"], facility_webhook, "{entry}");
        }
        if !kill_midway {
            assert_eq!(entry["retries"], json!([]), "{entry}");
        }
    }
    let through_b = log(&http, &owner, &b.base_url).await;
    assert!(through_a == through_b, "the replicas show different logs");
    assert_eq!(count("SELECT COUNT(*) FROM webhooks").await, 2, "one webhook of each kind");
    assert_eq!(count("SELECT COUNT(*) FROM events").await, EVENTS as i64);
    assert_eq!(count("SELECT COUNT(*) FROM deliveries WHERE status = 'success'").await, EVENTS as i64);
    assert_eq!(count("SELECT COUNT(*) FROM attempts").await, EVENTS as i64, "one recorded attempt each");
    db.close().await;
    drop(a);
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_every_event_once() {
    run("replicas::two_replicas_deliver_every_event_once", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_midway_loses_no_event() {
    run("replicas::a_replica_killed_midway_loses_no_event", true).await;
}
