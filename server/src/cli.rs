//! The `webhooks-server` command line: `serve` (default) and `token`.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use std::sync::Arc;

use anyhow::bail;
use tokio::sync::watch;
use webhooks::server::types::UserEventType;

use crate::api::data_errors;
use crate::app::{open_store, worker, App};
use crate::auth::Authenticator;
use crate::config::{Cli, Command, LogFormat, PublishArgs, Settings};
use crate::store::{facility_of, DeliveryStore, NewEvent, WebhookKind};

pub async fn main() -> anyhow::Result<()> {
    let cli = match Cli::load(std::env::args_os()) {
        Ok(cli) => cli,
        // `--help`, `--version` and flag errors print and exit as clap does.
        Err(e) => match e.downcast::<clap::Error>() {
            Ok(clap) => clap.exit(),
            Err(e) => return Err(e),
        },
    };
    let settings = cli.settings;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Token(args) => {
            let auth = Authenticator::new(&settings.auth())?;
            let token = auth.mint(&args.client_id, &args.sub, &args.role, &args.scopes, args.ttl.into())?;
            println!("{token}");
            Ok(())
        }
        Command::Publish(args) => publish(settings, args).await,
        Command::Worker => {
            init_logging(settings.log_format);
            let store = open_store(&settings).await?;
            let worker = Arc::new(worker(&settings, store.clone())?);
            let (stop, stopped) = watch::channel(false);
            let running = tokio::spawn(worker.run(stopped));
            shutdown_signal().await;
            let _ = stop.send(true);
            let _ = running.await;
            store.close().await;
            Ok(())
        }
    }
}

async fn publish(settings: Settings, args: PublishArgs) -> anyhow::Result<()> {
    let data: serde_json::Value = serde_json::from_str(&args.data).context("--data is not JSON")?;
    // The rules of `publishEvent`: an event recorded here must be as deliverable as one sent to
    // the API (an id with a control character, say, could never be sent as a header).
    let body =
        serde_json::json!({"id": args.id, "eventType": args.event_type, "userId": args.user, "data": data});
    let errors = webhooks::server::validate::publish_event_request(&body);
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    let event_type: UserEventType =
        args.event_type.parse().map_err(|_| anyhow::anyhow!("unknown event type {:?}", args.event_type))?;
    let serde_json::Value::Object(data) = data else { bail!("--data must be a JSON object") };
    let errors = data_errors(event_type, &data, settings.event_data_limit);
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    let store = open_store(&settings).await?;
    let published = store
        .publish(NewEvent {
            publisher: args.publisher,
            id: args.id,
            event_type: event_type.to_string(),
            user_id: args.user,
            facility_id: facility_of(&data),
            data,
            audience: WebhookKind::User,
        })
        .await?;
    store.close().await;
    println!(
        "{}",
        serde_json::json!({"id": published.id, "eventType": published.event_type, "deliveries": published.deliveries, "duplicate": published.duplicate})
    );
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    init_logging(settings.log_format);
    let listener =
        TcpListener::bind(settings.bind).await.with_context(|| format!("binding {}", settings.bind))?;
    let addr: SocketAddr = listener.local_addr()?;
    let data_dir = settings.data_dir.display().to_string();
    let app = App::build(settings).await?;
    // Tests and scripts read the first line to learn the port.
    println!("listening on http://{addr}");
    println!("API docs:  http://{addr}/docs");
    println!("a token:   cargo run -p webhooks-server -- --data-dir {data_dir} token --client-id my-client --sub my-user");
    app.serve(listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
