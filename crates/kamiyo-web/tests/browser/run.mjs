// Drives a real Chromium through the dashboard for crates/kamiyo-web/tests/browser.rs.
//
//   node run.mjs '<plan as JSON>'    (the plan is made in browser.rs: base URL, browser,
//                                     screenshot folder, key, pages, queries, ids)
//
// Prints one JSON report on stdout, and writes it beside the screenshots: what the
// browser saw (URLs, rows, totals, files, console messages, axe's findings). It decides
// nothing: the Rust test compares the report with the API and asserts. It fails (exit 1,
// the reason on stderr, `failure.png` beside the screenshots) only when it cannot do what
// the plan says, e.g. an element it must click is missing.
//
// Every wait is on an event or a selector, never on time: what the results region holds
// is marked `data-stale` before an action that the page's script answers by swapping
// it, and the action is done when nothing marked is left.

import { readFile, mkdir, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { chromium } from "playwright-core";

const plan = JSON.parse(process.argv[2] ?? "{}");
const require = createRequire(import.meta.url);
const axeSource = await readFile(require.resolve("axe-core/axe.min.js"), "utf8");

// Longest wait for one action or navigation: pages answer in milliseconds.
const ACTION_TIMEOUT_MS = 10_000;

const started = Date.now();
const report = {
  browser: null,
  pages: [],
  problems: [],
  listings: [],
  roundTrip: { steps: [], back: [] },
  pager: null,
  csv: null,
  claims: null,
  session: {},
  subscription: null,
  hostile: [],
  noScript: null,
  elapsedMs: 0,
};

await rm(plan.screenshots, { recursive: true, force: true });
await mkdir(plan.screenshots, { recursive: true });
let shot = 0;

const browser = await chromium.launch({ executablePath: plan.chromium, headless: true });
report.browser = browser.version();
let failurePage = null;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(ACTION_TIMEOUT_MS);
  // CSP violations, as the page itself is told of them. The binding and the init script
  // go through the DevTools protocol, which the page's policy does not govern.
  await context.exposeBinding("__kamiyoViolation", ({ page }, v) => {
    report.problems.push({ kind: "csp", url: page.url(), text: JSON.stringify(v) });
  });
  await context.addInitScript(() => {
    document.addEventListener(
      "securitypolicyviolation",
      (e) =>
        window.__kamiyoViolation({
          directive: e.violatedDirective,
          blocked: e.blockedURI,
          source: e.sourceFile,
          line: e.lineNumber,
        }),
      true,
    );
  });
  const page = await context.newPage();
  failurePage = page;
  watch(page);

  await tour(page);
  await listings(page);
  await roundTrip(page);
  await pager(page);
  await csv(page);
  await session(page, context);

  const quiet = await browser.newContext({
    viewport: { width: 1280, height: 900 },
    javaScriptEnabled: false,
  });
  quiet.setDefaultTimeout(ACTION_TIMEOUT_MS);
  const plain = await quiet.newPage();
  failurePage = plain;
  watch(plain);
  await noScript(plain);
} catch (error) {
  if (failurePage) {
    await failurePage
      .screenshot({ path: join(plan.screenshots, "failure.png"), fullPage: true })
      .catch(() => {});
  }
  process.stderr.write(`browser run failed: ${error.stack ?? error}\n`);
  process.stderr.write(`partial report: ${JSON.stringify(report)}\n`);
  await browser.close();
  process.exit(1);
}
await browser.close();
report.elapsedMs = Date.now() - started;
await writeFile(join(plan.screenshots, "report.json"), JSON.stringify(report, null, 2));
process.stdout.write(JSON.stringify(report) + "\n");

// Console errors and uncaught exceptions of every page, with the URL they came from.
function watch(page) {
  page.on("console", (message) => {
    if (message.type() === "error") {
      report.problems.push({
        kind: "console",
        url: page.url(),
        source: message.location()?.url || null,
        text: message.text(),
      });
    }
  });
  page.on("pageerror", (error) => {
    report.problems.push({ kind: "pageerror", url: page.url(), text: String(error) });
  });
}

// Opens `path` and inspects it.
async function visit(page, name, path) {
  const response = await page.goto(plan.base + path);
  await inspect(page, name, path, response?.status() ?? null);
}

