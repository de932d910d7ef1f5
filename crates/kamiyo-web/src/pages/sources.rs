//! `/sources`: each source's health, as `/api/sources` reports it to this visitor (the
//! last error for admins only: it can name internal hosts).

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use kamiyo_api::params::Params;
use kamiyo_api::{ApiError, AppState};
use kamiyo_store::SourceReport;
use maud::{html, Markup};

use super::html;
use crate::ctx::Ctx;
use crate::format;
use crate::layout;

/// What a sources page depends on: the tier's visibility rule, and whether the last
/// errors are shown (admins).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourcesKey {
    delay: std::time::Duration,
    history: Option<std::time::Duration>,
    admin: bool,
}

pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    query: RawQuery,
) -> Result<Response, ApiError> {
    Params::from_query(query, &[])?;
    let admin = ctx.caller.is_admin();
    let limits = ctx.caller.limits();
    let key = SourcesKey {
        delay: limits.delay,
        history: limits.history,
        admin,
    };
    let (state_for_build, caller) = (state.clone(), ctx.caller.clone());
    // Counting every claim of every source is a scan (0.4 s at 100,000 incidents): the
    // reports are kept and rebuilt in the background, like the overview's figures.
    let sources = ctx
        .dashboard
        .source_health
        .get(key, move || async move {
            kamiyo_api::stats::source_reports(&state_for_build, &caller).await
        })
        .await?;
    let window = format::span(state.server.source_health_window);
    let body = html! {
        h1 { "Sources" }
        p { "Where the incidents come from, and whether each source is being fetched. Success rates are over the last " (window) "." }
        @if !admin { p.muted { "Fetch errors are shown to admins only." } }
        div.table-wrap { table {
            caption { "Health of each source" }
            thead { tr {
                th scope="col" { "Source" }
                th scope="col" { "State" }
                th.num scope="col" { "Incidents" }
                th.num scope="col" { "Claims" }
                th scope="col" { "Last success" }
                th.num scope="col" { "Failures since" }
                th.num scope="col" { "Success rate" }
                th.num scope="col" { "Records last fetch" }
                @if admin { th scope="col" { "Last error" } }
            } }
            tbody {
                @for s in sources.iter() {
                    tr {
                        th scope="row" { (s.source) }
                        td { (state_of(s)) }
                        td.num { (format::count(s.incidents)) }
                        td.num { (format::count(s.claims)) }
                        td { (format::instant_text(s.last_success_at.as_deref())) }
                        td.num { (s.consecutive_failures) }
                        td.num { @match s.success_rate_pct { Some(p) => { (format!("{p:.1} %")) } None => { span.muted { "no fetch" } } } }
                        td.num { @match s.records_last_fetch { Some(n) => { (format::count(n)) } None => { span.muted { "—" } } } }
                        @if admin { td { @if let Some(e) = &s.last_error { code { (e) } } } }
                    }
                }
                @if sources.is_empty() { tr { td colspan="9" { "No source has reported anything yet." } } }
            }
        } }
    };
    Ok(html(StatusCode::OK, layout::page(&ctx, "Sources", body)))
}

/// `stale`, `failing`, `ok`, `inactive`, or `imported` for a source known only by its
/// claims (no fetch recorded).
fn state_of(s: &SourceReport) -> Markup {
    if s.active == Some(false) {
        return html! { span.muted { "inactive" } };
    }
    match (s.stale, s.consecutive_failures, s.last_fetch_at.is_some()) {
        (Some(true), _, _) => html! { span.bad { "stale" } },
        (_, n, _) if n > 0 => html! { span.bad { "failing" } },
        (_, _, true) => html! { span.ok { "ok" } },
        _ => html! { span.muted { "imported" } },
    }
}

/// The overview's compact view: each source's state and its latest data.
pub fn freshness(sources: &[SourceReport]) -> Markup {
    html! {
        div.table-wrap { table {
            caption { "How fresh each source's data is" }
            thead { tr {
                th scope="col" { "Source" } th scope="col" { "State" }
                th scope="col" { "Latest data" } th.num scope="col" { "Incidents" }
            } }
            tbody {
                @for s in sources {
                    tr {
                        th scope="row" { (s.source) }
                        td { (state_of(s)) }
                        td { (format::instant_text(s.last_seen_at.as_deref())) }
                        td.num { (format::count(s.incidents)) }
                    }
                }
                @if sources.is_empty() { tr { td colspan="4" { "No source yet." } } }
            }
        } }
        p { a href="/sources" { "Source health in detail" } }
    }
}
