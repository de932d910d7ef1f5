//! The command line. Flags are the last layer of configuration: they win over the TOML
//! file and the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use kamiyo_db::DatabaseUrl;
use kamiyo_store::copy;

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
        /// Do not fetch the sources on schedule (as `sources.enabled = false`).
        #[arg(long)]
        no_fetch: bool,
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
        /// `jsonl` or `csv` (Kamiyo's format, see docs/IMPORT_FORMATS.md), `defillama`
        /// (the DeFiLlama hacks export), `defillama-api` (its JSON hacks endpoint),
        /// `defihacklabs` (the DeFiHackLabs README) or `rekt-rss` (rekt.news's feed).
        /// Default: from the file extension.
        #[arg(long)]
        format: Option<kamiyo_ingest::Format>,
        /// Source name for records that name none (default: `defillama` for that format,
        /// else the file name).
        #[arg(long)]
        source: Option<String>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
        /// Claims stored per database transaction (each decided as if stored alone).
        /// Default: 1000 on PostgreSQL, 10000 on SQLite.
        #[arg(long, value_parser = clap::value_parser!(usize))]
        batch_size: Option<usize>,
        /// Batches written at once, each on its own connection (claims that could
        /// affect each other always share a stream; see docs/DEDUP.md). Default: 2 on
        /// PostgreSQL, 1 on SQLite (one writer).
        #[arg(long)]
        streams: Option<usize>,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Community submissions (docs/COMMUNITY.md): the review queue and an operator's
    /// decisions on it.
    Submission {
        #[command(subcommand)]
        action: SubmissionAction,
    },
    /// Bounties owed for verified submissions.
    Bounty {
        #[command(subcommand)]
        action: BountyAction,
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
    /// Sources incidents come from: their health, and whether they are active.
    Source {
        #[command(subcommand)]
        action: SourceAction,
    },
    /// Operations over every stored incident.
    Incidents {
        #[command(subcommand)]
        action: IncidentsAction,
    },
    /// A curator's decisions about incidents: merge them, split claims off one. Stored
    /// with who and why; every later import, fetch and remerge respects them.
    Incident {
        #[command(subcommand)]
        action: IncidentAction,
    },
    /// Alert subscriptions and their deliveries (docs/ALERTS.md), for operators.
    Alert {
        #[command(subcommand)]
        action: AlertAction,
    },
    /// Protocols' names.
    Protocol {
        #[command(subcommand)]
        action: ProtocolAction,
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
pub enum IncidentsAction {
    /// Decide every stored claim again under the current rules and aliases (as an import
    /// into an empty database would), print what merges and what splits, and apply it
    /// in one transaction. Ids merged away keep answering, with a redirect to the
    /// incident that took their claims.
    Remerge {
        /// Print what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The review queue: pairs of incidents the rules keep apart whose evidence comes
    /// close to joining them (docs/DEDUP.md, "Review queue"), best first, for a person to
    /// merge (`kamiyo incident merge`) or leave apart.
    Candidates {
        /// Most pairs listed.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Least evidence score listed (the rules join at 40).
        #[arg(long, default_value_t = kamiyo_store::incidents::candidates::DEFAULT_MIN_SCORE)]
        min_score: u32,
        /// Pairs at most this many days apart (1 to 30).
        #[arg(long, default_value_t = kamiyo_store::incidents::candidates::DEFAULT_WINDOW_DAYS)]
        window_days: i64,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum IncidentAction {
    /// Merge incidents the rules keep apart into one (the one holding most claims keeps
    /// its id; the others redirect to it).
    Merge {
        /// Two or more incident ids.
        #[arg(required = true, num_args = 2..)]
        ids: Vec<i64>,
        /// Why they are one hack (stored with the decision).
        #[arg(long)]
        reason: String,
        /// Print the outcome as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Split claims off an incident into one of their own (claim ids as
    /// `GET /api/exploits/{id}` shows them in `sources[].id`).
    Split {
        id: i64,
        /// The claims to take out, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        claims: Vec<i64>,
        /// Why they are another hack (stored with the decision).
        #[arg(long)]
        reason: String,
        /// Print the outcome as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProtocolAction {
    /// The alias table: names sources use for one protocol.
    Alias {
        #[command(subcommand)]
        action: AliasAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum AliasAction {
    /// Declare ALIAS a name of NAME's protocol, then remerge the stored incidents under
    /// it (unless `--no-remerge`).
    Add {
        name: String,
        alias: String,
        /// Why the names are one protocol (stored with the alias).
        #[arg(long)]
        reason: String,
        /// Store the alias only; stored incidents are regrouped by the next remerge.
        #[arg(long)]
        no_remerge: bool,
    },
    /// Remove an alias an operator added, then remerge (unless `--no-remerge`).
    Remove {
        alias: String,
        #[arg(long)]
        no_remerge: bool,
    },
    /// The aliases operators added (the shipped table is in
    /// crates/kamiyo-domain/data/protocol_aliases.txt).
    List {
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SourceAction {
    /// Every source with what it contributed and how its fetches went over
    /// `server.source_health_window`, with the last error (as `GET /api/sources` shows an
    /// admin).
    List {
        /// Print one JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Fetch a configured source once, now (`[sources]`: `defillama`, `defihacklabs`,
    /// `rekt` and any of one's own): its records go through the same validation, dedup
    /// and merge as `kamiyo import`, and the fetch is recorded. Exit code 1 when it
    /// failed.
    Fetch {
        /// The source's name in `[sources]`.
        name: String,
        /// Print the outcome as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Whether each configured, enabled source is fresh: stale when no fetch of it
    /// succeeded within three of its intervals. Exit code 0 when all are fresh, 1 when
    /// any is stale (as `kamiyo db health`'s degraded).
    Health {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Mark a source active (the scheduler fetches it).
    Enable {
        /// The source's name, as its claims and fetches carry it.
        name: String,
    },
    /// Mark a source inactive (imports are still accepted, and its incidents stay).
    Disable {
        /// The source's name, as its claims and fetches carry it.
        name: String,
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
    /// Copy a Kamiyo SQLite database into PostgreSQL keeping every id and reference, in
    /// one transaction verified before it commits (docs/DB_COPY.md). Exit code 0 only
    /// when the copy committed.
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The source: a SQLite file or sqlite:// URL, opened read-only.
    #[arg(long)]
    pub from: String,
    /// The target: a postgres:// URL. It is migrated to the source's schema version.
    #[arg(long, value_parser = secret_url)]
    pub to: DatabaseUrl,
    /// Replace what the target's tables hold (emptied inside the copy's transaction).
    #[arg(long)]
    pub force: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Rows per batch handed from the reader to the writer (bounds memory).
    #[arg(long, default_value_t = copy::DEFAULT_BATCH_ROWS)]
    pub batch_rows: usize,
    /// Rows per table compared field by field after the copy (0: counts and
    /// references only).
    #[arg(long, default_value_t = copy::DEFAULT_SAMPLE_ROWS)]
    pub sample_rows: usize,
    /// How long to wait for other sessions' locks on the target's tables.
    #[arg(long, default_value_t = copy::DEFAULT_LOCK_TIMEOUT.into())]
    pub lock_timeout: humantime::Duration,
    /// `statement_timeout` of the copy's session: the largest table's COPY must fit.
    #[arg(long, default_value_t = copy::DEFAULT_STATEMENT_TIMEOUT.into())]
    pub statement_timeout: humantime::Duration,
}

/// Keeps the password out of `Debug` output of the parsed command line.
fn secret_url(text: &str) -> Result<DatabaseUrl, std::convert::Infallible> {
    Ok(DatabaseUrl::new(text))
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
        /// user, reviewer (may review community submissions) or admin (write endpoints,
        /// and reviews). Default user.
        #[arg(long)]
        role: Option<String>,
        /// The same as `--role admin`.
        #[arg(long, conflicts_with = "role")]
        admin: bool,
    },
    /// List users (ROLE: user, reviewer or admin).
    List,
    /// Change a user's role: user, reviewer (role user with the reviewer grant) or admin.
    /// Role and grant change together.
    SetRole {
        /// Email or id.
        user: String,
        role: String,
    },
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
pub enum SubmissionAction {
    /// The review queue: pending submissions of active users, oldest first.
    List {
        /// Most submissions listed.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// One submission, as JSON.
    Show { id: i64 },
    /// Decide on a pending submission as the operator: `verify` stores its claim as the
    /// source `community` (a new incident, or evidence for the one it matched) with the
    /// submitter's points and any bounty; `reject` and `duplicate` cost points. Prints the
    /// submission as it is afterwards, as JSON.
    Review {
        id: i64,
        #[arg(long, value_enum)]
        decision: ReviewDecision,
        /// Why (stored with the decision; a rejection's is shown to the submitter).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReviewDecision {
    Verify,
    Reject,
    Duplicate,
    /// Un-verify a verified submission: its claim, points and owed bounty taken back.
    Reverse,
}

#[derive(Debug, Subcommand)]
pub enum BountyAction {
    /// Bounties, newest first: every user's, or one user's.
    List {
        /// Email or id.
        #[arg(long)]
        user: Option<String>,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Mark an owed bounty paid, with the payment's reference (a bounty is paid once).
    Pay {
        /// The bounty's id (`kamiyo bounty list`).
        id: i64,
        /// The payment's reference, e.g. a transfer id.
        #[arg(long)]
        reference: String,
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

#[derive(Debug, Subcommand)]
pub enum AlertAction {
    /// List subscriptions (every user's, or one user's).
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Subscribe a user; a webhook's signing secret is printed once.
    Create {
        /// The user (email or id) the subscription belongs to.
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: String,
        /// The channel as JSON, as the API takes it: `{"kind": "webhook", "url": "..."}`,
        /// `{"kind": "telegram", "chat_id": "...", "bot_token": "..."}`, ...
        #[arg(long)]
        channel: String,
        /// The filter as JSON (`{"chains": ["ethereum"], "min_loss_usd": "1000000"}`).
        #[arg(long)]
        filter: Option<String>,
        /// Events, comma-separated (default: all three).
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
    },
    /// One subscription's deliveries and their attempts, newest first.
    Deliveries {
        id: i64,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Turn a subscription on (clearing why it was disabled) or off.
    Enable {
        id: i64,
    },
    Disable {
        id: i64,
    },
    /// Delete a subscription with its deliveries.
    Delete {
        id: i64,
    },
    /// A new webhook signing secret (printed once); the old one signs for 24 h more.
    RotateSecret {
        id: i64,
    },
    /// Send a test event now and print what the receiver answered.
    Test {
        id: i64,
    },
    /// Changes since a time that matched a subscription and have no delivery, and the
    /// deliveries not finished; exit code 1 when a change is missing its delivery.
    Audit {
        /// RFC 3339 time.
        #[arg(long)]
        since: chrono::DateTime<chrono::Utc>,
        #[arg(long)]
        json: bool,
    },
    /// Send the deliveries of events written since a time again.
    Replay {
        id: i64,
        /// RFC 3339 time.
        #[arg(long)]
        since: chrono::DateTime<chrono::Utc>,
    },
}
