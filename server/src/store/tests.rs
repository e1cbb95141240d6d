//! The store's test suite, run against both backends: every test below is an `async fn(&Harness)`
//! named in [`both_backends!`], which makes it a test on a fresh SQLite file
//! (`store::tests::sqlite::NAME`) and one on a fresh PostgreSQL database
//! (`store::tests::postgres::NAME`, skipped with a printed reason unless
//! `WEBHOOKS_TEST_DATABASE_URL` is set).

use std::collections::BTreeSet;
use std::time::Duration;

use std::collections::BTreeMap;

use super::testing::TestDatabase;

/// The pool the suite runs with (the server's defaults live in `config.rs`).
const TEST_OPTIONS: StoreOptions =
    StoreOptions { max_connections: 8, statement_timeout: Duration::from_secs(30) };
use super::*;

/// The secrets key of every test store (two stores on one database must read each other's rows).
const KEY: [u8; 32] = [3; 32];

/// A fresh database of one backend and a store on it.
struct Harness {
    store: Store,
    /// Field order matters: the store goes before the database it uses.
    database: Database,
}

enum Database {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

impl Harness {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = Database::Sqlite(dir);
        Self { store: open(&database).await, database }
    }

    async fn postgres(test: &str) -> Option<Self> {
        let database = Database::Postgres(TestDatabase::from_env(&format!("store::tests::{test}")).await?);
        Some(Self { store: open(&database).await, database })
    }

    /// Another store on the same database, with its own pool (and, on SQLite, its own writer):
    /// what a second replica has.
    async fn another(&self) -> Store {
        open(&self.database).await
    }
}

async fn open(database: &Database) -> Store {
    let url = match database {
        Database::Sqlite(dir) => dir.path().join("t.db").display().to_string(),
        Database::Postgres(db) => db.url.clone(),
    };
    Store::connect(&url, SecretBox::new(&KEY).unwrap(), &TEST_OPTIONS).await.unwrap()
}

