//! Harness shared by the end-to-end tests (see the test targets next to this crate's
//! `Cargo.toml`): the real server on `127.0.0.1:0` with a fresh data directory (so a fresh
//! SQLite file and fresh keys), tokens it accepts, the generated client, a raw HTTP client for
//! byte-level checks, and the documented texts read from `openapi.yaml`.

pub mod process;
pub mod receiver;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use webhooks_server::app::App;
use webhooks_server::auth::Authenticator;
use webhooks_server::config::Settings;
use webhooks_server::delivery::Worker;

/// The role the default configuration allows.
pub const FACILITY_USER: &str = "FACILITY_USER";
/// A real role the default configuration does not allow: a valid token that gets 403.
pub const NURSE_USER: &str = "NURSE_USER";
/// The scope `publishEvent` requires.
pub const PUBLISH_SCOPE: &str = "events:publish";

/// reqwest is built with `rustls-no-provider`: building any client (even for plain HTTP)
/// panics unless a process-wide crypto provider is installed first.
pub fn install_crypto_provider() {
    // Err means another test of this process installed it already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A server running in this test's runtime; stopped when dropped.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    /// The data directory (database and generated keys); deleted on drop.
    pub data_dir: tempfile::TempDir,
    auth: Authenticator,
    http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    /// The app's delivery worker: its loop runs unless `no_worker` was set, in which
    /// case a test steps it with `deliver_due()`.
    pub worker: Arc<Worker>,
    /// The database URL the server uses (SQLite in `data_dir`, or PostgreSQL: see [`E2E_BACKEND_ENV`]).
    pub database_url: String,
    /// Declared last, so dropped after the server is told to stop.
    _database: Option<TestDatabase>,
}

/// `WEBHOOKS_E2E_BACKEND=postgres` runs every in-process server of the suite on a fresh
/// PostgreSQL database of its own (from [`TEST_DATABASE_ENV`]); unset, they use SQLite.
pub const E2E_BACKEND_ENV: &str = "WEBHOOKS_E2E_BACKEND";

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// [`Self::start`] with the default settings of a fresh data dir adjusted by `configure`
    /// first (delivery settings, e.g. [`trust_receiver`]; `settings.data_dir` is the temporary
    /// directory, a good place for files the settings point to). `bind` is forced to port 0.
    /// The rate limit is off (`rate_limit = 0`) unless `configure` sets one: most tests send
    /// far more than a client's 100 requests a minute.
    pub async fn start_with(configure: impl FnOnce(&mut Settings)) -> Self {
        install_crypto_provider();
        let data_dir = tempfile::tempdir().expect("creating a temporary data dir");
        let mut settings = Settings::for_data_dir(data_dir.path()).expect("default settings");
        let database = match std::env::var(E2E_BACKEND_ENV).as_deref() {
            Ok("postgres") => Some(
                TestDatabase::from_env("the end-to-end suite")
                    .await
                    .unwrap_or_else(|| panic!("{E2E_BACKEND_ENV}=postgres needs {TEST_DATABASE_ENV}")),
            ),
            Ok("sqlite") | Err(_) => None,
            Ok(other) => panic!("{E2E_BACKEND_ENV}={other}: expected sqlite or postgres"),
        };
        if let Some(database) = &database {
            settings.database_url = Some(database.url.clone());
        }
        settings.rate_limit = 0;
        configure(&mut settings);
        let database_url = settings.database_url();
        settings.bind = "127.0.0.1:0".parse().expect("socket address");
        // Bound before `serve` starts: connections made from now on wait in the backlog,
        // so no readiness polling is needed.
        let listener = TcpListener::bind(settings.bind).await.expect("binding port 0");
        let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
        // Same settings, same data dir => the key the server verifies with.
        let auth = Authenticator::new(&settings.auth()).expect("authenticator");
        let app = App::build(settings).await.expect("building the app");
        let worker = app.worker.clone();
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let stop = async {
                let _ = stopped.await;
            };
            // A panic here would be swallowed by the task; the test's next request fails.
            if let Err(e) = app.serve(listener, stop).await {
                eprintln!("server failed: {e:#}");
            }
        });
        Self {
            base_url,
            data_dir,
            auth,
            http: raw_http_client(),
            shutdown: Some(shutdown),
            worker,
            database_url,
            _database: database,
        }
    }

    /// A token of `client_id`/`sub` with the allowed role.
    pub fn token(&self, client_id: &str, sub: &str) -> String {
        self.token_with_role(client_id, sub, FACILITY_USER)
    }

    pub fn token_with_role(&self, client_id: &str, sub: &str, role: &str) -> String {
        self.auth.mint(client_id, sub, role, &[], Duration::from_secs(3600)).expect("minting a token")
    }

    /// A token of `client_id`/`sub` with the allowed role and these scopes.
    pub fn token_with_scopes(&self, client_id: &str, sub: &str, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        self.auth
            .mint(client_id, sub, FACILITY_USER, &scopes, Duration::from_secs(3600))
            .expect("minting a token")
    }

    /// The generated client with a token that may publish events (scope [`PUBLISH_SCOPE`]).
    pub fn publisher(&self) -> webhooks_client::Client {
        self.client_with_token(&self.token_with_scopes("publisher", "event-source", &[PUBLISH_SCOPE]))
    }

    /// The generated client, authenticated as `client_id`/`sub` with the allowed role.
    pub fn client(&self, client_id: &str, sub: &str) -> webhooks_client::Client {
        self.client_with_token(&self.token(client_id, sub))
    }

    pub fn client_with_token(&self, token: &str) -> webhooks_client::Client {
        webhooks_client::with_token(&self.base_url, token).expect("building the client")
    }

    /// The generated client without any `Authorization` header.
    pub fn anonymous_client(&self) -> webhooks_client::Client {
        webhooks_client::anonymous(&self.base_url).expect("building the client")
    }

    /// Sends exactly these headers and body bytes (`None`: no body). reqwest adds no
    /// `Content-Type` of its own for a raw body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> RawResponse {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut request = self.http.request(method, format!("{}{path}", self.base_url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("sending the request");
        RawResponse {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            content_type: response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .map(|v| v.to_str().expect("ASCII content type").to_owned()),
            body: response.bytes().await.expect("reading the body").to_vec(),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A client with no default headers, for requests the generated client cannot express.
pub fn raw_http_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("building the HTTP client")
}

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }
}

