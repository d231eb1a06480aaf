// End-to-end check of the demo page (src/api/demo.html) in headless Chromium.
//
//   node tests/browser/echo.mjs <base-url> [--two-tabs | --chat]
//   e.g. node tests/browser/echo.mjs http://127.0.0.1:8080/
//
// Default scenario ("echo"): open the page, click #start (publish camera+mic,
// pull them back through the SFU) and wait until the echo peer has decoded
// more than 60 video frames.
// --two-tabs: tab 1 clicks #start; tab 2 pulls tab 1's session ("audio,video")
// with #pull-session/#pull and must decode more than 60 video frames.
// --chat: both tabs click #chat-open; tab 2 joins tab 1's chat session
// (#chat-join-session, #chat-join); a line typed in each tab (#chat-text,
// #chat-send) must appear in the other's (window.demo.chat.messages).
//
// Env: CHROMIUM (default /usr/bin/chromium), ECHO_TIMEOUT_MS (default 15000,
// counted from the first click). Prints one JSON line on stdout:
// {"ok":true,"framesDecoded":N,"ms":T} (exit 0) or {"ok":false,...} (exit 1).
// Page console messages and errors go to stderr. Exit 2 on bad usage.

import { chromium } from "playwright-core";
import { CHROMIUM_ARGS } from "./chromium-args.mjs";

const FRAMES = 60;
const POLL_MS = 250;

