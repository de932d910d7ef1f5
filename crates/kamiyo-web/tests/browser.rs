//! The dashboard in a real browser: Debian's Chromium, driven by `tests/browser/run.mjs`
//! (playwright-core and axe-core from npm, pinned in `tests/browser/package-lock.json`).
//!
//! This test seeds a database, serves the site on loopback and hands the script a plan
//! (the base URL, a key, the ids and queries to try). The script walks every page once
//! in one browser and reports what it saw; everything is judged here, against the API's
//! own answers for the same queries. Screenshots of every page, in the light and the
//! dark colour scheme, go to `target/browser-screenshots/` for a person to look at.
//!
//! Needs `node` (20 or later) and `chromium` on `PATH` (or `KAMIYO_CHROMIUM` naming
//! another Chromium), and `npm ci` run in `tests/browser/`: `scripts/test` arranges all
//! three. A missing one fails the test and names it: it is never skipped.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::Site;
use kamiyo_domain::Tier;
use kamiyo_store::accounts::Role;
use kamiyo_testkit::claim;
use serde::Deserialize;
use serde_json::json;

/// The whole browser run: one launch, some forty page loads. It takes seconds; this is
/// for a machine so loaded that something is surely wrong.
const RUN_DEADLINE: Duration = Duration::from_secs(180);

const HOSTILE_NAME: &str = "<script>window.__pwned=1</script>Evil";
const HOSTILE_DESCRIPTION: &str = r#"<img src=x onerror=window.__pwned=2> "quoted" & <b>bold</b>"#;

/// The listing's queries compared with `GET /api/exploits?<query>` as loaded pages (and
/// a date range, made when seeding).
const QUERIES: &[&str] = &[
    "",
    "chain=ethereum",
    "sort=amount&order=asc",
    "min_amount=100000000&sort=amount&order=asc",
    "q=bridge",
    "protocol=Euler",
    "limit=2",
];

/// Fields filled in the enhanced form, one submission each, and the URL each must give
/// (fields in the form's order, empty ones left out).
const FILTER_STEPS: &[(&[(&str, &str)], &str)] = &[
    (
        &[("chain", "ethereum"), ("sort", "amount")],
        "/incidents?chain=ethereum&sort=amount",
    ),
    (
        &[("min_amount", "150000000")],
        "/incidents?chain=ethereum&min_amount=150000000&sort=amount",
    ),
];

/// The listing the CSV link is taken from; its file has every match (no `limit`).
const CSV_QUERY: &str = "chain=ethereum&sort=amount&limit=2";
const CSV_EXPORT: &str = "/incidents.csv?chain=ethereum&sort=amount";

const PAGER_QUERY: &str = "limit=3";

