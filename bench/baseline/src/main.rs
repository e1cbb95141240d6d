//! `bench-baseline [ADDR]`: one route, `GET|POST /bare` → `{"ok":true}`, on the same stack the
//! server uses (axum 0.8 on a multi-threaded tokio runtime). Prints `listening on http://ADDR`
//! first, like `webhooks-server`.

use axum::body::Bytes;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

async fn bare() -> Json<Value> {
    Json(json!({"ok": true}))
}

/// Reads the request body (as any real handler must) and answers the same.
async fn bare_post(_body: Bytes) -> Json<Value> {
    Json(json!({"ok": true}))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let app = Router::new().route("/bare", get(bare).post(bare_post));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
