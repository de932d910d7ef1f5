//! How an alert reads in Slack, Discord, Telegram and email.
//!
//! Every value taken from an incident is source data, written by whoever published the
//! report, so it is treated as hostile: made single-line and bounded ([`one_line`]) so a
//! protocol name cannot forge extra lines, then escaped for the target's markup so it
//! cannot become a link, a mention or broken markup. Platform limits are met by dropping
//! whole lines (see `text::pack_lines`), never by cutting through an escape.

mod text;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use text::{escape_within, pack_lines, truncate, units};
pub use text::{format_usd, one_line, MAX_VALUE_CHARS};

/// Slack: header blocks take at most 150 characters, section text 3,000.
pub const SLACK_HEADER_LIMIT: usize = 150;
pub const SLACK_SECTION_LIMIT: usize = 3000;
/// Discord: message content 2,000; embed title 256, description 4,096, field value
/// 1,024, and all of an embed's text together 6,000.
pub const DISCORD_CONTENT_LIMIT: usize = 2000;
pub const DISCORD_TITLE_LIMIT: usize = 256;
pub const DISCORD_DESCRIPTION_LIMIT: usize = 4096;
pub const DISCORD_FIELD_VALUE_LIMIT: usize = 1024;
pub const DISCORD_EMBED_TOTAL_LIMIT: usize = 6000;
/// Telegram: a message's text, 4,096 characters.
pub const TELEGRAM_TEXT_LIMIT: usize = 4096;
/// Email subjects are kept short enough to read in a list; the mail sender folds and
/// encodes them (RFC 2047) for non-ASCII text.
pub const EMAIL_SUBJECT_LIMIT: usize = 200;

/// What an alert says about one incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSummary {
    /// `incident.created`, `incident.updated`, `incident.merged` or `test`.
    pub event: String,
    pub incident_id: i64,
    pub protocol: String,
    pub chains: Vec<String>,
    pub loss_usd: Option<rust_decimal::Decimal>,
    pub occurred_at: DateTime<Utc>,
    pub attack: Option<String>,
    pub sources: usize,
    /// Link to the incident in the service, when a public base URL is configured.
    pub url: Option<String>,
    /// For `incident.updated`: what changed.
    pub changes: Vec<Change>,
}

/// One changed field of an incident, as display strings; `None` where it had no value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// The alert's content before any markup: every value single-line and bounded.
struct Facts {
    title: Title,
    intro: Option<&'static str>,
    fields: Vec<(&'static str, String)>,
    changes: Vec<[String; 3]>,
    link: Option<String>,
    color: u32,
}

/// A title keeps our words apart from the incident's, so only the latter are escaped:
/// `New incident: ` + protocol + ` — $197M`.
struct Title {
    prefix: String,
    subject: String,
    suffix: String,
}

impl Title {
    /// The title in at most `limit` units, the subject escaped with `escape` and cut
    /// first when it does not fit.
    fn render(&self, limit: usize, escape: fn(char, &mut String)) -> String {
        let ours = units(&self.prefix) + units(&self.suffix);
        if ours > limit {
            return truncate(&format!("{}{}", self.prefix, self.suffix), limit);
        }
        let subject = escape_within(&self.subject, limit - ours, escape);
        format!("{}{subject}{}", self.prefix, self.suffix)
    }

