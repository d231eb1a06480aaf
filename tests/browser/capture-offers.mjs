// Captures real browser SDP offers as test fixtures (no server needed):
//
//   node tests/browser/capture-offers.mjs [out-dir]     (default: tests/data)
//
// Writes, verbatim as createOffer() produced them (CRLF line endings):
//   firefox-max-bundle-offer.sdp  Firefox: bundlePolicy "max-bundle", a fake
//                                 microphone and camera (addTrack) and a data
//                                 channel "x"; the 2nd and 3rd m-lines are
//                                 a=bundle-only with port 0.
//   chromium-simulcast-offer.sdp  Chromium: a sendonly audio transceiver and a
//                                 sendonly video transceiver with simulcast
//                                 rids f/h/q, every video codec the browser
//                                 knows enabled via setCodecPreferences.
// Each browser's version is printed to stderr. Env: FIREFOX, CHROMIUM.

import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { launch, openPage, withTimeout } from "./browsers.mjs";

const outDir = process.argv[2]
  || path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "data");

// getUserMedia needs a secure context: a blank page on 127.0.0.1.
const server = http.createServer((_, res) => {
  res.setHeader("content-type", "text/html");
  res.end("<!doctype html><title>offer capture</title>");
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const pageUrl = `http://127.0.0.1:${server.address().port}/`;

async function firefoxOffer() {
  const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  for (const track of [...media.getAudioTracks(), ...media.getVideoTracks()]) pc.addTrack(track, media);
  pc.createDataChannel("x");
  const offer = await pc.createOffer();
  pc.close();
  return offer.sdp;
}

async function chromiumOffer() {
  const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  pc.addTransceiver(media.getAudioTracks()[0], { direction: "sendonly", streams: [media] });
  const video = pc.addTransceiver(media.getVideoTracks()[0], {
    direction: "sendonly",
    streams: [media],
    sendEncodings: [
      { rid: "f" },
      { rid: "h", scaleResolutionDownBy: 2 },
      { rid: "q", scaleResolutionDownBy: 4 },
    ],
  });
  // Every codec the browser can send or receive, each once.
  const seen = new Set();
  const codecs = [];
  for (const c of [...RTCRtpSender.getCapabilities("video").codecs,
    ...RTCRtpReceiver.getCapabilities("video").codecs]) {
    const key = `${c.mimeType} ${c.clockRate} ${c.sdpFmtpLine || ""}`;
    if (!seen.has(key)) { seen.add(key); codecs.push(c); }
  }
  try {
    video.setCodecPreferences(codecs);
  } catch {
    video.setCodecPreferences(RTCRtpReceiver.getCapabilities("video").codecs);
  }
  const offer = await pc.createOffer();
  pc.close();
  return offer.sdp;
}

async function capture(kind, fn, file) {
  const b = await launch(kind);
  try {
    console.error(`${kind}: ${await b.browser.version()}`);
    const page = await openPage(b, kind, pageUrl);
    const sdp = await withTimeout(page.evaluate(fn), 20000, `${kind} createOffer`);
    if (!sdp.includes("\r\n")) throw new Error(`${kind}: offer without CRLF line endings`);
    fs.writeFileSync(path.join(outDir, file), sdp);
    console.error(`wrote ${path.join(outDir, file)} (${sdp.length} bytes, ${sdp.split("\r\nm=").length - 1} m-lines)`);
  } finally {
    await b.close();
  }
}

const hardTimer = setTimeout(() => {
  console.error("capture-offers: hard timeout after 90 s");
  process.exit(1);
}, 90000);
try {
  await capture("firefox", firefoxOffer, "firefox-max-bundle-offer.sdp");
  await capture("chromium", chromiumOffer, "chromium-simulcast-offer.sdp");
} catch (e) {
  console.error(`capture-offers: ${e && e.stack ? e.stack : e}`);
  process.exitCode = 1;
} finally {
  server.close();
  clearTimeout(hardTimer);
}
