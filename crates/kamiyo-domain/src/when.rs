//! Incident dates as sources write them: `2023-03-13`, RFC 3339, `3/22/24` (DeFiLlama's
//! M/D/YY), `03/22/2024`. A date alone means midnight UTC.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SubsecRound, TimeZone, Timelike, Utc};

use crate::error::FieldError;

/// The first block of Bitcoin: nothing in this field happened before it.
const EARLIEST: (i32, u32, u32) = (2009, 1, 3);

pub fn parse_incident_date(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, FieldError> {
    let text = text.trim();
    let parsed = DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|d| Utc.from_utc_datetime(&d))
        })
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
                .ok()
                .map(|d| Utc.from_utc_datetime(&d))
        })
        .or_else(|| date_only(text).map(|d| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN))))
        .ok_or_else(|| {
            FieldError::new(
                "date",
                format!(
                    "{text:?} is not a date (expected YYYY-MM-DD, RFC 3339, M/D/YY or M/D/YYYY)"
                ),
            )
        })?;
    let earliest = NaiveDate::from_ymd_opt(EARLIEST.0, EARLIEST.1, EARLIEST.2)
        .map(|d| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN)));
    if earliest.is_some_and(|earliest| parsed < earliest) {
        return Err(FieldError::new(
            "date",
            format!("{text:?} is before 2009-01-03"),
        ));
    }
    // A leap second (`23:59:60`) has no place in either backend's timestamps: it becomes
    // the last millisecond of its minute. Sub-millisecond precision is noise in this
    // field, and SQLite stores milliseconds.
    let parsed = if parsed.nanosecond() >= 1_000_000_000 {
        parsed.with_nanosecond(999_000_000).unwrap_or(parsed)
    } else {
        parsed
    };
    let parsed = parsed.trunc_subsecs(3);
    let latest = now
        .checked_add_signed(chrono::Duration::days(1))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if parsed > latest {
        return Err(FieldError::new(
            "date",
            format!("{text:?} is in the future"),
        ));
    }
    Ok(parsed)
}

fn date_only(text: &str) -> Option<NaiveDate> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(date);
    }
    // M/D/YY or M/D/YYYY, as US sources and DeFiLlama write them.
    let parts: Vec<&str> = text.split('/').collect();
    let [month, day, year] = parts.as_slice() else {
        return None;
    };
    let (month, day): (u32, u32) = (month.parse().ok()?, day.parse().ok()?);
    let year: i32 = match year.len() {
        2 => 2000 + year.parse::<i32>().ok()?,
        4 => year.parse().ok()?,
        _ => return None,
    };
    NaiveDate::from_ymd_opt(year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn source_formats() {
        let day = |s: &str| {
            parse_incident_date(s, now())
                .unwrap()
                .format("%Y-%m-%dT%H:%M")
                .to_string()
        };
        assert_eq!(day("2023-03-13"), "2023-03-13T00:00");
        assert_eq!(day("3/22/24"), "2024-03-22T00:00");
        assert_eq!(day("03/22/2024"), "2024-03-22T00:00");
        assert_eq!(day("2023-03-13T08:50:00Z"), "2023-03-13T08:50");
        assert_eq!(day("2023-03-13T10:50:00+02:00"), "2023-03-13T08:50");
        let leap = parse_incident_date("2016-12-31T23:59:60Z", now()).unwrap();
        assert_eq!(leap.format("%H:%M:%S%.3f").to_string(), "23:59:59.999");
    }

    #[test]
    fn refusals() {
        for bad in ["yesterday", "13/45/23", "2008-01-01", "2030-01-01", ""] {
            let err = parse_incident_date(bad, now()).unwrap_err();
            assert_eq!(err.field, "date", "{bad}");
        }
    }
}
