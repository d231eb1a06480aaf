// A Chromium subscriber behind a bottleneck, on the server → subscriber
// direction only: the demo page's echo (pc1 publishes, pc2 pulls it back)
// plus a second subscriber of the same tracks ("Pull"). After a clean
// phase, the datagrams from the server's media port to pc2's ports go
// through an HTB class of <kbit> kbit/s with a short FIFO (tc, on lo: the
// browser and the server share the namespace); later the limit is lifted.
//
//   node tests/browser/bottleneck.mjs <demo-url> <kbit> <clean s> <limited s> <lifted s>
//
// Run inside a network namespace as root (it changes lo's qdisc). Prints
// one JSON line: {"ok", "reason"?, "ports", "samples": [{t, phase,
// echoFrames, pullFrames, echoKbit, publisherKbit, paused,
// estimates: [[le_kbit, cumulative count]...]}]}; per-second deltas of
// frames decoded and kbit/s received by pc2, the publisher's
// availableOutgoingBitrate, and the server's /metrics: the
// switchboard_paused_video gauge and the estimate histogram. Env: CHROMIUM.

import { startEcho } from "./demo-echo.mjs";
import { bottleneckArgs, endRun, installShaper } from "./shaper.mjs";

const { url, kbit, clean, limited, lifted, hard } = bottleneckArgs("bottleneck.mjs");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let browser = null;
let shaper = null;

async function metrics() {
  const text = await (await fetch(new URL("/metrics", url))).text();
  let paused = 0;
  const buckets = new Map();
  for (const line of text.split("\n")) {
    const p = line.match(/^switchboard_paused_video\{[^}]*\} (\d+)/);
    if (p) paused += Number(p[1]);
    const b = line.match(/^switchboard_subscriber_estimate_bps_bucket\{[^}]*le="([^"]+)"\} (\d+)/);
    if (b) buckets.set(b[1], (buckets.get(b[1]) || 0) + Number(b[2]));
  }
  const estimates = [...buckets].map(([le, n]) => [le === "+Inf" ? le : Number(le) / 1000, n]);
  return { paused, estimates };
}

async function pageStats(page) {
  return page.evaluate(async () => {
    const inbound = async (pc) => {
      const out = { frames: 0, bytes: 0, ports: [] };
      if (!pc) return out;
      (await pc.getStats()).forEach((r) => {
        if (r.type === "inbound-rtp" && r.kind === "video") out.frames += r.framesDecoded || 0;
        if (r.type === "transport") out.bytes += r.bytesReceived || 0;
        if (r.type === "local-candidate" && r.port) out.ports.push(r.port);
      });
      return out;
    };
    const echo = await inbound(window.demo.pc2);
    const pull = await inbound(window.demo.pulls[0] && window.demo.pulls[0].pc);
    let publisherBitrate = 0;
    if (window.demo.pc1) {
      (await window.demo.pc1.getStats()).forEach((r) => {
        if (r.type === "candidate-pair" && r.nominated && r.availableOutgoingBitrate) {
          publisherBitrate = r.availableOutgoingBitrate;
        }
      });
    }
    return { echo, pull, publisherBitrate, sessionId: window.demo.state.sessionId };
  });
}

let result;
try {
  const echo = await startEcho(url);
  browser = echo.browser;
  const page = echo.page;
  const until = async (what, test) => {
    const deadline = Date.now() + 20000;
    for (;;) {
      const s = await pageStats(page);
      if (test(s)) return s;
      if (Date.now() > deadline) throw new Error(`${what} within 20 s`);
      await sleep(250);
    }
  };
  const started = await until("no echo video", (s) => s.echo.frames > 0);
  await page.fill("#pull-session", started.sessionId);
  await page.click("#pull");
  const ready = await until("no pulled video", (s) => s.pull.frames > 0);
  const ports = [...new Set(ready.echo.ports)];
  // The bottleneck, idle until its filters are added.
  shaper = installShaper(kbit);
  const samples = [];
  let last = await pageStats(page);
  const phases = [["clean", clean], ["limited", limited], ["lifted", lifted]];
  let t = 0;
  for (const [phase, seconds] of phases) {
    if (phase === "limited") shaper.limit(ports);
    else if (phase === "lifted") shaper.lift();
    for (let i = 0; i < seconds; i++) {
      await sleep(1000);
      t += 1;
      const now = await pageStats(page);
      const m = await metrics();
      const sample = {
        t,
        phase,
        echoFrames: now.echo.frames - last.echo.frames,
        pullFrames: now.pull.frames - last.pull.frames,
        echoKbit: Math.round(((now.echo.bytes - last.echo.bytes) * 8) / 1000),
        publisherKbit: Math.round(now.publisherBitrate / 1000),
        ...m,
      };
      samples.push(sample);
      console.error(JSON.stringify(sample));
      last = now;
    }
  }
  result = { ok: true, ports, samples };
} catch (e) {
  result = { ok: false, reason: `exception: ${e && e.message ? e.message : e}` };
} finally {
  await endRun(result, { browser, shaper, hard });
}