/// Raw SQL for the tests (no parameters, so the same text runs on both backends).
impl Store {
    async fn exec(&self, sql: &str) {
        match self {
            Store::Sqlite(s) => sqlx::query(sql).execute(s.pool()).await.map(drop),
            Store::Postgres(s) => sqlx::query(sql).execute(s.pool()).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn strings(&self, sql: &str) -> Vec<String> {
        match self {
            Store::Sqlite(s) => sqlx::query_scalar(sql).fetch_all(s.pool()).await,
            Store::Postgres(s) => sqlx::query_scalar(sql).fetch_all(s.pool()).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn count(&self, sql: &str) -> i64 {
        match self {
            Store::Sqlite(s) => sqlx::query_scalar(sql).fetch_one(s.pool()).await,
            Store::Postgres(s) => sqlx::query_scalar(sql).fetch_one(s.pool()).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn blobs(&self, sql: &str) -> Vec<Vec<u8>> {
        match self {
            Store::Sqlite(s) => sqlx::query_scalar(sql).fetch_all(s.pool()).await,
            Store::Postgres(s) => sqlx::query_scalar(sql).fetch_all(s.pool()).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// Each named test body once per backend.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let harness = super::Harness::sqlite().await;
                    super::$name(&harness).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(harness) = super::Harness::postgres(stringify!($name)).await else { return };
                    assert_eq!(harness.store.backend(), "postgres");
                    super::$name(&harness).await;
                }
            )*
        }
    };
}

both_backends!(
    crud_is_scoped_to_the_owner,
    lists_are_in_creation_order,
    lists_follow_every_write_and_match_a_fresh_reader,
    unknown_and_odd_ids_are_not_found,
    secrets_are_sealed_in_the_database,
    fan_out_reaches_matching_webhooks_of_the_user_only_and_ids_are_idempotent,
    event_ids_are_unique_per_publisher,
    concurrent_publications_of_one_id_fan_out_once,
    claims_exclude_each_other_until_the_lease_expires,
    concurrent_claims_from_two_stores_never_take_one_delivery_twice,
    failures_retry_on_schedule_then_give_up_and_success_stops_retries,
    one_batch_records_many_deliveries_and_successive_attempts_of_one,
    the_log_filters_sorts_and_pages,
    purge_drops_finished_entries_older_than_the_cutoff_and_keeps_pending_ones,
    the_webhook_limit_is_per_owner_and_a_refused_create_changes_nothing,
    concurrent_creates_on_two_stores_never_pass_the_limit,
    deferred_deliveries_are_released_unattempted_until_their_time,
    deferring_leaves_settled_and_unknown_deliveries_alone,
    facility_crud_is_scoped_by_kind,
    the_webhook_limit_is_per_owner_and_kind,
    facilities_are_explicit_or_follow_all_and_updates_apply_field_by_field,
    access_is_replaced_in_the_given_order_and_grants_append_once,
    facility_fan_out_follows_access_and_each_webhooks_facilities,
    audiences_do_not_cross_and_subscriptions_filter,
    the_log_shows_facilities_and_both_kinds,
    concurrent_grants_and_replacements_on_two_stores_keep_one_order,
);

fn owner(c: &str, u: &str) -> Owner {
    Owner { client_id: c.into(), user_id: u.into() }
}

async fn webhook(store: &Store, client: &str, user: &str, events: &[&str]) -> String {
    let new = NewWebhook {
        url: format!("https://{client}.example/hook"),
        events: events.iter().map(|e| e.to_string()).collect(),
        secrets: vec!["s".into()],
        kind: WebhookKind::User,
        facilities: None,
    };
    create(store, &owner(client, user), new).await.id
}

/// A limit no test but the limit's own comes near.
const ROOMY: u32 = 1000;

async fn create(store: &Store, owner: &Owner, new: NewWebhook) -> Webhook {
    store.create(owner, new, ROOMY).await.unwrap().expect("below the limit")
}

fn event(id: Option<&str>, event_type: &str, user: &str) -> NewEvent {
    let mut data = serde_json::Map::new();
    data.insert("facilityId".into(), "NUR-1".into());
    NewEvent {
        publisher: "publisher-1".into(),
        id: id.map(str::to_owned),
        event_type: event_type.into(),
        user_id: user.into(),
        facility_id: facility_of(&data),
        data,
        audience: WebhookKind::User,
    }
}

fn outcome(d: &ClaimedDelivery, success: bool, retry_at_ms: Option<i64>) -> AttemptOutcome {
    AttemptOutcome {
        delivery_id: d.id.clone(),
        attempt: d.attempts,
        url: d.fallback_url.clone(),
        status_code: Some(if success { 200 } else { 500 }),
        response_body: String::new(),
        duration_ms: 1,
        at_ms: now_ms(),
        success,
        retry_at_ms,
    }
}

fn log_query(client: &str, user: &str) -> LogQuery {
    LogQuery {
        client_id: client.into(),
        user_id: user.into(),
        event_type: None,
        start_ms: None,
        end_ms: None,
        webhook_id: None,
        facility_ids: Vec::new(),
        limit: 100,
        offset: 0,
        ascending: false,
    }
}

async fn crud_is_scoped_to_the_owner(h: &Harness) {
    let store = &h.store;
    let a = owner("c1", "u1");
    let b = owner("c2", "u1");
    let new = NewWebhook {
        url: "https://a.example/x".into(),
        events: vec!["all".into()],
        secrets: vec!["s1".into(), "s2".into()],
        kind: WebhookKind::User,
        facilities: None,
    };
    let created = create(store, &a, new).await;
    assert_eq!(store.get(&a, WebhookKind::User, &created.id).await.unwrap().as_ref(), Some(&created));
    assert_eq!(store.get(&b, WebhookKind::User, &created.id).await.unwrap(), None);
    assert!(store.list(&b, WebhookKind::User).await.unwrap().is_empty());
    let update = WebhookUpdate {
        url: None,
        events: Some(vec!["facility.creation.accepted".into()]),
        secrets: None,
        facilities: None,
    };
    assert_eq!(store.update(&b, WebhookKind::User, &created.id, update.clone()).await.unwrap(), None);
    let updated = store.update(&a, WebhookKind::User, &created.id, update).await.unwrap().unwrap();
    assert_eq!(updated.url, created.url);
    assert_eq!(updated.secrets, created.secrets);
    assert_eq!(updated.events, ["facility.creation.accepted"]);
    let update = WebhookUpdate {
        url: Some("https://b.example/y".into()),
        events: Some(vec!["all".into()]),
        secrets: Some(vec!["s3".into()]),
        facilities: None,
    };
    let updated = store.update(&a, WebhookKind::User, &created.id, update).await.unwrap().unwrap();
    assert_eq!(
        (updated.url.as_str(), updated.secrets.as_slice()),
        ("https://b.example/y", &["s3".to_owned()][..])
    );
    assert_eq!(store.list(&a, WebhookKind::User).await.unwrap(), [updated]);
    assert!(!store.delete(&b, WebhookKind::User, &created.id).await.unwrap());
    assert!(store.delete(&a, WebhookKind::User, &created.id).await.unwrap());
    assert!(!store.delete(&a, WebhookKind::User, &created.id).await.unwrap());
    assert!(store.list(&a, WebhookKind::User).await.unwrap().is_empty());
}

async fn lists_are_in_creation_order(h: &Harness) {
    let mut ids = Vec::new();
    for i in 0..12 {
        // Interleaved with another owner's webhooks.
        ids.push(webhook(&h.store, "c1", "u1", &["all"]).await);
        if i % 3 == 0 {
            webhook(&h.store, "c1", "u2", &["all"]).await;
        }
    }
    let listed: Vec<String> = h
        .store
        .list(&owner("c1", "u1"), WebhookKind::User)
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(listed, ids);
    assert_eq!(h.store.list(&owner("c1", "u2"), WebhookKind::User).await.unwrap().len(), 4);
}

/// Lists are served from memory between writes on SQLite: after each write, the store's list
/// equals what a second store (its own pool and cache) reads from the database.
async fn lists_follow_every_write_and_match_a_fresh_reader(h: &Harness) {
    let (a, b) = (owner("c1", "u1"), owner("c1", "u2"));
    let a_ref = &a;
    let check = |step: &'static str| async move {
        let a = a_ref;
        let ours = h.store.list(a, WebhookKind::User).await.unwrap();
        // Twice: the second may come from the cache and must be the same.
        assert_eq!(h.store.list(a, WebhookKind::User).await.unwrap(), ours, "{step}: a repeated list");
        assert_eq!(h.another().await.list(a, WebhookKind::User).await.unwrap(), ours, "{step}: the database");
        ours
    };
    assert!(check("empty").await.is_empty());
    let first = webhook(&h.store, "c1", "u1", &["all"]).await;
    let other = webhook(&h.store, "c1", "u2", &["all"]).await;
    assert_eq!(check("after create").await.iter().map(|w| &w.id).collect::<Vec<_>>(), [&first]);
    let second = webhook(&h.store, "c1", "u1", &["all"]).await;
    assert_eq!(check("after a second create").await.len(), 2);
    let update = WebhookUpdate {
        url: None,
        events: Some(vec!["facility.creation.rejected".into()]),
        secrets: None,
        facilities: None,
    };
    h.store.update(&a, WebhookKind::User, &first, update).await.unwrap().unwrap();
    assert_eq!(check("after update").await[0].events, ["facility.creation.rejected"]);
    // Another owner's write leaves this list right; that owner's list sees its own change.
    h.store.list(&b, WebhookKind::User).await.unwrap();
    assert!(h.store.delete(&b, WebhookKind::User, &other).await.unwrap());
    assert!(h.store.list(&b, WebhookKind::User).await.unwrap().is_empty());
    assert_eq!(check("after another owner's delete").await.len(), 2);
    assert!(h.store.delete(&a, WebhookKind::User, &second).await.unwrap());
    assert_eq!(check("after delete").await.iter().map(|w| &w.id).collect::<Vec<_>>(), [&first]);
}

async fn unknown_and_odd_ids_are_not_found(h: &Harness) {
    let a = owner("c1", "u1");
    let id = webhook(&h.store, "c1", "u1", &["all"]).await;
    let update =
        WebhookUpdate { url: None, events: Some(vec!["all".into()]), secrets: None, facilities: None };
    let long = "x".repeat(5000);
    for odd in [
        "",
        "not-a-uuid",
        "00000000-0000-0000-0000-000000000000",
        "a\0b",
        "'; DROP TABLE webhooks; --",
        &long,
    ] {
        assert_eq!(h.store.get(&a, WebhookKind::User, odd).await.unwrap(), None, "{odd:?}");
        assert_eq!(
            h.store.update(&a, WebhookKind::User, odd, update.clone()).await.unwrap(),
            None,
            "{odd:?}"
        );
        assert!(!h.store.delete(&a, WebhookKind::User, odd).await.unwrap(), "{odd:?}");
    }
    // An owner that cannot exist finds nothing either.
    assert!(h.store.list(&owner("c1\0", "u1"), WebhookKind::User).await.unwrap().is_empty());
    assert_eq!(h.store.get(&owner("c1", "u1\0"), WebhookKind::User, &id).await.unwrap(), None);
    let q = LogQuery { webhook_id: Some("w\0".into()), ..log_query("c1", "u1") };
    assert!(h.store.search_logs(&q).await.unwrap().is_empty());
    assert_eq!(h.store.list(&a, WebhookKind::User).await.unwrap().len(), 1);
}

async fn secrets_are_sealed_in_the_database(h: &Harness) {
    let secret = "plain-text-secret-that-must-not-appear";
    let created = create(
        &h.store,
        &owner("c", "u"),
        NewWebhook {
            url: "https://a.example".into(),
            events: vec!["all".into()],
            secrets: vec![secret.into()],
            kind: WebhookKind::User,
            facilities: None,
        },
    )
    .await;
    let sealed = h.store.blobs("SELECT secrets FROM webhooks").await;
    assert_eq!(sealed.len(), 1);
    assert!(
        !sealed[0].windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret is stored in clear"
    );
    // Another store with the same key reads it (a second replica).
    let other = h.another().await;
    assert_eq!(
        other.get(&owner("c", "u"), WebhookKind::User, &created.id).await.unwrap().unwrap().secrets,
        [secret]
    );
}

async fn fan_out_reaches_matching_webhooks_of_the_user_only_and_ids_are_idempotent(h: &Harness) {
    let store = &h.store;
    webhook(store, "c1", "u1", &["all"]).await;
    webhook(store, "c2", "u1", &["facility.creation.accepted"]).await;
    webhook(store, "c1", "u1", &["facility.creation.rejected"]).await;
    webhook(store, "c1", "u2", &["all"]).await;

    let first = store.publish(event(Some("e-1"), "facility.creation.accepted", "u1")).await.unwrap();
    assert_eq!((first.deliveries, first.duplicate), (2, false));
    let again = store.publish(event(Some("e-1"), "facility.creation.accepted", "u1")).await.unwrap();
    assert_eq!((again.id.as_str(), again.deliveries, again.duplicate), ("e-1", 2, true));
    // The stored event answers, whatever the duplicate says.
    let other = store.publish(event(Some("e-1"), "facility.creation.rejected", "u2")).await.unwrap();
    assert_eq!(
        (other.event_type.as_str(), other.deliveries, other.duplicate),
        ("facility.creation.accepted", 2, true)
    );
    let generated = store.publish(event(None, "facility.user-connection.accepted", "u9")).await.unwrap();
    assert!(uuid::Uuid::try_parse(&generated.id).is_ok());
    assert_eq!((generated.deliveries, generated.duplicate), (0, false));

    let claimed = store.claim_due(100, 60_000).await.unwrap();
    let mut targets: Vec<_> = claimed.iter().map(|d| d.fallback_url.clone()).collect();
    targets.sort();
    assert_eq!(targets, ["https://c1.example/hook", "https://c2.example/hook"]);
    // Delivery ids (the log's entry ids) are distinct version-4 UUIDs on both backends.
    let ids: std::collections::BTreeSet<_> = claimed.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids.len(), claimed.len());
    for id in &ids {
        let parsed = uuid::Uuid::try_parse(id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!((parsed.get_version_num(), parsed.to_string()), (4, id.clone()), "{id}");
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
    }
    assert!(claimed.iter().all(|d| d.event_id == "e-1" && d.attempts == 0));
    assert!(claimed.iter().all(|d| uuid::Uuid::try_parse(&d.id).is_ok()));
    assert!(claimed.iter().all(|d| d.target.as_ref().is_some_and(|t| t.secrets == ["s"])));
    assert_eq!(
        claimed[0].body,
        br#"{"data":{"facilityId":"NUR-1"},"eventType":"facility.creation.accepted"}"#
    );
}

async fn event_ids_are_unique_per_publisher(h: &Harness) {
    let store = &h.store;
    webhook(store, "c1", "u1", &["all"]).await;
    let first = store.publish(event(Some("e-1"), "facility.creation.accepted", "u1")).await.unwrap();
    // Another publisher's same id is another event: it neither collides nor is pre-empted.
    let theirs = NewEvent {
        publisher: "publisher-2".into(),
        ..event(Some("e-1"), "facility.creation.rejected", "u1")
    };
    let second = store.publish(theirs).await.unwrap();
    assert_eq!((first.duplicate, second.duplicate), (false, false));
    assert_eq!((second.id.as_str(), second.event_type.as_str()), ("e-1", "facility.creation.rejected"));
    // Each publisher's repeat is still idempotent.
    let again = NewEvent {
        publisher: "publisher-2".into(),
        ..event(Some("e-1"), "facility.creation.accepted", "u1")
    };
    let again = store.publish(again).await.unwrap();
    assert_eq!((again.duplicate, again.event_type.as_str()), (true, "facility.creation.rejected"));
    assert!(store.publish(event(Some("e-1"), "facility.creation.accepted", "u1")).await.unwrap().duplicate);

    let claimed = store.claim_due(100, 60_000).await.unwrap();
    assert_eq!(claimed.len(), 2, "one delivery per publisher's event");
    assert!(claimed.iter().all(|d| d.event_id == "e-1"), "receivers see the id as published");
    let mut bodies: Vec<_> = claimed.iter().map(|d| String::from_utf8_lossy(&d.body).into_owned()).collect();
    bodies.sort();
    assert!(
        bodies[0].contains("facility.creation.accepted") && bodies[1].contains("facility.creation.rejected")
    );
}

async fn concurrent_publications_of_one_id_fan_out_once(h: &Harness) {
    for i in 0..3 {
        webhook(&h.store, &format!("c{i}"), "u1", &["all"]).await;
    }
    // Two stores (two pools: two replicas), many rounds of the same id published at once.
    let other = h.another().await;
    for round in 0..10 {
        let id = format!("same-{round}");
        let (a, b) = tokio::join!(
            h.store.publish(event(Some(&id), "facility.creation.accepted", "u1")),
            other.publish(event(Some(&id), "facility.creation.accepted", "u1")),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!((a.deliveries, b.deliveries), (3, 3), "round {round}");
        assert!(a.duplicate != b.duplicate, "round {round}: exactly one is the first: {a:?} {b:?}");
    }
    assert_eq!(h.store.count("SELECT COUNT(*) FROM events").await, 10);
    assert_eq!(h.store.count("SELECT COUNT(*) FROM deliveries").await, 30);
}

async fn claims_exclude_each_other_until_the_lease_expires(h: &Harness) {
    let store = &h.store;
    let other = h.another().await;
    webhook(store, "c1", "u1", &["all"]).await;
    store.publish(event(None, "facility.creation.accepted", "u1")).await.unwrap();
    let first = store.claim_due(10, 150).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(store.claim_due(10, 150).await.unwrap().is_empty(), "claimed twice while leased");
    assert!(other.claim_due(10, 150).await.unwrap().is_empty(), "another store took a leased one");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let retaken = store.claim_due(10, 60_000).await.unwrap();
    assert_eq!(
        retaken.iter().map(|d| &d.id).collect::<Vec<_>>(),
        [&first[0].id],
        "an expired claim is retaken"
    );
}

async fn concurrent_claims_from_two_stores_never_take_one_delivery_twice(h: &Harness) {
    webhook(&h.store, "c1", "u1", &["all"]).await;
    webhook(&h.store, "c2", "u1", &["all"]).await;
    for _ in 0..100 {
        h.store.publish(event(None, "facility.creation.accepted", "u1")).await.unwrap();
    }
    let other = h.another().await;
    let claim_all = |store: Store| async move {
        let mut mine = Vec::new();
        loop {
            let batch = store.claim_due(7, 60_000).await.unwrap();
            if batch.is_empty() {
                return mine;
            }
            mine.extend(batch.into_iter().map(|d| d.id));
        }
    };
    let (a, b) = tokio::join!(claim_all(h.store.clone()), claim_all(other));
    let union: BTreeSet<&String> = a.iter().chain(&b).collect();
    assert_eq!(a.len() + b.len(), 200, "every delivery claimed exactly once ({} + {})", a.len(), b.len());
    assert_eq!(union.len(), 200);
}

async fn failures_retry_on_schedule_then_give_up_and_success_stops_retries(h: &Harness) {
    let store = &h.store;
    webhook(store, "c1", "u1", &["all"]).await;
    store.publish(event(None, "facility.creation.accepted", "u1")).await.unwrap();
    assert_eq!(store.due_count().await.unwrap(), 1);

    let d = store.claim_due(10, 60_000).await.unwrap().remove(0);
    store.record(&[outcome(&d, false, Some(now_ms() + 60_000))]).await.unwrap();
    assert!(store.claim_due(10, 60_000).await.unwrap().is_empty(), "retried before its time");
    assert_eq!(store.due_count().await.unwrap(), 0);

    // Due again now: a second failure with no retry left ends it.
    store.exec("UPDATE deliveries SET next_attempt_at = 0").await;
    let d = store.claim_due(10, 60_000).await.unwrap().remove(0);
    assert_eq!(d.attempts, 1);
    let mut last = outcome(&d, false, None);
    last.status_code = None;
    last.response_body = "could not connect: refused \0 here".into();
    store.record(&[last]).await.unwrap();
    store.exec("UPDATE deliveries SET next_attempt_at = 0").await;
    assert!(store.claim_due(10, 60_000).await.unwrap().is_empty(), "a failed delivery came back");

    let q = log_query("c1", "u1");
    let log = store.search_logs(&q).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, "failure");
    assert_eq!(log[0].attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(log[0].attempts.iter().map(|a| a.status_code).collect::<Vec<_>>(), [Some(500), None]);
    assert_eq!(log[0].attempts[1].response_body, "could not connect: refused \u{FFFD} here");
    assert!(store.search_logs(&LogQuery { client_id: "c2".into(), ..q.clone() }).await.unwrap().is_empty());

    // Recording the same attempt again (a retaken lease finishing late) changes nothing.
    store.record(&[outcome(&d, true, None)]).await.unwrap();
    assert_eq!(store.search_logs(&q).await.unwrap(), log);

    // A success ends it at once.
    store.publish(event(None, "facility.creation.accepted", "u1")).await.unwrap();
    let d = store.claim_due(10, 60_000).await.unwrap().remove(0);
    store.record(&[outcome(&d, true, None)]).await.unwrap();
    store.exec("UPDATE deliveries SET next_attempt_at = 0").await;
    assert!(store.claim_due(10, 60_000).await.unwrap().is_empty(), "a delivered one came back");
    let log = store.search_logs(&q).await.unwrap();
    assert_eq!(log.iter().map(|e| e.status.as_str()).collect::<Vec<_>>(), ["success", "failure"]);
}

/// The worker records outcomes in batches: several deliveries at once, and (with a short retry
/// schedule) a failed attempt and its retry's outcome in the same batch.
async fn one_batch_records_many_deliveries_and_successive_attempts_of_one(h: &Harness) {
    let store = &h.store;
    webhook(store, "c1", "u1", &["all"]).await;
    for _ in 0..3 {
        store.publish(event(None, "facility.creation.accepted", "u1")).await.unwrap();
    }
    let claimed = store.claim_due(10, 60_000).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let retry = outcome(&claimed[0], false, Some(now_ms()));
    let mut retried = outcome(&claimed[0], true, None);
    retried.attempt = 1;
    let given_up = outcome(&claimed[1], false, None);
    let delivered = outcome(&claimed[2], true, None);
    // The retry's outcome first: the batch's order must not matter.
    store.record(&[retried, given_up, retry, delivered]).await.unwrap();

    store.exec("UPDATE deliveries SET next_attempt_at = 0").await;
    assert!(store.claim_due(10, 60_000).await.unwrap().is_empty(), "every delivery is settled");
    let log = store.search_logs(&log_query("c1", "u1")).await.unwrap();
    let seen: BTreeMap<&str, (&str, Vec<i64>)> = log
        .iter()
        .map(|e| (e.id.as_str(), (e.status.as_str(), e.attempts.iter().map(|a| a.attempt).collect())))
        .collect();
    let expected: BTreeMap<&str, (&str, Vec<i64>)> = [
        (claimed[0].id.as_str(), ("success", vec![0, 1])),
        (claimed[1].id.as_str(), ("failure", vec![0])),
        (claimed[2].id.as_str(), ("success", vec![0])),
    ]
    .into();
    assert_eq!(seen, expected);
    let attempts = store
        .strings(&format!("SELECT CAST(attempts AS TEXT) FROM deliveries WHERE id = '{}'", claimed[0].id))
        .await;
    assert_eq!(attempts, ["2"], "the retried delivery counts both attempts");
}

async fn the_log_filters_sorts_and_pages(h: &Harness) {
    let store = &h.store;
    let w1 = webhook(store, "c1", "u1", &["all"]).await;
    let w2 = webhook(store, "c1", "u1", &["facility.creation.rejected"]).await;
    let types = ["facility.creation.accepted", "facility.creation.rejected"];
    for i in 0..6 {
        store.publish(event(Some(&format!("e{i}")), types[i % 2], "u1")).await.unwrap();
    }
    // Same millisecond or not, the order is (created_at, seq): publication order.
    let all = store.search_logs(&LogQuery { ascending: true, ..log_query("c1", "u1") }).await.unwrap();
    let events: Vec<&str> = all.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(events, ["e0", "e1", "e1", "e2", "e3", "e3", "e4", "e5", "e5"]);
    assert!(all.iter().all(|e| e.status == "pending" && e.attempts.is_empty()));
    assert_eq!(
        all[0].request_payload,
        serde_json::json!({"data": {"facilityId": "NUR-1"}, "eventType": types[0]})
    );
    assert_eq!(all[0].url, "https://c1.example/hook");

    let desc = store.search_logs(&log_query("c1", "u1")).await.unwrap();
    assert_eq!(
        desc.iter().rev().map(|e| &e.id).collect::<Vec<_>>(),
        all.iter().map(|e| &e.id).collect::<Vec<_>>()
    );
    let page =
        store.search_logs(&LogQuery { limit: 3, offset: 2, ascending: true, ..log_query("c1", "u1") }).await;
    assert_eq!(page.unwrap(), all[2..5]);
    let only_w2 =
        store.search_logs(&LogQuery { webhook_id: Some(w2.clone()), ..log_query("c1", "u1") }).await;
    assert!(only_w2.unwrap().iter().all(|e| e.webhook_id == w2 && e.event_type == types[1]));
    let rejected = store
        .search_logs(&LogQuery { event_type: Some(types[1].into()), ..log_query("c1", "u1") })
        .await
        .unwrap();
    assert_eq!(rejected.len(), 6);
    let of_w1 = store.search_logs(&LogQuery { webhook_id: Some(w1), ..log_query("c1", "u1") }).await.unwrap();
    assert_eq!(of_w1.len(), 6);
    let (first, last) = (all[0].created_at_ms, all[8].created_at_ms);
    let window = LogQuery { start_ms: Some(first), end_ms: Some(last + 1), ..log_query("c1", "u1") };
    assert_eq!(store.search_logs(&window).await.unwrap().len(), 9);
    let none = LogQuery { start_ms: Some(last + 1), ..log_query("c1", "u1") };
    assert!(store.search_logs(&none).await.unwrap().is_empty());
}

async fn purge_drops_finished_entries_older_than_the_cutoff_and_keeps_pending_ones(h: &Harness) {
    let store = &h.store;
    webhook(store, "c1", "u1", &["all"]).await;
    store.publish(event(Some("old"), "facility.creation.accepted", "u1")).await.unwrap();
    store.publish(event(Some("pending"), "facility.creation.accepted", "u1")).await.unwrap();
    let claimed = store.claim_due(10, 60_000).await.unwrap();
    let old = claimed.iter().find(|d| d.event_id == "old").unwrap();
    store.record(&[outcome(old, true, None)]).await.unwrap();
    let fifteen_days_ms: i64 = 15 * 24 * 3600 * 1000;
    store.exec(&format!("UPDATE deliveries SET created_at = created_at - {fifteen_days_ms}")).await;
    store.exec(&format!("UPDATE events SET created_at = created_at - {fifteen_days_ms}")).await;

    assert_eq!(store.purge(now_ms() - 14 * 24 * 3600 * 1000).await.unwrap(), 1);
    let public_ids = "SELECT e.public_id FROM deliveries d JOIN events e ON e.id = d.event_id";
    assert_eq!(store.strings(public_ids).await, ["pending"]);
    assert_eq!(store.count("SELECT COUNT(*) FROM events").await, 1);
    assert_eq!(store.count("SELECT COUNT(*) FROM attempts").await, 0);
}

fn new_hook(n: usize) -> NewWebhook {
    NewWebhook {
        url: format!("https://{n}.example/hook"),
        events: vec!["all".into()],
        secrets: vec!["s".into()],
        kind: WebhookKind::User,
        facilities: None,
    }
}

/// Every webhook row, as text, to compare what is stored before and after.
async fn stored_rows(store: &Store) -> Vec<String> {
    store
        .strings(
            "SELECT id || ' ' || client_id || ' ' || user_id || ' ' || url || ' ' || events FROM webhooks ORDER BY seq",
        )
        .await
}

async fn the_webhook_limit_is_per_owner_and_a_refused_create_changes_nothing(h: &Harness) {
    let store = &h.store;
    let a = owner("c1", "u1");
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(store.create(&a, new_hook(n), 3).await.unwrap().expect("below the limit").id);
    }
    let before = stored_rows(store).await;
    assert_eq!(store.create(&a, new_hook(3), 3).await.unwrap(), None, "a fourth webhook");
    assert_eq!(stored_rows(store).await, before, "a refused create stores nothing");
    assert_eq!(
        store.list(&a, WebhookKind::User).await.unwrap().into_iter().map(|w| w.id).collect::<Vec<_>>(),
        ids
    );
    // The same user under another client, and another user of the same client, have their own.
    for other in [owner("c2", "u1"), owner("c1", "u2")] {
        assert!(store.create(&other, new_hook(9), 3).await.unwrap().is_some(), "{other:?}");
    }
    // A lower limit than the owner has (the setting was lowered) refuses as well.
    assert_eq!(store.create(&a, new_hook(4), 2).await.unwrap(), None);
    // Deleting one makes room for exactly one.
    assert!(store.delete(&a, WebhookKind::User, &ids[0]).await.unwrap());
    let again = store.create(&a, new_hook(5), 3).await.unwrap().expect("room after a delete");
    assert_eq!(store.create(&a, new_hook(6), 3).await.unwrap(), None);
    assert_eq!(store.list(&a, WebhookKind::User).await.unwrap().last().map(|w| w.id.clone()), Some(again.id));
    assert_eq!(store.count("SELECT COUNT(*) FROM webhooks").await, 5);
}

/// Creates of one owner racing on two stores (two pools, and on SQLite two writers: what two
/// processes have) and on many connections of each: the limit still holds exactly.
async fn concurrent_creates_on_two_stores_never_pass_the_limit(h: &Harness) {
    const LIMIT: u32 = 5;
    let other = h.another().await;
    for round in 0..4 {
        let a = owner("c1", &format!("racer-{round}"));
        let creates = (0..40).map(|n| {
            let store = if n % 2 == 0 { h.store.clone() } else { other.clone() };
            let a = a.clone();
            tokio::spawn(async move { store.create(&a, new_hook(n), LIMIT).await.unwrap().is_some() })
        });
        let mut created = 0;
        for create in creates.collect::<Vec<_>>() {
            created += u32::from(create.await.unwrap());
        }
        assert_eq!(created, LIMIT, "round {round}: creates that succeeded");
        let rows =
            h.store.count(&format!("SELECT COUNT(*) FROM webhooks WHERE user_id = 'racer-{round}'")).await;
        assert_eq!(rows, i64::from(LIMIT), "round {round}: rows stored");
    }
}

/// SQLite only: neither the database file nor its WAL holds a secret in clear.
#[tokio::test]
async fn sqlite_files_hold_no_secret_in_clear() {
    let h = Harness::sqlite().await;
    let secret = "plain-text-secret-that-must-not-appear";
    let new = NewWebhook {
        url: "https://a.example".into(),
        events: vec!["all".into()],
        secrets: vec![secret.into()],
        kind: WebhookKind::User,
        facilities: None,
    };
    create(&h.store, &owner("c", "u"), new).await;
    h.store.close().await;
    let Database::Sqlite(dir) = &h.database else { unreachable!() };
    for name in ["t.db", "t.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(name)) {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{name} holds the secret");
        }
    }
}

/// PostgreSQL only: a missing database is created (by one of several replicas starting at once),
/// and every connection carries the configured `statement_timeout`.
#[tokio::test]
async fn postgres_creates_a_missing_database_and_applies_the_statement_timeout() {
    let test = "store::tests::postgres_creates_a_missing_database_and_applies_the_statement_timeout";
    let Some(admin) = TestDatabase::from_env(test).await else { return };
    let missing = TestDatabase::reserve(&admin.url).unwrap();
    let options = StoreOptions { max_connections: 2, statement_timeout: Duration::from_millis(200) };
    let connect = || Store::connect(&missing.url, SecretBox::new(&KEY).unwrap(), &options);
    let (a, b) = tokio::join!(connect(), connect());
    let (a, b) = (a.unwrap(), b.unwrap());
    let id = webhook(&a, "c", "u", &["all"]).await;
    assert_eq!(b.get(&owner("c", "u"), WebhookKind::User, &id).await.unwrap().map(|w| w.id), Some(id));

    let Store::Postgres(pg) = &a else { panic!("a postgres:// URL opened {}", a.backend()) };
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout").fetch_one(pg.pool()).await.unwrap();
    assert_eq!(timeout, "200ms");
    let slow = sqlx::query("SELECT pg_sleep(2)").execute(pg.pool()).await.unwrap_err();
    let code = slow.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("57014"), "query_canceled: {slow}");
    a.close().await;
    b.close().await;
}

