//! Kamiyo's alert delivery: the rules that decide what is sent, where, when and how it
//! is signed. These modules hold no state and touch no database; the dispatcher and
//! workers that drive them belong in modules of their own beside them.
//!
//! - [`signing`]: Standard Webhooks 1.0 secrets and signatures (Svix-compatible).
//! - [`backoff`]: when a failed delivery is tried again, and when it is given up.
//! - [`target`]: the guard against deliveries aimed at private networks (SSRF), and the
//!   HTTP client that enforces it on the address actually connected to.
//! - [`message`]: how an alert reads in Slack, Discord, Telegram and email.
//!
//! Driving them against the store:
//!
//! - [`config`]: the `alerts.*` settings; [`channel`]: a channel checked before it is stored.
//! - [`payload`]: the webhook body and the summary chat messages are written from.
//! - [`dispatch`]: events matched to subscriptions, on the merged incident and the tier.
//! - [`send`]: one attempt by channel; [`deliver`]: workers claiming under a lease.
//! - [`runner`]: the loop in `kamiyo serve` (LISTEN/NOTIFY with a polling fallback).
//! - [`audit`]: changes that matched a subscription and have no delivery.

pub mod audit;
pub mod backoff;
pub mod channel;
pub mod config;
pub mod deliver;
pub mod dispatch;
pub mod message;
pub mod metrics;
pub mod payload;
pub mod runner;
pub mod send;
pub mod signing;
pub mod target;