/// Filled in the form of a browser without script, and the URL the server must end on.
const NO_SCRIPT_FIELDS: &[(&str, &str)] = &[("chain", "ethereum"), ("min_amount", "100000000")];
const NO_SCRIPT_URL: &str = "/incidents?chain=ethereum&min_amount=100000000";

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_in_chromium_agrees_with_the_api_and_is_clean_accessible_and_safe() {
    let tools = Tools::find();
    let seed = Seed::plant().await;
    let site = &seed.site;
    let pro_key = site.key("pro@example.com", Tier::Pro, Role::User).await;
    let (base, _server) = site.serve().await;
    let screenshots = screenshot_dir();

    let plan = json!({
        "base": base,
        "chromium": tools.chromium,
        "screenshots": screenshots,
        "proKey": pro_key,
        "pages": [
            { "name": "overview", "path": "/" },
            { "name": "incidents", "path": "/incidents" },
            { "name": "incidents-filtered", "path": "/incidents?chain=ethereum&sort=amount" },
            { "name": "incidents-bad-filter", "path": "/incidents?min_amount=lots" },
            { "name": "incident", "path": format!("/incidents/{}", seed.euler) },
            { "name": "incident-hostile", "path": format!("/incidents/{}", seed.hostile) },
            { "name": "sources", "path": "/sources" },
            { "name": "status", "path": "/status" },
            { "name": "signin", "path": "/signin" },
            { "name": "not-found", "path": "/nowhere" },
        ],
        "signedInPages": [
            { "name": "overview-signed-in", "path": "/" },
            { "name": "incident-fresh-signed-in", "path": format!("/incidents/{}", seed.fresh) },
            { "name": "subscriptions", "path": "/subscriptions" },
        ],
        "subscription": {
            "name": "Large losses",
            "url": "https://hooks.example/in",
            "min_loss_usd": "1000000",
        },
        "claimsOf": seed.euler,
        "hostile": {
            "name": HOSTILE_NAME,
            "description": HOSTILE_DESCRIPTION,
            "paths": ["/", "/incidents", format!("/incidents/{}", seed.hostile)],
        },
        "fresh": seed.fresh,
        "queries": seed.queries,
        "filterSteps": FILTER_STEPS.iter().map(|(f, _)| fields_json(f)).collect::<Vec<_>>(),
        "pagerQuery": PAGER_QUERY,
        "csvQuery": CSV_QUERY,
        "noScriptFields": fields_json(NO_SCRIPT_FIELDS),
    });
    let started = Instant::now();
    let report = tools.run(&plan).await;
    eprintln!(
        "{} walked the dashboard in {:.1} s ({} ms in the script); screenshots in {}",
        report.browser,
        started.elapsed().as_secs_f64(),
        report.elapsed_ms,
        screenshots.display()
    );

    let mut findings = Findings::default();
    pages_load_cleanly_and_pass_axe(&report, &mut findings);
    listings_match_the_api(&seed, &base, &report, &mut findings).await;
    the_enhanced_form_round_trips_through_the_url_and_back(&seed, &base, &report, &mut findings)
        .await;
    the_csv_link_downloads_the_apis_export(&seed, &report, &mut findings).await;
    the_incident_page_lists_every_claim(&seed, &report, &mut findings).await;
    signing_in_shows_the_fresh_incident_and_signing_out_hides_it(
        &seed,
        &pro_key,
        &report,
        &mut findings,
    )
    .await;
    a_signed_in_visitor_creates_a_subscription_with_its_form(&report, &mut findings);
    hostile_text_stays_text(&seed, &report, &mut findings);
    the_form_works_without_script(&seed, &base, &report, &mut findings).await;
    findings.conclude();
}

