//! `timbre`: one binary for the server, the workers and the offline tools.

mod analyze_cmd;
mod cli;
mod models_cmd;
mod serve_cmd;
mod speak_cmd;
mod tag_cmd;
mod transcribe_cmd;
mod verify_deploy;
mod worker_cmd;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, ConfigCommand};

/// mimalloc instead of glibc malloc: see the HTTP section of docs/benchmarks.md for the
/// per-request instruction counts behind this choice.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve_cmd::run(args),
        Command::Models(args) => models_cmd::run(args),
        Command::Config { command: ConfigCommand::Show(args) } => match args.load() {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    eprintln!("warning: {w}");
                }
                print!("{}", loaded.config.to_redacted_toml());
                ExitCode::SUCCESS
            }
            Err(e) => cli::fail(&e),
        },
        Command::VerifyDeploy(args) => verify_deploy::run(args),
        Command::Worker(args) => worker_cmd::run(args),
        Command::Migrate(args) => migrate(args),
        Command::Transcribe(args) => transcribe_cmd::run(args),
        Command::Speak(args) => speak_cmd::run(args),
        Command::Tag(args) => tag_cmd::run(args),
        Command::Analyze(args) => analyze_cmd::run(args),
        Command::Generate => cli::not_yet("generate", "audio generation"),
    }
}

/// `timbre migrate`: what a release step or a Kubernetes init container runs before the API.
fn migrate(args: cli::MigrateArgs) -> ExitCode {
    let config = match args.config.load() {
        Ok(l) => l.config,
        Err(e) => return cli::fail(&e),
    };
    let settings = timbre_server::storage::settings(&config);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return cli::fail(&e),
    };
    match runtime.block_on(timbre_store::Store::open(&settings)) {
        Ok(store) => {
            println!("migrations applied: {}", store.db.target());
            ExitCode::SUCCESS
        }
        Err(e) => cli::fail(&e),
    }
}