/// Status and body of an error the generated client returned. The body is re-encoded from
/// the decoded error type: the generated error enums are untagged and pick a variant by
/// shape, not by status, so only status and content are meaningful.
pub async fn error_parts<E: serde::Serialize + std::fmt::Debug>(
    error: webhooks_client::Error<E>,
) -> (u16, serde_json::Value) {
    match error {
        webhooks_client::Error::ErrorResponse(response) => (
            response.status().as_u16(),
            serde_json::to_value(response.into_inner()).expect("re-encoding the error"),
        ),
        webhooks_client::Error::UnexpectedResponse(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            panic!("undocumented response {status}: {body}")
        }
        other => panic!("not an error response: {other}"),
    }
}

/// The checked-in contract; `serde_yaml::Value` keeps the key order of the file.
pub fn spec() -> serde_yaml::Value {
    serde_yaml::from_str(webhooks::OPENAPI_YAML).expect("openapi.yaml parses")
}

/// A named example of a reusable response in `components.responses`, exactly as the server
/// must send it: compact JSON in the key order of the spec.
pub fn documented_body(response: &str, example: &str) -> String {
    let value = &spec()["components"]["responses"][response]["content"]["application/json"]["examples"]
        [example]["value"];
    assert!(!value.is_null(), "openapi.yaml has no example {response}/{example}");
    serde_json::to_string(value).expect("example converts to JSON")
}

/// A named example of an operation's own (inline) response, exactly as the server must send it.
pub fn operation_example(method: &str, path: &str, status: &str, example: &str) -> String {
    let value = &spec()["paths"][path][method]["responses"][status]["content"]["application/json"]
        ["examples"][example]["value"];
    assert!(!value.is_null(), "openapi.yaml has no example {method} {path} {status} {example}");
    serde_json::to_string(value).expect("example converts to JSON")
}

/// The documented 401 body.
pub fn unauthorized_body() -> String {
    documented_body("Unauthorized", "ExampleFromSchema")
}

/// The documented 403 body.
pub fn forbidden_body() -> String {
    documented_body("Forbidden", "ExampleFromSchema")
}

/// The documented 429 body.
pub fn too_many_requests_body() -> String {
    documented_body("TooManyRequests", "ExampleFromSchema")
}

/// The documented 404 body for an unknown webhook.
pub fn not_found_body() -> String {
    documented_body("NotFound", "ExampleFromSchema")
}

/// Parses a documented body, for comparisons with what the generated client decoded.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("JSON")
}

/// Delivery settings for tests that use an in-test [`receiver::Receiver`]: trust its CA
/// (written into `settings.data_dir`) and allow loopback targets (`127.0.0.0/8`).
pub fn trust_receiver(settings: &mut Settings, receiver: &receiver::Receiver) {
    settings.extra_ca_file = Some(receiver.write_ca_file(&settings.data_dir));
    settings.allowed_targets = vec!["127.0.0.0/8".parse().expect("CIDR")];
}

pub use webhooks_server::store::testing::{TestDatabase, TEST_DATABASE_ENV};

/// A [`TestServer`] on a fresh PostgreSQL database of its own (see [`TestServer::start_postgres`]);
/// derefs to the server. The database is dropped after the server is told to stop.
pub struct PgTestServer {
    pub server: TestServer,
    /// Declared after `server`, so dropped after it.
    pub database: TestDatabase,
}

impl std::ops::Deref for PgTestServer {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl TestServer {
    /// [`Self::start`] on a fresh PostgreSQL database `webhooks_test_<uuid>` created through
    /// [`TEST_DATABASE_ENV`]; `None` (with the skip reason printed for `test`) when it is unset.
    pub async fn start_postgres(test: &str) -> Option<PgTestServer> {
        Self::start_postgres_with(test, |_| {}).await
    }

    /// [`Self::start_with`] on a fresh PostgreSQL database (see [`Self::start_postgres`]).
    pub async fn start_postgres_with(
        test: &str,
        configure: impl FnOnce(&mut Settings),
    ) -> Option<PgTestServer> {
        let database = TestDatabase::from_env(test).await?;
        let url = database.url.clone();
        let server = Self::start_with(move |settings| {
            settings.database_url = Some(url);
            configure(settings);
        })
        .await;
        Some(PgTestServer { server, database })
    }
}