#[test]
fn postgres_urls_select_postgres() {
    for url in ["postgres://root@127.0.0.1/db", "postgresql://h/db", "POSTGRES://h/db"] {
        assert!(is_postgres_url(url), "{url}");
    }
    for url in ["sqlite://./data/webhooks.db", "sqlite:t.db", "./data/webhooks.db", "/tmp/postgres://x"] {
        assert!(!is_postgres_url(url), "{url}");
    }
}

/// A worker gives back what it claimed for a destination at its cap: the claim is released
/// (another store may take it, long before the lease would have ended), it is due again only
/// at the given time, and nothing is counted or logged.
async fn deferred_deliveries_are_released_unattempted_until_their_time(h: &Harness) {
    let store = &h.store;
    let other = h.another().await;
    webhook(store, "c1", "u1", &["all"]).await;
    for _ in 0..3 {
        store.publish(event(None, "facility.creation.accepted", "u1")).await.unwrap();
    }
    let claimed = store.claim_due(10, 60_000).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let given_back: Vec<String> = claimed[..2].iter().map(|d| d.id.clone()).collect();
    let until = now_ms() + 300;
    assert_eq!(store.defer(&given_back, until).await.unwrap(), 2);
    assert!(other.claim_due(10, 60_000).await.unwrap().is_empty(), "due again before its time");
    assert_eq!(store.due_count().await.unwrap(), 1, "the third only (claimed, not given back)");
    let next: Vec<String> = store
        .strings(
            "SELECT CAST(next_attempt_at AS TEXT) FROM deliveries WHERE lease_token IS NULL ORDER BY seq",
        )
        .await;
    assert_eq!(next, [until.to_string(), until.to_string()], "only the two given back, unleased");

    tokio::time::sleep(Duration::from_millis(350)).await;
    // Released: another store takes them within the first claim's 60 s lease; the third stays
    // with its claim.
    let retaken = other.claim_due(10, 60_000).await.unwrap();
    assert_eq!(
        retaken.iter().map(|d| d.id.clone()).collect::<BTreeSet<_>>(),
        given_back.iter().cloned().collect()
    );
    assert!(retaken.iter().all(|d| d.attempts == 0), "no attempt was counted");
    assert_eq!(store.count("SELECT COUNT(*) FROM attempts").await, 0, "nothing was logged");
    let log = store.search_logs(&log_query("c1", "u1")).await.unwrap();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|e| e.status == "pending" && e.attempts.is_empty()), "{log:#?}");

    // A given-back delivery is sent and recorded like any other.
    store.record(&[outcome(&retaken[0], true, None)]).await.unwrap();
    let log = store.search_logs(&log_query("c1", "u1")).await.unwrap();
    assert_eq!(log.iter().filter(|e| e.status == "success").count(), 1);
}

