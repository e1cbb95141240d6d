//! The contract's quotas and input rules end to end: the webhook limit per owner (also under
//! concurrent creates), non-empty secrets, deliverable event ids, no U+0000 where PostgreSQL
//! stores text, and the size of an event's `data`. Every refusal is checked to the byte against
//! the contract and to change nothing; `WEBHOOKS_E2E_BACKEND=postgres` runs it all on PostgreSQL.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use webhooks_client::signature::EVENT_ID_HEADER;
use webhooks_client::types::{
    CreateUserWebhookRequest, CreateUserWebhookRequestSecretsItem, UpdateUserWebhookRequestSecretsItem,
    UserWebhookEvent as Event,
};
use webhooks_e2e::receiver::Receiver;
use webhooks_e2e::{
    error_parts, json as parse, operation_example, trust_receiver, TestServer, PUBLISH_SCOPE,
};

const COLLECTION: &str = "/api/v2/public/webhooks/user";
const EVENTS: &str = "/api/v2/internal/events";
const JSON: (&str, &str) = ("Content-Type", "application/json");
/// Bound of every wait for a delivery (the worker polls every 500 ms).
const WAIT: Duration = Duration::from_secs(15);

/// The documented answer to a create beyond the (default) limit.
fn limit_reached() -> String {
    operation_example("post", COLLECTION, "400", "WebhookLimitReached")
}

fn bad_request(messages: &[&str]) -> Value {
    json!({"message": messages, "error": "Bad Request", "statusCode": 400})
}

fn hook(n: usize) -> CreateUserWebhookRequest {
    CreateUserWebhookRequest {
        url: format!("https://hook-{n}.example.com/"),
        events: vec![Event::All],
        secrets: None,
    }
}

/// Sends `body` to `path` with `method` as `token`: (status, body text).
async fn send(server: &TestServer, method: &str, path: &str, token: &str, body: &[u8]) -> (u16, String) {
    let authorization = format!("Bearer {token}");
    let response =
        server.raw(method, path, &[JSON, ("Authorization", &authorization)], Some(body.to_vec())).await;
    (response.status, response.text().to_owned())
}

/// The owner's webhooks as stored (ids in creation order).
async fn stored_ids(client: &webhooks_client::Client) -> Vec<String> {
    client.list_user_webhooks().await.unwrap().into_inner().data.into_iter().map(|w| w.id).collect()
}

#[tokio::test]
async fn an_owner_gets_the_default_number_of_webhooks_and_not_one_more_even_when_racing() {
    let server = TestServer::start().await;
    let client = server.client("client-a", "user-1");
    // 110 creates at once: exactly the limit's worth succeed, whichever they are.
    let creates: Vec<_> = (0..110)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move { client.create_user_webhook(&hook(n)).await })
        })
        .collect();
    let (mut created, mut refused) = (BTreeSet::new(), Vec::new());
    for create in creates {
        match create.await.unwrap() {
            Ok(answer) => {
                assert_eq!(answer.status(), 201);
                created.insert(answer.into_inner().data.id);
            }
            Err(error) => refused.push(error_parts(error).await),
        }
    }
    assert_eq!(created.len(), 100);
    // The generated client decodes the refusal as the documented `BadRequestError`.
    assert_eq!(refused, vec![(400, parse(&limit_reached())); 10]);
    let stored = stored_ids(&client).await;
    assert_eq!(stored.iter().cloned().collect::<BTreeSet<_>>(), created);
    assert_eq!(stored.len(), 100);

    // Byte for byte the documented example, and still nothing stored.
    let token = server.token("client-a", "user-1");
    let body = serde_json::to_vec(&hook(200)).unwrap();
    assert_eq!(send(&server, "POST", COLLECTION, &token, &body).await, (400, limit_reached()));
    assert_eq!(stored_ids(&client).await, stored);

    // The limit is per client and user: the same user of another client, and another user of
    // the same client, have their own.
    for (client_id, user) in [("client-b", "user-1"), ("client-a", "user-2")] {
        let other = server.client(client_id, user);
        assert_eq!(other.create_user_webhook(&hook(0)).await.unwrap().status(), 201, "{client_id} {user}");
    }
    // Deleting one makes room for exactly one.
    client.delete_user_webhook(&stored[0]).await.unwrap();
    assert_eq!(client.create_user_webhook(&hook(300)).await.unwrap().status(), 201);
    let error = client.create_user_webhook(&hook(301)).await.unwrap_err();
    assert_eq!(error_parts(error).await, (400, parse(&limit_reached())));
    assert_eq!(stored_ids(&client).await.len(), 100);
}

