//! The process's open-file limit. Every client connection holds a file descriptor; at
//! the limit `accept` fails for every client alike, so the server's own connection cap
//! has to be reached first. The usual soft limit (1,024) is far below the default cap,
//! while the hard limit seldom is: at start the soft limit is raised to the hard one,
//! then the cap is lowered, if need be, to fit under it.

use kamiyo_db::DbConfig;

/// Descriptors kept aside from the connection cap for everything else: the listeners,
/// the metrics listener's own connections (`METRICS_MAX_CONNECTIONS`), log and
/// configuration files, DNS lookups.
pub const RESERVED_DESCRIPTORS: usize = 64;
/// Descriptors one database connection can hold: a PostgreSQL socket; a SQLite database
/// file with its `-wal` and `-shm` files.
const DESCRIPTORS_PER_DATABASE_CONNECTION: usize = 3;

/// Raises the soft limit to the hard limit, logging both values; a failure is a warning
/// and keeps the current limit. Returns the soft limit in force (`None`: unlimited, or
/// unknown on this platform).
#[cfg(unix)]
pub fn raise_to_hard_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

    let before = getrlimit(Resource::Nofile);
    let after = if before.current == before.maximum {
        before.current
    } else {
        let raised = Rlimit {
            current: before.maximum,
            maximum: before.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => raised.current,
            Err(error) => {
                tracing::warn!(
                    %error,
                    soft = %Shown(before.current),
                    hard = %Shown(before.maximum),
                    "cannot raise the open-file limit; keeping the soft limit"
                );
                before.current
            }
        }
    };
    tracing::info!(
        before = %Shown(before.current),
        after = %Shown(after),
        hard = %Shown(before.maximum),
        "open-file limit"
    );
    after
}

#[cfg(not(unix))]
pub fn raise_to_hard_limit() -> Option<u64> {
    None
}

/// Descriptors the database pools can hold.
pub fn database_descriptors(database: &DbConfig) -> usize {
    let pools = if database.read_url.is_some() { 2 } else { 1 };
    database
        .pool_max_size
        .saturating_mul(pools)
        .saturating_mul(DESCRIPTORS_PER_DATABASE_CONNECTION)
}

/// The connection cap that fits an open-file limit of `limit` once `reserve`
/// descriptors are set aside: `configured` if it fits (or there is no limit), else what
/// remains, and never zero (a cap of zero would refuse every client).
pub fn fitting_max_connections(configured: usize, limit: Option<u64>, reserve: usize) -> usize {
    let Some(limit) = limit else {
        return configured;
    };
    let available = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_sub(reserve);
    configured.min(available).max(1)
}

/// A limit for the log: a number, or `unlimited`.
struct Shown(Option<u64>);

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(limit) => write!(f, "{limit}"),
            None => f.write_str("unlimited"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_that_fits_under_the_limit_or_no_limit_is_kept() {
        assert_eq!(fitting_max_connections(4096, Some(1_048_576), 200), 4096);
        assert_eq!(fitting_max_connections(4096, Some(4296), 200), 4096);
        assert_eq!(fitting_max_connections(4096, None, 200), 4096);
    }

    #[test]
    fn a_cap_above_the_limit_is_lowered_to_what_the_reserve_leaves() {
        assert_eq!(fitting_max_connections(4096, Some(4295), 200), 4095);
        assert_eq!(fitting_max_connections(4096, Some(1024), 112), 912);
    }

    #[test]
    fn a_limit_within_the_reserve_still_leaves_one_connection() {
        assert_eq!(fitting_max_connections(4096, Some(64), 112), 1);
        assert_eq!(fitting_max_connections(4096, Some(0), 0), 1);
    }

    #[test]
    fn the_database_reserve_counts_the_replica_pool_too() {
        let primary = DbConfig {
            pool_max_size: 16,
            ..DbConfig::default()
        };
        assert_eq!(database_descriptors(&primary), 48);
        let with_replica = DbConfig {
            read_url: Some(kamiyo_db::DatabaseUrl::new("postgres://replica/db")),
            ..primary
        };
        assert_eq!(database_descriptors(&with_replica), 96);
    }
}