const args = process.argv.slice(2);
const twoTabs = args.includes("--two-tabs");
const chat = args.includes("--chat");
const baseUrl = args.find((a) => !a.startsWith("--"));
if (!baseUrl || args.some((a) => a.startsWith("--") && a !== "--two-tabs" && a !== "--chat")) {
  console.error("usage: node tests/browser/echo.mjs <base-url> [--two-tabs | --chat]");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const timeoutMs = Number(process.env.ECHO_TIMEOUT_MS) || 15000;
const hardTimeoutMs = Math.max(40000, timeoutMs + 25000);
const scenario = twoTabs ? "two-tabs" : chat ? "chat" : "echo";


const t0 = Date.now();
let browser = null;
let finished = false;

function finish(result) {
  if (finished) return;
  finished = true;
  process.stdout.write(JSON.stringify({ ...result, scenario }) + "\n");
  process.exitCode = result.ok ? 0 : 1;
}

async function closeBrowser() {
  if (!browser) return;
  const b = browser;
  browser = null;
  let timer;
  const giveUp = new Promise((r) => { timer = setTimeout(r, 5000); });
  await Promise.race([b.close().catch(() => {}), giveUp]);
  clearTimeout(timer);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Never hang: report, try to close the browser, then exit.
const hardTimer = setTimeout(async () => {
  finish({ ok: false, reason: `hard timeout after ${hardTimeoutMs} ms`, ms: Date.now() - t0 });
  await closeBrowser();
  process.exit(1);
}, hardTimeoutMs);

async function openTab(name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("console", (m) => {
    const where = m.type() === "error" && m.location()?.url ? ` (${m.location().url})` : "";
    console.error(`[${name} console.${m.type()}] ${m.text()}${where}`);
  });
  page.on("pageerror", (e) => console.error(`[${name} pageerror] ${e && e.stack ? e.stack : e}`));
  page.on("requestfailed", (r) => console.error(`[${name} requestfailed] ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400) console.error(`[${name} http ${r.status()}] ${r.request().method()} ${r.url()}`);
  });
  const res = await page.goto(baseUrl, { waitUntil: "load", timeout: 10000 });
  if (!res || !res.ok()) throw new Error(`GET ${baseUrl}: HTTP ${res ? res.status() : "no response"}`);
  return page;
}

// Text of #status and #error, for failure reports.
async function pageText(page) {
  try {
    return await page.evaluate(() => ({
      status: document.getElementById("status")?.textContent ?? null,
      error: document.getElementById("error")?.textContent ?? null,
    }));
  } catch (e) {
    return { status: null, error: `(could not read page: ${e.message})` };
  }
}

// Polls `probe(page)` until it returns a truthy value, the page shows an
// error, or the deadline passes. Returns {value} or {reason}.
async function pollUntil(page, deadline, what, probe) {
  for (;;) {
    const value = await probe(page);
    if (value) return { value };
    const { error } = await pageText(page);
    if (error) return { reason: `page error while waiting for ${what}` };
    if (Date.now() >= deadline) return { reason: `timed out waiting for ${what}` };
    await sleep(POLL_MS);
  }
}

async function stats(page) {
  return page.evaluate(() => window.demoStats());
}

async function safeStats(page) {
  return stats(page).catch((e) => ({ unavailable: e.message }));
}

async function runEcho() {
  const page = await openTab("tab1");
  const clicked = Date.now();
  const deadline = clicked + timeoutMs;
  await page.click("#start");
  let last = null;
  const r = await pollUntil(page, deadline, `echo framesDecoded > ${FRAMES}`, async (p) => {
    last = await stats(p);
    return last.framesDecoded > FRAMES;
  });
  if (r.value) return { ok: true, framesDecoded: last.framesDecoded, ms: Date.now() - clicked };
  return { ok: false, reason: r.reason, ms: Date.now() - clicked, stats: last, ...(await pageText(page)) };
}

async function runTwoTabs() {
  const tab1 = await openTab("tab1");
  const clicked = Date.now();
  const deadline = clicked + timeoutMs;
  await tab1.click("#start");

  // Wait until tab 1's transport is up (its push negotiation is then done).
  const pub = await pollUntil(tab1, deadline, "tab 1 to publish", (p) =>
    p.evaluate(() => (window.demo && window.demo.state.connected ? window.demo.state.sessionId : null)));
  if (!pub.value) {
    return { ok: false, reason: pub.reason, ms: Date.now() - clicked, stats: await safeStats(tab1), ...(await pageText(tab1)) };
  }
  const sessionId = pub.value;

  const tab2 = await openTab("tab2");
  await tab2.fill("#pull-session", sessionId);
  await tab2.fill("#pull-tracks", "audio,video");
  await tab2.click("#pull");
  let last = null;
  const r = await pollUntil(tab2, deadline, `tab 2 pulledFramesDecoded > ${FRAMES}`, async (p) => {
    last = await stats(p);
    return last.pulledFramesDecoded > FRAMES;
  });
  if (r.value) {
    return { ok: true, framesDecoded: last.pulledFramesDecoded, ms: Date.now() - clicked, sessionId };
  }
  return {
    ok: false, reason: r.reason, ms: Date.now() - clicked, sessionId, stats: last,
    ...(await pageText(tab2)), tab1: { stats: await safeStats(tab1), ...(await pageText(tab1)) },
  };
}

async function runChat() {
  const started = Date.now();
  const deadline = started + timeoutMs;
  const open = async (name) => {
    const tab = await openTab(name);
    await tab.click("#chat-open");
    const id = await pollUntil(tab, deadline, `${name} chat open`, (p) =>
      p.evaluate(() => window.demo.chat && window.demo.chat.channel.readyState === "open" && window.demo.chat.sessionId));
    if (!id.value) throw new Error(`${id.reason}: ${JSON.stringify(await pageText(tab))}`);
    return { tab, sessionId: id.value };
  };
  const one = await open("tab1");
  const two = await open("tab2");
  await two.tab.fill("#chat-join-session", one.sessionId);
  await two.tab.click("#chat-join");
  const joined = await pollUntil(two.tab, deadline, "tab 2 joined", (p) =>
    p.evaluate(() => window.demo.chat.joined && window.demo.chat.channel.readyState === "open"));
  if (!joined.value) return { ok: false, reason: joined.reason, ...(await pageText(two.tab)) };
  await sleep(300);
  const say = async (tab, text) => {
    await tab.fill("#chat-text", text);
    await tab.click("#chat-send");
  };
  const heard = (tab, text) => pollUntil(tab, deadline, `"${text}" received`, (p) =>
    p.evaluate((t) => window.demo.chat.messages.includes(t), text));
  await say(one.tab, "hello from tab 1");
  const first = await heard(two.tab, "hello from tab 1");
  await say(two.tab, "hello from tab 2");
  const second = await heard(one.tab, "hello from tab 2");
  const messages = {
    tab1: await one.tab.evaluate(() => window.demo.chat.messages),
    tab2: await two.tab.evaluate(() => window.demo.chat.messages),
  };
  if (first.value && second.value) return { ok: true, ms: Date.now() - started, messages };
  return { ok: false, reason: first.reason || second.reason, messages };
}

try {
  browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS, timeout: 20000 });
  finish(twoTabs ? await runTwoTabs() : chat ? await runChat() : await runEcho());
} catch (e) {
  finish({ ok: false, reason: `exception: ${e && e.message ? e.message : e}`, ms: Date.now() - t0 });
} finally {
  await closeBrowser();
  clearTimeout(hardTimer);
}
