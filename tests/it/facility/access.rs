//! Who gets what: facility webhooks are their owner's alone, name only facilities their user can
//! access, and receive a shift event only while that access lasts, over real TLS, signed.

use std::time::Duration;

use serde_json::{json, Value};
use webhooks_client::signature::{verify, DEFAULT_TOLERANCE, EVENT_ID_HEADER};
use webhooks_client::types::{
    CreateWebhookRequest, EventType, FacilityWebhook, FacilityWebhookEvent as Event, PublishEventRequest,
    PublishedEvent,
};
use webhooks_e2e::receiver::Receiver;
use webhooks_e2e::{trust_receiver, TestServer};

use super::set_facilities;

const WAIT: Duration = Duration::from_secs(15);
const SECRET: &str = "facility-secret-for-the-receiver-01";

fn create_request(url: String, events: Vec<Event>, facilities: Option<&[&str]>) -> CreateWebhookRequest {
    CreateWebhookRequest {
        url,
        events,
        facilities: facilities.map(|f| f.iter().map(|s| s.to_string()).collect()),
        secrets: Some(vec![SECRET.parse().expect("a valid secret")]),
    }
}

async fn create(client: &webhooks_client::Client, request: CreateWebhookRequest) -> FacilityWebhook {
    let response = client.create_facility_webhook(&request).await.expect("creating a facility webhook");
    assert_eq!(response.status(), 201);
    response.into_inner().data
}

async fn publish(server: &TestServer, event_type: EventType, data: Value, id: &str) -> PublishedEvent {
    let Value::Object(data) = data else { panic!("an object") };
    let request =
        PublishEventRequest { data, event_type, id: Some(id.parse().expect("an id")), user_id: None };
    let response = server.publisher().publish_event(&request).await.expect("publishing");
    assert_eq!(response.status(), 202);
    response.into_inner().data
}

fn shift(facility: &str) -> Value {
    json!({"shiftId": "12120878", "facilityId": facility, "at": "2026-12-01T10:00:00.000Z"})
}

#[tokio::test]
async fn shift_events_reach_explicit_and_following_webhooks_while_access_lasts() {
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(|s| trust_receiver(s, &receiver)).await;
    set_facilities(&server, "user-a", &["NUR-1", "NUR-2"]).await;
    set_facilities(&server, "user-b", &["NUR-3"]).await;
    let a = server.client("client-a", "user-a");
    let b = server.client("client-b", "user-b");
    let explicit =
        create(&a, create_request(receiver.url("/explicit"), vec![Event::ShiftCreated], Some(&["NUR-1"])))
            .await;
    assert_eq!(explicit.facilities, ["NUR-1"]);
    let follows = create(&a, create_request(receiver.url("/follows"), vec![Event::All], None)).await;
    assert_eq!(follows.facilities, ["NUR-1", "NUR-2"], "a webhook without facilities lists its user's");
    create(&b, create_request(receiver.url("/other"), vec![Event::All], None)).await;

    assert_eq!(publish(&server, EventType::ShiftCreated, shift("NUR-1"), "e1").await.deliveries, 2);
    assert_eq!(publish(&server, EventType::ShiftCreated, shift("NUR-2"), "e2").await.deliveries, 1);
    assert_eq!(publish(&server, EventType::ShiftCancelled, shift("NUR-3"), "e3").await.deliveries, 1);
    assert_eq!(publish(&server, EventType::ShiftCancelled, shift("NUR-1"), "e4").await.deliveries, 1);
    assert_eq!(publish(&server, EventType::ShiftCreated, shift("NUR-9"), "e5").await.deliveries, 0);
    let received = receiver.wait_for(5, WAIT).await;
    let ids = |path: &str| {
        let mut ids: Vec<String> = received
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.header(EVENT_ID_HEADER).expect("an event id").to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids("/explicit"), ["e1"]);
    assert_eq!(ids("/follows"), ["e1", "e2", "e4"]);
    assert_eq!(ids("/other"), ["e3"], "a user never receives another user's facilities' events");
    for request in &received {
        verify(&request.headers, &request.body, &[SECRET], DEFAULT_TOLERANCE)
            .expect("signed with the secret");
        let body = request.body_json();
        assert_eq!(body["data"]["shiftId"], "12120878");
        assert!(body["eventType"].as_str().is_some_and(|t| t.starts_with("shift.")), "{body}");
        let errors = webhooks::server::callbacks::facility_event::validate_body(&body);
        assert!(errors.is_empty(), "the delivery breaks the contract's callback: {errors:?}");
    }

    // Revoking NUR-1 stops its deliveries to both webhooks at once; the explicit webhook keeps
    // naming it (it is its owner's choice), the following one no longer lists it.
    set_facilities(&server, "user-a", &["NUR-2"]).await;
    assert_eq!(publish(&server, EventType::ShiftCreated, shift("NUR-1"), "e6").await.deliveries, 0);
    assert_eq!(publish(&server, EventType::ShiftCreated, shift("NUR-2"), "e7").await.deliveries, 1);
    let listed = a.list_facility_webhooks().await.unwrap().into_inner().data;
    let facilities: Vec<&Vec<String>> = listed.iter().map(|w| &w.facilities).collect();
    assert_eq!(facilities, [&vec!["NUR-1".to_owned()], &vec!["NUR-2".to_owned()]]);
    let received = receiver.wait_for(6, WAIT).await;
    assert_eq!(received.last().and_then(|r| r.header(EVENT_ID_HEADER)), Some("e7"));

    // The log: every entry names its facility, and `facilitiesIds` (one value: a list of one)
    // and `eventType` narrow it.
    let only = vec!["NUR-2".to_owned()];
    let logs = a.search_webhook_logs(None, None, Some(&only), None, None, None, None, None).await.unwrap();
    let mut events: Vec<(String, Option<String>)> =
        logs.into_inner().data.into_iter().map(|e| (e.event_id, e.facility_id)).collect();
    events.sort();
    assert_eq!(events, [("e2".into(), Some("NUR-2".into())), ("e7".into(), Some("NUR-2".into()))]);
    let cancelled = a
        .search_webhook_logs(None, Some(EventType::ShiftCancelled), None, None, None, None, None, None)
        .await
        .unwrap()
        .into_inner()
        .data;
    assert_eq!(cancelled.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(), ["e4"]);
    let both = vec!["NUR-1".to_owned(), "NUR-3".to_owned()];
    let logs = a.search_webhook_logs(None, None, Some(&both), None, None, None, None, None).await.unwrap();
    assert_eq!(logs.into_inner().data.len(), 3, "e1 twice and e4; NUR-3 is another user's");
}

