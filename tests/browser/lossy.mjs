// The demo page's echo (publish camera and microphone, pull them back
// through the server) in headless Chromium, measured for a while:
//
//   node tests/browser/lossy.mjs <demo-url> <seconds>
//
// From the moment the echo peer decodes video, its inbound video is
// watched for <seconds>: frames decoded, total freeze time
// (totalFreezesDuration), NACKs it sent (nackCount), and the publisher's
// retransmitted packets. Run it on a clean path and through a lossy one
// (the caller drops datagrams with nftables) to compare.
//
// Prints one JSON line: {"ok", framesDecoded, freezeSeconds, nackCount,
// publisherRetransmitted, serverRetransmitted, reason?}, and on stderr a line a second with
// the running totals (PLIs, keyframes, packets lost, retransmissions received, the publisher's
// availableOutgoingBitrate too). Env: CHROMIUM.

import { startEcho } from "./demo-echo.mjs";

const [url, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg);
if (!url || !seconds) {
  console.error("usage: node tests/browser/lossy.mjs <demo-url> <seconds>");
  process.exit(2);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let browser = null;
const hard = setTimeout(() => {
  process.stdout.write(JSON.stringify({ ok: false, reason: "hard timeout" }) + "\n");
  process.exit(1);
}, (seconds + 60) * 1000);

async function sample(page) {
  return page.evaluate(async () => {
    const out = {
      framesDecoded: 0, freezeSeconds: 0, nackCount: 0, publisherRetransmitted: 0,
      pliSent: 0, keyFramesDecoded: 0, rtxReceived: 0, packetsLost: 0, keyFramesEncoded: 0, outgoingBitrate: 0,
    };
    const pc2 = window.demo.pc2;
    if (pc2) {
      (await pc2.getStats()).forEach((r) => {
        if (r.type === "inbound-rtp" && r.kind === "video") {
          out.framesDecoded += r.framesDecoded || 0;
          out.freezeSeconds += r.totalFreezesDuration || 0;
          out.nackCount += r.nackCount || 0;
          out.pliSent += r.pliCount || 0;
          out.rtxReceived += r.retransmittedPacketsReceived || 0;
          out.keyFramesDecoded += r.keyFramesDecoded || 0;
          out.packetsLost += r.packetsLost || 0;
        }
      });
    }
    const pc1 = window.demo.pc1;
    if (pc1) {
      (await pc1.getStats()).forEach((r) => {
        if (r.type === "outbound-rtp" && r.kind === "video") {
          out.publisherRetransmitted += r.retransmittedPacketsSent || 0;
          out.keyFramesEncoded += r.keyFramesEncoded || 0;
        }
        if (r.type === "candidate-pair" && r.nominated && r.availableOutgoingBitrate) {
          out.outgoingBitrate = r.availableOutgoingBitrate;
        }
      });
    }
    return out;
  });
}

let result;
try {
  const started = await startEcho(url);
  browser = started.browser;
  const page = started.page;
  const deadline = Date.now() + 20000;
  let first = await sample(page);
  while (first.framesDecoded === 0 && Date.now() < deadline) {
    await sleep(250);
    first = await sample(page);
  }
  if (first.framesDecoded === 0) {
    result = { ok: false, reason: "no video decoded within 20 s" };
  } else {
    // A line a second on stderr: the timeline behind the totals.
    let last = first;
    for (let t = 1; t <= seconds; t++) {
      await sleep(1000);
      last = await sample(page);
      console.error(JSON.stringify({ t, ...last }));
    }
    // The server's answers to NACKs, from its /metrics.
    const metrics = await (await fetch(new URL("/metrics", url))).text();
    const serverRetransmitted = metrics
      .split("\n")
      .filter((l) => l.startsWith("switchboard_rtp_retransmitted_total{"))
      .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
    result = {
      ok: true,
      serverRetransmitted,
      framesDecoded: last.framesDecoded - first.framesDecoded,
      freezeSeconds: Math.round((last.freezeSeconds - first.freezeSeconds) * 1000) / 1000,
      nackCount: last.nackCount - first.nackCount,
      publisherRetransmitted: last.publisherRetransmitted - first.publisherRetransmitted,
    };
  }
} catch (e) {
  result = { ok: false, reason: `exception: ${e && e.message ? e.message : e}` };
} finally {
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exitCode = result && result.ok ? 0 : 1;
  if (browser) await Promise.race([browser.close().catch(() => {}), sleep(5000)]);
  clearTimeout(hard);
}
