//! Assembles the HTTP application: the generated contract router, the docs, and the layers
//! that keep every answer in the contract's shape.

use std::sync::Arc;

use anyhow::Context;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::api::WebhooksApi;
use crate::auth::Authenticator;
use crate::config::Settings;
use crate::crypto::SecretBox;
use crate::error;
use crate::store::Store;

pub const SPEC_JSON_PATH: &str = "/api-docs/openapi.json";
pub const SPEC_YAML_PATH: &str = "/api-docs/openapi.yaml";

/// The contract as JSON, converted once from the checked-in YAML.
fn spec_json() -> anyhow::Result<serde_json::Value> {
    serde_yaml::from_str(webhooks::OPENAPI_YAML).context("openapi.yaml does not parse")
}

pub fn router(api: Arc<WebhooksApi>) -> anyhow::Result<Router> {
    let docs = SwaggerUi::new("/docs")
        .external_url_unchecked(SPEC_JSON_PATH, spec_json()?)
        .config(
            Config::from(SPEC_JSON_PATH)
                .try_it_out_enabled(true)
                .persist_authorization(true),
        );
    let contract = webhooks::server::router(api);
    Ok(Router::new()
        .route(SPEC_YAML_PATH, get(spec_yaml))
        .merge(docs)
        .merge(contract)
        .layer(CatchPanicLayer::custom(|_| error::internal_error()))
        .layer(TraceLayer::new_for_http()))
}

async fn spec_yaml() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/yaml")],
        webhooks::OPENAPI_YAML,
    )
        .into_response()
}

/// Everything a running server holds.
pub struct App {
    pub api: Arc<WebhooksApi>,
    pub settings: Settings,
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let sealer = SecretBox::from_settings(&settings)?;
        let store = Store::connect(&settings.database_url, sealer)
            .await
            .with_context(|| format!("opening the database {}", settings.database_url))?;
        let auth = Authenticator::from_settings(&settings)?;
        let api = Arc::new(WebhooksApi {
            store,
            auth,
            body_limit: settings.body_limit,
        });
        Ok(Self { api, settings })
    }

    /// Serves on `listener` until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = router(self.api.clone())?;
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await?;
        self.api.store.close().await;
        Ok(())
    }
}