// Runs axe on the current page in the light and the dark colour scheme, and writes a
// screenshot of each.
async function inspect(page, name, path, status) {
  const entry = { name, path, url: page.url(), status, axe: [], axePasses: [], screenshots: [] };
  shot += 1;
  for (const scheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: scheme });
    const result = await axe(page);
    entry.axe.push(...result.violations.map((v) => ({ ...v, scheme })));
    entry.axePasses.push(result.passes);
    const file = join(plan.screenshots, `${String(shot).padStart(2, "0")}-${name}-${scheme}.png`);
    await page.screenshot({ path: file, fullPage: true });
    entry.screenshots.push(file);
  }
  await page.emulateMedia({ colorScheme: "light" });
  report.pages.push(entry);
}

// axe-core's violations on the current page, and how many rules passed (so that a run
// that checked nothing shows). Its source is evaluated through the DevTools protocol: a
// script tag would be refused by the page's policy, as it should.
async function axe(page) {
  const loaded = await page.evaluate(() => typeof window.axe);
  if (loaded === "undefined") await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return {
      passes: result.passes.length,
      violations: result.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => ({ target: n.target.join(" "), summary: n.failureSummary })),
      })),
    };
  });
}

// Ids and total of the listing's results region, and where the browser is.
async function listing(page) {
  return page.evaluate(() => {
    const results = document.getElementById("results");
    const ids = Array.from(results?.querySelectorAll("tbody a[href^='/incidents/']") ?? []).map(
      (a) => Number(a.getAttribute("href").slice("/incidents/".length)),
    );
    const total = results?.querySelector("p.actions strong")?.textContent ?? null;
    const form = document.querySelector("form[data-enhance]");
    const fields = {};
    for (const el of form?.elements ?? []) {
      if (el.name && el.value !== "") fields[el.name] = el.value;
    }
    return {
      url: location.href,
      ids,
      total: total === null ? null : Number(total.replace(/,/g, "")),
      fields,
      sameDocument: window.__kamiyoSameDocument === true,
    };
  });
}

// Text a visitor reads on the current page, and what script or markup got through.
async function hostileFacts(page, path) {
  const facts = await page.evaluate(({ name, description }) => {
    const text = document.body.innerText;
    return {
      pwned: typeof window.__pwned,
      nameShown: text.includes(name),
      descriptionShown: text.includes(description),
      inlineScripts: document.querySelectorAll("script:not([src])").length,
      elementsWithHandlers: document.querySelectorAll("[onerror], [onload], [onclick]").length,
      images: document.querySelectorAll("img").length,
    };
  }, plan.hostile);
  report.hostile.push({ path, ...facts });
}

async function tour(page) {
  for (const { name, path } of plan.pages) {
    await visit(page, name, path);
    if (path === `/incidents/${plan.claimsOf}`) {
      report.claims = await page.evaluate(() =>
        Array.from(document.querySelectorAll("tr[id^='claim-']")).map((tr) =>
          Number(tr.id.slice("claim-".length)),
        ),
      );
    }
    if (plan.hostile.paths.includes(path)) await hostileFacts(page, path);
  }
}

async function listings(page) {
  for (const query of plan.queries) {
    await page.goto(`${plan.base}/incidents${query ? `?${query}` : ""}`);
    report.listings.push({ query, ...(await listing(page)) });
  }
}

// Marks what the results region holds; `swapped` waits until the page's script has
// replaced all of it (whether it swaps the region's content or the region itself) and is
// no longer busy.
async function markResults(page) {
  await page.evaluate(() => {
    for (const child of document.getElementById("results").children) {
      child.setAttribute("data-stale", "");
    }
  });
}
async function swapped(page) {
  await page.waitForSelector("#results [data-stale]", { state: "detached" });
  await page.waitForSelector("#results:not([aria-busy])", { state: "attached" });
}

async function setFields(page, fields) {
  for (const [name, value] of Object.entries(fields)) {
    const field = page.locator(`form[data-enhance] [name="${name}"]`);
    const tag = await field.evaluate((el) => el.tagName);
    if (tag === "SELECT") await field.selectOption(value);
    else await field.fill(value);
  }
}

// The enhanced form: each step is submitted and swapped in place, then the back button
// walks the steps backwards to the unfiltered listing.
async function roundTrip(page) {
  await page.goto(`${plan.base}/incidents`);
  // Survives only while no step reloads the page.
  await page.evaluate(() => {
    window.__kamiyoSameDocument = true;
  });
  for (const fields of plan.filterSteps) {
    await markResults(page);
    await setFields(page, fields);
    await page.locator("form[data-enhance] button[type=submit]").click();
    await swapped(page);
    report.roundTrip.steps.push(await listing(page));
  }
  for (let i = 0; i < plan.filterSteps.length; i++) {
    await markResults(page);
    await page.goBack();
    await swapped(page);
    report.roundTrip.back.push(await listing(page));
  }
}