#[tokio::test]
async fn the_configured_limit_is_the_one_enforced_and_named() {
    let server = TestServer::start_with(|settings| settings.max_webhooks_per_owner = 2).await;
    let client = server.client("client-a", "user-1");
    for n in 0..2 {
        assert_eq!(client.create_user_webhook(&hook(n)).await.unwrap().status(), 201);
    }
    let token = server.token("client-a", "user-1");
    let body = serde_json::to_vec(&hook(2)).unwrap();
    let expected = limit_reached().replace("at most 100 webhooks", "at most 2 webhooks");
    assert_ne!(expected, limit_reached());
    assert_eq!(send(&server, "POST", COLLECTION, &token, &body).await, (400, expected));
    assert_eq!(stored_ids(&client).await.len(), 2);
}

#[tokio::test]
async fn empty_secrets_are_refused_on_create_and_update_and_change_nothing() {
    let server = TestServer::start().await;
    let client = server.client("client-a", "user-1");
    let token = server.token("client-a", "user-1");
    let not_empty = "each value in secrets should not be empty";
    let cases: &[(&str, &[&str])] = &[
        (r#"[""]"#, &[not_empty]),
        (r#"["a-secret", ""]"#, &[not_empty]),
        (r#"["", 5]"#, &["each value in secrets must be a string", not_empty]),
        (r#"["", "", ""]"#, &["secrets must contain no more than 2 elements", not_empty]),
        // Unchanged answers: a null item is no string, and a string is no array.
        (r#"[null]"#, &["each value in secrets must be a string"]),
        (r#""""#, &["secrets must contain no more than 2 elements", "secrets must be an array"]),
    ];
    for (secrets, messages) in cases {
        let body = format!(r#"{{"url":"https://example.com/hook","events":["all"],"secrets":{secrets}}}"#);
        let (status, text) = send(&server, "POST", COLLECTION, &token, body.as_bytes()).await;
        assert_eq!((status, parse(&text)), (400, bad_request(messages)), "create with {secrets}");
    }
    assert!(stored_ids(&client).await.is_empty(), "a refused create stores nothing");

    let created = client
        .create_user_webhook(&CreateUserWebhookRequest {
            secrets: Some(vec!["kept-secret".parse().unwrap()]),
            ..hook(0)
        })
        .await
        .unwrap()
        .into_inner()
        .data;
    let item = format!("{COLLECTION}/{}", created.id);
    for (secrets, messages) in cases {
        let body = format!(r#"{{"events":["facility.creation.accepted"],"secrets":{secrets}}}"#);
        let (status, text) = send(&server, "PATCH", &item, &token, body.as_bytes()).await;
        assert_eq!((status, parse(&text)), (400, bad_request(messages)), "update with {secrets}");
    }
    let stored = client.get_user_webhook(&created.id).await.unwrap().into_inner().data;
    assert_eq!((stored.secrets, stored.events), (vec!["kept-secret".to_owned()], vec![Event::All]));

    // The generated client cannot even build one.
    assert!("".parse::<CreateUserWebhookRequestSecretsItem>().is_err());
    assert!("".parse::<UpdateUserWebhookRequestSecretsItem>().is_err());
}

/// A server whose worker delivers to `receiver`, one webhook of `user-1` there, and a token that
/// may publish.
async fn publishing_setup(
    receiver: &Receiver,
    configure: impl FnOnce(&mut webhooks_server::config::Settings),
) -> (TestServer, String) {
    let server = TestServer::start_with(|settings| {
        trust_receiver(settings, receiver);
        configure(settings);
    })
    .await;
    let request = CreateUserWebhookRequest {
        url: receiver.url("/hook"),
        events: vec![Event::All],
        secrets: Some(vec!["rules-secret".parse().unwrap()]),
    };
    server.client("client-a", "user-1").create_user_webhook(&request).await.unwrap();
    let publisher = server.token_with_scopes("publisher", "event-source", &[PUBLISH_SCOPE]);
    (server, publisher)
}

/// The delivery log of `user-1` (through `searchWebhookLogs`).
async fn log(server: &TestServer) -> Vec<Value> {
    let authorization = format!("Bearer {}", server.token("client-a", "user-1"));
    let response =
        server.raw("GET", "/api/v2/public/webhooks/logs", &[("Authorization", &authorization)], None).await;
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()["data"].as_array().expect("data").clone()
}

/// A publication of `facility.creation.accepted` for `user-1` with these JSON texts.
fn event(id: Option<&str>, user: &str, data: &str) -> Vec<u8> {
    let id = id.map(|id| format!(r#""id":{id},"#)).unwrap_or_default();
    format!(r#"{{{id}"eventType":"facility.creation.accepted","userId":{user},"data":{data}}}"#).into_bytes()
}

#[tokio::test]
async fn event_ids_are_visible_ascii_and_user_ids_hold_no_nul() {
    let receiver = Receiver::start().await;
    let (server, publisher) = publishing_setup(&receiver, |_| {}).await;
    let data = r#"{"facilityId":"F"}"#;
    let id_rule = "id must match /^[\\x21-\\x7E]*$/ regular expression";
    let long = format!("\"{}\"", "x".repeat(201));
    let cases: Vec<(String, &str, Vec<&str>)> = vec![
        // Each of these was stored and then failed on every attempt: not a header value.
        (r#""evt\u0001""#.into(), r#""user-1""#, vec![id_rule]),
        (r#""evt 1""#.into(), r#""user-1""#, vec![id_rule]),
        (r#""evt\u007f""#.into(), r#""user-1""#, vec![id_rule]),
        (r#""évt""#.into(), r#""user-1""#, vec![id_rule]),
        (r#""evt\n""#.into(), r#""user-1""#, vec![id_rule]),
        // PostgreSQL text cannot hold U+0000 (it answered 500; SQLite stored an unreachable row).
        (r#""evt\u0000""#.into(), r#""user-1""#, vec![id_rule]),
        (
            r#""evt-1""#.into(),
            r#""user-1\u0000""#,
            vec!["userId must match /^[^\\x00]*$/ regular expression"],
        ),
        (long, r#""user-1""#, vec!["id must be shorter than or equal to 200 characters"]),
        (r#""""#.into(), r#""user-1""#, vec!["id must be longer than or equal to 1 characters"]),
    ];
    for (id, user, messages) in &cases {
        let (status, text) = send(&server, "POST", EVENTS, &publisher, &event(Some(id), user, data)).await;
        assert_eq!((status, parse(&text)), (400, bad_request(messages)), "id {id}, userId {user}");
    }
    assert_eq!(log(&server).await, Vec::<Value>::new(), "nothing was published");

    // The whole visible range, at the longest, is published and arrives as the header.
    let visible: String = (0x21u8..=0x7E).map(char::from).collect();
    let id = format!("{visible}{}", "z".repeat(200 - visible.len()));
    let body = event(Some(&serde_json::to_string(&id).unwrap()), r#""user-1""#, data);
    let (status, text) = send(&server, "POST", EVENTS, &publisher, &body).await;
    assert_eq!(status, 202, "{text}");
    assert_eq!(parse(&text)["data"]["id"], id.as_str());
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].header(EVENT_ID_HEADER), Some(id.as_str()));
}

#[tokio::test]
async fn nul_inside_data_is_stored_delivered_and_logged_as_sent() {
    let receiver = Receiver::start().await;
    let (server, publisher) = publishing_setup(&receiver, |_| {}).await;
    let data = r#"{"facilityId":"F\u0000G","k\u0000":["\u0000"]}"#;
    let (status, text) = send(&server, "POST", EVENTS, &publisher, &event(None, r#""user-1""#, data)).await;
    assert_eq!(status, 202, "{text}");
    let got = receiver.wait_for(1, WAIT).await;
    let sent = format!(r#"{{"data":{data},"eventType":"facility.creation.accepted"}}"#);
    assert_eq!(got[0].body_text(), sent, "delivered as published, escapes and all");
    let entries = log(&server).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["requestPayload"], parse(&sent));
    assert_eq!(entries[0]["requestPayload"]["data"]["facilityId"], "F\u{0}G");
}

/// `data` of exactly `len` bytes as compact JSON: `{"facilityId":"F","pad":"xx…"}`.
fn data_of_len(len: usize) -> String {
    let shell = r#"{"facilityId":"F","pad":""}"#;
    format!(r#"{{"facilityId":"F","pad":"{}"}}"#, "x".repeat(len - shell.len()))
}

#[tokio::test]
async fn data_is_limited_in_bytes_of_compact_json() {
    let receiver = Receiver::start().await;
    let (server, publisher) = publishing_setup(&receiver, |settings| settings.event_data_limit = 300).await;
    let too_large = ["data must be shorter than or equal to 300 bytes as JSON"];
    let publish = |data: String| {
        let (server, publisher) = (&server, &publisher);
        async move {
            let (status, text) =
                send(server, "POST", EVENTS, publisher, &event(None, r#""user-1""#, &data)).await;
            (status, parse(&text))
        }
    };
    assert_eq!(publish(data_of_len(300)).await.0, 202);
    // Whitespace is not counted: what is stored and delivered is the compact form.
    let spaced = data_of_len(300).replace(':', " : ").replace(',', " , ");
    assert!(spaced.len() > 300);
    assert_eq!(publish(spaced).await.0, 202);
    assert_eq!(publish(data_of_len(301)).await, (400, bad_request(&too_large)));
    // With the fields' own messages after it.
    let (status, body) = publish(format!(r#"{{"pad":"{}"}}"#, "x".repeat(400))).await;
    assert_eq!((status, body), (400, bad_request(&[too_large[0], "data.facilityId must be a string"])));
    let delivered = receiver.wait_for(2, WAIT).await;
    assert!(delivered.iter().all(|r| r.body.len() < 400), "only the two that fit were sent");
    assert_eq!(log(&server).await.len(), 2);
}

#[tokio::test]
async fn the_default_data_limit_answers_the_documented_example() {
    let receiver = Receiver::start().await;
    let (server, publisher) = publishing_setup(&receiver, |_| {}).await;
    let documented = operation_example("post", EVENTS, "400", "DataTooLarge");
    let body = event(None, r#""user-1""#, &data_of_len(65537));
    assert_eq!(send(&server, "POST", EVENTS, &publisher, &body).await, (400, documented));
    let body = event(None, r#""user-1""#, &data_of_len(65536));
    assert_eq!(send(&server, "POST", EVENTS, &publisher, &body).await.0, 202);
}

/// `webhooks-server publish` writes straight into the database: it must refuse what the API
/// refuses, or it could record an event that can never be delivered.
#[tokio::test]
async fn the_publish_command_applies_the_same_rules() {
    let receiver = Receiver::start().await;
    let (server, _) = publishing_setup(&receiver, |settings| settings.event_data_limit = 300).await;
    let publish = |id: &str, data: &str| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_webhooks-server-under-test"));
        // Flags only: no `WEBHOOKS_*` of whoever runs the tests.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("WEBHOOKS_") {
                command.env_remove(name);
            }
        }
        command.arg("--data-dir").arg(server.data_dir.path()).arg("--database-url").arg(&server.database_url);
        command.args(["--event-data-limit", "300", "publish", "--type", "facility.creation.accepted"]);
        command.args(["--user", "user-1", "--id", id, "--data", data]);
        command.output()
    };
    for (id, data, message) in [
        ("evt\u{1}", data_of_len(30), "id must match /^[\\x21-\\x7E]*$/ regular expression"),
        ("evt 1", data_of_len(30), "id must match /^[\\x21-\\x7E]*$/ regular expression"),
        ("evt-big", data_of_len(301), "data must be shorter than or equal to 300 bytes as JSON"),
    ] {
        let output = publish(id, &data).await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(message), "{id:?}: {stderr}");
    }
    let output = publish("evt-ok", &data_of_len(300)).await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let entries = log(&server).await;
    assert_eq!(entries.iter().map(|e| e["eventId"].clone()).collect::<Vec<_>>(), [json!("evt-ok")]);
}
