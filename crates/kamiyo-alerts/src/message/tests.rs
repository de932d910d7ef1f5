use super::*;

use std::str::FromStr;

use rust_decimal::Decimal;

const HOSTILE: &str = "<script>alert(1)</script> @everyone *bold* _it_ <!channel> [x](https://evil.example) A&B\nLoss: $0\r\nFake line";

fn created() -> AlertSummary {
    AlertSummary {
        event: "incident.created".to_owned(),
        incident_id: 4217,
        protocol: "Euler Finance".to_owned(),
        chains: vec!["Ethereum".to_owned(), "Arbitrum".to_owned()],
        loss_usd: Some(Decimal::from_str("197000000").unwrap()),
        occurred_at: DateTime::parse_from_rfc3339("2023-03-13T08:50:23Z")
            .unwrap()
            .with_timezone(&Utc),
        attack: Some("flash loan".to_owned()),
        sources: 3,
        url: Some("https://kamiyo.example/incidents/4217".to_owned()),
        changes: vec![],
    }
}

fn hostile() -> AlertSummary {
    AlertSummary {
        protocol: HOSTILE.to_owned(),
        chains: vec!["Ether\neum".to_owned(), "<b>BSC</b>".to_owned()],
        attack: Some("@here *rug*".to_owned()),
        changes: vec![Change {
            field: "status\nforged: yes".to_owned(),
            old: Some("<i>open</i>".to_owned()),
            new: None,
        }],
        event: "incident.updated".to_owned(),
        ..created()
    }
}

fn many_changes(n: usize) -> AlertSummary {
    AlertSummary {
        event: "incident.updated".to_owned(),
        changes: (0..n)
            .map(|i| Change {
                field: format!("field_{i}"),
                old: Some("x".repeat(150)),
                new: Some("ü".repeat(150)),
            })
            .collect(),
        ..created()
    }
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value}"))
}

#[test]
fn slack_shows_the_incident_in_a_header_and_a_mrkdwn_section() {
    let body = slack(&created());
    assert_eq!(
        str_at(&body, "/text"),
        "New incident: Euler Finance — $197M"
    );
    assert_eq!(str_at(&body, "/blocks/0/type"), "header");
    assert_eq!(
        str_at(&body, "/blocks/0/text/text"),
        "New incident: Euler Finance — $197M"
    );
    assert_eq!(str_at(&body, "/blocks/1/text/type"), "mrkdwn");
    let section = str_at(&body, "/blocks/1/text/text");
    for expected in [
        "*Loss:* $197M",
        "*Chains:* Ethereum, Arbitrum",
        "*Attack:* flash loan",
        "*Occurred:* 2023-03-13 08:50 UTC",
        "*Sources:* 3",
        "*Incident:* #4217",
        "<https://kamiyo.example/incidents/4217|Open in Kamiyo>",
    ] {
        assert!(
            section.contains(expected),
            "{expected:?} missing from {section}"
        );
    }
}

#[test]
fn slack_escapes_control_characters_and_keeps_data_on_its_line() {
    let body = slack(&hostile());
    let section = str_at(&body, "/blocks/1/text/text");
    assert!(section.contains("&lt;script&gt;"), "{section}");
    assert!(section.contains("&lt;!channel&gt;"), "{section}");
    assert!(section.contains("A&amp;B"), "{section}");
    assert!(
        section.contains("&lt;i&gt;open&lt;/i&gt; → none"),
        "{section}"
    );
    // Our own link is the only `<…>` left.
    let raw_angles = section.matches('<').count();
    assert_eq!(raw_angles, 1, "{section}");
    // The newline in the name did not start a forged line.
    assert!(
        !section.lines().any(|l| l.starts_with("Loss: $0")),
        "{section}"
    );
    assert!(
        !section.lines().any(|l| l.starts_with("Fake line")),
        "{section}"
    );
    assert!(
        !section.lines().any(|l| l.starts_with("forged")),
        "{section}"
    );
    assert_eq!(body.pointer("/blocks/1/text/verbatim"), Some(&json!(true)));
    assert!(!str_at(&body, "/text").contains('<'));
}

#[test]
fn slack_stays_within_its_limits() {
    let body = slack(&many_changes(200));
    let section = str_at(&body, "/blocks/1/text/text");
    assert!(units(section) <= SLACK_SECTION_LIMIT, "{}", units(section));
    assert!(section.ends_with('…'));
    let long_name = AlertSummary {
        protocol: "Ω".repeat(5000),
        ..created()
    };
    let header = slack(&long_name);
    assert!(units(str_at(&header, "/blocks/0/text/text")) <= SLACK_HEADER_LIMIT);
}

