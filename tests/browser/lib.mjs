// Shared driver for the scripted Calls API tests in headless Chromium
// (codecs.mjs, renegotiation.mjs): command line, Chromium launch, a hard
// timeout, scenarios run one after another in their own tab, and one JSON
// line of results on stdout (exit 0 when every scenario passed, 1 otherwise,
// 2 on bad usage). Page console messages go to stderr.
//
// Each tab loads the server's demo page, so that it has the API's origin,
// and gets `window.sb` (see page.mjs): the API and WebRTC helpers the
// scenarios run in the page with page.evaluate.
//
// Env: CHROMIUM (default /usr/bin/chromium).

import { chromium } from "playwright-core";
import { installHelpers } from "./page.mjs";
import { CHROMIUM_ARGS } from "./chromium-args.mjs";


export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// `node <script> <http-addr> <app-id> <app-secret> [scenario...]`.
export function parseArgs(script, scenarioNames) {
  const [httpAddr, appId, secret, ...picked] = process.argv.slice(2);
  const unknown = picked.filter((s) => !scenarioNames.includes(s));
  if (!httpAddr || !appId || !secret || unknown.length) {
    console.error(`usage: node tests/browser/${script} <http-addr> <app-id> <app-secret> [${scenarioNames.join("|")}...]`);
    process.exit(2);
  }
  return {
    pageUrl: `http://${httpAddr}/`,
    apiBase: `http://${httpAddr}/v1/apps/${appId}`,
    secret,
    picked: picked.length ? picked : scenarioNames,
  };
}

// Rejects after `ms` with a message naming `what`.
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Logs `page`'s console, errors and failed requests as `name`, opens the
// server's page in it and installs page.mjs's helpers.
export async function preparePage(page, args, name) {
  page.on("console", (m) => console.error(`[${name} console.${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => console.error(`[${name} pageerror] ${e && e.stack ? e.stack : e}`));
  page.on("response", (r) => {
    if (r.status() >= 400) console.error(`[${name} http ${r.status()}] ${r.request().method()} ${r.url()}`);
  });
  const res = await page.goto(args.pageUrl, { waitUntil: "load", timeout: 10000 });
  if (!res || !res.ok()) throw new Error(`GET ${args.pageUrl}: HTTP ${res ? res.status() : "no response"}`);
  await page.evaluate(installHelpers, { apiBase: args.apiBase, secret: args.secret });
  return page;
}

async function openTab(browser, args, name) {
  const context = await browser.newContext();
  const page = await preparePage(await context.newPage(), args, name);
  return { context, page };
}

async function closeWithin(what, ms) {
  let timer;
  await Promise.race([what.close().catch(() => {}), new Promise((r) => { timer = setTimeout(r, ms); })]);
  clearTimeout(timer);
}

// Runs one scenario in a fresh tab: `scenario.run(page)` returns an object
// with `ok`; a throw or a timeout is a failure that keeps the page's notes
// (window.sb.notes) as evidence.
async function runScenario(browser, args, scenario) {
  const t0 = Date.now();
  let tab = null;
  try {
    tab = await openTab(browser, args, scenario.name);
    const result = await withTimeout(scenario.run(tab.page), scenario.timeoutMs, scenario.name);
    return { name: scenario.name, ...result, ms: Date.now() - t0 };
  } catch (e) {
    const notes = tab ? await withTimeout(tab.page.evaluate(() => window.sb.notes), 2000, "notes").catch(() => null) : null;
    return { name: scenario.name, ok: false, reason: String(e && e.message ? e.message : e), notes, ms: Date.now() - t0 };
  } finally {
    if (tab) await closeWithin(tab.context, 5000);
  }
}

// Launches Chromium, runs the picked scenarios one after another, prints
// {"ok", "ms", "scenarios": [...], ...extra(page)} and sets the exit code.
// `extra` (optional) collects facts about the browser once, in its own tab.
export async function main({ script, scenarios, hardTimeoutMs, extra }) {
  const args = parseArgs(script, scenarios.map((s) => s.name));
  const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
  const t0 = Date.now();
  let browser = null;
  let printed = false;
  const print = (result) => {
    if (printed) return;
    printed = true;
    process.stdout.write(JSON.stringify({ ...result, ms: Date.now() - t0 }) + "\n");
    process.exitCode = result.ok ? 0 : 1;
  };
  const hardTimer = setTimeout(async () => {
    print({ ok: false, reason: `hard timeout after ${hardTimeoutMs} ms` });
    if (browser) await closeWithin(browser, 5000);
    process.exit(1);
  }, hardTimeoutMs);
  try {
    browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS, timeout: 20000 });
    let facts = {};
    if (extra) {
      const tab = await openTab(browser, args, "facts");
      try {
        facts = await withTimeout(extra(tab.page), 10000, "browser facts");
      } finally {
        await closeWithin(tab.context, 5000);
      }
    }
    const results = [];
    for (const s of scenarios.filter((s) => args.picked.includes(s.name))) {
      const r = await runScenario(browser, args, s);
      console.error(`[${s.name}] ${r.ok ? "ok" : "FAILED"} in ${r.ms} ms${r.ok ? "" : `: ${r.reason}`}`);
      results.push(r);
    }
    print({ ok: results.every((r) => r.ok), ...facts, scenarios: results });
  } catch (e) {
    print({ ok: false, reason: `exception: ${e && e.message ? e.message : e}` });
  } finally {
    if (browser) await closeWithin(browser, 5000);
    clearTimeout(hardTimer);
  }
}