    fn plain(&self) -> String {
        format!("{}{}{}", self.prefix, self.subject, self.suffix)
    }
}

impl Facts {
    fn of(alert: &AlertSummary) -> Facts {
        let protocol = one_line(&alert.protocol);
        let loss = format_usd(alert.loss_usd);
        let title = |prefix: &str, suffix: String| Title {
            prefix: prefix.to_owned(),
            subject: protocol.clone(),
            suffix,
        };
        let (title, intro, color) = match alert.event.as_str() {
            "incident.created" if alert.loss_usd.is_some() => (
                title("New incident: ", format!(" — {loss}")),
                None,
                0xE5484D,
            ),
            "incident.created" => (title("New incident: ", String::new()), None, 0xE5484D),
            "incident.updated" => (title("Incident updated: ", String::new()), None, 0xF5A524),
            "incident.merged" => (title("Incidents merged: ", String::new()), None, 0x6E56CF),
            "test" => (
                Title {
                    prefix: "Kamiyo test alert".to_owned(),
                    subject: String::new(),
                    suffix: String::new(),
                },
                Some("This is a test: alerts sent here will look like this."),
                0x8B8D98,
            ),
            other => (
                title(&format!("{}: ", one_line(other)), String::new()),
                None,
                0x8B8D98,
            ),
        };
        let chains = if alert.chains.is_empty() {
            "unknown".to_owned()
        } else {
            one_line(&alert.chains.join(", "))
        };
        let attack = alert
            .attack
            .as_deref()
            .map(one_line)
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        let fields = vec![
            ("Protocol", protocol.clone()),
            ("Loss", loss),
            ("Chains", chains),
            ("Attack", attack),
            (
                "Occurred",
                alert.occurred_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            ),
            ("Sources", alert.sources.to_string()),
            ("Incident", format!("#{}", alert.incident_id)),
        ];
        let shown = |value: &Option<String>| {
            value
                .as_deref()
                .map(one_line)
                .unwrap_or_else(|| "none".to_owned())
        };
        let changes = alert
            .changes
            .iter()
            .map(|c| [one_line(&c.field), shown(&c.old), shown(&c.new)])
            .collect();
        Facts {
            title,
            intro,
            fields,
            changes,
            link: alert.url.as_deref().and_then(web_link),
            color,
        }
    }
}

/// `field: old → new`, the incident's parts escaped.
fn change_line([field, old, new]: &[String; 3], escape: fn(char, &mut String)) -> String {
    format!(
        "{}: {} → {}",
        escaped(field, escape),
        escaped(old, escape),
        escaped(new, escape)
    )
}

fn plain(c: char, out: &mut String) {
    out.push(c);
}

/// The link as serialized by the URL parser (which percent-encodes `<`, `>`, `"` and
/// spaces), or nothing unless it is http(s): a `javascript:` link must never be shown.
fn web_link(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| parsed.to_string())
}

fn slack_escape(c: char, out: &mut String) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        _ => out.push(c),
    }
}

fn html_escape(c: char, out: &mut String) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        _ => out.push(c),
    }
}

/// Discord markdown has backslash escapes for every markup character. `@` and `:` are
/// escaped too, so `@everyone` shows as text and `https://…` in a name is not made a link.
fn discord_escape(c: char, out: &mut String) {
    if matches!(
        c,
        '\\' | '*' | '_' | '~' | '`' | '|' | '<' | '>' | '[' | ']' | '@' | ':'
    ) {
        out.push('\\');
    }
    out.push(c);
}

fn escaped(s: &str, escape: fn(char, &mut String)) -> String {
    escape_within(s, usize::MAX, escape)
}

/// A Slack incoming-webhook body: `text` (the notification and fallback), a plain-text
/// header and one mrkdwn section. Slack's mrkdwn has no escape for `*`, `_` or `~`; those
/// can only change emphasis, while `&`, `<` and `>` (links, mentions) are escaped, and
/// `verbatim` stops Slack from turning names into links or channel references.
pub fn slack(alert: &AlertSummary) -> Value {
    let facts = Facts::of(alert);
    let mut lines = Vec::new();
    if let Some(intro) = facts.intro {
        lines.push(intro.to_owned());
    }
    for (label, value) in &facts.fields {
        lines.push(format!("*{label}:* {}", escaped(value, slack_escape)));
    }
    if !facts.changes.is_empty() {
        lines.push("*Changes:*".to_owned());
        for change in &facts.changes {
            lines.push(format!("• {}", change_line(change, slack_escape)));
        }
    }
    if let Some(link) = &facts.link {
        // `|` ends the URL part of a Slack link, so it must not appear inside it.
        let target = escaped(&link.replace('|', "%7C"), slack_escape);
        lines.push(format!("<{target}|Open in Kamiyo>"));
    }
    json!({
        "text": facts.title.render(SLACK_SECTION_LIMIT, slack_escape),
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": facts.title.render(SLACK_HEADER_LIMIT, plain),
                    "emoji": false,
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": pack_lines(&lines, SLACK_SECTION_LIMIT),
                    "verbatim": true,
                },
            },
        ],
    })
}

