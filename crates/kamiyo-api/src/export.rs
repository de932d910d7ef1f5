//! Exports with the listing's filters: `GET /api/exploits.csv` (every match, up to
//! `server.export_max_rows`) and `GET /api/feed.atom` (the most recent matches).

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Extension;
use kamiyo_store::incidents::{IncidentSummary, ListRequest, Order, PageLimit, SortKey};

use crate::auth::Caller;
use crate::error::Result;
use crate::exploits::{list_request, ListQuery, LIST_PARAMETERS};
use crate::params::Params;
use crate::AppState;

const CSV_COLUMNS: &str = "id,occurred_at,protocol,chains,loss_usd,recovered_usd,attack_class,attack_type,status,flash_loan,bridge,source_url";

/// Walks the listing page by page (the same keyset walk clients use) up to `max` rows.
async fn collect(
    state: &AppState,
    mut request: ListRequest,
    max: usize,
) -> Result<Vec<IncidentSummary>> {
    let mut rows = Vec::new();
    while rows.len() < max {
        request.limit = PageLimit::at_most(max - rows.len());
        let page = state.incidents.list(&request).await?;
        rows.extend(page.items);
        request.cursor = page.next_cursor;
        if request.cursor.is_none() {
            break;
        }
    }
    Ok(rows)
}

#[utoipa::path(get, path = "/api/exploits.csv", tag = "exports",
    params(ListQuery),
    responses((status = 200, description = "Every match (up to server.export_max_rows) as CSV", content_type = "text/csv", body = String),
        (status = 400, description = "A parameter is malformed, empty, repeated or unknown; the message names it", body = crate::error::ErrorEnvelope),))]
pub async fn csv(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: RawQuery,
) -> Result<impl IntoResponse> {
    let params = Params::from_query(query, LIST_PARAMETERS)?;
    let request = list_request(&params, &caller, state.now())?;
    // `limit` bounds an export only when given; otherwise every match, up to the cap.
    let max = match params.text("limit")? {
        Some(_) => request.limit.get().min(state.server.export_max_rows),
        None => state.server.export_max_rows,
    };
    let rows = collect(&state, request, max).await?;
    let mut out = String::with_capacity(rows.len() * 160);
    out.push_str(CSV_COLUMNS);
    out.push_str("\r\n");
    for row in &rows {
        let fields = [
            row.id.to_string(),
            row.occurred_at.to_rfc3339(),
            row.protocol.clone(),
            slugs(&row.chains).join(";"),
            row.loss_usd.map(|usd| usd.to_string()).unwrap_or_default(),
            row.recovered_usd
                .map(|usd| usd.to_string())
                .unwrap_or_default(),
            row.attack_class.to_string(),
            row.attack_type.to_string(),
            row.status.as_str().to_owned(),
            row.flash_loan.to_string(),
            row.bridge.to_string(),
            row.source_url.clone().unwrap_or_default(),
        ];
        let cells: Vec<String> = fields.iter().map(|f| csv_cell(f)).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"kamiyo-exploits.csv\"",
            ),
        ],
        out,
    ))
}

fn slugs(chains: &[kamiyo_domain::Chain]) -> Vec<&str> {
    chains.iter().map(kamiyo_domain::Chain::slug).collect()
}

/// RFC 4180 quoting, and a leading `'` before `=`, `+`, `-`, `@`: a spreadsheet must not
/// run a protocol name as a formula.
fn csv_cell(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@']) && value.parse::<f64>().is_err() {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if guarded.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[utoipa::path(get, path = "/api/feed.atom", tag = "exports",
    params(ListQuery),
    responses((status = 200, description = "The newest matches as an Atom feed", content_type = "application/atom+xml", body = String),
        (status = 400, description = "A parameter is malformed, empty, repeated or unknown; the message names it", body = crate::error::ErrorEnvelope),))]
pub async fn atom(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: RawQuery,
) -> Result<impl IntoResponse> {
    let params = Params::from_query(query, LIST_PARAMETERS)?;
    let mut request = list_request(&params, &caller, state.now())?;
    // A feed is the newest first, whatever was asked.
    request.sort = SortKey::Date;
    request.order = Order::Desc;
    request.cursor = None;
    let limit = request.limit.get();
    let rows = collect(&state, request, limit).await?;
    let updated = rows
        .first()
        .map_or_else(|| state.now().to_rfc3339(), |r| r.occurred_at.to_rfc3339());
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    xml.push_str(
        "  <title>Kamiyo: exploit incidents</title>\n  <id>urn:kamiyo:feed:exploits</id>\n",
    );
    xml.push_str(&format!(
        "  <updated>{updated}</updated>\n  <link rel=\"self\" href=\"/api/feed.atom\"/>\n"
    ));
    for row in &rows {
        let loss = row
            .loss_usd
            .map_or_else(|| "loss unknown".to_owned(), |l| format!("${l}"));
        let title = format!(
            "{}: {} on {} ({})",
            row.protocol,
            row.attack_type,
            slugs(&row.chains).join(", "),
            loss
        );
        xml.push_str("  <entry>\n");
        xml.push_str(&format!("    <id>urn:kamiyo:incident:{}</id>\n", row.id));
        xml.push_str(&format!("    <title>{}</title>\n", escape(&title)));
        xml.push_str(&format!(
            "    <updated>{}</updated>\n",
            row.occurred_at.to_rfc3339()
        ));
        xml.push_str(&format!("    <link href=\"/api/exploits/{}\"/>\n", row.id));
        xml.push_str(&format!(
            "    <summary>{}</summary>\n",
            escape(&format!(
                "status {}, class {}, flash loan {}, bridge {}",
                row.status.as_str(),
                row.attack_class,
                row.flash_loan,
                row.bridge
            ))
        ));
        xml.push_str("  </entry>\n");
    }
    xml.push_str("</feed>\n");
    Ok((
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        xml,
    ))
}

fn escape(text: &str) -> String {
    text.chars()
        .filter(|c| {
            (!c.is_control() || *c == '\n' || *c == '\t') && *c != '\u{FFFE}' && *c != '\u{FFFF}'
        })
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_cell("-5"), "-5");
    }

    #[test]
    fn xml_is_escaped() {
        assert_eq!(escape("<a & \"b\">\u{0}"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