#[test]
fn discord_has_content_one_embed_and_no_mentions() {
    let body = discord(&created());
    assert_eq!(
        str_at(&body, "/content"),
        "New incident: Euler Finance — $197M"
    );
    assert_eq!(
        body.pointer("/allowed_mentions"),
        Some(&json!({ "parse": [] }))
    );
    assert_eq!(body["embeds"].as_array().unwrap().len(), 1);
    assert_eq!(
        str_at(&body, "/embeds/0/url"),
        "https://kamiyo.example/incidents/4217"
    );
    assert_eq!(
        str_at(&body, "/embeds/0/timestamp"),
        "2023-03-13T08:50:23+00:00"
    );
    assert_eq!(
        str_at(&body, "/embeds/0/footer/text"),
        "Kamiyo · incident #4217"
    );
    let fields = body
        .pointer("/embeds/0/fields")
        .unwrap()
        .as_array()
        .unwrap();
    let loss = fields.iter().find(|f| f["name"] == "Loss").unwrap();
    assert_eq!(loss["value"], "$197M");
    assert!(fields
        .iter()
        .all(|f| !f["value"].as_str().unwrap().is_empty()));
    // Nothing changed, so no description (Discord rejects an empty one).
    assert!(body.pointer("/embeds/0/description").is_none());
}

#[test]
fn discord_escapes_markdown_and_mentions() {
    let body = discord(&hostile());
    let content = str_at(&body, "/content");
    assert!(content.contains("\\@everyone"), "{content}");
    assert!(content.contains("\\*bold\\*"), "{content}");
    assert!(content.contains("\\_it\\_"), "{content}");
    assert!(content.contains("\\<script\\>"), "{content}");
    assert!(
        content.contains("\\[x\\](https\\://evil.example)"),
        "{content}"
    );
    assert!(!content.contains('\n'), "{content}");
    let title = str_at(&body, "/embeds/0/title");
    assert!(
        title.contains("\\@everyone") && !title.contains('\n'),
        "{title}"
    );
    let description = str_at(&body, "/embeds/0/description");
    assert!(
        description.contains("status forged\\: yes"),
        "{description}"
    );
    let fields = body
        .pointer("/embeds/0/fields")
        .unwrap()
        .as_array()
        .unwrap();
    let attack = fields.iter().find(|f| f["name"] == "Attack").unwrap();
    assert_eq!(attack["value"], "\\@here \\*rug\\*");
}

#[test]
fn discord_stays_within_its_limits() {
    let long = AlertSummary {
        protocol: "*".repeat(5000),
        ..many_changes(300)
    };
    let body = discord(&long);
    assert!(units(str_at(&body, "/content")) <= DISCORD_CONTENT_LIMIT);
    let title = str_at(&body, "/embeds/0/title");
    assert!(units(title) <= DISCORD_TITLE_LIMIT, "{}", units(title));
    let description = str_at(&body, "/embeds/0/description");
    assert!(units(description) <= DISCORD_DESCRIPTION_LIMIT);
    assert!(description.ends_with('…'));
    let fields = body
        .pointer("/embeds/0/fields")
        .unwrap()
        .as_array()
        .unwrap();
    let mut total =
        units(title) + units(description) + units(str_at(&body, "/embeds/0/footer/text"));
    for field in fields {
        let value = field["value"].as_str().unwrap();
        assert!(units(value) <= DISCORD_FIELD_VALUE_LIMIT);
        total += units(value) + units(field["name"].as_str().unwrap());
    }
    assert!(total <= DISCORD_EMBED_TOTAL_LIMIT, "{total}");
}

#[test]
fn telegram_sends_escaped_html_without_previews() {
    let body = telegram("-1001234567890", &created());
    assert_eq!(str_at(&body, "/chat_id"), "-1001234567890");
    assert_eq!(str_at(&body, "/parse_mode"), "HTML");
    assert_eq!(body["disable_web_page_preview"], json!(true));
    let text = str_at(&body, "/text");
    assert!(
        text.starts_with("<b>New incident: Euler Finance — $197M</b>\n"),
        "{text}"
    );
    assert!(text.contains("<b>Loss:</b> $197M"), "{text}");
    assert!(text.contains("<a href=\"https://kamiyo.example/incidents/4217\">Open in Kamiyo</a>"));

    let hostile = telegram("1", &hostile());
    let text = str_at(&hostile, "/text");
    assert!(
        text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{text}"
    );
    assert!(text.contains("&lt;b&gt;BSC&lt;/b&gt;"), "{text}");
    assert!(text.contains("A&amp;B"), "{text}");
    assert!(!text.contains("<script"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("Fake line")), "{text}");
}

