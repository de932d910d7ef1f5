//! The command line. Flags are the last layer of configuration: they win over the TOML
//! file and the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "kamiyo", version, about = "Exploit-intelligence service")]
pub struct Cli {
    /// TOML configuration file (see README.md for its keys).
    #[arg(long, global = true, env = "KAMIYO_CONFIG")]
    pub config: Option<PathBuf>,

    /// Database URL: postgres://... or sqlite://path (default sqlite://kamiyo.db).
    /// Overrides DATABASE_URL and KAMIYO_DATABASE_URL.
    #[arg(long, global = true)]
    pub database_url: Option<String>,

    /// Log format.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (migrating the database first unless told not to).
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Do not apply pending migrations at start-up.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply pending migrations, or show their status.
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Import incidents from a file (dedup and merge with what is stored; idempotent).
    Import {
        /// The file to read.
        file: PathBuf,
        /// `jsonl` or `csv` (Kamiyo's format, see docs/IMPORT_FORMATS.md) or `defillama`
        /// (the DeFiLlama hacks export). Default: from the file extension.
        #[arg(long)]
        format: Option<kamiyo_ingest::Format>,
        /// Source name for records that name none (default: `defillama` for that format,
        /// else the file name).
        #[arg(long)]
        source: Option<String>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage API keys (a key is printed once, at creation; only its hash is stored).
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Record payments.
    Payment {
        #[command(subcommand)]
        action: PaymentAction,
    },
    /// Print the effective configuration (passwords redacted) as TOML.
    Config,
    /// Database tools.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbAction {
    /// Connect with the configured settings, ping, and print pool state, health and
    /// warnings. Exit code: 0 healthy, 1 degraded, 2 unhealthy (usable as a probe).
    Health {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the fingerprint, normalised text and summary of a SQL statement, as the
    /// monitor records it (the same in every process and release).
    Fingerprint {
        /// The statement.
        sql: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// List applied and pending migrations with their checksums.
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create a user (its first tier is recorded in the subscription history).
    Create {
        #[arg(long)]
        email: String,
        /// free, pro, team or enterprise.
        #[arg(long, default_value = "free")]
        tier: String,
        /// Give the user the admin role (write endpoints).
        #[arg(long)]
        admin: bool,
    },
    /// List users.
    List,
    /// Change a user's tier; the change and its reason are recorded together.
    SetTier {
        /// Email or id.
        user: String,
        tier: String,
        #[arg(long, default_value = "set by an operator")]
        reason: String,
    },
    /// Disable a user: their keys stop working; nothing is deleted.
    Disable {
        /// Email or id.
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyAction {
    /// Create a key for a user and print it (once).
    Create {
        /// Email or id.
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// List keys: prefix, owner, created, last used, revoked; never the key.
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a key by its prefix or id.
    Revoke { key: String },
}

#[derive(Debug, Subcommand)]
pub enum PaymentAction {
    /// Record a payment (kept even if the user is later disabled).
    Record {
        #[arg(long)]
        user: String,
        /// Decimal amount, e.g. 49.00.
        #[arg(long)]
        amount: String,
        #[arg(long, default_value = "USD")]
        currency: String,
        /// pending, succeeded, failed or refunded.
        #[arg(long, default_value = "succeeded")]
        status: String,
        #[arg(long, default_value = "manual")]
        provider: String,
        #[arg(long)]
        reference: Option<String>,
    },
}
