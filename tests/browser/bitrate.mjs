// Congestion feedback to a publishing Chromium, on a clean loopback path:
//
// clean-path: a page pushes its fake camera (video only) through the API;
//   from the moment its transport connects, its selected candidate pair's
//   availableOutgoingBitrate (its own send-side estimate, which rises only
//   on the server's transport-cc feedback) is sampled every 500 ms for
//   10 s; it must reach `target` bit/s.
//
// Prints one JSON line: {"ok", "ms", "scenarios": [{name, ok, reason?,
// reached?, samples, answerHasTransportCc}]}. Env: CHROMIUM.

import { main } from "./lib.mjs";

const TARGET = 1_500_000; // bit/s
const WINDOW_MS = 10_000;

// In the page.
async function cleanPath({ target, windowMs }) {
  const sb = window.sb;
  const pub = await sb.push({ tracks: [{ kind: "video", name: "video" }] });
  await sb.waitConnected(pub.pc, 10000, "publisher");
  const t0 = performance.now();
  const samples = [];
  let reached = null;
  while (performance.now() - t0 < windowMs) {
    let bitrate = null;
    (await pub.pc.getStats()).forEach((s) => {
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded" && s.availableOutgoingBitrate) {
        bitrate = s.availableOutgoingBitrate;
      }
    });
    const ms = Math.round(performance.now() - t0);
    samples.push([ms, bitrate]);
    if (bitrate >= target && reached === null) reached = ms;
    await sb.sleep(500);
  }
  const answerHasTransportCc = /a=extmap:\d+ [^\r\n]*transport-wide-cc/.test(pub.answer)
    && /a=rtcp-fb:\d+ transport-cc/.test(pub.answer);
  pub.pc.close();
  return {
    ok: reached !== null,
    reason: reached === null ? `availableOutgoingBitrate stayed below ${target} bit/s for ${windowMs} ms` : undefined,
    reached, samples, answerHasTransportCc,
  };
}

await main({
  script: "bitrate.mjs",
  hardTimeoutMs: 60000,
  scenarios: [
    { name: "clean-path", timeoutMs: 30000, run: (page) => page.evaluate(cleanPath, { target: TARGET, windowMs: WINDOW_MS }) },
  ],
});
