//! Assembles the HTTP application: the generated contract router, the docs, and the layers
//! that keep every answer in the contract's shape.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::OriginalUri;
use axum::http::HeaderName;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::api::WebhooksApi;
use crate::auth::Authenticator;
use crate::config::Settings;
use crate::crypto::SecretBox;
use crate::delivery::{build_client, TargetPolicy, Worker, WorkerSettings};
use crate::error;
use crate::ratelimit::RateLimiter;
use crate::store::Store;
use crate::{redact, routing};

pub const SPEC_JSON_PATH: &str = "/api-docs/openapi.json";
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const SPEC_YAML_PATH: &str = "/api-docs/openapi.yaml";

/// The contract as JSON, converted once from the checked-in YAML.
fn spec_json() -> anyhow::Result<serde_json::Value> {
    serde_yaml::from_str(webhooks::OPENAPI_YAML).context("openapi.yaml does not parse")
}

/// The application's routes and layers; `request_timeout` bounds each whole request.
pub fn router(api: Arc<WebhooksApi>, request_timeout: Duration) -> anyhow::Result<Router> {
    let docs = SwaggerUi::new("/docs")
        .external_url_unchecked(SPEC_JSON_PATH, spec_json()?)
        .config(Config::from(SPEC_JSON_PATH).try_it_out_enabled(true).persist_authorization(true));
    let contract = webhooks::server::router(api);
    Ok(Router::new()
        .route(SPEC_YAML_PATH, get(spec_yaml))
        .merge(docs)
        .merge(contract)
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(CatchPanicLayer::custom(|_| error::internal_error()))
        .layer(axum::middleware::from_fn_with_state(request_timeout, crate::serve::request_deadline))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
            // The path as sent, before `routing::normalise` spelled it as the contract does.
            let path = request.extensions().get::<OriginalUri>().map_or(request.uri().path(), |u| u.path());
            tracing::info_span!("request", method = %request.method(), path, request_id = id)
        }))
        // Outermost: every request gets an id (or keeps the caller's) that logs and the answer carry.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid)))
}

/// The whole application: [`router`] behind the path normaliser, which has to run before
/// routing (a layer of the router itself runs after it).
pub fn service(
    api: Arc<WebhooksApi>,
    request_timeout: Duration,
) -> anyhow::Result<routing::Normalised<Router>> {
    Ok(routing::normalised(router(api, request_timeout)?))
}

async fn spec_yaml() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/yaml")], webhooks::OPENAPI_YAML).into_response()
}

/// Everything a running server holds.
pub struct App {
    pub api: Arc<WebhooksApi>,
    pub worker: Arc<Worker>,
    pub settings: Settings,
    /// SQLite's one-serving-process lock, held as long as the app lives.
    _serve_lock: Option<std::fs::File>,
}

/// The delivery worker for `settings`, over `store`.
pub fn worker(settings: &Settings, store: Store) -> anyhow::Result<Worker> {
    let policy = TargetPolicy {
        allow_private: settings.allow_private_targets,
        allowed: settings.allowed_targets.clone(),
    };
    let http = build_client(
        policy,
        settings.extra_ca_file.as_deref(),
        settings.delivery_connect_timeout(),
        settings.delivery_timeout,
    )?;
    Ok(Worker::new(
        store,
        http,
        WorkerSettings {
            retry_schedule: settings.retry_schedule.clone(),
            lease: settings.delivery_lease,
            concurrency: settings.delivery_concurrency,
            per_host_concurrency: settings.delivery_per_host_concurrency(),
            attempt_timeout: settings.delivery_timeout,
            poll_interval: Duration::from_millis(500),
        },
    ))
}

pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let sealer = SecretBox::load(settings.secrets_key.as_deref(), &settings.data_dir)?;
    let url = settings.database_url();
    Store::connect(&url, sealer, &settings.store()).await.map_err(|e| database_error(&url, "opening", e))
}

/// A failure about the database at `url`, its password masked wherever the message (sqlx's
/// included) repeats it. The chain is flattened into one message, which is what gets printed.
fn database_error(url: &str, doing: &str, error: impl Into<anyhow::Error>) -> anyhow::Error {
    let message = format!("{doing} the database {url}: {:#}", error.into());
    anyhow::anyhow!(redact::message(&message, url))
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::metrics::handle();
        let url = settings.database_url();
        let serve_lock = Store::lock_for_serving(&url).map_err(|e| database_error(&url, "locking", e))?;
        let store = open_store(&settings).await?;
        let auth = Authenticator::new(&settings.auth())?;
        let worker = Arc::new(worker(&settings, store.clone())?);
        let waker = settings.run_worker().then(|| worker.waker());
        let rate_limiter = RateLimiter::per_minute(settings.rate_limit);
        if rate_limiter.is_none() {
            tracing::warn!("the rate limit is off (rate_limit = 0): no client is ever answered 429");
        }
        let api = Arc::new(WebhooksApi {
            store,
            auth,
            body_limit: settings.body_limit,
            rate_limiter,
            max_webhooks_per_owner: settings.max_webhooks_per_owner,
            event_data_limit: settings.event_data_limit,
            waker,
        });
        Ok(Self { api, worker, settings, _serve_lock: serve_lock })
    }

    /// Serves on `listener` until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let service = service(self.api.clone(), self.settings.connections.request_timeout)?;
        let (stop, stopped) = watch::channel(false);
        let backlog = tokio::spawn(crate::metrics::refresh_backlog(
            self.api.store.clone(),
            self.settings.backlog_refresh_interval,
            stopped.clone(),
        ));
        let worker = self.settings.run_worker().then(|| tokio::spawn(self.worker.clone().run(stopped)));
        crate::serve::serve(listener, service, self.settings.connections, shutdown).await?;
        // Requests are done; let the worker finish (and record) the deliveries in flight.
        let _ = stop.send(true);
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        let _ = backlog.await;
        self.api.store.close().await;
        Ok(())
    }
}
