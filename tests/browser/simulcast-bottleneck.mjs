// A simulcast subscriber behind a bottleneck (server → subscriber only),
// in headless Chromium: a publisher sends three VP8 layers (f 1280x720,
// h 640x360, q 320x180); subscriber "shaped" pulls with {preferredRid: "f",
// priorityOrdering: "asciibetical"}, subscriber "other" pulls with
// {preferredRid: "f"} and is never limited. After a clean phase the
// datagrams to "shaped" go through <kbit> kbit/s (shaper.mjs); later the
// limit is lifted.
//
//   node tests/browser/simulcast-bottleneck.mjs <demo-url> <kbit> <clean s> <limited s> <lifted s>
//
// Run as root inside a network namespace (it changes lo's qdisc). Prints
// one JSON line: {"ok", "reason"?, "samples": [{t, phase, shapedWidth,
// shapedFrames, otherWidth, otherFrames, shapedKbit, paused, switches}]}
// with per-second deltas of frames decoded and kbit/s received by
// "shaped". Env: CHROMIUM.

import { chromium } from "playwright-core";
import { CHROMIUM_ARGS } from "./chromium-args.mjs";
import { installHelpers } from "./page.mjs";
import { bottleneckArgs, endRun, installShaper } from "./shaper.mjs";

const { url, kbit, clean, limited, lifted, hard } = bottleneckArgs("simulcast-bottleneck.mjs");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let browser = null;
let shaper = null;

async function metrics() {
  const text = await (await fetch(new URL("/metrics", url))).text();
  const sum = (name) => [...text.matchAll(new RegExp(`^switchboard_${name}(?:\\{[^}]*\\})? (\\d+)$`, "gm"))]
    .reduce((n, m) => n + Number(m[1]), 0);
  return { paused: sum("paused_video"), switches: sum("layer_switches_total") };
}

// In the page: the call, kept in window.call.
async function setUp() {
  const sb = window.sb;
  const pub = await sb.pushSimulcast("camera");
  await sb.waitConnected(pub.pc, 10000, "publisher");
  let enc = null;
  await sb.waitFor(async () => {
    enc = await pub.encodings();
    return ["f", "h", "q"].every((r) => enc[r] && enc[r].frames > 10 && enc[r].width);
  }, 20000, () => `the publisher to encode f, h and q (${JSON.stringify(enc)})`);
  const shaped = await sb.pull(pub.sessionId, ["camera"], { simulcast: { preferredRid: "f", priorityOrdering: "asciibetical" } });
  const other = await sb.pull(pub.sessionId, ["camera"], { simulcast: { preferredRid: "f" } });
  await sb.waitConnected(shaped.pc, 10000, "shaped subscriber");
  await sb.waitConnected(other.pc, 10000, "other subscriber");
  window.call = { pub, shaped, other };
  const ports = [];
  (await shaped.pc.getStats()).forEach((r) => {
    if (r.type === "local-candidate" && r.port) ports.push(r.port);
  });
  return { ports: [...new Set(ports)], encodings: enc };
}

async function pageStats() {
  const video = async (pc) => {
    const out = { width: 0, frames: 0, bytes: 0 };
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video") {
        out.width = r.frameWidth || 0;
        out.frames = r.framesDecoded || 0;
      }
      if (r.type === "transport") out.bytes += r.bytesReceived || 0;
    });
    return out;
  };
  const { shaped, other } = window.call;
  return { shaped: await video(shaped.pc), other: await video(other.pc) };
}

let result;
try {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS, timeout: 20000 });
  const page = await (await browser.newContext()).newPage();
  page.on("console", (m) => console.error(`[console.${m.type()}] ${m.text()}`));
  await page.goto(url, { waitUntil: "load", timeout: 10000 });
  // The demo page carries the dev app's id and secret.
  const app = await page.evaluate(() => ({ id: APP_ID, secret: APP_SECRET }));
  await page.evaluate(installHelpers, { apiBase: new URL(`/v1/apps/${app.id}`, url).href, secret: app.secret });
  const { ports, encodings } = await page.evaluate(setUp);
  shaper = installShaper(kbit);
  const samples = [];
  let last = await page.evaluate(pageStats);
  let t = 0;
  for (const [phase, seconds] of [["clean", clean], ["limited", limited], ["lifted", lifted]]) {
    if (phase === "limited") shaper.limit(ports);
    else if (phase === "lifted") shaper.lift();
    for (let i = 0; i < seconds; i++) {
      await sleep(1000);
      t += 1;
      const now = await page.evaluate(pageStats);
      const sample = {
        t,
        phase,
        shapedWidth: now.shaped.width,
        shapedFrames: now.shaped.frames - last.shaped.frames,
        otherWidth: now.other.width,
        otherFrames: now.other.frames - last.other.frames,
        shapedKbit: Math.round(((now.shaped.bytes - last.shaped.bytes) * 8) / 1000),
        ...(await metrics()),
      };
      samples.push(sample);
      console.error(JSON.stringify(sample));
      last = now;
    }
  }
  result = { ok: true, ports, encodings, samples };
} catch (e) {
  result = { ok: false, reason: `exception: ${e && e.message ? e.message : e}` };
} finally {
  await endRun(result, { browser, shaper, hard });
}
