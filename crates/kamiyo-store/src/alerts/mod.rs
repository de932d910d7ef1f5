//! Alerts (issue #16): the outbox of incident changes (`alert_events`, written by the
//! transactions that change incidents, see `incidents::events`), subscriptions, and the
//! deliveries a dispatcher creates from them and workers claim and record.

mod audit;
mod deliveries;
mod outbox;
mod subscriptions;

use kamiyo_db::Database;

pub use crate::incidents::events::{EventKind, FieldChange};
pub use audit::{AuditedEvent, Unfinished};
pub use deliveries::{
    Attempt, AttemptOutcome, AttemptRecord, Delivery, DueDelivery, PlannedDelivery, Subscriber,
    DELIVERIES_CHANNEL,
};
pub use outbox::AlertEvent;
pub use subscriptions::{NewSubscription, Subscription, SubscriptionPatch, SECRET_OVERLAP};

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