// The enhanced "Next page" link: swapped in place, the cursor in the address bar.
async function pager(page) {
  await page.goto(`${plan.base}/incidents?${plan.pagerQuery}`);
  await page.evaluate(() => {
    window.__kamiyoSameDocument = true;
  });
  await markResults(page);
  await page.locator("#results a[rel=next]").click();
  await swapped(page);
  report.pager = await listing(page);
}

async function csv(page) {
  await page.goto(`${plan.base}/incidents?${plan.csvQuery}`);
  const link = page.locator("#results a[download]");
  const href = await link.getAttribute("href");
  const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
  const file = await download.path();
  report.csv = {
    href,
    suggested: download.suggestedFilename(),
    text: await readFile(file, "utf8"),
  };
}

// What the visitor sees of the fresh incident: listed, and its page's status.
async function freshness(page, context) {
  await page.goto(`${plan.base}/incidents`);
  const seen = await listing(page);
  const who = await page.locator("header .who").innerText();
  // Through the context's own HTTP client (same cookies): a 404 page opened in the tab
  // would put a "failed to load" error in the console, which is checked to stay empty.
  const status = (await context.request.get(`${plan.base}/incidents/${plan.fresh}`)).status();
  return { listed: seen.ids, total: seen.total, freshStatus: status, who };
}

async function session(page, context) {
  report.session.anonymous = await freshness(page, context);

  await page.goto(`${plan.base}/signin`);
  await page.locator("main form[action='/signin'] input[name=key]").fill(plan.proKey);
  await Promise.all([
    page.waitForURL(`${plan.base}/`),
    page.locator("main form[action='/signin'] button[type=submit]").click(),
  ]);
  report.session.signedIn = await freshness(page, context);
  for (const { name, path } of plan.signedInPages) await visit(page, name, path);
  await subscribe(page);

  await Promise.all([
    page.waitForURL(`${plan.base}/`),
    page.getByRole("button", { name: "Sign out" }).click(),
  ]);
  report.session.signedOut = await freshness(page, context);
}

// Creates an alert subscription with the form on /subscriptions (a POST with the CSRF
// token) and inspects the page that shows it and its secret.
async function subscribe(page) {
  await page.goto(`${plan.base}/subscriptions`);
  const form = page.locator("main form[action='/subscriptions']");
  for (const [name, value] of Object.entries(plan.subscription)) {
    await form.locator(`[name="${name}"]`).fill(value);
  }
  await form.locator("button[type=submit]").click();
  await page.waitForSelector("p.secret");
  await page.waitForLoadState("load");
  // The status of the document showing the secret: the form's answer, or the page it
  // redirected to.
  const status = await page.evaluate(
    () => performance.getEntriesByType("navigation")[0]?.responseStatus ?? null,
  );
  await inspect(page, "subscription-created", "/subscriptions", status);
  report.subscription = {
    status,
    rows: await page.locator("main table tbody tr th[scope=row]").allInnerTexts(),
    secret: await page.locator("p.secret").innerText(),
  };
}

// Without script: the form is a plain GET with every field, which the server redirects
// to the same URL without the empty ones.
async function noScript(page) {
  const navigations = [];
  page.on("request", (request) => {
    if (request.isNavigationRequest() && request.frame() === page.mainFrame()) {
      navigations.push(request.url());
    }
  });
  await page.goto(`${plan.base}/incidents`);
  navigations.length = 0;
  await setFields(page, plan.noScriptFields);
  await Promise.all([
    page.waitForURL((url) => url.pathname === "/incidents" && url.search !== ""),
    page.locator("form[data-enhance] button[type=submit]").click(),
  ]);
  const ids = await page
    .locator("#results tbody a[href^='/incidents/']")
    .evaluateAll((links) =>
      links.map((a) => Number(a.getAttribute("href").slice("/incidents/".length))),
    );
  const total = await page.locator("#results p.actions strong").textContent();
  shot += 1;
  const screenshot = join(
    plan.screenshots,
    `${String(shot).padStart(2, "0")}-incidents-without-script.png`,
  );
  await page.screenshot({ path: screenshot, fullPage: true });
  report.noScript = {
    navigations,
    url: page.url(),
    ids,
    total: Number(total.replace(/,/g, "")),
    screenshot,
  };
}
