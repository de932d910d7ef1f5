//! A rekt.news article, read for what its feed item lacks: the hack's own date and loss
//! (`rekt.date`, `rekt.amount`), the audit status and the tags.
//!
//! Two forms of an article are read, and nothing else:
//! - **Markdown with YAML front matter**, the form rekt.news writes its articles in (and
//!   mirrors of them keep): a `---` block with `rekt: {amount, audit, date}` and `tags`.
//! - **The article's HTML page**, whose Next.js page data (`<script id="__NEXT_DATA__"
//!   type="application/json">`) carries the same front matter: the first object in it
//!   with a `rekt` object holding `amount` or `date` is read, with that object's `tags`.
//!
//! A page in any other form (a page without that data, a login wall, a changed layout) is
//! an error that says what was expected; the feed's record is then kept as it was.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{RawIncident, Rejection};

const EXPECTED: &str =
    "markdown with front matter (`---` ... `rekt: {amount, date}`) or an HTML page \
     whose `__NEXT_DATA__` script holds a `rekt` object";

/// What an article's front matter says (`rekt.amount`, `rekt.date`, `rekt.audit`,
/// `tags`), put in place of the feed's values: the hack's date instead of the article's,
/// its loss (in USD, as rekt.news states it), and the audit status and tags added to the
/// description.
///
/// # Errors
///
/// A [`Rejection`] naming the front matter field that cannot be read, with the record's
/// line; a page in neither form is an error too (the article's format changed).
pub fn apply_article(record: &mut RawIncident, page: &str) -> Result<(), Rejection> {
    let matter = article_matter(page).map_err(|found| {
        Rejection::new(
            record.line,
            format!("the article is not in a form it can be read from: expected {EXPECTED}, found {found}"),
        )
    })?;
    if let Some(amount) = matter.get("rekt.amount") {
        let digits: String = amount
            .chars()
            .filter(|c| !matches!(c, ',' | '_' | '$'))
            .collect();
        if digits.parse::<f64>().is_err() {
            return Err(Rejection::field(
                record.line,
                "rekt.amount",
                format!("{amount:?} is not a USD amount"),
            ));
        }
        record.loss_usd = Some(digits);
    }
    if let Some(date) = matter.get("rekt.date") {
        record.date = Some(date.to_owned());
    }
    let mut notes = Vec::new();
    if let Some(audit) = matter.get("rekt.audit") {
        notes.push(format!("Audit: {audit}"));
    }
    if let Some(tags) = matter.get("tags").filter(|t| !t.is_empty()) {
        notes.push(format!("Tags: {tags}"));
    }
    if !notes.is_empty() {
        let note = notes.join(". ");
        record.description = Some(match record.description.take() {
            Some(summary) => format!("{summary}\n{note}"),
            None => note,
        });
    }
    Ok(())
}

/// The front matter's values by dotted key (`rekt.amount`), lists joined by `, `. Only
/// the YAML that rekt.news writes: `key: value`, one level of nesting by indentation,
/// and `- item` lists.
fn front_matter(markdown: &str) -> Option<std::collections::BTreeMap<String, String>> {
    let mut lines = markdown.trim_start_matches('\u{feff}').lines();
    if lines.next()?.trim() != "---" {
        return None;
    }
    let mut values = std::collections::BTreeMap::new();
    let mut parent: Option<String> = None;
    let mut closed = false;
    for line in lines {
        if line.trim() == "---" {
            closed = true;
            break;
        }
        let indented = line.starts_with(' ') || line.starts_with('\t');
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(item) = trimmed.strip_prefix("- ") {
            if let Some(parent) = &parent {
                let entry: &mut String = values.entry(parent.clone()).or_default();
                if !entry.is_empty() {
                    entry.push_str(", ");
                }
                entry.push_str(unquote(item));
            }
            continue;
        }
        let Some((key, value)) = trimmed.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), unquote(value.trim()));
        if indented {
            if let Some(parent) = &parent {
                values.insert(format!("{parent}.{key}"), value.to_owned());
            }
        } else {
            parent = Some(key.to_owned());
            if !value.is_empty() {
                values.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    closed.then_some(values)
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value)
}

/// The article's front matter by dotted key, from either form; what was found instead
/// when it has neither.
fn article_matter(page: &str) -> Result<BTreeMap<String, String>, String> {
    let start = page.trim_start_matches('\u{feff}').trim_start();
    if start.starts_with("---") {
        return front_matter(start)
            .ok_or_else(|| "a front matter block that never closes".to_owned());
    }
    let Some(data) = next_data(page) else {
        let lower = start
            .get(..start.len().min(200))
            .unwrap_or(start)
            .to_ascii_lowercase();
        return Err(if start.is_empty() {
            "an empty page".to_owned()
        } else if lower.contains("<html") || lower.starts_with("<!doctype") {
            "an HTML page without `__NEXT_DATA__`".to_owned()
        } else {
            "text without front matter".to_owned()
        });
    };
    let data: Value = serde_json::from_str(data)
        .map_err(|e| format!("`__NEXT_DATA__` that is not JSON ({e})"))?;
    let holder =
        rekt_holder(&data).ok_or_else(|| "`__NEXT_DATA__` without a `rekt` object".to_owned())?;
    let mut values = BTreeMap::new();
    if let Some(Value::Object(rekt)) = holder.get("rekt") {
        for (key, value) in rekt {
            if let Some(text) = text_of(value) {
                values.insert(format!("rekt.{key}"), text);
            }
        }
    }
    if let Some(tags) = holder.get("tags").and_then(text_of) {
        values.insert("tags".to_owned(), tags);
    }
    Ok(values)
}