/// A Discord webhook body: `content` (the notification line) and one embed. Mentions are
/// switched off with `allowed_mentions`, so nothing in the data can ping anyone.
pub fn discord(alert: &AlertSummary) -> Value {
    let facts = Facts::of(alert);
    let title = facts.title.render(DISCORD_TITLE_LIMIT, discord_escape);
    let footer = format!("Kamiyo · incident #{}", alert.incident_id);
    let fields: Vec<(&str, String)> = facts
        .fields
        .iter()
        .filter(|(label, _)| *label != "Incident")
        .map(|(label, value)| {
            let value = escape_within(value, DISCORD_FIELD_VALUE_LIMIT, discord_escape);
            (*label, value)
        })
        .collect();
    let used = units(&title)
        + units(&footer)
        + fields
            .iter()
            .map(|(label, value)| units(label) + units(value))
            .sum::<usize>();
    let description_limit =
        DISCORD_DESCRIPTION_LIMIT.min(DISCORD_EMBED_TOTAL_LIMIT.saturating_sub(used));
    let mut lines: Vec<String> = facts.intro.iter().map(|s| (*s).to_owned()).collect();
    if !facts.changes.is_empty() {
        lines.push("**Changes**".to_owned());
        for change in &facts.changes {
            lines.push(format!("• {}", change_line(change, discord_escape)));
        }
    }

    let mut embed = json!({
        "title": title,
        "color": facts.color,
        "timestamp": alert.occurred_at.to_rfc3339(),
        "footer": { "text": footer },
        "fields": fields
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value, "inline": true }))
            .collect::<Vec<_>>(),
    });
    // Discord rejects an empty description, and an embed URL that is not a URL.
    if !lines.is_empty() {
        embed["description"] = json!(pack_lines(&lines, description_limit));
    }
    if let Some(link) = facts.link {
        embed["url"] = json!(link);
    }
    json!({
        "content": facts.title.render(DISCORD_CONTENT_LIMIT, discord_escape),
        "embeds": [embed],
        "allowed_mentions": { "parse": [] },
    })
}

/// A Telegram Bot API `sendMessage` body in HTML parse mode, link previews off (a
/// preview would fetch whatever URL the data holds).
pub fn telegram(chat_id: &str, alert: &AlertSummary) -> Value {
    let facts = Facts::of(alert);
    let mut lines = vec![format!(
        "<b>{}</b>",
        facts.title.render(TELEGRAM_TEXT_LIMIT, html_escape)
    )];
    if let Some(intro) = facts.intro {
        lines.push(intro.to_owned());
    }
    for (label, value) in &facts.fields {
        lines.push(format!("<b>{label}:</b> {}", escaped(value, html_escape)));
    }
    if !facts.changes.is_empty() {
        lines.push("<b>Changes:</b>".to_owned());
        for change in &facts.changes {
            lines.push(format!("• {}", change_line(change, html_escape)));
        }
    }
    if let Some(link) = &facts.link {
        lines.push(format!(
            "<a href=\"{}\">Open in Kamiyo</a>",
            escaped(link, html_escape)
        ));
    }
    json!({
        "chat_id": chat_id,
        "text": pack_lines(&lines, TELEGRAM_TEXT_LIMIT),
        "parse_mode": "HTML",
        "disable_web_page_preview": true,
    })
}

/// An email's subject (one line, no CR or LF, at most [`EMAIL_SUBJECT_LIMIT`]) and its
/// plain-text body.
pub fn email(alert: &AlertSummary) -> (String, String) {
    let facts = Facts::of(alert);
    // The title is built from single-line values; `one_line` again guards the subject,
    // where a newline would inject mail headers, against any future change to titles.
    let title = facts.title.plain();
    let subject = truncate(&one_line(&format!("[Kamiyo] {title}")), EMAIL_SUBJECT_LIMIT);
    let mut body = format!("{title}\n\n");
    if let Some(intro) = facts.intro {
        body.push_str(intro);
        body.push_str("\n\n");
    }
    for (label, value) in &facts.fields {
        body.push_str(&format!("{label}: {value}\n"));
    }
    if !facts.changes.is_empty() {
        body.push_str("\nChanges:\n");
        for change in &facts.changes {
            body.push_str(&format!("- {}\n", change_line(change, plain)));
        }
    }
    if let Some(link) = &facts.link {
        body.push_str(&format!("\nOpen in Kamiyo: {link}\n"));
    }
    (subject, body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