#[tokio::test]
async fn accepted_requests_grant_access_and_user_and_facility_webhooks_stay_apart() {
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(|s| trust_receiver(s, &receiver)).await;
    let a = server.client("client-a", "user-a");
    let follows = create(&a, create_request(receiver.url("/follows"), vec![Event::All], Some(&[]))).await;
    assert!(follows.facilities.is_empty(), "no access yet");
    let denied = a
        .create_facility_webhook(&create_request(
            receiver.url("/x"),
            vec![Event::All],
            Some(&["NUR-7", "NUR-8", "NUR-7"]),
        ))
        .await
        .unwrap_err();
    let (status, body) = webhooks_e2e::error_parts(denied).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"message": ["facilities must only contain facilities you have access to: NUR-7, NUR-8"], "error": "Bad Request", "statusCode": 400})
    );

    // An accepted creation request grants its facility; a rejected one does not.
    let granted = |t, f: &str| {
        json!({"facilityId": f, "userId": "user-a"}).as_object().cloned().map(|data| PublishEventRequest {
            data,
            event_type: t,
            id: None,
            user_id: Some("user-a".parse().expect("a user id")),
        })
    };
    let publisher = server.publisher();
    for (t, f) in [
        (EventType::FacilityCreationAccepted, "NUR-7"),
        (EventType::FacilityUserConnectionRejected, "NUR-8"),
        (EventType::FacilityUserConnectionAccepted, "NUR-9"),
    ] {
        publisher.publish_event(&granted(t, f).unwrap()).await.expect("publishing");
    }
    let now = a.get_facility_webhook(&follows.id).await.unwrap().into_inner().data;
    assert_eq!(now.facilities, ["NUR-7", "NUR-9"], "accepted requests grant, in order");
    // A facility webhook listening to `all` receives no user event, and the collections of the
    // two resources do not see each other's webhooks.
    assert!(receiver.requests().is_empty(), "{:?}", receiver.requests());
    assert!(a.list_user_webhooks().await.unwrap().into_inner().data.is_empty());
    assert_eq!(a.get_user_webhook(&follows.id).await.unwrap_err().status().map(|s| s.as_u16()), Some(404));

    // Another client of the same user: same access, none of the webhooks.
    let other = server.client("client-other", "user-a");
    assert!(other.list_facility_webhooks().await.unwrap().into_inner().data.is_empty());
    for status in [
        other.get_facility_webhook(&follows.id).await.unwrap_err().status(),
        other.delete_facility_webhook(&follows.id).await.unwrap_err().status(),
    ] {
        assert_eq!(status.map(|s| s.as_u16()), Some(404));
    }
    let own =
        create(&other, create_request(receiver.url("/own"), vec![Event::ShiftCreated], Some(&["NUR-9"])))
            .await;
    assert_eq!(own.facilities, ["NUR-9"], "access is per user, whatever the client");
}