async fn deferring_leaves_settled_and_unknown_deliveries_alone(h: &Harness) {
    let store = &h.store;
    webhook(store, "c1", "u1", &["all"]).await;
    store.publish(event(None, "facility.creation.accepted", "u1")).await.unwrap();
    let d = store.claim_due(10, 60_000).await.unwrap().remove(0);
    store.record(&[outcome(&d, true, None)]).await.unwrap();
    let ids = [d.id.clone(), "no-such-delivery".to_owned(), "nul\0id".to_owned()];
    assert_eq!(store.defer(&ids, now_ms()).await.unwrap(), 0);
    assert_eq!(store.defer(&[], now_ms()).await.unwrap(), 0);
    let log = store.search_logs(&log_query("c1", "u1")).await.unwrap();
    assert_eq!((log[0].status.as_str(), log[0].attempts.len()), ("success", 1));
    assert!(store.claim_due(10, 60_000).await.unwrap().is_empty(), "a delivered one came back");
}

const SHIFT_CREATED: &str = "shift.created";
const SHIFT_CANCELLED: &str = "shift.cancelled";

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

fn facility_hook_of(client: &str, events: &[&str], facilities: Option<&[&str]>) -> NewWebhook {
    NewWebhook {
        url: format!("https://{client}.example/facility-hook"),
        events: strings(events),
        secrets: vec!["s".into()],
        kind: WebhookKind::Facility,
        facilities: facilities.map(strings),
    }
}

