//! The page shell: landmarks (banner, navigation, main, contentinfo), a skip link, the
//! visitor's identity, and the notice of what their tier hides.

use maud::{html, Markup, DOCTYPE};

use crate::ctx::Ctx;
use crate::format;
use crate::Dashboard;
use kamiyo_api::Caller;

const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/incidents", "Incidents"),
    ("/sources", "Sources"),
    ("/status", "Status"),
];

/// A whole page for `ctx`'s visitor.
pub fn page(ctx: &Ctx, title: &str, body: Markup) -> Markup {
    shell(&ctx.dashboard, title, Some(ctx), body)
}

/// A page without a visitor (an error answered before any handler ran).
pub fn bare(dashboard: &Dashboard, title: &str, body: Markup) -> Markup {
    shell(dashboard, title, None, body)
}

fn shell(dashboard: &Dashboard, title: &str, ctx: Option<&Ctx>, body: Markup) -> Markup {
    let current = ctx.map(|c| c.path.as_str()).unwrap_or_default();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · Kamiyo" }
                link rel="icon" type="image/svg+xml" href=(dashboard.assets.icon.path);
                link rel="stylesheet" href=(dashboard.assets.css.path);
                script src=(dashboard.assets.js.path) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.site {
                    a.brand href="/" { "Kamiyo" }
                    nav aria-label="Main" {
                        ul {
                            @for (href, label) in NAV {
                                @let here = current == *href || (*href != "/" && current.starts_with(&format!("{href}/")));
                                li { a href=(href) aria-current=[here.then_some("page")] { (label) } }
                            }
                            @if ctx.is_some_and(|c| matches!(c.caller, Caller::User(..))) {
                                li { a href="/subscriptions" aria-current=[(current == "/subscriptions").then_some("page")] { "Alerts" } }
                            }
                        }
                    }
                    @if let Some(ctx) = ctx { (who(ctx)) }
                }
                main #main tabindex="-1" {
                    @if let Some(ctx) = ctx { (visibility_notice(ctx)) }
                    (body)
                }
                footer.site {
                    p {
                        "Every figure links back to the sources that reported it. The same data: "
                        a href="/api/openapi.json" { "the API" } "."
                    }
                }
            }
        }
    }
}

fn who(ctx: &Ctx) -> Markup {
    html! {
        div.who {
            @match &ctx.caller {
                Caller::User(p, _) => {
                    span { "Signed in as " strong { (p.email) } " (" (p.tier.as_str()) ")" }
                    @if ctx.signed_in {
                        form.inline-form method="post" action="/signout" {
                            input type="hidden" name="csrf" value=(ctx.csrf);
                            button.secondary type="submit" { "Sign out" }
                        }
                    }
                }
                Caller::AdminToken(_) => { span { "Signed in with the admin token" } }
                _ => {
                    span { "Not signed in" }
                    a.button href="/signin" { "Sign in" }
                }
            }
        }
    }
}

/// What the visitor's tier hides, and why: an anonymous visitor sees what an anonymous
/// API caller sees, and is told so.
fn visibility_notice(ctx: &Ctx) -> Markup {
    let limits = ctx.caller.limits();
    if limits.delay.is_zero() && limits.history.is_none() {
        return html! {};
    }
    let whom = match &ctx.caller {
        Caller::User(p, _) => format!("Your {} tier", p.tier.as_str()),
        _ => "Without signing in, you".to_owned(),
    };
    let mut parts = Vec::new();
    if !limits.delay.is_zero() {
        parts.push(format!(
            "see incidents {} after they occurred",
            format::span(limits.delay)
        ));
    }
    if let Some(history) = limits.history {
        parts.push(format!("only those of the last {}", format::span(history)));
    }
    let hidden = match (limits.delay.is_zero(), limits.history.is_some()) {
        (false, true) => "Newer and older incidents are hidden.",
        (false, false) => "Newer incidents are hidden.",
        _ => "Older incidents are hidden.",
    };
    let verb = if matches!(ctx.caller, Caller::User(..)) {
        " lets you "
    } else {
        " "
    };
    html! {
        p.notice role="note" {
            (whom) (verb) (parts.join(", and ")) ". " (hidden) " "
            @if matches!(ctx.caller, Caller::User(..)) {
                "Other tiers may see more."
            } @else {
                a href="/signin" { "Sign in with an API key" } " to see what your tier includes."
            }
        }
    }
}
