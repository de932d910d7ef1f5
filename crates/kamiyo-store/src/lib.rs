//! Kamiyo's schema and, as the product grows, its repositories.
//!
//! The schema lives in `migrations/postgres` and `migrations/sqlite` (one folder per
//! backend, kept equivalent; see `migrations/README.md` and `docs/SCHEMA.md`). The files
//! are embedded in the binary here, so a deployment needs nothing but the executable.

pub mod accounts;
pub mod alerts;
pub mod cache;
pub mod community;
pub mod copy;
mod dialect;
pub mod error;
pub mod incidents;
pub mod rate_limits;
mod row;
pub mod schema;
pub mod sources;
mod statement;

pub use alerts::AlertStore;
pub use error::StoreError;
pub use incidents::{
    Curate, Curated, DecisionKind, Incident, IncidentStore, IngestAction, IngestOutcome,
    RemergeMerge, RemergePart, RemergeReport, RemergeSplit,
};
pub use schema::MIGRATIONS;
pub use sources::{
    FetchCounts, FetchResponse, FetchSlot, SlotClaim, SlotHolder, SlotOutcome, SourceFetch,
    SourceReport, SourceStore, Validators, DEFAULT_SOURCE_FETCH_RETENTION,
    DEFAULT_SOURCE_HEALTH_WINDOW,
};
