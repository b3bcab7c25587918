//! The `coffer` binary: `coffer serve` runs the object store and its control plane.

mod bench;
mod bootstrap;
mod cli;
mod config;
mod devkms;
mod http;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "coffer",
    version,
    about = "An S3 object store whose buckets are encrypted under customer root keys"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run coffer: the S3 endpoint and the control plane.
    Serve(config::ServeArgs),
    /// Manage identities and policies of a running coffer.
    Iam(cli::IamCommand),
    /// Manage key management instances and their master keys.
    Kms(cli::KmsCommand),
    /// Measure a running coffer (encrypted and plain buckets) against the crypto limits and a peer.
    Bench(bench::BenchArgs),
}

/// s3s logs every error it answers, client mistakes included; coffer logs its own failures.
const DEFAULT_LOG: &str = "info,s3s=off";
/// The benchmark runs a KMS in process; its routine INFO lines do not belong in the report.
const BENCH_LOG: &str = "warn";

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Bench(_) => BENCH_LOG,
        _ => DEFAULT_LOG,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COFFER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The chain of causes, without a backtrace: these are messages for operators.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(args.resolve()?)),
        Command::Iam(cmd) => runtime.block_on(cmd.run()),
        Command::Kms(cmd) => runtime.block_on(cmd.run()),
        Command::Bench(args) => runtime.block_on(bench::run(args)),
    }
}
