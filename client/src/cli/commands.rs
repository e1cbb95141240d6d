//! Each subcommand: one call of the generated client, and what it prints.

use super::args::{
    Command, CreateArgs, FacilityCommand, FacilityCreateArgs, FacilityUpdateArgs, LogsArgs, UpdateArgs,
};
use super::error::{answer, Failure};
use super::output;
use crate::types::{
    CreateUserWebhookRequest, CreateWebhookRequest, FacilityWebhook, UpdateUserWebhookRequest,
    UpdateWebhookRequest, UserWebhook,
};
use crate::Client;

/// How to print a successful answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct View {
    /// The response body as JSON instead of a table.
    pub json: bool,
    /// Secrets in full in tables.
    pub show_secrets: bool,
}

/// What a successful command prints.
#[derive(Debug, Default, PartialEq)]
pub struct Printed {
    pub stdout: String,
    /// Notes for a person (never with `--json`).
    pub stderr: String,
}

impl Printed {
    fn out(stdout: String) -> Self {
        Printed { stdout, stderr: String::new() }
    }
}

pub async fn execute(client: &Client, command: &Command, view: View) -> Result<Printed, Failure> {
    match command {
        Command::Create(args) => create(client, args, view).await,
        Command::List => {
            let body = answer(client.list_user_webhooks().await).await?;
            print(view, &body, || output::webhooks_table(&body.data, view.show_secrets))
        }
        Command::Get { id } => {
            let body = answer(client.get_user_webhook(id).await).await?;
            print(view, &body, || one_webhook(&body.data, view))
        }
        Command::Update(args) => update(client, args, view).await,
        Command::Delete { id } => {
            answer(client.delete_user_webhook(id).await).await?;
            // The answer is 204 with no body: nothing to print as JSON.
            Ok(Printed::out(if view.json { String::new() } else { format!("Deleted webhook {id}.\n") }))
        }
        Command::Logs(args) => logs(client, args, view).await,
        Command::Facility(command) => facility(client, command, view).await,
    }
}

async fn facility(client: &Client, command: &FacilityCommand, view: View) -> Result<Printed, Failure> {
    match command {
        FacilityCommand::Create(args) => facility_create(client, args, view).await,
        FacilityCommand::List => {
            let body = answer(client.list_facility_webhooks().await).await?;
            print(view, &body, || output::facility_webhooks_table(&body.data, view.show_secrets))
        }
        FacilityCommand::Get { id } => {
            let body = answer(client.get_facility_webhook(id).await).await?;
            print(view, &body, || one_facility_webhook(&body.data, view))
        }
        FacilityCommand::Update(args) => facility_update(client, args, view).await,
        FacilityCommand::Delete { id } => {
            answer(client.delete_facility_webhook(id).await).await?;
            // The answer is 204 with no body: nothing to print as JSON.
            Ok(Printed::out(if view.json {
                String::new()
            } else {
                format!("Deleted facility webhook {id}.\n")
            }))
        }
    }
}

async fn facility_create(client: &Client, args: &FacilityCreateArgs, view: View) -> Result<Printed, Failure> {
    let request = CreateWebhookRequest {
        url: args.url.clone(),
        events: args.events.clone(),
        // None: the webhook follows every facility the user can access.
        facilities: (!args.facilities.is_empty()).then(|| args.facilities.clone()),
        // None: the server generates a secret.
        secrets: (!args.secrets.is_empty()).then(|| args.secrets.clone()),
    };
    let body = answer(client.create_facility_webhook(&request).await).await?;
    let mut printed = print(view, &body, || one_facility_webhook(&body.data, view))?;
    if !view.json && !view.show_secrets && args.secrets.is_empty() {
        printed.stderr = format!(
            "The server generated a secret; see it with `webhooks facility get {} --show-secrets`.\n",
            body.data.id
        );
    }
    Ok(printed)
}

async fn facility_update(client: &Client, args: &FacilityUpdateArgs, view: View) -> Result<Printed, Failure> {
    // Every field absent keeps its stored value; `facilities: []` follows every facility.
    let request = UpdateWebhookRequest {
        url: args.url.clone(),
        events: (!args.events.is_empty()).then(|| args.events.clone()),
        facilities: args.facilities(),
        secrets: (!args.secrets.is_empty()).then(|| args.secrets.clone()),
    };
    let body = answer(client.update_facility_webhook(&args.id, &request).await).await?;
    print(view, &body, || one_facility_webhook(&body.data, view))
}

async fn create(client: &Client, args: &CreateArgs, view: View) -> Result<Printed, Failure> {
    let request = CreateUserWebhookRequest {
        url: args.url.clone(),
        events: args.events.clone(),
        // None: the server generates a secret.
        secrets: (!args.secrets.is_empty()).then(|| args.secrets.clone()),
    };
    let body = answer(client.create_user_webhook(&request).await).await?;
    let mut printed = print(view, &body, || one_webhook(&body.data, view))?;
    if !view.json && !view.show_secrets && args.secrets.is_empty() {
        printed.stderr = format!(
            "The server generated a secret; see it with `webhooks get {} --show-secrets`.\n",
            body.data.id
        );
    }
    Ok(printed)
}

async fn update(client: &Client, args: &UpdateArgs, view: View) -> Result<Printed, Failure> {
    let request = UpdateUserWebhookRequest {
        events: args.events.clone(),
        // Absent: the stored URL and secrets are kept.
        url: args.url.clone(),
        secrets: (!args.secrets.is_empty()).then(|| args.secrets.clone()),
    };
    let body = answer(client.update_user_webhook(&args.id, &request).await).await?;
    print(view, &body, || one_webhook(&body.data, view))
}

async fn logs(client: &Client, args: &LogsArgs, view: View) -> Result<Printed, Failure> {
    let body = answer(
        client
            .search_webhook_logs(
                args.end.as_ref(),
                args.event_type,
                // None: the key is left out (an empty list would filter nothing anyway).
                (!args.facilities.is_empty()).then_some(&args.facilities),
                args.limit,
                args.offset,
                args.sort.map(Into::into),
                args.start.as_ref(),
                args.webhook_id.as_deref(),
            )
            .await,
    )
    .await?;
    print(view, &body, || output::logs_table(&body.data))
}

fn one_webhook(webhook: &UserWebhook, view: View) -> String {
    output::webhooks_table(std::slice::from_ref(webhook), view.show_secrets)
}

fn one_facility_webhook(webhook: &FacilityWebhook, view: View) -> String {
    output::facility_webhooks_table(std::slice::from_ref(webhook), view.show_secrets)
}

/// The whole body as JSON, or the table.
fn print<T: serde::Serialize>(
    view: View,
    body: &T,
    table: impl FnOnce() -> String,
) -> Result<Printed, Failure> {
    Ok(Printed::out(if view.json { output::json(body)? } else { table() }))
}
