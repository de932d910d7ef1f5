//! One attempt at one delivery, by its channel: what was sent and what came back. No
//! database here: the worker records the outcome.
//!
//! Errors never carry the target's URL: Slack and Discord webhook URLs are secrets in
//! themselves, and a Telegram URL holds the bot's token.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kamiyo_store::alerts::DueDelivery;

use crate::config::AlertsConfig;
use crate::signing::{signature_header, WebhookSecret};
use crate::target::{check_url, read_body_limited};

/// What one attempt gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub status: Option<u16>,
    /// The answer's body, cut to `alerts.response_body_limit`.
    pub body: Option<String>,
    /// Why it failed, when it did (not a 2xx).
    pub error: Option<String>,
    /// `Retry-After` of a 429 or 503.
    pub retry_after: Option<Duration>,
    pub duration: Duration,
    /// Retrying cannot help (a target refused by the address guard, a bad secret).
    pub permanent: bool,
}

impl Sent {
    fn failed(error: impl Into<String>, started: Instant, permanent: bool) -> Sent {
        Sent {
            status: None,
            body: None,
            error: Some(error.into()),
            retry_after: None,
            duration: started.elapsed(),
            permanent,
        }
    }

    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends `delivery` once at `now`.
pub async fn send(
    client: &reqwest::Client,
    config: &AlertsConfig,
    delivery: &DueDelivery,
    now: DateTime<Utc>,
) -> Sent {
    let started = Instant::now();
    let body = delivery.payload.to_string();
    let request = match delivery.channel.as_str() {
        "webhook" => webhook(client, config, delivery, &body, now),
        "slack" | "discord" => {
            let summary = crate::payload::summary(&delivery.payload, config.public_url.as_deref());
            let message = if delivery.channel == "slack" {
                crate::message::slack(&summary)
            } else {
                crate::message::discord(&summary)
            };
            check_url(&delivery.target, config.allow_private_targets)
                .map(|url| json_post(client, url, &message))
                .map_err(|e| (e.to_string(), true))
        }
        "telegram" => {
            let summary = crate::payload::summary(&delivery.payload, config.public_url.as_deref());
            match delivery.secrets.first() {
                None => Err(("the subscription has no bot token".to_owned(), true)),
                Some(token) => {
                    let url = format!(
                        "{}/bot{token}/sendMessage",
                        config.telegram_api_url.trim_end_matches('/')
                    );
                    check_url(&url, config.allow_private_targets)
                        .map(|url| {
                            json_post(
                                client,
                                url,
                                &crate::message::telegram(&delivery.target, &summary),
                            )
                        })
                        .map_err(|_| ("the Telegram API URL is refused".to_owned(), true))
                }
            }
        }
        "email" => return email(config, delivery, started).await,
        other => Err((
            format!("channel {other:?} is not delivered by this version"),
            true,
        )),
    };
    let request = match request {
        Ok(request) => request,
        Err((error, permanent)) => return Sent::failed(error, started, permanent),
    };
    match request.send().await {
        Err(error) => {
            let refused = refused_target(&error);
            Sent::failed(describe(&error.without_url()), started, refused)
        }
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| crate::backoff::parse_retry_after(v, now));
            let (text, _) = read_body_limited(response, config.response_body_limit).await;
            let ok = (200..300).contains(&status);
            Sent {
                status: Some(status),
                body: Some(text),
                error: (!ok).then(|| format!("HTTP {status}")),
                retry_after: retry_after.filter(|_| matches!(status, 429 | 503)),
                duration: started.elapsed(),
                permanent: false,
            }
        }
    }
}

