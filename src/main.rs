//! The `lafs` binary: parses the command line and reports errors as one line.

use std::process::ExitCode;

use clap::Parser;
use lafs_gateway::cli::{self, Cli};

/// jemalloc gives freed memory back to the OS; glibc's malloc kept each burst's peak for good,
/// and mimalloc much of it (a gateway runs for months: see BENCHMARKS.md, issue 16).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options: a background thread purges freed pages after a second, so an idle node
/// shrinks back too (without it, purging waits for the next allocation).
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("LAFS_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: logs sent to a file or journald stay greppable.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("lafs: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<cli::Incomplete>() => {
            eprintln!("lafs: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("lafs: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
