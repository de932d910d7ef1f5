//! `kamiyo-bench`: tooling for the performance measurements in BENCHMARKS.md.
//!
//! `kamiyo-bench seed --database-url URL --incidents N [--seed S]` migrates a PostgreSQL
//! database with Kamiyo's schema and fills it with N synthetic incidents (see `synth`),
//! inserted in bulk straight into `exploits`, `exploit_chains`, `exploit_tx_hashes` and
//! `exploit_sources`. It bypasses the importer's dedup path on purpose: every synthetic
//! incident is distinct by construction, and going through `IncidentStore::ingest` (one
//! transaction and a dozen statements per claim) would take minutes instead of seconds.

mod seed;
mod synth;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "kamiyo-bench", about = "Kamiyo benchmark tooling")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate a PostgreSQL database and fill it with synthetic incidents; prints JSON.
    Seed {
        /// postgres://... URL of the database to fill (it must exist).
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// How many incidents to insert.
        #[arg(long)]
        incidents: u32,
        /// RNG seed: the same seed and count give the same rows.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Distinct protocol names to draw from.
        #[arg(long, default_value_t = 300)]
        protocols: usize,
        /// Rows per INSERT statement.
        #[arg(long, default_value_t = 5_000)]
        batch_size: usize,
        /// Skip `VACUUM (ANALYZE)` after loading (planner statistics and the visibility
        /// map then wait for autovacuum).
        #[arg(long)]
        no_vacuum: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Seed {
            database_url,
            incidents,
            seed,
            protocols,
            batch_size,
            no_vacuum,
        } => {
            let report = seed::run(seed::Options {
                database_url,
                incidents,
                seed,
                protocols,
                batch_size,
                vacuum: !no_vacuum,
            })
            .await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}
