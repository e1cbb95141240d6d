//! The `webhooks-server` command line: `serve` (default), `worker`, `token`, `publish` and
//! `grant`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::app::{open_store, worker, App};
use crate::auth::Authenticator;
use crate::config::{Cli, Command, GrantArgs, LogFormat, PublishArgs, Settings};
use crate::store::AccessStore;

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
        Command::Grant(args) => grant(settings, args).await,
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
    let body: webhooks::server::types::PublishEventRequest =
        serde_json::from_value(body).context("the event does not fit publishEvent")?;
    let store = open_store(&settings).await?;
    let published = crate::api::publish(&store, settings.event_data_limit, args.publisher, body).await?;
    let published = match published {
        Ok(published) => published,
        Err(errors) => bail!("{}", errors.join("; ")),
    };
    store.close().await;
    println!(
        "{}",
        serde_json::json!({"id": published.id, "eventType": published.event_type, "deliveries": published.deliveries, "duplicate": published.duplicate})
    );
    Ok(())
}

/// `grant`: adds facilities to what a user can access (as an accepted request does).
async fn grant(settings: Settings, args: GrantArgs) -> anyhow::Result<()> {
    if let Some(bad) = args.facilities.iter().find(|f| f.is_empty() || f.contains('\0')) {
        bail!("--facility {bad:?}: a facility id is a non-empty string without U+0000");
    }
    let store = open_store(&settings).await?;
    for facility in &args.facilities {
        store.grant(&args.user, facility).await?;
    }
    let facilities = store.facilities_of(&args.user).await?;
    store.close().await;
    println!("{}", serde_json::json!({"userId": args.user, "facilities": facilities}));
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
