//! Kamiyo's CSV format: a header row (any order, any case), one incident per record.

use crate::table::{self, Row, Schema};
use crate::text::{self, push_unique};
use crate::{Format, IngestError, RawIncident, Rejection};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Column {
    Protocol,
    Chains,
    Date,
    LossUsd,
    RecoveredUsd,
    AttackClass,
    Technique,
    TxHashes,
    Status,
    Description,
    Source,
    SourceUrl,
    ExternalId,
    FlashLoan,
    Bridge,
    TargetType,
}

impl Schema for Column {
    const FORMAT: Format = Format::Csv;
    const COLUMNS: &'static [(Self, &'static str)] = &[
        (Column::Protocol, "protocol"),
        (Column::Chains, "chains"),
        (Column::Date, "date"),
        (Column::LossUsd, "loss_usd"),
        (Column::RecoveredUsd, "recovered_usd"),
        (Column::AttackClass, "attack_class"),
        (Column::Technique, "technique"),
        (Column::TxHashes, "tx_hashes"),
        (Column::Status, "status"),
        (Column::Description, "description"),
        (Column::Source, "source"),
        (Column::SourceUrl, "source_url"),
        (Column::ExternalId, "external_id"),
        (Column::FlashLoan, "flash_loan"),
        (Column::Bridge, "bridge"),
        (Column::TargetType, "target_type"),
    ];
    const REQUIRED: &'static [Self] = &[Column::Protocol, Column::Date];
    const UNKNOWN_IS_ERROR: bool = true;
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Result<RawIncident, Rejection>>, IngestError> {
    table::read(bytes, to_incident)
}

fn to_incident(row: &Row<Column>) -> Result<RawIncident, Rejection> {
    let mut chains = Vec::new();
    text::split_list(row.raw(Column::Chains)).for_each(|chain| push_unique(&mut chains, chain));

    let mut tx_hashes = Vec::new();
    for entry in text::split_list(row.raw(Column::TxHashes)) {
        match text::tx_hash(&entry) {
            Ok(Some(hash)) => push_unique(&mut tx_hashes, hash),
            Ok(None) => {}
            Err(message) => {
                return Err(Rejection::field(
                    row.line,
                    "tx_hashes",
                    format!("column `tx_hashes`: {message}"),
                ))
            }
        }
    }

    Ok(RawIncident {
        line: row.line,
        source: row.text(Column::Source),
        source_url: row.text(Column::SourceUrl),
        external_id: row.text(Column::ExternalId),
        // Our own export keys claims as the API does (protocol, day, id).
        id_names_incident: false,
        protocol: row.text(Column::Protocol),
        chains,
        date: row.text(Column::Date),
        loss_usd: row.text(Column::LossUsd),
        recovered_usd: row.text(Column::RecoveredUsd),
        attack_class: row.text(Column::AttackClass),
        technique: row.text(Column::Technique),
        tx_hashes,
        status: row.text(Column::Status),
        description: row.text(Column::Description),
        flash_loan: row.boolean(Column::FlashLoan)?,
        bridge: row.boolean(Column::Bridge)?,
        target_type: row.text(Column::TargetType),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawTxHash;

    fn parse_str(input: &str) -> Result<Vec<Result<RawIncident, Rejection>>, IngestError> {
        parse(input.as_bytes())
    }

    #[test]
    fn columns_are_matched_in_any_order_and_case() {
        let results =
            parse_str("Date, PROTOCOL ,Chains\n2024-03-01,Examplefi,\"Ethereum; BSC\"\n").unwrap();
        let incident = results[0].as_ref().unwrap();
        assert_eq!(incident.line, 2);
        assert_eq!(incident.protocol.as_deref(), Some("Examplefi"));
        assert_eq!(incident.date.as_deref(), Some("2024-03-01"));
        assert_eq!(incident.chains, ["Ethereum", "BSC"]);
    }

    #[test]
    fn tx_hashes_split_and_take_an_optional_chain() {
        let results =
            parse_str("protocol,date,tx_hashes\nExamplefi,2024-03-01,\"ethereum:0xaa, 0xbb;\"\n")
                .unwrap();
        assert_eq!(
            results[0].as_ref().unwrap().tx_hashes,
            [
                RawTxHash {
                    chain: Some("ethereum".into()),
                    hash: "0xaa".into()
                },
                RawTxHash {
                    chain: None,
                    hash: "0xbb".into()
                },
            ]
        );
    }

    #[test]
    fn bad_boolean_rejects_the_row_and_names_the_column() {
        let results =
            parse_str("protocol,date,flash_loan,bridge\nExamplefi,2024-03-01,perhaps,\nSamplswap,2024-03-02,YES,0\n")
                .unwrap();
        let rejection = results[0].as_ref().unwrap_err();
        assert_eq!(rejection.line, 2);
        assert_eq!(rejection.field.as_deref(), Some("flash_loan"));
        assert!(rejection.message.contains("perhaps"), "{rejection}");
        let incident = results[1].as_ref().unwrap();
        assert_eq!(
            (incident.flash_loan, incident.bridge),
            (Some(true), Some(false))
        );
    }

    #[test]
    fn header_problems_fail_the_file_and_name_the_columns() {
        let err = parse_str("protocol,chains\n").unwrap_err();
        assert!(matches!(err, IngestError::MissingColumns { .. }), "{err}");
        assert!(err.to_string().contains("date"), "{err}");

        let err = parse_str("protocol,date,los_usd,severity\n").unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("\"los_usd\" (did you mean \"loss_usd\"?)"),
            "{message}"
        );
        assert!(message.contains("\"severity\""), "{message}");

        let err = parse_str("protocol,date,Protocol\n").unwrap_err();
        assert!(matches!(err, IngestError::DuplicateColumns { .. }), "{err}");

        let err = parse_str("").unwrap_err();
        assert!(matches!(err, IngestError::MissingHeader { .. }), "{err}");
    }

    #[test]
    fn wrong_width_and_non_utf8_rows_are_rejected_alone() {
        let mut input = b"protocol,date\nExamplefi\n".to_vec();
        input.extend_from_slice(b"Bad\xffName,2024-01-01\nSamplswap,2024-01-02\n");
        let results = parse(&input).unwrap();
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].as_ref().unwrap_err().line, 2);
        let rejection = results[1].as_ref().unwrap_err();
        assert_eq!(rejection.line, 3);
        assert_eq!(rejection.field.as_deref(), Some("protocol"));
        assert_eq!(results[2].as_ref().unwrap().line, 4);
    }

    #[test]
    fn a_record_spanning_lines_reports_the_line_it_starts_on() {
        let results = parse_str(
            "protocol,date,description\nExamplefi,2024-01-01,\"first\nsecond\"\nSamplswap,2024-01-02,\n",
        )
        .unwrap();
        assert_eq!(results[0].as_ref().unwrap().line, 2);
        assert_eq!(
            results[0].as_ref().unwrap().description.as_deref(),
            Some("first\nsecond")
        );
        assert_eq!(results[1].as_ref().unwrap().line, 4);
    }

    #[test]
    fn byte_order_mark_before_the_header_is_ignored() {
        let results = parse(b"\xEF\xBB\xBFprotocol,date\nExamplefi,2024-01-01\n").unwrap();
        assert_eq!(
            results[0].as_ref().unwrap().protocol.as_deref(),
            Some("Examplefi")
        );
    }
}
