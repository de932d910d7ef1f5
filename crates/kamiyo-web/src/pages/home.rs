//! `/`: totals for a chosen window, loss by month, by attack class and by chain, the
//! latest incidents and the sources' freshness.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use kamiyo_api::exploits::{list_request, LIST_PARAMETERS};
use kamiyo_api::params::Params;
use kamiyo_api::{ApiError, AppState, Caller};
use kamiyo_domain::AttackType;
use kamiyo_store::incidents::stats::Dimension;
use kamiyo_store::incidents::stats::{Bucket, Summary};
use kamiyo_store::incidents::IncidentSummary;
use kamiyo_store::SourceReport;
use maud::html;
use rust_decimal::Decimal;

use super::table::{without_empty_fields, IncidentTable};
use super::{html, sources::freshness};
use crate::chart::{Bar, Chart};
use crate::ctx::Ctx;
use crate::format;
use crate::layout;

/// The windows offered; any `days` from 1 to 3650 works in the URL.
const WINDOWS: &[(Option<i64>, &str)] = &[
    (None, "All time"),
    (Some(365), "Last 12 months"),
    (Some(90), "Last 90 days"),
    (Some(30), "Last 30 days"),
];

/// Chains shown in the chart; the table behind it has the same.
const TOP_CHAINS: usize = 10;

/// What the overview's figures depend on: the window asked for and the visitor's tier
/// rule (not the tier itself: tiers with one rule share figures).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OverviewKey {
    days: Option<i64>,
    delay: std::time::Duration,
    history: Option<std::time::Duration>,
}

/// The overview's figures, read together (see `snapshot`).
pub struct Overview {
    summary: Summary,
    months: Vec<Bucket>,
    types: Vec<Bucket>,
    chains: Vec<Bucket>,
    latest: Vec<IncidentSummary>,
    sources: Vec<SourceReport>,
    /// When they were read.
    built_at: DateTime<Utc>,
}

/// Reads the overview's figures as `caller` may see them now.
async fn build(state: AppState, caller: Caller, days: Option<i64>) -> Result<Overview, ApiError> {
    let now = state.now();
    let (since, until) = kamiyo_api::stats::visible_window(days, &caller, now);
    let latest_request = list_request(
        &Params::from_query(RawQuery(Some("limit=10".into())), LIST_PARAMETERS)?,
        &caller,
        now,
    )?;
    let incidents = &state.incidents;
    // The six reads at once: each takes its own connection (or a cached answer), so the
    // build costs the slowest of them, not their sum.
    let (summary, months, types, chains, latest, sources) = tokio::join!(
        incidents.summary(since, until),
        incidents.breakdown(Dimension::Month, since, until),
        incidents.breakdown(Dimension::AttackType, since, until),
        incidents.breakdown(Dimension::Chain, since, until),
        incidents.list(&latest_request),
        kamiyo_api::stats::source_reports(&state, &caller),
    );
    let mut sources = sources?;
    // Figures are shared by every visitor with this rule: no admin-only text in them.
    for source in &mut sources {
        source.last_error = None;
    }
    Ok(Overview {
        summary: summary?,
        months: months?,
        types: types?,
        chains: chains?,
        latest: latest?.items,
        sources,
        built_at: now,
    })
}

pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    if let Some(redirect) = without_empty_fields("/", query.as_deref()) {
        return Ok(redirect);
    }
    let params = Params::from_query(RawQuery(query), &["days"])?;
    let days = params.integer("days", 1, kamiyo_api::stats::MAX_DAYS)?;
    let limits = ctx.caller.limits();
    let key = OverviewKey {
        days,
        delay: limits.delay,
        history: limits.history,
    };
    let (state_for_build, caller) = (state.clone(), ctx.caller.clone());
    let overview = ctx
        .dashboard
        .overview
        .get(key, move || build(state_for_build, caller, days))
        .await?;
    let Overview {
        summary,
        months,
        types,
        chains,
        latest,
        sources,
        built_at,
    } = &*overview;

    let month_bars: Vec<Bar> = months
        .iter()
        .map(|b| Bar {
            label: b.key.clone(),
            loss: format::decimal(&b.total_loss_usd),
            incidents: b.incidents,
        })
        .collect();
    let mut by_class: BTreeMap<&'static str, (Decimal, i64)> = BTreeMap::new();
    for bucket in types {
        let class = AttackType::parse(&bucket.key)
            .map(|t| t.class().as_str())
            .unwrap_or("other");
        let entry = by_class.entry(class).or_default();
        entry.0 += format::decimal(&bucket.total_loss_usd);
        entry.1 += bucket.incidents;
    }
    let mut class_bars: Vec<Bar> = by_class
        .into_iter()
        .map(|(class, (loss, incidents))| Bar {
            label: class.replace('_', " "),
            loss,
            incidents,
        })
        .collect();
    class_bars.sort_by_key(|b| std::cmp::Reverse(b.loss));
    // The chains that lost the most (the store orders them by incidents).
    let mut chains: Vec<&Bucket> = chains.iter().collect();
    chains.sort_by_key(|b| std::cmp::Reverse(format::decimal(&b.total_loss_usd)));
    let chain_bars: Vec<Bar> = chains
        .into_iter()
        .take(TOP_CHAINS)
        .map(|b| Bar {
            label: kamiyo_domain::Chain::parse(&b.key)
                .map(|c| c.display_name())
                .unwrap_or_else(|_| b.key.clone()),
            loss: format::decimal(&b.total_loss_usd),
            incidents: b.incidents,
        })
        .collect();

    let window_name = WINDOWS
        .iter()
        .find(|(d, _)| *d == days)
        .map(|(_, name)| (*name).to_owned())
        .unwrap_or_else(|| format!("Last {} days", days.unwrap_or_default()));
    let body = html! {
        h1 { "Exploits: " (window_name.to_lowercase()) }
        form.actions method="get" action="/" {
            label for="days" { "Window" }
            select #days name="days" {
                @for (value, name) in WINDOWS {
                    option value=(value.map(|d| d.to_string()).unwrap_or_default()) selected[*value == days] { (name) }
                }
            }
            button type="submit" { "Show" }
        }
        ul.cards aria-label="Totals" {
            li { span.label { "Incidents" } span.value { (format::count(summary.incidents)) } }
            li { span.label { "Lost" } span.value { (format::usd(Some(format::decimal(&summary.total_loss_usd)))) } }
            li { span.label { "Recovered" } span.value { (format::usd(Some(format::decimal(&summary.recovered_usd)))) } }
            li { span.label { "Protocols hit" } span.value { (format::count(summary.protocols_affected)) } }
            li { span.label { "Chains hit" } span.value { (format::count(summary.chains_affected)) } }
        }
        (Chart { id: "by-month", title: "Loss by month", label_header: "Month", bars: month_bars }.columns())
        div.grid2 {
            (Chart { id: "by-class", title: "Loss by attack class", label_header: "Attack class", bars: class_bars }.rows())
            (Chart { id: "by-chain", title: "Loss by chain (top 10)", label_header: "Chain", bars: chain_bars }.rows())
        }
        h2 { "Latest incidents" }
        (IncidentTable { caption: "The ten most recent incidents you can see", items: latest, sort_links: None }.render())
        p { a href="/incidents" { "All incidents, with filters" } }
        h2 { "Sources" }
        (freshness(sources))
        p.muted { "Figures as of " (format::instant(*built_at)) "." }
    };
    Ok(html(StatusCode::OK, layout::page(&ctx, "Overview", body)))
}