/// Every page answered as expected, with nothing in the console, no policy violation,
/// no serious or critical accessibility finding, and its screenshots written.
fn pages_load_cleanly_and_pass_axe(report: &Report, findings: &mut Findings) {
    let expected_status = |name: &str| match name {
        "not-found" => 404..=404,
        "incidents-bad-filter" => 400..=400,
        // The form's answer, or the page it redirects to.
        "subscription-created" => 200..=201,
        _ => 200..=200,
    };
    for page in &report.pages {
        let expected = expected_status(&page.name);
        findings.check(
            page.status.is_some_and(|s| expected.contains(&s)),
            &format!(
                "{} answered {:?}, within {expected:?}",
                page.path, page.status
            ),
        );
        for violation in &page.axe {
            let line = format!(
                "axe {} ({}, {} scheme) on {}: {} at {}",
                violation.id,
                violation.impact.as_deref().unwrap_or("no impact"),
                violation.scheme,
                page.path,
                violation.help,
                violation
                    .nodes
                    .iter()
                    .map(|n| format!(
                        "`{}` ({})",
                        n.target,
                        n.summary.as_deref().unwrap_or("").replace('\n', " ")
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            if matches!(violation.impact.as_deref(), Some("serious" | "critical")) {
                findings.fail(line);
            } else {
                eprintln!("note (below serious): {line}");
            }
        }
        findings.check(
            page.axe_passes.len() == 2 && page.axe_passes.iter().all(|n| *n > 0),
            &format!(
                "axe checked {} in both colour schemes (rules passed: {:?})",
                page.path, page.axe_passes
            ),
        );
        for file in &page.screenshots {
            let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
            findings.check(
                size > 0,
                &format!("screenshot {} of {} was written", file.display(), page.path),
            );
        }
    }
    let statuses: BTreeMap<&str, u16> = report
        .pages
        .iter()
        .filter_map(|p| Some((p.url.as_str(), p.status?)))
        .collect();
    for problem in &report.problems {
        if !reports_its_own_status(problem, &statuses) {
            findings.fail(format!(
                "{} on {}: {}",
                problem.kind, problem.url, problem.text
            ));
        }
    }
}

/// Chromium logs a document's own error status in the console: the 400 and 404 pages
/// are visited on purpose, so that message is expected there (and only there).
fn reports_its_own_status(problem: &Problem, statuses: &BTreeMap<&str, u16>) -> bool {
    let Some(&status) = problem.source.as_deref().and_then(|s| statuses.get(s)) else {
        return false;
    };
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let expected = format!(
        "Failed to load resource: the server responded with a status of {status} ({reason})"
    );
    problem.kind == "console" && status >= 400 && problem.text == expected
}

/// Each listing shows the rows and total the API gives for the same query string.
async fn listings_match_the_api(seed: &Seed, base: &str, report: &Report, findings: &mut Findings) {
    findings.eq(
        report.listings.len(),
        seed.queries.len(),
        "listings visited",
    );
    for listing in &report.listings {
        let expected_url = format!("{base}/incidents{}", suffix(&listing.query));
        findings.eq(
            &listing.url,
            &expected_url,
            "the listing's URL is the query as given",
        );
        findings.eq(
            &listing.fields,
            &filters_of(&listing.query),
            &format!("the form's fields on /incidents?{}", listing.query),
        );
        seed.compare(&listing.query, listing, findings).await;
    }
}

async fn the_enhanced_form_round_trips_through_the_url_and_back(
    seed: &Seed,
    base: &str,
    report: &Report,
    findings: &mut Findings,
) {
    let trip = &report.round_trip;
    findings.eq(trip.steps.len(), FILTER_STEPS.len(), "enhanced submissions");
    for (step, (fields, url)) in trip.steps.iter().zip(FILTER_STEPS) {
        findings.eq(
            &step.url,
            &format!("{base}{url}"),
            &format!("URL after submitting {fields:?}"),
        );
        findings.check(
            step.same_document,
            &format!("submitting {fields:?} swapped the results without reloading"),
        );
        seed.compare(query_of(url), step, findings).await;
    }
    // Back from the last step: the earlier steps' URLs in reverse, then the bare listing.
    let mut earlier: Vec<&str> = FILTER_STEPS
        .iter()
        .rev()
        .skip(1)
        .map(|(_, url)| *url)
        .collect();
    earlier.push("/incidents");
    findings.eq(trip.back.len(), earlier.len(), "back button presses");
    for (back, url) in trip.back.iter().zip(earlier) {
        findings.eq(
            &back.url,
            &format!("{base}{url}"),
            "URL after the back button",
        );
        findings.check(
            back.same_document,
            &format!("back to {url} swapped the results without reloading"),
        );
        findings.eq(
            &back.fields,
            &filters_of(query_of(url)),
            &format!("the form's fields after going back to {url}"),
        );
        seed.compare(query_of(url), back, findings).await;
    }

    // The next-page link: its cursor is the API's, its rows the API's second page.
    let pager = &report.pager;
    let first = seed
        .site
        .client
        .get(&format!("/api/exploits?{PAGER_QUERY}"))
        .await
        .json();
    let cursor = first["next_cursor"].as_str().unwrap_or("(none)");
    findings.eq(
        &pager.url,
        &format!("{base}/incidents?{PAGER_QUERY}&cursor={cursor}"),
        "URL after the next-page link",
    );
    findings.check(
        pager.same_document,
        "the next-page link swapped the results without reloading",
    );
    seed.compare(query_of(&pager.url), pager, findings).await;
}

async fn the_csv_link_downloads_the_apis_export(
    seed: &Seed,
    report: &Report,
    findings: &mut Findings,
) {
    let csv = &report.csv;
    findings.eq(
        csv.href.as_deref(),
        Some(CSV_EXPORT),
        "the CSV link of the listing",
    );
    let api = seed
        .site
        .client
        .get(&format!("/api/exploits.csv?{}", query_of(CSV_EXPORT)))
        .await;
    findings.eq(api.status.as_u16(), 200, "the API's export");
    findings.check(
        api.text.lines().count() > 2,
        "the export has rows (the test would prove little otherwise)",
    );
    findings.eq(
        &csv.text,
        &api.text,
        "the downloaded CSV is the API's export",
    );
}

async fn the_incident_page_lists_every_claim(
    seed: &Seed,
    report: &Report,
    findings: &mut Findings,
) {
    let api = seed
        .site
        .client
        .get(&format!("/api/exploits/{}", seed.euler))
        .await;
    let mut claims: Vec<i64> = api.json()["sources"]
        .as_array()
        .map(|s| s.iter().filter_map(|c| c["id"].as_i64()).collect())
        .unwrap_or_default();
    claims.sort_unstable();
    findings.eq(claims.len(), 3, "claims of the seeded incident on the API");
    let mut shown = report.claims.clone();
    shown.sort_unstable();
    findings.eq(shown, claims, "claim rows on the incident page");
}

async fn signing_in_shows_the_fresh_incident_and_signing_out_hides_it(
    seed: &Seed,
    pro_key: &str,
    report: &Report,
    findings: &mut Findings,
) {
    let session = &report.session;
    for (stage, seen, visible, key) in [
        ("anonymous", &session.anonymous, false, None),
        ("signed in", &session.signed_in, true, Some(pro_key)),
        ("signed out", &session.signed_out, false, None),
    ] {
        findings.eq(
            seen.listed.contains(&seed.fresh),
            visible,
            &format!("{stage}: the fresh incident is listed"),
        );
        findings.eq(
            seen.fresh_status,
            if visible { 200 } else { 404 },
            &format!("{stage}: status of the fresh incident's page"),
        );
        let (ids, total) = seed.api_listing("", key).await;
        findings.eq(
            &seen.listed,
            &ids,
            &format!("{stage}: rows of /incidents as the API gives them"),
        );
        findings.eq(
            seen.total,
            Some(total),
            &format!("{stage}: total of /incidents"),
        );
        let signed_in = seen.who.contains("Signed in as pro@example.com");
        findings.eq(
            signed_in,
            visible,
            &format!("{stage}: the header says who is signed in ({:?})", seen.who),
        );
    }
}

fn a_signed_in_visitor_creates_a_subscription_with_its_form(
    report: &Report,
    findings: &mut Findings,
) {
    let created = &report.subscription;
    findings.check(
        created.status.is_some_and(|s| s == 200 || s == 201),
        &format!(
            "the page after the subscription form answered {:?}",
            created.status
        ),
    );
    findings.eq(
        created.rows.clone(),
        vec!["Large losses".to_owned()],
        "subscriptions listed after creating one",
    );
    findings.check(
        created.secret.starts_with("whsec_"),
        &format!(
            "the webhook's signing secret is shown once: {:?}",
            created.secret
        ),
    );
}

fn hostile_text_stays_text(seed: &Seed, report: &Report, findings: &mut Findings) {
    let detail = format!("/incidents/{}", seed.hostile);
    findings.eq(
        report.hostile.len(),
        3,
        "pages checked for the hostile incident",
    );
    for page in &report.hostile {
        let at = &page.path;
        findings.eq(
            page.pwned.as_str(),
            "undefined",
            &format!("{at}: window.__pwned (no injected script ran)"),
        );
        findings.check(page.name_shown, &format!("{at}: the name is shown as text"));
        findings.eq(
            page.inline_scripts,
            0,
            &format!("{at}: inline script elements"),
        );
        findings.eq(
            page.elements_with_handlers,
            0,
            &format!("{at}: elements with event handler attributes"),
        );
        findings.eq(
            page.images,
            0,
            &format!("{at}: img elements (the dashboard has none)"),
        );
        if *at == detail {
            findings.check(
                page.description_shown,
                &format!("{at}: the description is shown as text"),
            );
        }
    }
}

async fn the_form_works_without_script(
    seed: &Seed,
    base: &str,
    report: &Report,
    findings: &mut Findings,
) {
    let plain = &report.no_script;
    // The browser sent the whole form, empty fields too; the server answered with the
    // same URL without them.
    let first = plain
        .navigations
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    findings.check(
        first.contains("q=&") && first.contains("chain=ethereum"),
        &format!("without script the form is a plain GET with every field: {first}"),
    );
    findings.eq(
        plain.navigations.len(),
        2,
        &format!("requests of the submission {:?}", plain.navigations),
    );
    findings.eq(
        &plain.url,
        &format!("{base}{NO_SCRIPT_URL}"),
        "URL after the plain submission",
    );
    let listing = Listing {
        query: String::new(),
        url: plain.url.clone(),
        ids: plain.ids.clone(),
        total: Some(plain.total),
        fields: BTreeMap::new(),
        same_document: false,
    };
    seed.compare(query_of(NO_SCRIPT_URL), &listing, findings)
        .await;
}

/// The data every check reads.
struct Seed {
    site: Site,
    /// An incident of three claims (one with a link, loss figures that disagree).
    euler: i64,
    /// Named and described in HTML and script.
    hostile: i64,
    /// An hour old: hidden from anonymous visitors by the 24 h delay, seen by pro.
    fresh: i64,
    /// `QUERIES` and a date range around the seeded incidents.
    queries: Vec<String>,
}

impl Seed {
    async fn plant() -> Seed {
        let site = Site::start().await;
        let now = Utc::now();
        let ago = |hours: i64| now - chrono::Duration::hours(hours);
        // Between the anonymous tier's delay (a day) and its history (a week), so that
        // every visitor sees them, and one older than the history.
        for (name, chain, loss, hours) in [
            ("Mango Markets", "solana", "114000000", 50),
            ("Ronin Bridge", "ronin", "624000000", 60),
            ("Nomad Bridge", "ethereum", "190000000", 72),
            ("Beanstalk", "ethereum", "182000000", 96),
            ("Ankr", "bsc", "5000000", 120),
            ("Platypus", "avalanche", "8500000", 144),
            ("Old Protocol", "ethereum", "3000000", 30 * 24),
        ] {
            site.incident(claim(name).chain(chain).loss_usd(loss).at(ago(hours)))
                .await;
        }
        let hash = format!("0x{}", "ab".repeat(32));
        let euler = |name: &str, source: &str, loss: &str| {
            claim(name)
                .source(source)
                .chain("ethereum")
                .at(ago(84))
                .loss_usd(loss)
                .tx("ethereum", hash.clone())
        };
        let id = site
            .incident(
                euler("Euler Finance", "rekt", "197000000")
                    .source_url("https://rekt.news/euler-rekt/"),
            )
            .await;
        for (name, source, loss) in [
            ("Euler", "defillama", "196000000"),
            ("Euler Finance", "slowmist", "197000000"),
        ] {
            let same = site.incident(euler(name, source, loss)).await;
            assert_eq!(
                same, id,
                "the claims of {source} join the Euler incident by its hash"
            );
        }
        let hostile = site
            .incident(
                claim(HOSTILE_NAME)
                    .at(ago(36))
                    .description(HOSTILE_DESCRIPTION),
            )
            .await;
        let fresh = site.incident(claim("Fresh Protocol").at(ago(1))).await;
        // From five days ago to two: the dates of the seeded incidents move with the clock.
        let day = |days: i64| {
            (now - chrono::Duration::days(days))
                .format("%Y-%m-%d")
                .to_string()
        };
        let mut queries: Vec<String> = QUERIES.iter().map(|q| (*q).to_owned()).collect();
        queries.push(format!("from={}&to={}", day(5), day(2)));
        Seed {
            site,
            euler: id,
            hostile,
            fresh,
            queries,
        }
    }

    /// The API's rows and total for `query`, as `key` (or anonymously).
    async fn api_listing(&self, query: &str, key: Option<&str>) -> (Vec<i64>, i64) {
        let answer = self
            .site
            .client
            .get(&format!("/api/exploits{}", suffix(query)))
            .bearer_opt(key)
            .await;
        assert_eq!(
            answer.status, 200,
            "GET /api/exploits?{query}: {}",
            answer.text
        );
        let body = answer.json();
        let ids = body["items"]
            .as_array()
            .map(|items| items.iter().filter_map(|i| i["id"].as_i64()).collect())
            .unwrap_or_default();
        (ids, body["total"].as_i64().unwrap_or(-1))
    }

    /// The page's rows and total are the API's for `query`, asked anonymously.
    async fn compare(&self, query: &str, listing: &Listing, findings: &mut Findings) {
        let (ids, total) = self.api_listing(query, None).await;
        findings.check(
            !ids.is_empty(),
            &format!("the API lists something for {query:?}"),
        );
        findings.eq(
            &listing.ids,
            &ids,
            &format!("rows of {} (API query {query:?})", listing.url),
        );
        findings.eq(
            listing.total,
            Some(total),
            &format!("total of {} (API query {query:?})", listing.url),
        );
    }
}

/// `node`, the browser and the script's packages, or a panic that names what is missing.
struct Tools {
    node: PathBuf,
    chromium: PathBuf,
    dir: PathBuf,
}

impl Tools {
    fn find() -> Tools {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        let node = on_path("node").unwrap_or_else(|| {
            panic!(
                "node is not on PATH: the browser test runs {} with Node.js 20 or later \
                 (Debian: apt-get install nodejs npm)",
                dir.join("run.mjs").display()
            )
        });
        let chromium = match std::env::var_os("KAMIYO_CHROMIUM") {
            Some(path) => {
                let path = PathBuf::from(path);
                assert!(
                    is_executable(&path),
                    "KAMIYO_CHROMIUM={} is not an executable file",
                    path.display()
                );
                path
            }
            None => on_path("chromium").unwrap_or_else(|| {
                panic!(
                    "chromium is not on PATH: the browser test drives Debian's Chromium \
                     (apt-get install chromium; scripts/test installs it), or set \
                     KAMIYO_CHROMIUM to a Chromium executable"
                )
            }),
        };
        for package in ["playwright-core", "axe-core"] {
            let installed = installed_version(&dir, package);
            let locked = locked_version(&dir, package);
            assert!(
                installed.is_some() && installed == locked,
                "{package} {} is locked in {}, but {} is installed under node_modules there: \
                 run `npm ci` in that folder (scripts/test does)",
                locked.as_deref().unwrap_or("(none)"),
                dir.join("package-lock.json").display(),
                installed.as_deref().unwrap_or("nothing"),
            );
        }
        Tools {
            node,
            chromium,
            dir,
        }
    }

    /// Runs the script with `plan`; its report, or a panic with what it said.
    async fn run(&self, plan: &serde_json::Value) -> Report {
        let child = tokio::process::Command::new(&self.node)
            .arg(self.dir.join("run.mjs"))
            .arg(plan.to_string())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.node.display()));
        let output = tokio::time::timeout(RUN_DEADLINE, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("the browser run took longer than {RUN_DEADLINE:?}"))
            .unwrap_or_else(|e| panic!("the browser run: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "the browser run failed ({}):\n{stderr}\n{stdout}",
            output.status
        );
        serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("the browser run's report is not what this test reads: {e}\n{stdout}\n{stderr}")
        })
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn installed_version(dir: &Path, package: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("node_modules").join(package).join("package.json"))
        .ok()?;
    let manifest: serde_json::Value = serde_json::from_str(&text).ok()?;
    manifest["version"].as_str().map(str::to_owned)
}

fn locked_version(dir: &Path, package: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("package-lock.json")).ok()?;
    let lock: serde_json::Value = serde_json::from_str(&text).ok()?;
    lock["packages"][format!("node_modules/{package}")]["version"]
        .as_str()
        .map(str::to_owned)
}