/// One email through `alerts.smtp`. The reply's class stands in the status (250 is a
/// 2xx: delivered); a permanent refusal (5xx: no such mailbox) is not retried, a
/// transient one is.
async fn email(config: &AlertsConfig, delivery: &DueDelivery, started: Instant) -> Sent {
    use lettre::AsyncTransport;
    let smtp = &config.smtp;
    let Some(host) = smtp.host.as_deref() else {
        return Sent::failed("email is not configured (alerts.smtp.host)", started, true);
    };
    let summary = crate::payload::summary(&delivery.payload, config.public_url.as_deref());
    let (subject, body) = crate::message::email(&summary);
    let message = match (
        smtp.from.parse::<lettre::message::Mailbox>(),
        delivery.target.parse::<lettre::message::Mailbox>(),
    ) {
        (Ok(from), Ok(to)) => lettre::Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(body),
        _ => {
            return Sent::failed(
                "the sender or the recipient is not a mail address",
                started,
                true,
            )
        }
    };
    let message = match message {
        Ok(message) => message,
        Err(error) => {
            return Sent::failed(format!("cannot build the message: {error}"), started, true)
        }
    };
    type Mailer = lettre::AsyncSmtpTransport<lettre::Tokio1Executor>;
    let builder = match smtp.security {
        crate::config::SmtpSecurity::None => Ok(Mailer::builder_dangerous(host)),
        crate::config::SmtpSecurity::Starttls => Mailer::starttls_relay(host),
        crate::config::SmtpSecurity::Tls => Mailer::relay(host),
    };
    let mut builder = match builder {
        Ok(builder) => builder.port(smtp.port).timeout(Some(smtp.timeout)),
        Err(error) => return Sent::failed(format!("mail server: {error}"), started, true),
    };
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        use secrecy::ExposeSecret;
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            user.clone(),
            password.0.expose_secret().to_owned(),
        ));
    }
    // lettre's timeout is per command; the whole message gets one deadline, within the
    // lease (checked at start-up).
    let sending = tokio::time::timeout(smtp.timeout, builder.build().send(message)).await;
    let Ok(sending) = sending else {
        return Sent::failed("mail server: timed out", started, false);
    };
    match sending {
        Ok(response) => Sent {
            status: Some(if response.is_positive() { 250 } else { 451 }),
            body: Some(response.message().collect::<Vec<_>>().join(" ")),
            error: None,
            retry_after: None,
            duration: started.elapsed(),
            permanent: false,
        },
        Err(error) => Sent::failed(
            format!("mail server: {error}"),
            started,
            error.is_permanent(),
        ),
    }
}

/// Sends a `test` event to `subscription` now, signed with `secrets` like any delivery,
/// outside the delivery log (`POST /api/subscriptions/{id}/test`). `Err`: the HTTP
/// client could not be built from the settings.
pub async fn send_test(
    config: &AlertsConfig,
    subscription: &kamiyo_store::alerts::Subscription,
    secrets: Vec<String>,
    now: DateTime<Utc>,
) -> Result<Sent, String> {
    let client = crate::target::http_client(&config.client()).map_err(|e| e.to_string())?;
    let delivery = DueDelivery {
        id: 0,
        leased_until: now,
        attempts: 0,
        first_attempt_at: None,
        message_id: format!("msg_test_{}_{}", subscription.id, now.timestamp_millis()),
        event_id: 0,
        kind: kamiyo_store::alerts::EventKind::Created,
        payload: serde_json::json!({
            "type": "test",
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": {
                "subscription_id": subscription.id,
                "message": "A test alert from Kamiyo: this subscription's deliveries reach you.",
            },
        }),
        subscription_id: subscription.id,
        channel: subscription.channel.clone(),
        target: subscription.target.clone(),
        secrets,
    };
    Ok(send(&client, config, &delivery, now).await)
}

/// A Standard Webhooks request: `webhook-id` (the same for every attempt),
/// `webhook-timestamp` (this attempt's) and `webhook-signature` (one `v1,` entry per
/// secret that signs now: two while a rotated-out one still does).
fn webhook(
    client: &reqwest::Client,
    config: &AlertsConfig,
    delivery: &DueDelivery,
    body: &str,
    now: DateTime<Utc>,
) -> Result<reqwest::RequestBuilder, (String, bool)> {
    let url = check_url(&delivery.target, config.allow_private_targets)
        .map_err(|e| (e.to_string(), true))?;
    let secrets: Vec<WebhookSecret> = delivery
        .secrets
        .iter()
        .filter_map(|s| WebhookSecret::parse(s).ok())
        .collect();
    if secrets.is_empty() {
        return Err(("the subscription has no valid signing secret".into(), true));
    }
    let timestamp = now.timestamp();
    let refs: Vec<&WebhookSecret> = secrets.iter().collect();
    Ok(client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &delivery.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            signature_header(&refs, &delivery.message_id, timestamp, body.as_bytes()),
        )
        .body(body.to_owned()))
}

fn json_post(
    client: &reqwest::Client,
    url: url::Url,
    body: &serde_json::Value,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
}

/// Whether the address guard refused every address the name resolves to: trying again
/// cannot help.
fn refused_target(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if matches!(
            cause.downcast_ref::<crate::target::ResolveError>(),
            Some(crate::target::ResolveError::OnlyForbidden { .. })
        ) {
            return true;
        }
        source = cause.source();
    }
    false
}

/// A transport error in words, with its causes (a refused private address says so).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
