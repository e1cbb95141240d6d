//! The soak's world: the receiver's listeners, the delivery users and their webhooks (one per
//! kind of receiver), the churn users, the tokens, and the ledger of published events.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};

use super::load::Stats;
use super::Config;
use crate::receiver::{Behaviour, Receiver};
use crate::server::{self, Server};

pub const EVENT_TYPES: [&str; 4] = [
    "facility.creation.accepted",
    "facility.creation.rejected",
    "facility.user-connection.accepted",
    "facility.user-connection.rejected",
];
/// How often each of EVENT_TYPES is published, in percent.
pub const EVENT_WEIGHTS: [u32; 4] = [35, 15, 35, 15];
/// The type the hanging receivers subscribe to (published least).
const RARE_TYPE: &str = "facility.user-connection.rejected";
const CREATION_TYPES: &[&str] = &["facility.creation.accepted", "facility.creation.rejected"];

/// What a delivery webhook points at, and so what must become of its deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Answers 200 at once; subscribed to `all`.
    Healthy,
    /// Answers 200 at once; subscribed to the creation events only (the event filter).
    HealthyCreationOnly,
    /// Answers 503 to an event's first attempt, 200 to the retry.
    FailsFirstAttempt,
    /// Answers 500, always.
    Error500,
    /// A port nobody listens on: the connection is refused.
    Refused,
    /// Reads the request and never answers (the delivery times out).
    Hangs,
    /// Accepts TCP and never starts TLS (the handshake times out).
    BlackHole,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Healthy,
        Kind::HealthyCreationOnly,
        Kind::FailsFirstAttempt,
        Kind::Error500,
        Kind::Refused,
        Kind::Hangs,
        Kind::BlackHole,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Healthy => "healthy (200), events all",
            Kind::HealthyCreationOnly => "healthy (200), creation events only",
            Kind::FailsFirstAttempt => "first attempt 503, retry 200",
            Kind::Error500 => "always 500",
            Kind::Refused => "connection refused",
            Kind::Hangs => "never answers (delivery timeout)",
            Kind::BlackHole => "TCP accepted, no TLS (handshake timeout)",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Kind::Healthy => "ok-all",
            Kind::HealthyCreationOnly => "ok-creation",
            Kind::FailsFirstAttempt => "fails-first",
            Kind::Error500 => "error-500",
            Kind::Refused => "refused",
            Kind::Hangs => "hangs",
            Kind::BlackHole => "black-hole",
        }
    }

    /// Whether every delivery must end in success (else: in failure, every attempt made).
    pub fn delivers(self) -> bool {
        matches!(self, Kind::Healthy | Kind::HealthyCreationOnly | Kind::FailsFirstAttempt)
    }

    fn events(self) -> Vec<&'static str> {
        match self {
            Kind::HealthyCreationOnly => CREATION_TYPES.to_vec(),
            // Slots held for a whole timeout: a few of them, not one per event.
            Kind::Hangs | Kind::BlackHole => vec![RARE_TYPE],
            _ => vec!["all"],
        }
    }

    /// Only the first delivery user has the hanging receivers.
    fn for_user(self, user: usize) -> bool {
        user == 0 || !matches!(self, Kind::Hangs | Kind::BlackHole)
    }
}

pub struct Hook {
    pub user: usize,
    pub kind: Kind,
    pub id: String,
    /// The receiver path (the key of its receipts).
    pub path: String,
    pub events: Vec<&'static str>,
}

impl Hook {
    pub fn subscribed(&self, event_type: &str) -> bool {
        self.events.iter().any(|e| *e == "all" || *e == event_type)
    }
}

pub struct DeliveryUser {
    pub name: String,
    pub token: String,
}

#[derive(Clone)]
pub struct ChurnHook {
    pub id: String,
    pub url: String,
    pub events: Vec<&'static str>,
}

pub struct ChurnUser {
    pub token: String,
    /// The user's webhooks not in use by a request; get and update take one out meanwhile.
    pub pool: Mutex<Vec<ChurnHook>>,
    /// Webhooks that exist or may (being created, or a delete that got no answer): kept
    /// under the pool size.
    pub live: AtomicUsize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// 202 with the expected number of deliveries.
    Accepted,
    /// No answer, or an unexpected one: it may or may not be recorded.
    Unsure,
}

pub struct Event {
    pub id: String,
    pub user: usize,
    pub event_type: &'static str,
    pub state: Published,
}

pub struct World {
    pub http: reqwest::Client,
    pub base: String,
    pub receiver: Receiver,
    pub hooks: Vec<Hook>,
    pub users: Vec<DeliveryUser>,
    pub churn: Vec<ChurnUser>,
    pub publish_token: String,
    pub churn_url_base: String,
    /// Live webhooks per churn user at most.
    pub churn_pool: usize,
    pub events: Mutex<Vec<Event>>,
    pub stats: Stats,
    pub seed: u64,
    /// Holds the refused port.
    _refused: tokio::net::TcpSocket,
}

