// Simulcast in headless Chromium, with the Calls API driven from the page.
//
//   node tests/browser/simulcast.mjs <http-addr> <app-id> <app-secret> [scenario...]
//   (run by tests/chromium_simulcast.rs; scenarios: switch, rid-not-available)
//
// The publisher sends the fake camera at 1280x720 as three VP8 layers
// (sendEncodings f, h, q at 1, 1/2 and 1/4 of the resolution; a=simulcast
// in its offer), and waits until it encodes all three (Chromium enables its
// top layer only once its bandwidth estimate carries it, which the server's
// transport-cc feedback makes possible).
//
// switch: a subscriber pulls with simulcast {preferredRid: "f"}, then asks
//   for h and then q with PUT tracks/update (its mid, the publisher's
//   session and track). The pulled video's frameWidth must follow
//   (1280 → 640 → 320) within 2 s of each request, and frames must keep
//   being decoded: no stall over 500 ms around a switch.
// rid-not-available: a subscriber pulls with {preferredRid: "f",
//   ridNotAvailable: "asciibetical"}; the publisher disables its f encoding
//   (setParameters, active: false): the subscriber must get h (640) within
//   2 s (the picture may stand still while f is not yet known to have
//   stopped: 1 s of silence, then h's keyframe); f is enabled again: 1280
//   again within 2 s, with no stall over 500 ms.
//
// Results carry a timeline of the pulled video (ms since the pull, width,
// frames decoded, sampled every 100 ms), the publisher's encodings and the
// server's counters. Prints one JSON line: {"ok", "ms", "scenarios": [...]}.
// Env: CHROMIUM.

import { main } from "./lib.mjs";

const SWITCH_MS = 2000; // a switch must show in frameWidth within this
const STALL_MS = 500; // longest time without a new frame around a switch

