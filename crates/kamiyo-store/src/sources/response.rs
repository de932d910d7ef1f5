//! What an HTTP fetch of a source records beside its outcome (migration 0005): the
//! response's status, size and duration, the validators for the next conditional
//! request, and what the fetched records became. An import records none of it, so every
//! part is optional or zero by default.

use kamiyo_domain::FieldError;

/// Longest `ETag` or `Last-Modified` kept (in characters). A longer one is not kept at
/// all rather than cut: a cut validator would make every conditional request miss, and
/// refusing the whole fetch record for a server's odd header would lose its outcome.
pub const MAX_VALIDATOR_CHARS: usize = 1_000;

/// What a fetcher sends back to the source to ask "changed since?": the `ETag` and
/// `Last-Modified` the server sent, and the SHA-256 of the body (lowercase hex), which
/// also spots an unchanged body from a server that sends no validator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub body_sha256: Option<String>,
}

impl Validators {
    /// The validators as they are recorded: over-long or empty headers dropped (see
    /// [`MAX_VALIDATOR_CHARS`]), the body hash checked.
    pub(super) fn validated(self) -> Result<Self, FieldError> {
        if let Some(hash) = &self.body_sha256 {
            let hex = hash.len() == 64
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex {
                return Err(FieldError::new(
                    "body_sha256",
                    "must be 64 lowercase hexadecimal digits",
                ));
            }
        }
        Ok(Validators {
            etag: kept_header(self.etag),
            last_modified: kept_header(self.last_modified),
            body_sha256: self.body_sha256,
        })
    }

    /// Whether there is anything to send a conditional request with.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none() && self.body_sha256.is_none()
    }
}

fn kept_header(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty() && v.chars().count() <= MAX_VALIDATOR_CHARS)
}

/// The HTTP side of a fetch. `status` is that of the last response (after redirects);
/// all of it is `None` for an import, and the status for a fetch that got no response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchResponse {
    pub status: Option<u16>,
    /// Bytes of the body as received.
    pub bytes: Option<u64>,
    /// From the request's start to the body's end, in milliseconds.
    pub duration_ms: Option<u64>,
    pub validators: Validators,
}

impl FetchResponse {
    pub(super) fn validated(self) -> Result<Self, FieldError> {
        if let Some(status) = self.status {
            if !(100..=599).contains(&status) {
                return Err(FieldError::new(
                    "http_status",
                    format!("{status} is not an HTTP status"),
                ));
            }
        }
        fits("bytes", self.bytes)?;
        fits("duration_ms", self.duration_ms)?;
        Ok(FetchResponse {
            validators: self.validators.validated()?,
            ..self
        })
    }
}

/// What the records a fetch brought became, by the ingest's decision. Unsigned, so never
/// negative; each must fit the database's `bigint`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchCounts {
    /// New incidents.
    pub inserted: u64,
    /// Claims merged into an existing incident.
    pub merged: u64,
    /// Claims that changed what was stored.
    pub updated: u64,
    /// Claims stored before and reported the same again.
    pub unchanged: u64,
    /// Records refused (invalid).
    pub rejected: u64,
}

impl FetchCounts {
    pub(super) fn validated(self) -> Result<Self, FieldError> {
        fits("inserted", Some(self.inserted))?;
        fits("merged", Some(self.merged))?;
        fits("updated", Some(self.updated))?;
        fits("unchanged", Some(self.unchanged))?;
        fits("rejected", Some(self.rejected))?;
        Ok(self)
    }

    /// Whether any claim was written (a fetch marked not modified writes none).
    pub fn wrote_claims(&self) -> bool {
        self.inserted > 0 || self.merged > 0 || self.updated > 0
    }
}

/// Refuses a count the database's signed 64-bit columns cannot hold.
pub(super) fn fits(field: &str, value: Option<u64>) -> Result<(), FieldError> {
    match value {
        Some(v) if i64::try_from(v).is_err() => Err(FieldError::new(field, "is too large")),
        _ => Ok(()),
    }
}

/// `value` as the database's signed 64-bit integer (validated before: see [`fits`]).
pub(super) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_over_long_or_empty_validator_is_not_kept_and_a_bad_hash_is_refused() {
        let kept = Validators {
            etag: Some("x".repeat(MAX_VALIDATOR_CHARS + 1)),
            last_modified: Some("  ".into()),
            body_sha256: None,
        }
        .validated();
        assert_eq!(kept, Ok(Validators::default()));
        let bad = Validators {
            body_sha256: Some("ABC".into()),
            ..Validators::default()
        };
        assert_eq!(
            bad.validated().err().map(|e| e.field),
            Some("body_sha256".into())
        );
    }

    #[test]
    fn a_status_outside_http_and_a_count_past_bigint_are_refused() {
        let response = FetchResponse {
            status: Some(99),
            ..FetchResponse::default()
        };
        assert_eq!(
            response.validated().err().map(|e| e.field),
            Some("http_status".into())
        );
        let counts = FetchCounts {
            rejected: u64::MAX,
            ..FetchCounts::default()
        };
        assert_eq!(
            counts.validated().err().map(|e| e.field),
            Some("rejected".into())
        );
    }
}
