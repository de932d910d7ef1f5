//! A channel as a subscriber names it, checked before it is stored: the kind, where it
//! delivers (`target`) and its secret (a webhook's signing secret, generated here and
//! shown once; a Telegram bot's token). The same rules for the API and the CLI.

use kamiyo_domain::FieldError;
use serde::Deserialize;

use crate::signing::WebhookSecret;
use crate::target::check_url;

/// Longest URL, chat id or token accepted.
pub const MAX_TARGET_CHARS: usize = 2048;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ChannelInput {
    /// Any HTTP(S) endpoint; deliveries are signed (Standard Webhooks).
    Webhook { url: String },
    /// A Slack incoming-webhook URL.
    Slack { url: String },
    /// A Discord webhook URL.
    Discord { url: String },
    /// A Telegram chat, through a bot (`sendMessage`).
    Telegram { chat_id: String, bot_token: String },
    /// An email address (needs `alerts.smtp`).
    Email { to: String },
}

/// What is stored for a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    pub kind: &'static str,
    pub target: String,
    pub secret: Option<String>,
}

impl ChannelSpec {
    /// The webhook signing secret, to show once when the subscription is created.
    pub fn shown_secret(&self) -> Option<&str> {
        (self.kind == "webhook")
            .then_some(self.secret.as_deref())
            .flatten()
    }
}

fn bounded(field: &str, value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty()
        || value.chars().count() > MAX_TARGET_CHARS
        || value.chars().any(char::is_control)
    {
        return Err(FieldError::new(
            field,
            format!("must be 1 to {MAX_TARGET_CHARS} characters without control characters"),
        ));
    }
    Ok(value.to_owned())
}

fn url(field: &str, value: &str, allow_private: bool) -> Result<String, FieldError> {
    let value = bounded(field, value)?;
    check_url(&value, allow_private)
        .map(|u| u.to_string())
        .map_err(|e| FieldError::new(field, e.to_string()))
}

impl ChannelInput {
    /// Checks the channel; the address guard applies to URLs with an IP address or a
    /// local name here, and to every resolved address at send time.
    pub fn validate(
        &self,
        allow_private: bool,
        email_configured: bool,
    ) -> Result<ChannelSpec, FieldError> {
        Ok(match self {
            ChannelInput::Webhook { url: u } => ChannelSpec {
                kind: "webhook",
                target: url("channel.url", u, allow_private)?,
                secret: Some(WebhookSecret::generate().as_str().to_owned()),
            },
            ChannelInput::Slack { url: u } => ChannelSpec {
                kind: "slack",
                target: url("channel.url", u, allow_private)?,
                secret: None,
            },
            ChannelInput::Discord { url: u } => ChannelSpec {
                kind: "discord",
                target: url("channel.url", u, allow_private)?,
                secret: None,
            },
            ChannelInput::Telegram { chat_id, bot_token } => {
                let chat = bounded("channel.chat_id", chat_id)?;
                let chat_ok = chat
                    .strip_prefix('-')
                    .unwrap_or(&chat)
                    .chars()
                    .all(|c| c.is_ascii_digit())
                    || (chat.starts_with('@')
                        && chat.len() > 1
                        && chat[1..]
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_'));
                if !chat_ok {
                    return Err(FieldError::new(
                        "channel.chat_id",
                        "must be a numeric chat id or an @channel name",
                    ));
                }
                let token = bounded("channel.bot_token", bot_token)?;
                let token_ok = token.split_once(':').is_some_and(|(id, key)| {
                    !id.is_empty()
                        && id.chars().all(|c| c.is_ascii_digit())
                        && key.len() >= 20
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                });
                if !token_ok {
                    return Err(FieldError::new(
                        "channel.bot_token",
                        "is not a Telegram bot token (digits, a colon, then the key)",
                    ));
                }
                ChannelSpec {
                    kind: "telegram",
                    target: chat,
                    secret: Some(token),
                }
            }
            ChannelInput::Email { to } => {
                if !email_configured {
                    return Err(FieldError::new(
                        "channel.kind",
                        "email is not available: this server has no alerts.smtp settings",
                    ));
                }
                let address = kamiyo_domain::Email::parse(to)
                    .map_err(|e| FieldError::new("channel.to", e.message))?;
                ChannelSpec {
                    kind: "email",
                    target: address.into_string(),
                    secret: None,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(json: serde_json::Value) -> Result<ChannelSpec, FieldError> {
        serde_json::from_value::<ChannelInput>(json)
            .unwrap()
            .validate(false, false)
    }

    #[test]
    fn a_webhook_gets_a_fresh_secret_and_a_private_address_is_refused() {
        let a = channel(serde_json::json!({"kind": "webhook", "url": "https://hooks.example/in"}))
            .unwrap();
        let b = channel(serde_json::json!({"kind": "webhook", "url": "https://hooks.example/in"}))
            .unwrap();
        assert!(a.shown_secret().unwrap().starts_with("whsec_"));
        assert_ne!(a.secret, b.secret);
        let err =
            channel(serde_json::json!({"kind": "slack", "url": "http://169.254.169.254/latest"}))
                .unwrap_err();
        assert_eq!(err.field, "channel.url");
        let err =
            channel(serde_json::json!({"kind": "discord", "url": "ftp://x.example"})).unwrap_err();
        assert_eq!(err.field, "channel.url");
    }

    #[test]
    fn telegram_needs_a_chat_and_a_token_and_email_needs_smtp() {
        let ok = channel(serde_json::json!({"kind": "telegram", "chat_id": "-100123", "bot_token": "123456:ABCdefGhIJKlmNoPQRsTUVwxyZ0123"})).unwrap();
        assert_eq!((ok.kind, ok.target.as_str()), ("telegram", "-100123"));
        assert_eq!(ok.shown_secret(), None, "a bot token is not shown back");
        let err =
            channel(serde_json::json!({"kind": "telegram", "chat_id": "me", "bot_token": "x"}))
                .unwrap_err();
        assert_eq!(err.field, "channel.chat_id");
        let err =
            channel(serde_json::json!({"kind": "telegram", "chat_id": "42", "bot_token": "nope"}))
                .unwrap_err();
        assert_eq!(err.field, "channel.bot_token");
        let err = channel(serde_json::json!({"kind": "email", "to": "a@example.com"})).unwrap_err();
        assert_eq!(err.field, "channel.kind");
        assert!(
            serde_json::from_value::<ChannelInput>(serde_json::json!({"kind": "pager"})).is_err()
        );
    }
}
