// Shared helpers for the puppeteer-core driven browser tests
// (tests/browser/firefox.mjs, tests/browser/capture-offers.mjs): launch
// headless Firefox (WebDriver BiDi) or Chromium (CDP) with fake media and a
// throwaway profile, open pages with their console mirrored to stderr, and
// poll a page until a condition holds. Not run by itself.
//
// Env: FIREFOX (default /usr/bin/firefox-esr), CHROMIUM (default /usr/bin/chromium).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import puppeteer from "puppeteer-core";
import { CHROMIUM_ARGS } from "./chromium-args.mjs";

export const FIREFOX = process.env.FIREFOX || "/usr/bin/firefox-esr";
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

const FIREFOX_PREFS = {
  "media.navigator.streams.fake": true,
  "media.navigator.permission.disabled": true,
  "media.autoplay.default": 0,
  "media.autoplay.blocking_policy": 0,
  "browser.shell.checkDefaultBrowser": false,
  "app.update.enabled": false,
  "datareporting.policy.dataSubmissionEnabled": false,
  "toolkit.telemetry.enabled": false,
};


export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Rejects after `ms` with `what` in the message.
export function withTimeout(promise, ms, what) {
  let timer;
  const giveUp = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms} ms`)), ms);
  });
  return Promise.race([promise, giveUp]).finally(() => clearTimeout(timer));
}

// Launches `kind` ("firefox" | "chromium") headless with a fresh profile.
// Returns {kind, browser, close()}; close() never throws and removes the profile.
export async function launch(kind) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), `sb-${kind}-`));
  const opts = kind === "firefox"
    ? {
      browser: "firefox", protocol: "webDriverBiDi", executablePath: FIREFOX,
      extraPrefsFirefox: FIREFOX_PREFS,
    }
    : { browser: "chrome", protocol: "cdp", executablePath: CHROMIUM, args: CHROMIUM_ARGS };
  let browser;
  try {
    browser = await puppeteer.launch({ ...opts, headless: true, userDataDir, timeout: 30000 });
  } catch (e) {
    fs.rmSync(userDataDir, { recursive: true, force: true });
    throw new Error(`launching ${kind} (${opts.executablePath}): ${e.message}`);
  }
  const close = async () => {
    try {
      await withTimeout(browser.close(), 5000, `closing ${kind}`);
    } catch {
      try { browser.process()?.kill("SIGKILL"); } catch { /* gone */ }
    }
    fs.rmSync(userDataDir, { recursive: true, force: true });
  };
  return { kind, browser, close };
}

// A new page (own browser context) of `b` that logs to stderr as `[name ...]`.
export async function openPage(b, name, url) {
  const context = await b.browser.createBrowserContext();
  const page = await context.newPage();
  // An Error argument prints as "JSHandle@error" over BiDi: the page's #error
  // text (in the failure evidence) has its message.
  page.on("console", (m) => console.error(`[${name} console.${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => console.error(`[${name} pageerror] ${e && e.stack ? e.stack : e}`));
  page.on("requestfailed", (r) => console.error(`[${name} requestfailed] ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400) console.error(`[${name} http ${r.status()}] ${r.request().method()} ${r.url()}`);
  });
  if (url) {
    const res = await page.goto(url, { waitUntil: "load", timeout: 15000 });
    if (res && !res.ok()) throw new Error(`${name}: GET ${url}: HTTP ${res.status()}`);
  }
  return page;
}

// Polls `probe()` until it returns a truthy value, `failed()` returns a
// reason, or the deadline passes. Returns {value} or {reason}.
export async function pollUntil(deadline, what, probe, failed = async () => null, everyMs = 250) {
  for (;;) {
    const value = await probe();
    if (value) return { value };
    const reason = await failed();
    if (reason) return { reason: `${reason} (while waiting for ${what})` };
    if (Date.now() >= deadline) return { reason: `timed out waiting for ${what}` };
    await sleep(everyMs);
  }
}
