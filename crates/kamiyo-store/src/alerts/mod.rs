//! Alerts (issue #16): the outbox of incident changes (`alert_events`, written by the
//! transactions that change incidents, see `incidents::events`), subscriptions, and the
//! deliveries a dispatcher creates from them and workers claim and record.

mod outbox;

use kamiyo_db::Database;

pub use crate::incidents::events::{EventKind, FieldChange};
pub use outbox::AlertEvent;

/// The alert tables of one database.
#[derive(Clone)]
pub struct AlertStore {
    db: Database,
}

impl AlertStore {
    pub fn new(db: Database) -> AlertStore {
        AlertStore { db }
    }

    pub(crate) fn db(&self) -> &Database {
        &self.db
    }
}