#[test]
fn telegram_stays_within_its_limit_without_breaking_entities() {
    let heavy = AlertSummary {
        changes: (0..400)
            .map(|i| Change {
                field: format!("f{i}"),
                old: Some("&".repeat(150)),
                new: Some("<>".repeat(75)),
            })
            .collect(),
        ..hostile()
    };
    let text = str_at(&telegram("1", &heavy), "/text").to_owned();
    assert!(units(&text) <= TELEGRAM_TEXT_LIMIT, "{}", units(&text));
    assert!(text.ends_with('…'));
    // Every `&` still starts a whole entity.
    for (at, _) in text.match_indices('&') {
        let rest = &text[at..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;"]
                .iter()
                .any(|e| rest.starts_with(e)),
            "broken entity at {at}: {}",
            &rest[..rest.len().min(10)]
        );
    }
}

#[test]
fn email_has_a_single_line_subject_and_a_plain_body() {
    let (subject, body) = email(&created());
    assert_eq!(subject, "[Kamiyo] New incident: Euler Finance — $197M");
    assert!(
        body.starts_with("New incident: Euler Finance — $197M\n\n"),
        "{body}"
    );
    assert!(body.contains("\nLoss: $197M\n"), "{body}");
    assert!(
        body.contains("\nOccurred: 2023-03-13 08:50 UTC\n"),
        "{body}"
    );
    assert!(body.contains("Open in Kamiyo: https://kamiyo.example/incidents/4217"));

    let (subject, body) = email(&hostile());
    assert!(
        !subject.contains('\r') && !subject.contains('\n'),
        "{subject:?}"
    );
    assert!(subject.chars().count() <= EMAIL_SUBJECT_LIMIT);
    assert!(!body.lines().any(|l| l.starts_with("Fake line")), "{body}");
    assert!(
        body.contains("- status forged: yes: <i>open</i> → none"),
        "{body}"
    );

    let long = AlertSummary {
        protocol: "x".repeat(1000),
        ..created()
    };
    let (subject, _) = email(&long);
    assert!(units(&subject) <= EMAIL_SUBJECT_LIMIT);
}

#[test]
fn each_event_has_its_own_title() {
    let title = |event: &str, loss: Option<&str>| {
        let alert = AlertSummary {
            event: event.to_owned(),
            loss_usd: loss.map(|l| Decimal::from_str(l).unwrap()),
            ..created()
        };
        email(&alert).0
    };
    assert_eq!(
        title("incident.created", Some("830000")),
        "[Kamiyo] New incident: Euler Finance — $830K"
    );
    assert_eq!(
        title("incident.created", None),
        "[Kamiyo] New incident: Euler Finance"
    );
    assert_eq!(
        title("incident.updated", None),
        "[Kamiyo] Incident updated: Euler Finance"
    );
    assert_eq!(
        title("incident.merged", None),
        "[Kamiyo] Incidents merged: Euler Finance"
    );
    assert_eq!(title("test", None), "[Kamiyo] Kamiyo test alert");
    assert_eq!(
        title("incident.deleted", None),
        "[Kamiyo] incident.deleted: Euler Finance"
    );
}

#[test]
fn unknown_values_read_as_unknown() {
    let alert = AlertSummary {
        loss_usd: None,
        chains: vec![],
        attack: None,
        url: None,
        ..created()
    };
    let (_, body) = email(&alert);
    assert!(body.contains("\nLoss: unknown\n"), "{body}");
    assert!(body.contains("\nChains: unknown\n"), "{body}");
    assert!(body.contains("\nAttack: unknown\n"), "{body}");
    assert!(!body.contains("Open in Kamiyo"), "{body}");
}

#[test]
fn only_web_links_are_shown() {
    for url in ["javascript:alert(1)", "data:text/html,hi", "not a url"] {
        let alert = AlertSummary {
            url: Some(url.to_owned()),
            ..created()
        };
        assert!(discord(&alert).pointer("/embeds/0/url").is_none(), "{url}");
        assert!(!str_at(&slack(&alert), "/blocks/1/text/text").contains("Open in Kamiyo"));
        assert!(!str_at(&telegram("1", &alert), "/text").contains("href"));
    }
    let tricky = AlertSummary {
        url: Some("https://kamiyo.example/i/1?a=1&b=\"x\"|y".to_owned()),
        ..created()
    };
    let section = slack(&tricky);
    let section = str_at(&section, "/blocks/1/text/text");
    assert!(
        section.contains("<https://kamiyo.example/i/1?a=1&amp;b=%22x%22%7Cy|Open in Kamiyo>"),
        "{section}"
    );
    let text = telegram("1", &tricky);
    assert!(
        str_at(&text, "/text").contains("href=\"https://kamiyo.example/i/1?a=1&amp;b=%22x%22|y\"")
    );
}

#[test]
fn the_summary_round_trips_through_json() {
    let alert = hostile();
    let back: AlertSummary = serde_json::from_value(serde_json::to_value(&alert).unwrap()).unwrap();
    assert_eq!(back, alert);
}
