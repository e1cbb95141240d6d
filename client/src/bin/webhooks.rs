//! `webhooks`: the User Webhooks API from the command line (see `webhooks --help`; the logic
//! is in `webhooks_client::cli`).

fn main() -> std::process::ExitCode {
    webhooks_client::cli::run()
}