impl World {
    pub async fn build(
        cfg: &Config,
        server: &Server,
        data_dir: &Path,
        receiver: &Receiver,
    ) -> anyhow::Result<Arc<Self>> {
        let mut addr_of = HashMap::new();
        for (kind, behaviour) in [
            (Kind::FailsFirstAttempt, Behaviour::FailFirst),
            (Kind::Error500, Behaviour::Error500),
            (Kind::Hangs, Behaviour::Hang),
            (Kind::BlackHole, Behaviour::BlackHole),
        ] {
            addr_of.insert(kind, receiver.listen(behaviour).await?);
        }
        addr_of.insert(Kind::Healthy, receiver.addr);
        addr_of.insert(Kind::HealthyCreationOnly, receiver.addr);
        let refused = refused_port()?;
        addr_of.insert(Kind::Refused, refused.local_addr()?);

        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(cfg.in_flight.min(256))
            .timeout(super::REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            .build()?;
        let token = |sub: String, scopes: &'static [&'static str]| async move {
            server::token(&cfg.binary, data_dir, &sub, scopes).await
        };
        let publish_token = token("soak-publisher".into(), &["events:publish"]).await?;
        let mut users = Vec::new();
        for u in 0..cfg.users {
            let name = format!("soak-user-{u}");
            users.push(DeliveryUser { token: token(name.clone(), &[]).await?, name });
        }
        let mut churn = Vec::new();
        for c in 0..cfg.churn_users {
            churn.push(ChurnUser {
                token: token(format!("soak-churn-{c}"), &[]).await?,
                pool: Mutex::new(Vec::new()),
                live: AtomicUsize::new(0),
            });
        }
        let mut world = Self {
            http,
            base: server.base.clone(),
            receiver: receiver.clone(),
            hooks: Vec::new(),
            users,
            churn,
            publish_token,
            churn_url_base: receiver.url("/churn"),
            churn_pool: cfg.churn_pool,
            events: Mutex::new(Vec::new()),
            stats: Stats::default(),
            seed: cfg.seed,
            _refused: refused,
        };
        for user in 0..cfg.users {
            for kind in Kind::ALL.into_iter().filter(|k| k.for_user(user)) {
                let path = format!("/u{user}/{}", kind.slug());
                let url = format!("https://{}{path}", addr_of[&kind]);
                let events = kind.events();
                let (id, secret) = world.create_delivery_hook(user, &url, &events).await?;
                receiver.shared.register(&path, &secret);
                world.hooks.push(Hook { user, kind, id, path, events });
            }
        }
        for user in 0..cfg.users {
            let listed = world.list_len(&world.users[user].token).await?;
            let expected = world.hooks_of(user).count();
            if listed != expected {
                bail!("user {user} lists {listed} webhooks, {expected} were created");
            }
        }
        Ok(Arc::new(world))
    }

    pub fn hooks_of(&self, user: usize) -> impl Iterator<Item = &Hook> {
        self.hooks.iter().filter(move |h| h.user == user)
    }

    /// Deliveries an event of `event_type` for `user` must schedule.
    pub fn expected_deliveries(&self, user: usize, event_type: &str) -> usize {
        self.hooks_of(user).filter(|h| h.subscribed(event_type)).count()
    }

    async fn create_delivery_hook(
        &self,
        user: usize,
        url: &str,
        events: &[&str],
    ) -> anyhow::Result<(String, String)> {
        let response = self
            .http
            .post(format!("{}/api/v2/public/webhooks/user", self.base))
            .bearer_auth(&self.users[user].token)
            .header("content-type", "application/json")
            .body(serde_json::json!({"url": url, "events": events}).to_string())
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = serde_json::from_str(&response.text().await?)?;
        if status.as_u16() != 201 {
            bail!("creating a webhook for {url}: {status} {body}");
        }
        let id = body["data"]["id"].as_str().with_context(|| format!("no id in {body}"))?;
        let secret = body["data"]["secrets"][0].as_str().with_context(|| format!("no secret in {body}"))?;
        Ok((id.to_owned(), secret.to_owned()))
    }

    async fn list_len(&self, token: &str) -> anyhow::Result<usize> {
        let text = self
            .http
            .get(format!("{}/api/v2/public/webhooks/user", self.base))
            .bearer_auth(token)
            .send()
            .await?
            .text()
            .await?;
        let body: serde_json::Value = serde_json::from_str(&text)?;
        Ok(body["data"].as_array().map(Vec::len).unwrap_or(0))
    }

    /// Publishes again (same id: the server schedules nothing twice) every event whose publish
    /// got no clear answer, up to three times each, so that each is known to be recorded.
    /// Returns (events retried, still unsure).
    pub async fn republish_unsure(&self) -> (usize, usize) {
        let unsure: Vec<(usize, String, usize, &'static str)> = {
            let events = self.events.lock().unwrap();
            events
                .iter()
                .enumerate()
                .filter(|(_, e)| e.state == Published::Unsure)
                .map(|(i, e)| (i, e.id.clone(), e.user, e.event_type))
                .collect()
        };
        let mut still = 0;
        for (index, id, user, event_type) in &unsure {
            let mut accepted = false;
            for _ in 0..3 {
                if let Ok(202) = self.publish_status(id, *user, event_type).await {
                    accepted = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            if accepted {
                self.events.lock().unwrap()[*index].state = Published::Accepted;
            } else {
                still += 1;
            }
        }
        (unsure.len(), still)
    }

    async fn publish_status(&self, id: &str, user: usize, event_type: &str) -> anyhow::Result<u16> {
        let response = self
            .http
            .post(format!("{}/api/v2/internal/events", self.base))
            .bearer_auth(&self.publish_token)
            .header("content-type", "application/json")
            .body(event_request(id, &self.users[user].name, event_type))
            .send()
            .await?;
        let status = response.status().as_u16();
        let _ = response.bytes().await?;
        Ok(status)
    }
}

/// A publish request with every field any event type requires.
pub fn event_request(id: &str, user: &str, event_type: &str) -> String {
    serde_json::json!({
        "id": id,
        "eventType": event_type,
        "userId": user,
        "data": {"facilityId": format!("NUR-{id}"), "userId": user, "facilityName": format!("Clinic {id}")},
    })
    .to_string()
}

/// A port on 127.0.0.1 that refuses connections: bound, never listening, and kept (so no
/// one else gets it while the socket lives).
fn refused_port() -> anyhow::Result<tokio::net::TcpSocket> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse()?)?;
    Ok(socket)
}