// In the page: publisher with three layers, subscriber with `simulcast`,
// then `steps` (tracks/update preferences or publisher encodings changes),
// each followed by a wait for the expected width.
async function simulcastRun({ simulcast, steps, switchMs, stallMs }) {
  const sb = window.sb;
  const { pc: pub, sessionId: pubId, transceiver: tr, encodings } = await sb.pushSimulcast("camera");
  await sb.waitConnected(pub, 10000, "publisher");
  let enc = null;
  await sb.waitFor(async () => {
    enc = await encodings();
    return ["f", "h", "q"].every((r) => enc[r] && enc[r].frames > 10 && enc[r].width);
  }, 20000, () => `the publisher to encode f, h and q (${JSON.stringify(enc)})`);
  const encodedAtStart = enc;

  const { pc: sub, sessionId: subId, mids, items } = await sb.pull(pubId, ["camera"], { simulcast });
  const mid = mids.camera;
  const echoed = items[0].simulcast;
  await sb.waitConnected(sub, 10000, "subscriber");

  // The pulled video, sampled every 100 ms from now on.
  const timeline = [];
  const pulledAt = performance.now();
  let sampling = true;
  const sample = async () => {
    let s = null;
    (await sub.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video") s = r;
    });
    const point = { ms: Math.round(performance.now() - pulledAt), width: s ? s.frameWidth || 0 : 0, frames: s ? s.framesDecoded || 0 : 0 };
    timeline.push(point);
    return point;
  };
  const sampler = (async () => {
    while (sampling) {
      await sample();
      await sb.sleep(100);
    }
  })();
  const waitWidth = async (width, ms, what) => {
    const from = performance.now();
    await sb.waitFor(() => timeline.length && timeline[timeline.length - 1].width === width, ms,
      () => `${what}: width ${width} (last ${JSON.stringify(timeline[timeline.length - 1])})`);
    return Math.round(performance.now() - from);
  };
  // Longest stretch without a new decoded frame between two times.
  const longestStall = (fromMs, toMs) => {
    let longest = 0;
    let lastChange = null;
    let lastFrames = null;
    for (const p of timeline.filter((p) => p.ms >= fromMs && p.ms <= toMs)) {
      if (lastFrames === null || p.frames !== lastFrames) {
        lastFrames = p.frames;
        lastChange = p.ms;
      }
      longest = Math.max(longest, p.ms - lastChange);
    }
    return longest;
  };

  const results = [];
  const failures = [];
  try {
    const first = steps[0];
    results.push({ step: "pull", expect: first.width, tookMs: await waitWidth(first.width, 10000, "first frames") });
    await sb.sleep(1000);
    for (const step of steps.slice(1)) {
      const at = Math.round(performance.now() - pulledAt);
      if (step.preferences) {
        const r = await sb.apiOk("PUT", `/sessions/${subId}/tracks/update`, {
          tracks: [{ location: "remote", mid, sessionId: pubId, trackName: "camera", simulcast: step.preferences }],
        });
        if (JSON.stringify(r.tracks[0].simulcast) !== JSON.stringify(step.preferences)) {
          failures.push(`tracks/update echoed ${JSON.stringify(r.tracks[0])}`);
        }
      }
      if (step.active !== undefined) {
        const p = tr.sender.getParameters();
        p.encodings[0].active = step.active;
        await tr.sender.setParameters(p);
      }
      let took = null;
      try {
        took = await waitWidth(step.width, switchMs, step.name);
      } catch (e) {
        failures.push(e.message);
      }
      await sb.sleep(1000);
      const stall = longestStall(at, at + (took ?? switchMs) + 1000);
      const allowed = step.stallMs ?? stallMs;
      if (stall > allowed) failures.push(`${step.name}: no new frame for ${stall} ms around the switch (${allowed} allowed)`);
      results.push({ step: step.name, atMs: at, expect: step.width, tookMs: took, longestStallMs: stall });
    }
  } catch (e) {
    failures.push(e.message);
  }
  sampling = false;
  await sampler;
  const server = await sb.metrics();
  const metricsText = await (await fetch(location.origin + "/metrics")).text();
  const switches = [...metricsText.matchAll(/^switchboard_layer_switches_total(?:\{[^}]*\})? (\d+)$/gm)]
    .reduce((sum, m) => sum + Number(m[1]), 0);
  const encodedAtEnd = await encodings();
  pub.close();
  sub.close();
  return {
    ok: failures.length === 0, reason: failures.join("; ") || undefined,
    echoed, steps: results, encodedAtStart, encodedAtEnd, server: { ...server, layerSwitches: switches },
    timeline: timeline.filter((_, i) => i % 2 === 0).map((p) => `${p.ms}:${p.width}:${p.frames}`).join(" "),
    notes: failures.length ? sb.notes : undefined,
  };
}

const SCENARIOS = {
  switch: {
    simulcast: { preferredRid: "f" },
    steps: [
      { name: "f", width: 1280 },
      { name: "to h", preferences: { preferredRid: "h" }, width: 640 },
      { name: "to q", preferences: { preferredRid: "q" }, width: 320 },
      { name: "back to f", preferences: { preferredRid: "f" }, width: 1280 },
    ],
  },
  "rid-not-available": {
    simulcast: { preferredRid: "f", ridNotAvailable: "asciibetical" },
    steps: [
      { name: "f", width: 1280 },
      // A layer counts as stopped after 1 s without media: the picture
      // stands still that long before h takes over.
      { name: "f disabled", active: false, width: 640, stallMs: 1500 },
      { name: "f enabled", active: true, width: 1280 },
    ],
  },
};

await main({
  script: "simulcast.mjs",
  hardTimeoutMs: 150000,
  scenarios: Object.entries(SCENARIOS).map(([name, spec]) => ({
    name,
    timeoutMs: 60000,
    run: (page) => page.evaluate(simulcastRun, { ...spec, switchMs: SWITCH_MS, stallMs: STALL_MS }),
  })),
});
