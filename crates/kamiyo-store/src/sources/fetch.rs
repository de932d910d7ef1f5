//! One attempt to collect a source, validated before it is recorded, and the limits of
//! the fetch log: how far back a success rate looks and how long fetches are kept.

use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use kamiyo_domain::FieldError;

use super::response::{FetchCounts, FetchResponse};

/// How far back `GET /api/sources` looks for a source's success rate, unless configured
/// (`server.source_health_window`).
pub const DEFAULT_SOURCE_HEALTH_WINDOW: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// How long fetch outcomes are kept, unless configured (`server.source_fetch_retention`).
/// Well above the window, so that a server configured with a longer window than the
/// process that records fetches (an import run with other settings) still finds them.
/// Three months as humantime counts them (30.44 days each, about 91 days), so that
/// `kamiyo config` prints `3months` rather than `2months 29days 2h 52m 48s`.
pub const DEFAULT_SOURCE_FETCH_RETENTION: Duration = Duration::from_secs(3 * 2_630_016);

/// Longest error text kept for a failed fetch (in characters); longer texts are cut, so
/// that a fetcher that quotes a whole response cannot grow the log without bound.
pub const MAX_FETCH_ERROR_CHARS: usize = 1_000;

/// One attempt to collect a source, validated. Built by [`SourceFetch::succeeded`],
/// [`SourceFetch::failed`] or [`SourceFetch::not_modified`]; a fetcher adds what its
/// HTTP response said ([`SourceFetch::with_response`]), what the records became
/// ([`SourceFetch::with_counts`]) and the slot it ran for ([`SourceFetch::for_slot`]),
/// all of which an import leaves at their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFetch {
    pub(super) source: String,
    pub(super) started_at: DateTime<Utc>,
    pub(super) finished_at: DateTime<Utc>,
    pub(super) records: u64,
    pub(super) error: Option<String>,
    pub(super) response: FetchResponse,
    pub(super) counts: FetchCounts,
    pub(super) not_modified: bool,
    pub(super) slot_start: Option<DateTime<Utc>>,
}

impl SourceFetch {
    /// A fetch that worked and brought `records` records.
    pub fn succeeded(
        source: &str,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        records: u64,
    ) -> Result<Self, FieldError> {
        Self::new(source, started_at, finished_at, records, None)
    }

    /// A fetch that failed with `error` (after bringing `records` records, if any).
    pub fn failed(
        source: &str,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        records: u64,
        error: &str,
    ) -> Result<Self, FieldError> {
        let error = error.trim();
        if error.is_empty() {
            return Err(FieldError::new(
                "error",
                "a failed fetch must say why it failed",
            ));
        }
        let error: String = error.chars().take(MAX_FETCH_ERROR_CHARS).collect();
        Self::new(source, started_at, finished_at, records, Some(error))
    }

    /// A fetch that worked and found nothing new: a 304, or a body whose hash is the
    /// last success's. It writes no claim, so its counts stay zero.
    pub fn not_modified(
        source: &str,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
    ) -> Result<Self, FieldError> {
        let mut fetch = Self::new(source, started_at, finished_at, 0, None)?;
        fetch.not_modified = true;
        Ok(fetch)
    }

    /// What the HTTP response said (status, size, duration, validators).
    pub fn with_response(mut self, response: FetchResponse) -> Result<Self, FieldError> {
        self.response = response.validated()?;
        Ok(self)
    }

    /// What the fetched records became. A fetch that was not modified wrote no claim.
    pub fn with_counts(mut self, counts: FetchCounts) -> Result<Self, FieldError> {
        let counts = counts.validated()?;
        if self.not_modified && counts.wrote_claims() {
            return Err(FieldError::new(
                "not_modified",
                "a fetch that was not modified wrote no claim",
            ));
        }
        self.counts = counts;
        Ok(self)
    }

    /// The slot of the schedule this fetch ran for (kept to the millisecond, as slots
    /// are); an import has none.
    pub fn for_slot(mut self, slot_start: DateTime<Utc>) -> Self {
        self.slot_start = Some(to_millisecond(slot_start));
        self
    }

