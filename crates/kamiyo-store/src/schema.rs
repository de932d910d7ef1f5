//! The embedded migrations. Add a file to both backend folders and one line to each list
//! below; a test checks that the lists and the folders agree.

use kamiyo_db::{Migration, Migrations};

const POSTGRES: &[Migration] = &[
    Migration::new(
        1,
        "initial_schema",
        include_str!("../migrations/postgres/0001_initial_schema.sql"),
    ),
    Migration::new(
        2,
        "incident_sources",
        include_str!("../migrations/postgres/0002_incident_sources.sql"),
    ),
    Migration::new(
        3,
        "listing_paths",
        include_str!("../migrations/postgres/0003_listing_paths.sql"),
    ),
    Migration::new(
        4,
        "source_fetches",
        include_str!("../migrations/postgres/0004_source_fetches.sql"),
    ),
    Migration::new(
        5,
        "source_fetch_slots",
        include_str!("../migrations/postgres/0005_source_fetch_slots.sql"),
    ),
    Migration::new(
        6,
        "claim_keys_by_day",
        include_str!("../migrations/postgres/0006_claim_keys_by_day.sql"),
    ),
    Migration::new(
        7,
        "claim_source_urls",
        include_str!("../migrations/postgres/0007_claim_source_urls.sql"),
    ),
    Migration::new(
        8,
        "claim_join_reasons",
        include_str!("../migrations/postgres/0008_claim_join_reasons.sql"),
    ),
    Migration::new(
        9,
        "incident_redirects",
        include_str!("../migrations/postgres/0009_incident_redirects.sql"),
    ),
    Migration::new(
        10,
        "curation",
        include_str!("../migrations/postgres/0010_curation.sql"),
    ),
    Migration::new(
        11,
        "decision_claim_ids",
        include_str!("../migrations/postgres/0011_decision_claim_ids.sql"),
    ),
    Migration::new(
        12,
        "alerts",
        include_str!("../migrations/postgres/0012_alerts.sql"),
    ),
    Migration::new(
        13,
        "alert_failure_streaks",
        include_str!("../migrations/postgres/0013_alert_failure_streaks.sql"),
    ),
    Migration::new(
        14,
        "community",
        include_str!("../migrations/postgres/0014_community.sql"),
    ),
    Migration::new(
        15,
        "rate_limit_buckets",
        include_str!("../migrations/postgres/0015_rate_limit_buckets.sql"),
    ),
    Migration::new(
        16,
        "account_notifications",
        include_str!("../migrations/postgres/0016_account_notifications.sql"),
    ),
];

const SQLITE: &[Migration] = &[
    Migration::new(
        1,
        "initial_schema",
        include_str!("../migrations/sqlite/0001_initial_schema.sql"),
    ),
    Migration::new(
        2,
        "incident_sources",
        include_str!("../migrations/sqlite/0002_incident_sources.sql"),
    ),
    Migration::new(
        3,
        "listing_paths",
        include_str!("../migrations/sqlite/0003_listing_paths.sql"),
    ),
    Migration::new(
        4,
        "source_fetches",
        include_str!("../migrations/sqlite/0004_source_fetches.sql"),
    ),
    Migration::new(
        5,
        "source_fetch_slots",
        include_str!("../migrations/sqlite/0005_source_fetch_slots.sql"),
    ),
    Migration::new(
        6,
        "claim_keys_by_day",
        include_str!("../migrations/sqlite/0006_claim_keys_by_day.sql"),
    ),
    Migration::new(
        7,
        "claim_source_urls",
        include_str!("../migrations/sqlite/0007_claim_source_urls.sql"),
    ),
    Migration::new(
        8,
        "claim_join_reasons",
        include_str!("../migrations/sqlite/0008_claim_join_reasons.sql"),
    ),
    Migration::new(
        9,
        "incident_redirects",
        include_str!("../migrations/sqlite/0009_incident_redirects.sql"),
    ),
    Migration::new(
        10,
        "curation",
        include_str!("../migrations/sqlite/0010_curation.sql"),
    ),
    Migration::new(
        11,
        "decision_claim_ids",
        include_str!("../migrations/sqlite/0011_decision_claim_ids.sql"),
    ),
    Migration::new(
        12,
        "alerts",
        include_str!("../migrations/sqlite/0012_alerts.sql"),
    ),
    Migration::new(
        13,
        "alert_failure_streaks",
        include_str!("../migrations/sqlite/0013_alert_failure_streaks.sql"),
    ),
    Migration::new(
        14,
        "community",
        include_str!("../migrations/sqlite/0014_community.sql"),
    ),
    Migration::new(
        15,
        "rate_limit_buckets",
        include_str!("../migrations/sqlite/0015_rate_limit_buckets.sql"),
    ),
    Migration::new(
        16,
        "account_notifications",
        include_str!("../migrations/sqlite/0016_account_notifications.sql"),
    ),
];

/// Every migration of Kamiyo's schema, for both backends.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: POSTGRES,
    sqlite: SQLITE,
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn files_in(folder: &str) -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(folder);
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        names.sort();
        names
    }

    fn labels(set: &[Migration]) -> Vec<String> {
        set.iter().map(|m| format!("{}.sql", m.label())).collect()
    }

    #[test]
    fn every_migration_file_is_embedded_under_its_own_version_and_name() {
        assert_eq!(labels(POSTGRES), files_in("postgres"));
        assert_eq!(labels(SQLITE), files_in("sqlite"));
    }

    #[test]
    fn both_backends_have_the_same_versions() {
        let versions =
            |set: &[Migration]| set.iter().map(|m| (m.version, m.name)).collect::<Vec<_>>();
        assert_eq!(versions(POSTGRES), versions(SQLITE));
    }
}