/// A facility webhook of (client, user); `facilities` `None`: it follows all of them.
async fn facility_hook(
    store: &Store,
    client: &str,
    user: &str,
    events: &[&str],
    facilities: Option<&[&str]>,
) -> String {
    create(store, &owner(client, user), facility_hook_of(client, events, facilities)).await.id
}

/// A facility event (no user named) of `facility`.
fn shift_event(id: Option<&str>, event_type: &str, facility: Option<&str>) -> NewEvent {
    let mut data = serde_json::Map::new();
    if let Some(f) = facility {
        data.insert("facilityId".into(), f.into());
    }
    NewEvent {
        publisher: "publisher-1".into(),
        id: id.map(str::to_owned),
        event_type: event_type.into(),
        user_id: String::new(),
        facility_id: facility_of(&data),
        data,
        audience: WebhookKind::Facility,
    }
}

/// The webhooks the pending deliveries go to (claimed, then given back), sorted.
async fn delivered_to(store: &Store) -> Vec<String> {
    let claimed = store.claim_due(1000, 60_000).await.unwrap();
    let ids: Vec<String> = claimed.iter().map(|d| d.id.clone()).collect();
    store.defer(&ids, 0).await.unwrap();
    let mut webhooks =
        store.strings("SELECT webhook_id FROM deliveries WHERE status = 'pending' ORDER BY webhook_id").await;
    webhooks.sort();
    webhooks
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

async fn facility_crud_is_scoped_by_kind(h: &Harness) {
    let store = &h.store;
    let a = owner("c1", "u1");
    let user = webhook(store, "c1", "u1", &["all"]).await;
    let facility = create(store, &a, facility_hook_of("c1", &["all"], Some(&["F1"]))).await;
    assert_eq!((facility.kind, facility.facilities.clone()), (WebhookKind::Facility, Some(strings(&["F1"]))));
    assert_eq!(store.get(&a, WebhookKind::Facility, &facility.id).await.unwrap().as_ref(), Some(&facility));
    // Each kind's id through the other kind is missing: get, list, update and delete.
    assert_eq!(store.get(&a, WebhookKind::Facility, &user).await.unwrap(), None);
    assert_eq!(store.get(&a, WebhookKind::User, &facility.id).await.unwrap(), None);
    assert_eq!(
        store.list(&a, WebhookKind::User).await.unwrap().into_iter().map(|w| w.id).collect::<Vec<_>>(),
        std::slice::from_ref(&user)
    );
    assert_eq!(store.list(&a, WebhookKind::Facility).await.unwrap(), std::slice::from_ref(&facility));
    let update = WebhookUpdate {
        url: Some("https://x.example".into()),
        events: None,
        secrets: None,
        facilities: None,
    };
    assert_eq!(store.update(&a, WebhookKind::Facility, &user, update.clone()).await.unwrap(), None);
    assert_eq!(store.update(&a, WebhookKind::User, &facility.id, update.clone()).await.unwrap(), None);
    assert!(!store.delete(&a, WebhookKind::Facility, &user).await.unwrap());
    assert!(!store.delete(&a, WebhookKind::User, &facility.id).await.unwrap());
    // Another owner sees neither.
    let b = owner("c2", "u1");
    assert_eq!(store.get(&b, WebhookKind::Facility, &facility.id).await.unwrap(), None);
    assert!(store.list(&b, WebhookKind::Facility).await.unwrap().is_empty());
    assert_eq!(store.update(&b, WebhookKind::Facility, &facility.id, update.clone()).await.unwrap(), None);
    assert!(!store.delete(&b, WebhookKind::Facility, &facility.id).await.unwrap());
    // Nothing changed; each kind's own calls work, and a fresh reader agrees.
    assert_eq!(store.get(&a, WebhookKind::Facility, &facility.id).await.unwrap().as_ref(), Some(&facility));
    let updated = store.update(&a, WebhookKind::Facility, &facility.id, update).await.unwrap().unwrap();
    assert_eq!(updated.url, "https://x.example");
    assert_eq!(
        h.another().await.list(&a, WebhookKind::Facility).await.unwrap(),
        std::slice::from_ref(&updated)
    );
    assert_eq!(store.list(&a, WebhookKind::Facility).await.unwrap(), [updated]);
    assert!(store.delete(&a, WebhookKind::Facility, &facility.id).await.unwrap());
    assert!(store.list(&a, WebhookKind::Facility).await.unwrap().is_empty());
    assert_eq!(store.list(&a, WebhookKind::User).await.unwrap().len(), 1);
    // A user webhook never has facilities, whatever it is given.
    let given = NewWebhook { kind: WebhookKind::User, ..facility_hook_of("c1", &["all"], Some(&["F1"])) };
    let created = create(store, &a, given).await;
    assert_eq!((created.kind, created.facilities), (WebhookKind::User, None));
    let update = WebhookUpdate {
        url: None,
        events: Some(strings(&["all"])),
        secrets: None,
        facilities: Some(Some(strings(&["F2"]))),
    };
    let updated = store.update(&a, WebhookKind::User, &created.id, update).await.unwrap().unwrap();
    assert_eq!(updated.facilities, None);
    assert_eq!(store.get(&a, WebhookKind::User, &created.id).await.unwrap().unwrap().facilities, None);
}

async fn the_webhook_limit_is_per_owner_and_kind(h: &Harness) {
    let store = &h.store;
    let a = owner("c1", "u1");
    for n in 0..2 {
        assert!(store.create(&a, new_hook(n), 2).await.unwrap().is_some());
    }
    assert_eq!(store.create(&a, new_hook(2), 2).await.unwrap(), None, "a third user webhook");
    // The owner's facility webhooks have a limit of their own.
    for _ in 0..2 {
        let new = facility_hook_of("c1", &["all"], None);
        assert!(store.create(&a, new, 2).await.unwrap().is_some(), "facility webhooks count apart");
    }
    let before = stored_rows(store).await;
    assert_eq!(store.create(&a, facility_hook_of("c1", &["all"], None), 2).await.unwrap(), None);
    assert_eq!(stored_rows(store).await, before, "a refused create stores nothing");
    assert!(store
        .create(&owner("c1", "u2"), facility_hook_of("c1", &["all"], None), 2)
        .await
        .unwrap()
        .is_some());
    // Deleting a facility webhook makes room for a facility webhook only.
    let first = store.list(&a, WebhookKind::Facility).await.unwrap().remove(0);
    assert!(store.delete(&a, WebhookKind::Facility, &first.id).await.unwrap());
    assert_eq!(store.create(&a, new_hook(3), 2).await.unwrap(), None);
    assert!(store.create(&a, facility_hook_of("c1", &["all"], None), 2).await.unwrap().is_some());
}

async fn facilities_are_explicit_or_follow_all_and_updates_apply_field_by_field(h: &Harness) {
    let store = &h.store;
    let a = owner("c1", "u1");
    // Explicit lists keep the given order without repeats; `None` follows all; empty is
    // explicit (none).
    let explicit =
        create(store, &a, facility_hook_of("c1", &[SHIFT_CREATED], Some(&["F2", "F1", "F2", "F3", "F1"])))
            .await;
    assert_eq!(explicit.facilities, Some(strings(&["F2", "F1", "F3"])));
    let all = create(store, &a, facility_hook_of("c1", &["all"], None)).await;
    assert_eq!(all.facilities, None);
    let none = create(store, &a, facility_hook_of("c1", &["all"], Some(&[]))).await;
    assert_eq!(none.facilities, Some(Vec::new()));
    assert_eq!(
        store.list(&a, WebhookKind::Facility).await.unwrap(),
        [explicit.clone(), all.clone(), none.clone()]
    );
    assert_eq!(
        h.another().await.list(&a, WebhookKind::Facility).await.unwrap(),
        [explicit.clone(), all.clone(), none]
    );

    let keep = WebhookUpdate { url: None, events: None, secrets: None, facilities: None };
    let kept = store.update(&a, WebhookKind::Facility, &explicit.id, keep.clone()).await.unwrap().unwrap();
    assert_eq!(kept, explicit, "an update of nothing keeps everything");
    // Each field alone.
    let url = WebhookUpdate { url: Some("https://new.example".into()), ..keep.clone() };
    let w = store.update(&a, WebhookKind::Facility, &explicit.id, url).await.unwrap().unwrap();
    assert_eq!(w, Webhook { url: "https://new.example".into(), ..explicit.clone() });
    let events = WebhookUpdate { events: Some(strings(&[SHIFT_CANCELLED, "all"])), ..keep.clone() };
    let w = store.update(&a, WebhookKind::Facility, &explicit.id, events).await.unwrap().unwrap();
    assert_eq!(
        (w.events.clone(), w.url.as_str(), w.facilities.clone()),
        (strings(&[SHIFT_CANCELLED, "all"]), "https://new.example", explicit.facilities.clone())
    );
    let secrets = WebhookUpdate { secrets: Some(strings(&["t1", "t2"])), ..keep.clone() };
    let w = store.update(&a, WebhookKind::Facility, &explicit.id, secrets).await.unwrap().unwrap();
    assert_eq!(
        (w.secrets.clone(), w.facilities.clone()),
        (strings(&["t1", "t2"]), explicit.facilities.clone())
    );
    // Facilities: a new list (de-duplicated), then follow all, then a list again.
    let list = WebhookUpdate { facilities: Some(Some(strings(&["F9", "F9", "F8"]))), ..keep.clone() };
    let w = store.update(&a, WebhookKind::Facility, &explicit.id, list).await.unwrap().unwrap();
    assert_eq!(
        (w.facilities.clone(), w.secrets.clone()),
        (Some(strings(&["F9", "F8"])), strings(&["t1", "t2"]))
    );
    let follow = WebhookUpdate { facilities: Some(None), ..keep.clone() };
    let w = store.update(&a, WebhookKind::Facility, &explicit.id, follow).await.unwrap().unwrap();
    assert_eq!(w.facilities, None);
    assert_eq!(store.get(&a, WebhookKind::Facility, &explicit.id).await.unwrap().unwrap(), w);
    let again = WebhookUpdate { facilities: Some(Some(strings(&["F1"]))), ..keep.clone() };
    let w = store.update(&a, WebhookKind::Facility, &all.id, again).await.unwrap().unwrap();
    assert_eq!(w.facilities, Some(strings(&["F1"])));
    let listed = store.list(&a, WebhookKind::Facility).await.unwrap();
    assert_eq!(listed, h.another().await.list(&a, WebhookKind::Facility).await.unwrap());
    assert_eq!(
        listed.iter().map(|w| w.facilities.clone()).collect::<Vec<_>>(),
        [None, Some(strings(&["F1"])), Some(Vec::new())]
    );
}

async fn access_is_replaced_in_the_given_order_and_grants_append_once(h: &Harness) {
    let store = &h.store;
    assert!(store.facilities_of("u1").await.unwrap().is_empty());
    assert_eq!(
        store.set_facilities("u1", &strings(&["F3", "F1", "F3", "F2"])).await.unwrap(),
        strings(&["F3", "F1", "F2"])
    );
    assert_eq!(store.facilities_of("u1").await.unwrap(), strings(&["F3", "F1", "F2"]));
    // A grant appends; a repeated one changes nothing.
    assert!(store.grant("u1", "F0").await.unwrap());
    assert!(!store.grant("u1", "F1").await.unwrap());
    assert!(!store.grant("u1", "F0").await.unwrap());
    assert!(store.grant("u1", "F9").await.unwrap());
    assert_eq!(store.facilities_of("u1").await.unwrap(), strings(&["F3", "F1", "F2", "F0", "F9"]));
    // A replacement is the new set exactly, in its own order (old grants re-ordered or gone).
    assert_eq!(
        store.set_facilities("u1", &strings(&["F9", "F4", "F3"])).await.unwrap(),
        strings(&["F9", "F4", "F3"])
    );
    assert_eq!(store.facilities_of("u1").await.unwrap(), strings(&["F9", "F4", "F3"]));
    assert!(store.grant("u1", "F1").await.unwrap());
    assert_eq!(store.facilities_of("u1").await.unwrap(), strings(&["F9", "F4", "F3", "F1"]));
    // Users are apart; a first grant starts a list.
    assert!(store.grant("u2", "F1").await.unwrap());
    assert_eq!(store.facilities_of("u2").await.unwrap(), strings(&["F1"]));
    assert_eq!(h.another().await.facilities_of("u1").await.unwrap(), strings(&["F9", "F4", "F3", "F1"]));
    // Emptied.
    assert!(store.set_facilities("u1", &[]).await.unwrap().is_empty());
    assert!(store.facilities_of("u1").await.unwrap().is_empty());
    assert_eq!(store.facilities_of("u2").await.unwrap(), strings(&["F1"]));
    // Keys with U+0000 are unknown: nothing stored, nothing found; such facilities are left out.
    assert!(store.set_facilities("u\0", &strings(&["F1"])).await.unwrap().is_empty());
    assert!(store.facilities_of("u\0").await.unwrap().is_empty());
    assert!(!store.grant("u\0", "F1").await.unwrap());
    assert!(!store.grant("u2", "F\0").await.unwrap());
    assert_eq!(store.set_facilities("u3", &strings(&["F\0", "F1"])).await.unwrap(), strings(&["F1"]));
    assert_eq!(store.facilities_of("u3").await.unwrap(), strings(&["F1"]));
    // The log's purge leaves access alone.
    store.purge(now_ms() + 1).await.unwrap();
    assert_eq!(store.facilities_of("u2").await.unwrap(), strings(&["F1"]));
}

async fn facility_fan_out_follows_access_and_each_webhooks_facilities(h: &Harness) {
    let store = &h.store;
    store.set_facilities("u1", &strings(&["F1", "F2"])).await.unwrap();
    let explicit = facility_hook(store, "c1", "u1", &["all"], Some(&["F1"])).await;
    let follows = facility_hook(store, "c1", "u1", &["all"], None).await;
    // Names a facility its owner cannot access: nothing until access is granted.
    let unreachable = facility_hook(store, "c2", "u1", &["all"], Some(&["F3"])).await;
    // Another owner, with no access to anything.
    let stranger = facility_hook(store, "c1", "u9", &["all"], None).await;

    let published = store.publish(shift_event(Some("s1"), SHIFT_CREATED, Some("F1"))).await.unwrap();
    assert_eq!((published.deliveries, published.duplicate), (2, false));
    assert_eq!(delivered_to(store).await, sorted(vec![explicit.clone(), follows.clone()]));
    // Duplicate: nothing new.
    let again = store.publish(shift_event(Some("s1"), SHIFT_CREATED, Some("F1"))).await.unwrap();
    assert_eq!((again.deliveries, again.duplicate), (2, true));
    assert_eq!(store.count("SELECT COUNT(*) FROM deliveries").await, 2);

    // F2: only the follower; F3: nobody (no access); no facility: nobody.
    let f2 = store.publish(shift_event(Some("s2"), SHIFT_CREATED, Some("F2"))).await.unwrap();
    assert_eq!(f2.deliveries, 1);
    assert_eq!(
        store.publish(shift_event(Some("s3"), SHIFT_CREATED, Some("F3"))).await.unwrap().deliveries,
        0
    );
    assert_eq!(store.publish(shift_event(Some("s4"), SHIFT_CREATED, None)).await.unwrap().deliveries, 0);
    assert_eq!(store.count("SELECT COUNT(*) FROM deliveries").await, 3);
    // Granting F3 reaches the webhook naming it and the follower, from now on.
    assert!(store.grant("u1", "F3").await.unwrap());
    let f3 = store.publish(shift_event(Some("s5"), SHIFT_CREATED, Some("F3"))).await.unwrap();
    assert_eq!(f3.deliveries, 2);
    let s5 =
        "SELECT d.webhook_id FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.public_id = 's5'";
    assert_eq!(sorted(store.strings(s5).await), sorted(vec![unreachable.clone(), follows.clone()]));
    // Revoked (a replacement without F1): no delivery any more, whatever the webhook names.
    store.set_facilities("u1", &strings(&["F2", "F3"])).await.unwrap();
    assert_eq!(
        store.publish(shift_event(Some("s6"), SHIFT_CREATED, Some("F1"))).await.unwrap().deliveries,
        0
    );
    // The deliveries belong to the webhooks' owner, whoever published (the event names no user).
    let owners =
        store.strings("SELECT DISTINCT client_id || '/' || user_id FROM deliveries ORDER BY 1").await;
    assert_eq!(owners, ["c1/u1", "c2/u1"]);
    assert_eq!(
        store.count(&format!("SELECT COUNT(*) FROM deliveries WHERE webhook_id = '{stranger}'")).await,
        0
    );
    // The other owner gets the facilities it can access, through its follow-all webhook.
    store.set_facilities("u9", &strings(&["F1"])).await.unwrap();
    let shared = store.publish(shift_event(Some("s7"), SHIFT_CANCELLED, Some("F1"))).await.unwrap();
    assert_eq!(shared.deliveries, 1);
    let s7 = "SELECT d.webhook_id || ' ' || d.client_id || ' ' || d.user_id FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.public_id = 's7'";
    assert_eq!(store.strings(s7).await, [format!("{stranger} c1 u9")]);
    // Claimed deliveries carry the webhook and the body as published.
    let claimed = store.claim_due(100, 60_000).await.unwrap();
    let d = claimed.iter().find(|d| d.event_id == "s7").unwrap();
    assert_eq!(d.body, br#"{"data":{"facilityId":"F1"},"eventType":"shift.cancelled"}"#);
    assert_eq!(d.target.as_ref().map(|t| t.url.as_str()), Some("https://c1.example/facility-hook"));
}

async fn audiences_do_not_cross_and_subscriptions_filter(h: &Harness) {
    let store = &h.store;
    store.set_facilities("u1", &strings(&["NUR-1"])).await.unwrap();
    let user_all = webhook(store, "c1", "u1", &["all"]).await;
    let facility_all = facility_hook(store, "c1", "u1", &["all"], None).await;
    let created_only = facility_hook(store, "c1", "u1", &[SHIFT_CREATED], None).await;
    let cancelled_only =
        facility_hook(store, "c1", "u1", &[SHIFT_CANCELLED, "shift.scheduled.cancelled"], Some(&["NUR-1"]))
            .await;
    // A user event (its data names facility NUR-1, which u1 can access): user webhooks only.
    let user_event = store.publish(event(Some("u-1"), "facility.creation.accepted", "u1")).await.unwrap();
    assert_eq!(user_event.deliveries, 1);
    assert_eq!(delivered_to(store).await, std::slice::from_ref(&user_all));
    // A shift event published as a user event still reaches user webhooks only.
    let mut as_user = event(Some("u-2"), SHIFT_CREATED, "u1");
    as_user.audience = WebhookKind::User;
    assert_eq!(store.publish(as_user).await.unwrap().deliveries, 1);
    // A facility event (even naming the user): facility webhooks subscribed to its type only.
    let mut named = shift_event(Some("f-1"), SHIFT_CREATED, Some("NUR-1"));
    named.user_id = "u1".into();
    assert_eq!(store.publish(named).await.unwrap().deliveries, 2);
    let f1 =
        "SELECT d.webhook_id FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.public_id = 'f-1'";
    assert_eq!(sorted(store.strings(f1).await), sorted(vec![facility_all.clone(), created_only.clone()]));
    let cancelled = store.publish(shift_event(Some("f-2"), SHIFT_CANCELLED, Some("NUR-1"))).await.unwrap();
    assert_eq!(cancelled.deliveries, 2);
    let f2 =
        "SELECT d.webhook_id FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.public_id = 'f-2'";
    assert_eq!(sorted(store.strings(f2).await), sorted(vec![facility_all.clone(), cancelled_only.clone()]));
    // A type that is a prefix of a subscribed one does not match it.
    let scheduled = store.publish(shift_event(Some("f-3"), "shift.scheduled", Some("NUR-1"))).await.unwrap();
    assert_eq!(scheduled.deliveries, 1, "only the `all` webhook");
    assert_eq!(store.count("SELECT COUNT(*) FROM deliveries").await, 7);
}

async fn the_log_shows_facilities_and_both_kinds(h: &Harness) {
    let store = &h.store;
    store.set_facilities("u1", &strings(&["F1", "F2"])).await.unwrap();
    let user = webhook(store, "c1", "u1", &["all"]).await;
    let facility = facility_hook(store, "c1", "u1", &["all"], None).await;
    // Another owner's facility webhook on the same facilities.
    store.set_facilities("u2", &strings(&["F1", "F2"])).await.unwrap();
    facility_hook(store, "c1", "u2", &["all"], None).await;

    store.publish(event(Some("e-user"), "facility.creation.accepted", "u1")).await.unwrap();
    let mut without = event(Some("e-none"), "facility.user-connection.accepted", "u1");
    without.data = serde_json::Map::new();
    without.facility_id = facility_of(&without.data);
    store.publish(without).await.unwrap();
    let mut numeric = event(Some("e-number"), "facility.creation.rejected", "u1");
    numeric.data.insert("facilityId".into(), 7.into());
    numeric.facility_id = facility_of(&numeric.data);
    assert_eq!(numeric.facility_id, None, "only a string is a facility");
    store.publish(numeric).await.unwrap();
    store.publish(shift_event(Some("s-1"), SHIFT_CREATED, Some("F1"))).await.unwrap();
    store.publish(shift_event(Some("s-2"), SHIFT_CANCELLED, Some("F2"))).await.unwrap();

    let log = store.search_logs(&LogQuery { ascending: true, ..log_query("c1", "u1") }).await.unwrap();
    let seen: Vec<(&str, &str, Option<&str>)> =
        log.iter().map(|e| (e.event_id.as_str(), e.webhook_id.as_str(), e.facility_id.as_deref())).collect();
    assert_eq!(
        seen,
        [
            ("e-user", user.as_str(), Some("NUR-1")),
            ("e-none", user.as_str(), None),
            ("e-number", user.as_str(), None),
            ("s-1", facility.as_str(), Some("F1")),
            ("s-2", facility.as_str(), Some("F2")),
        ]
    );
    assert_eq!(
        log[3].request_payload,
        serde_json::json!({"data": {"facilityId": "F1"}, "eventType": SHIFT_CREATED})
    );
    let of = |ids: &[&str]| LogQuery { facility_ids: strings(ids), ascending: true, ..log_query("c1", "u1") };
    let ids = |log: Vec<LogEntry>| log.into_iter().map(|e| e.event_id).collect::<Vec<_>>();
    assert_eq!(ids(store.search_logs(&of(&["F1"])).await.unwrap()), ["s-1"]);
    assert_eq!(ids(store.search_logs(&of(&["F2", "NUR-1"])).await.unwrap()), ["e-user", "s-2"]);
    assert!(store.search_logs(&of(&["F9"])).await.unwrap().is_empty());
    assert!(
        store.search_logs(&of(&["F\0"])).await.unwrap().is_empty(),
        "an impossible facility matches nothing"
    );
    assert_eq!(ids(store.search_logs(&of(&["F\0", "F1"])).await.unwrap()), ["s-1"]);
    // The type filter works for shift types, with the others.
    let created = LogQuery { event_type: Some(SHIFT_CREATED.into()), ..of(&[]) };
    assert_eq!(ids(store.search_logs(&created).await.unwrap()), ["s-1"]);
    let both = LogQuery { webhook_id: Some(facility.clone()), ..of(&["F1", "F2"]) };
    assert_eq!(ids(store.search_logs(&both).await.unwrap()), ["s-1", "s-2"]);
    // The other owner sees its own deliveries of the shift events only.
    assert_eq!(
        ids(store.search_logs(&LogQuery { ascending: true, ..log_query("c1", "u2") }).await.unwrap()),
        ["s-1", "s-2"]
    );
}

/// Grants and replacements of one user racing on two stores (two replicas): every grant lands
/// once, at a place of its own, and both stores read the same order.
async fn concurrent_grants_and_replacements_on_two_stores_keep_one_order(h: &Harness) {
    let other = h.another().await;
    let grants = (0..30).map(|n| {
        let store = if n % 2 == 0 { h.store.clone() } else { other.clone() };
        tokio::spawn(async move { store.grant("u1", &format!("F{n}")).await.unwrap() })
    });
    for grant in grants.collect::<Vec<_>>() {
        assert!(grant.await.unwrap(), "each facility is granted once");
    }
    let granted = h.store.facilities_of("u1").await.unwrap();
    assert_eq!(granted.iter().collect::<BTreeSet<_>>().len(), 30);
    assert_eq!(other.facilities_of("u1").await.unwrap(), granted);
    let positions =
        h.store.count("SELECT COUNT(DISTINCT position) FROM user_facilities WHERE user_id = 'u1'").await;
    assert_eq!(positions, 30, "no two grants share a place");
    // Replacements racing: the result is one of them exactly, never a mix.
    let (a, b) = (strings(&["A1", "A2", "A3"]), strings(&["B1", "B2"]));
    for _ in 0..5 {
        let (x, y) = tokio::join!(h.store.set_facilities("u2", &a), other.set_facilities("u2", &b));
        assert_eq!((x.unwrap(), y.unwrap()), (a.clone(), b.clone()), "each returns its own set");
        let now = h.store.facilities_of("u2").await.unwrap();
        assert!(now == a || now == b, "{now:?}");
    }
}