    fn new(
        source: &str,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        records: u64,
        error: Option<String>,
    ) -> Result<Self, FieldError> {
        let source = source.trim();
        if source.is_empty() {
            return Err(FieldError::new("source", "must not be empty"));
        }
        if finished_at < started_at {
            return Err(FieldError::new(
                "finished_at",
                format!("{finished_at} is before started_at {started_at}"),
            ));
        }
        if i64::try_from(records).is_err() {
            return Err(FieldError::new("records", "is too large"));
        }
        Ok(SourceFetch {
            source: source.to_owned(),
            started_at,
            finished_at,
            records,
            error,
            response: FetchResponse::default(),
            counts: FetchCounts::default(),
            not_modified: false,
            slot_start: None,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn started_at(&self) -> DateTime<Utc> {
        self.started_at
    }

    pub fn finished_at(&self) -> DateTime<Utc> {
        self.finished_at
    }

    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    pub fn response(&self) -> &FetchResponse {
        &self.response
    }

    pub fn counts(&self) -> FetchCounts {
        self.counts
    }

    pub fn is_not_modified(&self) -> bool {
        self.not_modified
    }

    pub fn slot_start(&self) -> Option<DateTime<Utc>> {
        self.slot_start
    }
}

/// `at` without its sub-millisecond part: SQLite keeps times to the millisecond, so a
/// time that is part of a key (a slot's start) is cut the same way on both backends.
pub(super) fn to_millisecond(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(chrono::TimeDelta::milliseconds(1))
        .unwrap_or(at)
}

/// The start of a window of length `window` that ends at `now` (the epoch when the
/// window reaches past it).
pub(super) fn window_start(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(window)
        .ok()
        .and_then(|window| now.checked_sub_signed(window))
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, hour, 0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    }

    #[test]
    fn a_fetch_names_the_field_it_gets_wrong() {
        let field = |r: Result<SourceFetch, FieldError>| r.err().map(|e| e.field);
        assert_eq!(
            field(SourceFetch::succeeded(" ", at(1), at(2), 0)),
            Some("source".into())
        );
        assert_eq!(
            field(SourceFetch::succeeded("rekt", at(2), at(1), 0)),
            Some("finished_at".into())
        );
        assert_eq!(
            field(SourceFetch::failed("rekt", at(1), at(2), 0, "  ")),
            Some("error".into())
        );
        assert_eq!(
            field(SourceFetch::succeeded("rekt", at(1), at(2), u64::MAX)),
            Some("records".into())
        );
        assert_eq!(field(SourceFetch::succeeded("rekt", at(1), at(1), 3)), None);
    }

    #[test]
    fn a_long_error_is_cut_and_the_name_trimmed() {
        let long = "x".repeat(MAX_FETCH_ERROR_CHARS * 3);
        let fetch = SourceFetch::failed(" rekt ", at(1), at(2), 0, &long);
        assert_eq!(
            fetch
                .as_ref()
                .map(|f| (f.source(), f.error().map(str::len))),
            Ok(("rekt", Some(MAX_FETCH_ERROR_CHARS)))
        );
    }

    #[test]
    fn a_fetch_that_was_not_modified_wrote_no_claim() {
        let unchanged = SourceFetch::not_modified("rekt", at(1), at(2));
        let counted = |counts| unchanged.clone().and_then(|f| f.with_counts(counts));
        let wrote = FetchCounts {
            merged: 1,
            ..FetchCounts::default()
        };
        assert_eq!(
            counted(wrote).err().map(|e| e.field),
            Some("not_modified".into())
        );
        let seen_again = FetchCounts {
            unchanged: 4,
            ..FetchCounts::default()
        };
        assert!(counted(seen_again).is_ok_and(|f| f.is_not_modified() && f.is_success()));
    }

    #[test]
    fn a_slot_start_is_kept_to_the_millisecond() {
        let start = at(1) + chrono::TimeDelta::microseconds(1_500);
        let fetch = SourceFetch::succeeded("rekt", at(1), at(2), 0).map(|f| f.for_slot(start));
        assert_eq!(
            fetch.map(|f| f.slot_start()),
            Ok(Some(at(1) + chrono::TimeDelta::milliseconds(1)))
        );
    }

    #[test]
    fn a_window_past_the_epoch_starts_at_the_epoch() {
        assert_eq!(
            window_start(at(5), Duration::from_secs(3600)),
            at(4),
            "an hour before"
        );
        assert_eq!(
            window_start(at(5), Duration::MAX),
            DateTime::<Utc>::UNIX_EPOCH
        );
    }
}