/// The text of the page's `<script id="__NEXT_DATA__" ...>...</script>`.
fn next_data(page: &str) -> Option<&str> {
    let at = page.find("id=\"__NEXT_DATA__\"")?;
    let open = at + page[at..].find('>')? + 1;
    let close = open + page[open..].find("</script>")?;
    Some(&page[open..close])
}

/// The first object, depth first, with a `rekt` object that holds `amount` or `date`.
fn rekt_holder(value: &Value) -> Option<&serde_json::Map<String, Value>> {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(rekt)) = map.get("rekt") {
                if rekt.contains_key("amount") || rekt.contains_key("date") {
                    return Some(map);
                }
            }
            map.values().find_map(rekt_holder)
        }
        Value::Array(items) => items.iter().find_map(rekt_holder),
        _ => None,
    }
}

/// A scalar as text, a list of scalars joined by `, `; `None` for null, empty or nested.
fn text_of(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => items
            .iter()
            .filter_map(|item| match item {
                Value::Array(_) | Value::Object(_) => None,
                scalar => text_of(scalar),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::Null | Value::Object(_) => return None,
    };
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_record() -> RawIncident {
        RawIncident {
            line: 5,
            protocol: Some("Orbit Bridge".into()),
            date: Some("2024-01-03T00:00:00+00:00".into()),
            description: Some("It wasn\u{2019}t just fireworks.".into()),
            ..RawIncident::default()
        }
    }

    #[test]
    fn the_article_front_matter_gives_the_hack_s_date_and_loss() {
        let mut record = feed_record();
        let article = "---\ntitle: Orbit Bridge - REKT\ndate: 01/03/2024\nrekt:\n  amount: 81500000\n  audit: Out of scope\n  date: 12/31/2023\ntags:\n  - Orbit Bridge\n  - Bridge\n---\n\nbody";
        apply_article(&mut record, article).unwrap();
        assert_eq!(record.date.as_deref(), Some("12/31/2023"));
        assert_eq!(record.loss_usd.as_deref(), Some("81500000"));
        assert!(record
            .description
            .as_deref()
            .unwrap()
            .ends_with("Audit: Out of scope. Tags: Orbit Bridge, Bridge"));
        let err = apply_article(&mut record, "no front matter").unwrap_err();
        assert!(err.message.contains("front matter"), "{err}");
        let err = apply_article(&mut record, "---\nrekt:\n  amount: lots\n---\n").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("rekt.amount"));
    }

    #[test]
    fn an_html_page_is_read_from_its_next_data() {
        let page = r#"<!DOCTYPE html><html><head><title>Orbit Bridge - REKT</title></head><body>
<div id="__next">article</div>
<script id="__NEXT_DATA__" type="application/json">{"props":{"pageProps":{"post":{"frontmatter":{"title":"Orbit Bridge - REKT","rekt":{"amount":81500000,"audit":"Out of scope","date":"12/31/2023"},"tags":["Orbit Bridge","Bridge"]}}}},"page":"/[slug]"}</script>
</body></html>"#;
        let mut record = feed_record();
        apply_article(&mut record, page).unwrap();
        assert_eq!(record.date.as_deref(), Some("12/31/2023"));
        assert_eq!(record.loss_usd.as_deref(), Some("81500000"));
        assert!(record
            .description
            .as_deref()
            .unwrap()
            .ends_with("Audit: Out of scope. Tags: Orbit Bridge, Bridge"));
    }

    #[test]
    fn a_page_in_neither_form_says_what_was_expected_and_changes_nothing() {
        for (page, found) in [
            (
                "<!DOCTYPE html><html><body>Just a moment...</body></html>",
                "without `__NEXT_DATA__`",
            ),
            (
                r#"<html><script id="__NEXT_DATA__" type="application/json">{"props":{}}</script></html>"#,
                "without a `rekt` object",
            ),
            (
                r#"<html><script id="__NEXT_DATA__" type="application/json">{"props":</script></html>"#,
                "not JSON",
            ),
            ("", "an empty page"),
            ("---\nrekt:\n  amount: 1\n", "never closes"),
        ] {
            let mut record = feed_record();
            let err = apply_article(&mut record, page).unwrap_err();
            assert!(err.message.contains(found), "{page:?}: {err}");
            assert!(err.message.contains("__NEXT_DATA__"), "{err}");
            assert_eq!(record, feed_record(), "{page:?}");
        }
    }
}
