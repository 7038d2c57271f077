//! `gatehoused`: the Gatehouse background service (DESIGN.md §Contracts).

use std::process::ExitCode;

use gatehouse::server::options::{Options, USAGE};
use gatehouse::server::Server;

fn main() -> ExitCode {
    let opts = match Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("gatehoused: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gatehoused: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match Server::start(&opts).await {
            Ok(server) => {
                server.run_until_stopped().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("gatehoused: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
