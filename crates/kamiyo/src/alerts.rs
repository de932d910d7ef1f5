//! `kamiyo alert`: operators manage subscriptions and read their delivery logs, with the
//! same rules as the API (docs/ALERTS.md); deliveries themselves are sent by
//! `kamiyo serve`.

use anyhow::{bail, Context};
use kamiyo_alerts::channel::ChannelInput;
use kamiyo_domain::alert_filter::{AlertFilter, AlertFilterInput};
use kamiyo_store::accounts::AccountStore;
use kamiyo_store::alerts::{EventKind, NewSubscription, Subscription, SubscriptionPatch};
use kamiyo_store::AlertStore;

use crate::cli::AlertAction;
use crate::settings::Settings;
use crate::startup::prepare_kamiyo_database;

pub async fn alert(settings: Settings, action: AlertAction) -> anyhow::Result<()> {
    let database = prepare_kamiyo_database(&settings.database).await?;
    let store = AlertStore::new(database.clone());
    let accounts = AccountStore::new(database.clone());
    let clock = database.clock().clone();
    let result = run(&settings, &store, &accounts, &clock, &database, action).await;
    database.close();
    result
}

fn print_subscription(s: &Subscription) {
    let state = match (&s.enabled, &s.disabled_reason) {
        (true, _) => "enabled".to_owned(),
        (false, Some(why)) => format!("disabled: {why}"),
        (false, None) => "disabled".to_owned(),
    };
    println!(
        "{:>5}  user {:<5} {:<9} {:<40} {}  [{}]",
        s.id,
        s.user_id,
        s.channel,
        s.name,
        state,
        s.events
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
}

async fn found(store: &AlertStore, id: i64) -> anyhow::Result<Subscription> {
    store
        .subscription(id)
        .await
        .context("cannot read the subscription")?
        .with_context(|| format!("no subscription {id}"))
}

async fn run(
    settings: &Settings,
    store: &AlertStore,
    accounts: &AccountStore,
    clock: &kamiyo_db::Clock,
    store_db: &kamiyo_db::Database,
    action: AlertAction,
) -> anyhow::Result<()> {
    match action {
        AlertAction::List { user, json } => {
            let owner = match user {
                Some(user) => Some(accounts.find_user(&user).await?.id),
                None => None,
            };
            let all = store.subscriptions(owner).await?;
            if json {
                println!("{}", serde_json::to_string(&all)?);
            } else {
                all.iter().for_each(print_subscription);
                println!("{} subscriptions", all.len());
            }
        }
        AlertAction::Create {
            user,
            name,
            channel,
            filter,
            events,
        } => {
            let user = accounts.find_user(&user).await?;
            let allowed = settings.tiers.of(user.tier).subscriptions;
            if store.count_subscriptions(user.id).await? >= i64::from(allowed) {
                bail!(
                    "the {} tier holds at most {allowed} subscriptions (docs/TIERS.md)",
                    user.tier.as_str()
                );
            }
            let channel: ChannelInput =
                serde_json::from_str(&channel).context("--channel is not a channel as JSON")?;
            let spec = channel
                .validate(
                    settings.alerts.allow_private_targets,
                    settings.alerts.email_configured(),
                )
                .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?;
            let filter: AlertFilterInput = match filter {
                Some(text) => {
                    serde_json::from_str(&text).context("--filter is not a filter as JSON")?
                }
                None => AlertFilterInput::default(),
            };
            let filter = AlertFilter::from_input(&filter)
                .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?
                .to_input();
            let events = match events {
                None => EventKind::ALL.to_vec(),
                Some(names) => names
                    .iter()
                    .map(|n| {
                        EventKind::parse(n.trim()).with_context(|| {
                            format!("--events: {n:?} is not incident.created, incident.updated or incident.merged")
                        })
                    })
                    .collect::<anyhow::Result<_>>()?,
            };
            let shown = spec.shown_secret().map(str::to_owned);
            let created = store
                .create_subscription(&NewSubscription {
                    user_id: user.id,
                    name,
                    channel: spec.kind.to_owned(),
                    target: spec.target,
                    secret: spec.secret,
                    filter,
                    events,
                })
                .await?;
            print_subscription(&created);
            if let Some(secret) = shown {
                println!("signing secret (shown once): {secret}");
            }
        }
        AlertAction::Deliveries { id, limit, json } => {
            found(store, id).await?;
            let deliveries = store.deliveries(id, limit.clamp(1, 500)).await?;
            if json {
                println!("{}", serde_json::to_string(&deliveries)?);
            } else {
                for d in &deliveries {
                    println!(
                        "{:>6}  {} incident {:<6} {:<9} attempts {}{}",
                        d.id,
                        d.event.as_str(),
                        d.exploit_id,
                        d.status,
                        d.attempts,
                        d.next_attempt_at
                            .map(|t| format!(", next {}", t.to_rfc3339()))
                            .unwrap_or_default()
                    );
                    for a in &d.log {
                        println!(
                            "          {}  {}  {} ms{}",
                            a.attempted_at.to_rfc3339(),
                            a.status_code.map_or("-".into(), |c| c.to_string()),
                            a.duration_ms,
                            a.error
                                .as_deref()
                                .map(|e| format!("  {e}"))
                                .unwrap_or_default()
                        );
                    }
                }
            }
        }
        AlertAction::Enable { id } | AlertAction::Disable { id } => {
            let on = matches!(action, AlertAction::Enable { .. });
            let changed = store
                .update_subscription(
                    id,
                    &SubscriptionPatch {
                        enabled: Some(on),
                        ..SubscriptionPatch::default()
                    },
                )
                .await?
                .with_context(|| format!("no subscription {id}"))?;
            print_subscription(&changed);
        }
        AlertAction::Delete { id } => {
            if !store.delete_subscription(id).await? {
                bail!("no subscription {id}");
            }
            println!("deleted subscription {id}");
        }
        AlertAction::RotateSecret { id } => {
            if found(store, id).await?.channel != "webhook" {
                bail!("subscription {id} is not a webhook: it has no signing secret");
            }
            let secret = kamiyo_alerts::signing::WebhookSecret::generate();
            store
                .rotate_secret(id, secret.as_str(), clock.now_utc())
                .await?;
            println!(
                "new signing secret (shown once; the previous one signs for 24 h more): {}",
                secret.as_str()
            );
        }
        AlertAction::Test { id } => {
            let subscription = found(store, id).await?;
            let now = clock.now_utc();
            let secrets = store.signing_secrets(id, now).await?;
            let sent =
                kamiyo_alerts::send::send_test(&settings.alerts, &subscription, secrets, now)
                    .await
                    .map_err(|e| anyhow::anyhow!(e))?;
            println!(
                "{} in {} ms: {}",
                sent.status
                    .map_or("no answer".into(), |s| format!("HTTP {s}")),
                sent.duration.as_millis(),
                sent.error.as_deref().unwrap_or("delivered")
            );
            if !sent.delivered() {
                bail!("the test event was not delivered");
            }
        }
        AlertAction::Audit { since, json } => {
            let incidents = kamiyo_store::IncidentStore::new(store_db.clone());
            let report = kamiyo_alerts::audit::audit(
                store,
                &incidents,
                since,
                clock.now_utc(),
                settings.alerts.poll_interval * 2,
                &settings.tiers,
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                for m in &report.missing {
                    println!(
                        "missing: event {} ({}) of incident {} written {}{}",
                        m.event_id,
                        m.event.as_str(),
                        m.exploit_id,
                        m.written_at.to_rfc3339(),
                        m.subscription_id
                            .map(|s| format!(", no delivery to subscription {s}"))
                            .unwrap_or_else(|| ", not dispatched".into())
                    );
                }
                for u in &report.unfinished {
                    println!(
                        "unfinished: delivery {} (subscription {}, event {}), {} attempts, next {}{}",
                        u.delivery_id,
                        u.subscription_id,
                        u.event_id,
                        u.attempts,
                        u.next_attempt_at.to_rfc3339(),
                        u.last_error.as_deref().map(|e| format!(", last: {e}")).unwrap_or_default()
                    );
                }
                println!(
                    "{} events since {}: {} changes without their delivery, {} deliveries unfinished",
                    report.events,
                    since.to_rfc3339(),
                    report.missing.len(),
                    report.unfinished.len()
                );
            }
            if !report.missing.is_empty() {
                bail!(
                    "{} changes matched a subscription and have no delivery",
                    report.missing.len()
                );
            }
        }
        AlertAction::Replay { id, since } => {
            found(store, id).await?;
            let n = store.replay(id, since, clock.now_utc()).await?;
            println!("{n} deliveries will be sent again");
        }
    }
    Ok(())
}
