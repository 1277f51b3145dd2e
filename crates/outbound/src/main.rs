//! The `outbound` binary: serve the API, migrate, manage keys, bootstrap
//! tenants, mint development tokens, run the simulated voice platform and run
//! the demo of the whole workflow.

/// An import allocates and frees small strings for the fields of every row,
/// and a buffer of several megabytes for every batch. With the system
/// allocator those calls took about a fifth of the importing thread's time
/// in `outbound bench import`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod bench_dispatch;
mod bench_import;
mod demo;
mod eligibility;
mod operator;
mod runtime;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Outbound: outbound AI voice-calling campaigns for Australian recipients.
#[derive(Parser)]
#[command(name = "outbound", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server and its dispatcher.
    Serve(runtime::ServeArgs),
    /// Apply database migrations and exit.
    Migrate(runtime::DatabaseArgs),
    /// Key management.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Bootstrap partners, clients, assignments and projects.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Development tokens.
    #[command(subcommand)]
    Token(operator::TokenCommand),
    /// Run the simulated voice platform.
    VoiceSim(runtime::VoiceSimArgs),
    /// Run the whole workflow on a contact file against a real server and database.
    Demo(demo::DemoArgs),
    /// Ask the calling rules whether a number may be called at an instant.
    Eligibility(eligibility::EligibilityArgs),
    /// Measure the speed of a hot path.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Write a new key file with fresh random keys (mode 0600).
    Generate {
        /// Where to write it; the file must not exist yet.
        #[arg(long)]
        out: PathBuf,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => runtime::serve(args).await,
        Command::Migrate(args) => runtime::migrate(args).await,
        Command::Keys(KeysCommand::Generate { out }) => {
            outbound_persistence::keys::KeyFile::generate()
                .write_new(&out)
                .map(|()| {
                    println!(
                        "wrote a new key file to {} (mode 0600); keep it out of version control",
                        out.display()
                    )
                })
                .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", out.display()))
        }
        Command::Operator(command) => operator::run(command).await,
        Command::Token(command) => operator::token(command),
        Command::VoiceSim(args) => runtime::voice_sim(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Eligibility(args) => eligibility::run(args),
        Command::Bench(command) => bench::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.downcast_ref::<runtime::KeyMismatch>().is_some() {
                std::process::ExitCode::from(runtime::KEY_MISMATCH_EXIT_CODE)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
