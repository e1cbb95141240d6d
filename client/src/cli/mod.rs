//! The `webhooks` command-line tool, built on the generated client: `create`, `list`, `get`,
//! `update`, `delete` for user webhooks, the same under `facility` for facility webhooks, and
//! `logs` for both, with readable tables by default and `--json` for scripts.
//! `webhooks --help` documents options, environment variables and exit codes.
//!
//! Exit codes ([`error`]): 0 success; 1 the API answered with an error (its body is printed on
//! stderr) or with an answer outside the contract; 2 usage error (clap's code); 3 the server
//! could not be reached.
//!
//! Modules: [`args`] (clap), [`commands`] (one generated-client call each), [`output`]
//! (tables, JSON, error text), [`error`] (failures and exit codes). The binary
//! (`src/bin/webhooks.rs`) only calls [`run`].

pub mod args;
pub mod commands;
pub mod error;
pub mod output;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use commands::View;
use error::{EXIT_CONNECTION, EXIT_OK, EXIT_USAGE};

/// Runs `webhooks` with the process's arguments and standard streams.
pub fn run() -> ExitCode {
    let code = run_with(std::env::args_os(), &mut std::io::stdout().lock(), &mut std::io::stderr().lock());
    ExitCode::from(code)
}

/// Runs `webhooks` with `args` (`args[0]` is the program name), writing to `out` and `err`;
/// returns the exit code. Write errors (e.g. a closed pipe) are ignored.
pub fn run_with<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match args::parse(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with code 0; usage errors to stderr with 2.
            let text = e.render().to_string();
            let _ =
                if e.use_stderr() { err.write_all(text.as_bytes()) } else { out.write_all(text.as_bytes()) };
            return u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE);
        }
    };
    let token = cli.global.token.as_deref().unwrap_or_default();
    let view = View { json: cli.global.json, show_secrets: cli.global.show_secrets };

    let client = match crate::with_token(&cli.global.base_url, token) {
        Ok(client) => client,
        Err(e @ (crate::ClientError::EmptyToken | crate::ClientError::InvalidToken)) => {
            let _ = writeln!(err, "error: --token / WEBHOOKS_TOKEN: {e}");
            return EXIT_USAGE;
        }
        Err(e) => {
            let _ = writeln!(err, "error: could not build the HTTP client: {}", error::chain(&e));
            return EXIT_CONNECTION;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = writeln!(err, "error: could not start the async runtime: {e}");
            return EXIT_CONNECTION;
        }
    };
    match runtime.block_on(commands::execute(&client, &cli.command, view)) {
        Ok(printed) => {
            let _ = out.write_all(printed.stdout.as_bytes());
            let _ = out.flush();
            let _ = err.write_all(printed.stderr.as_bytes());
            EXIT_OK
        }
        Err(failure) => {
            let _ = err.write_all(output::failure(&failure, view.json).as_bytes());
            failure.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_capture(args: &[&str]) -> (u8, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(args, &mut out, &mut err);
        (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
    }

    #[test]
    fn help_goes_to_stdout_with_code_0() {
        let (code, out, err) = run_capture(&["webhooks", "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("Usage: webhooks"), "{out}");
        assert!(out.contains("logs"), "{out}");
        assert!(out.contains("facility"), "{out}");
        assert_eq!(err, "");

        let (code, out, _) = run_capture(&["webhooks", "facility", "--help"]);
        assert_eq!(code, 0);
        for command in ["create", "list", "get", "update", "delete"] {
            assert!(out.contains(&format!("  {command} ")), "{command}: {out}");
        }
    }

    #[test]
    fn usage_errors_go_to_stderr_with_code_2() {
        let (code, out, err) = run_capture(&["webhooks", "--token", "t", "create", "--events", "nope"]);
        assert_eq!(code, 2);
        assert_eq!(out, "");
        assert!(err.contains("invalid value 'nope'"), "{err}");
    }

    #[test]
    fn an_unreachable_server_is_code_3() {
        // Port 1 on loopback: nothing listens there, the connection is refused at once.
        let (code, out, err) =
            run_capture(&["webhooks", "--token", "t", "--base-url", "http://127.0.0.1:1", "list"]);
        assert_eq!(code, 3, "{err}");
        assert_eq!(out, "");
        assert!(err.starts_with("error: could not reach the server: "), "{err}");
    }
}