/// `target/browser-screenshots` (next to the target directory's `tmp`).
fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("browser-screenshots")
}

fn fields_json(fields: &[(&str, &str)]) -> serde_json::Value {
    fields
        .iter()
        .map(|(name, value)| ((*name).to_owned(), json!(value)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn suffix(query: &str) -> String {
    if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    }
}

/// A query string's parameters, as the filter form's fields show them.
fn filters_of(query: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// The query string of a path or URL.
fn query_of(url: &str) -> &str {
    url.split_once('?').map_or("", |(_, query)| query)
}

/// Every failed check of the run, reported together: one browser run answers many
/// questions, and a person fixing one wants to see the others.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn fail(&mut self, what: String) {
        self.0.push(what);
    }

    fn check(&mut self, ok: bool, what: &str) {
        if !ok {
            self.0.push(format!("not so: {what}"));
        }
    }

    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, got: T, want: T, what: &str) {
        if got != want {
            self.0.push(format!(
                "{what}: the browser saw {got:?}, expected {want:?}"
            ));
        }
    }

    fn conclude(self) {
        assert!(
            self.0.is_empty(),
            "{} finding(s) in the browser:\n- {}",
            self.0.len(),
            self.0.join("\n- ")
        );
    }
}

/// What `run.mjs` prints.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    browser: String,
    pages: Vec<PageVisit>,
    problems: Vec<Problem>,
    listings: Vec<Listing>,
    round_trip: RoundTrip,
    pager: Listing,
    csv: Csv,
    claims: Vec<i64>,
    session: Session,
    subscription: Subscription,
    hostile: Vec<HostileFacts>,
    no_script: NoScript,
    elapsed_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageVisit {
    name: String,
    path: String,
    /// Where the browser ended (after redirects).
    url: String,
    status: Option<u16>,
    axe: Vec<Violation>,
    /// Rules that passed, per colour scheme.
    axe_passes: Vec<usize>,
    screenshots: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct Violation {
    id: String,
    impact: Option<String>,
    help: String,
    scheme: String,
    nodes: Vec<ViolationNode>,
}

#[derive(Debug, Deserialize)]
struct ViolationNode {
    target: String,
    summary: Option<String>,
}

/// A console error, an uncaught exception or a policy violation.
#[derive(Debug, Deserialize)]
struct Problem {
    kind: String,
    /// The page's URL.
    url: String,
    /// The script or resource a console message is about.
    source: Option<String>,
    text: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listing {
    #[serde(default)]
    query: String,
    url: String,
    ids: Vec<i64>,
    total: Option<i64>,
    /// The filter form's non-empty fields.
    fields: BTreeMap<String, String>,
    /// No full page load since the script marked the window.
    same_document: bool,
}

#[derive(Debug, Deserialize)]
struct RoundTrip {
    steps: Vec<Listing>,
    back: Vec<Listing>,
}

#[derive(Debug, Deserialize)]
struct Csv {
    href: Option<String>,
    text: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Session {
    anonymous: Seen,
    signed_in: Seen,
    signed_out: Seen,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Seen {
    listed: Vec<i64>,
    total: Option<i64>,
    fresh_status: u16,
    /// The header's identity line.
    who: String,
}

#[derive(Debug, Deserialize)]
struct Subscription {
    /// Of the document showing the new subscription.
    status: Option<u16>,
    /// Names in the table of subscriptions.
    rows: Vec<String>,
    secret: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HostileFacts {
    path: String,
    pwned: String,
    name_shown: bool,
    description_shown: bool,
    inline_scripts: usize,
    elements_with_handlers: usize,
    images: usize,
}

#[derive(Debug, Deserialize)]
struct NoScript {
    /// Main-frame requests of the submission, redirects included.
    navigations: Vec<String>,
    url: String,
    ids: Vec<i64>,
    total: i64,
}
