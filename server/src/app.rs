//! Assembles the HTTP application: the generated contract router, the docs, and the layers
//! that keep every answer in the contract's shape.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
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
use crate::store::{Store, StoreOptions};

pub const SPEC_JSON_PATH: &str = "/api-docs/openapi.json";
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const SPEC_YAML_PATH: &str = "/api-docs/openapi.yaml";

/// The contract as JSON, converted once from the checked-in YAML.
fn spec_json() -> anyhow::Result<serde_json::Value> {
    serde_yaml::from_str(webhooks::OPENAPI_YAML).context("openapi.yaml does not parse")
}

pub fn router(api: Arc<WebhooksApi>) -> anyhow::Result<Router> {
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
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
            tracing::info_span!("request", method = %request.method(), path = request.uri().path(), request_id = id)
        }))
        // Outermost: every request gets an id (or keeps the caller's) that logs and the answer carry.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid)))
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
        settings.delivery_connect_timeout,
        settings.delivery_timeout,
    )?;
    Ok(Worker::new(
        store,
        http,
        WorkerSettings {
            retry_schedule: settings.retry_schedule.clone(),
            lease: settings.delivery_lease,
            concurrency: settings.delivery_concurrency,
            per_host_concurrency: settings.delivery_per_host_concurrency,
            attempt_timeout: settings.delivery_timeout,
            poll_interval: Duration::from_millis(500),
        },
    ))
}

pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let sealer = SecretBox::from_settings(settings)?;
    let options = StoreOptions {
        max_connections: settings.database_max_connections,
        statement_timeout: settings.statement_timeout,
    };
    Store::connect(&settings.database_url, sealer, &options)
        .await
        .with_context(|| format!("opening the database {}", settings.database_url))
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::metrics::handle();
        let serve_lock = Store::lock_for_serving(&settings.database_url)?;
        let store = open_store(&settings).await?;
        let auth = Authenticator::from_settings(&settings)?;
        let worker = Arc::new(worker(&settings, store.clone())?);
        let waker = settings.run_worker.then(|| worker.waker());
        let api = Arc::new(WebhooksApi { store, auth, body_limit: settings.body_limit, waker });
        Ok(Self { api, worker, settings, _serve_lock: serve_lock })
    }

    /// Serves on `listener` until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = router(self.api.clone())?;
        let (stop_worker, worker_stopped) = watch::channel(false);
        let worker = self.settings.run_worker.then(|| tokio::spawn(self.worker.clone().run(worker_stopped)));
        axum::serve(listener, router).with_graceful_shutdown(shutdown).await?;
        // Requests are done; let the worker finish (and record) the deliveries in flight.
        let _ = stop_worker.send(true);
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        self.api.store.close().await;
        Ok(())
    }
}
