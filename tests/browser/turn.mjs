// TURN credentials (Calls' /v1/turn/keys API) against real Chromium: media
// through the relay only, over the asked transport, then revocation.
//
//   1. POST /v1/turn/keys/<key-id>/credentials/generate-ice-servers
//      ({"ttl": 600}, Bearer <key-token>) gives iceServers; the one turn:
//      URL with ?transport=<udp|tcp> is kept, with its username/credential.
//   2. Two pages, each RTCPeerConnection({iceServers: [that one],
//      iceTransportPolicy: "relay", bundlePolicy: "max-bundle"}): A publishes
//      the fake camera and microphone with the Calls API (offer posted once
//      ICE gathering is complete, so its relay candidates are in it); B
//      pulls both (tracks/new remote, renegotiate). B decodes > 30 video
//      frames, A's outbound video is sent, and on both pages the selected
//      candidate pair's local candidate is "relay" (relayProtocol = the
//      transport).
//   3. POST /v1/turn/keys/<key-id>/credentials/<username>/revoke → 204; a
//      new RTCPeerConnection with the same credentials, relay only, then
//      gathers no relay candidate within 10 s (Chromium reports the TURN
//      server's refusal as icecandidateerror, 401 expected).
//
// Usage: node tests/browser/turn.mjs <http-addr> <app-id> <app-secret> <turn-key-id> <turn-key-token> <udp|tcp>
// Prints one JSON line: {"ok", "passed", "ms", "transport", ...figures}
// (exit 0 when passed, 1 otherwise, 2 on bad usage). Page console messages
// go to stderr. Env: CHROMIUM (default /usr/bin/chromium).

import { chromium } from "playwright-core";
import { CHROMIUM_ARGS } from "./chromium-args.mjs";
import { preparePage, withTimeout } from "./lib.mjs";

const FRAMES = 30;
const HARD_TIMEOUT_MS = 60000;

const [httpAddr, appId, secret, keyId, keyToken, transport] = process.argv.slice(2);
if (!httpAddr || !appId || !secret || !keyId || !keyToken || !["udp", "tcp"].includes(transport)) {
  console.error("usage: node tests/browser/turn.mjs <http-addr> <app-id> <app-secret> <turn-key-id> <turn-key-token> <udp|tcp>");
  process.exit(2);
}
const pageUrl = `http://${httpAddr}/`;
const apiBase = `http://${httpAddr}/v1/apps/${appId}`;
const turnBase = `http://${httpAddr}/v1/turn/keys/${encodeURIComponent(keyId)}/credentials`;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

const t0 = Date.now();
const figures = { transport };
let browser = null;
let printed = false;

function print(result) {
  if (printed) return;
  printed = true;
  process.stdout.write(JSON.stringify({ ok: result.passed, ...result, ms: Date.now() - t0 }) + "\n");
  process.exitCode = result.passed ? 0 : 1;
}

async function closeBrowser() {
  if (!browser) return;
  const b = browser;
  browser = null;
  await withTimeout(b.close(), 5000, "closing Chromium").catch(() => {});
}

const hardTimer = setTimeout(async () => {
  print({ passed: false, reason: `hard timeout after ${HARD_TIMEOUT_MS} ms`, ...figures });
  await closeBrowser();
  process.exit(1);
}, HARD_TIMEOUT_MS);

// A TURN key request: {status, json, text}.
async function turnApi(path, body) {
  const res = await fetch(turnBase + path, {
    method: "POST",
    headers: { Authorization: `Bearer ${keyToken}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

// The one turn: server of `iceServers` (an array, or Calls' older single
// object) whose URL has ?transport=<transport>.
function pickTurn(iceServers) {
  for (const s of [].concat(iceServers || [])) {
    const url = [].concat(s.urls || s.url || []).find((u) => /^turn:/.test(u) && new RegExp(`[?&]transport=${transport}(&|$)`).test(u));
    if (url) return { urls: [url], username: s.username, credential: s.credential };
  }
  return null;
}

// In the page, next to window.sb: window.relay.
function installRelayHelpers() {
  const sb = window.sb;

  // A relay-only peer connection; its candidate errors in pc.candidateErrors.
  function peer(iceServer) {
    const pc = new RTCPeerConnection({ iceServers: [iceServer], iceTransportPolicy: "relay", bundlePolicy: "max-bundle" });
    pc.candidateErrors = [];
    pc.addEventListener("icecandidateerror", (e) => {
      pc.candidateErrors.push({ errorCode: e.errorCode, errorText: e.errorText, url: e.url });
    });
    return pc;
  }

  // Waits (at most ms) for ICE gathering to complete; returns whether it did.
  async function gathered(pc, ms) {
    return sb.waitFor(() => pc.iceGatheringState === "complete", ms, "ICE gathering").then(() => true, () => false);
  }

  const candidates = (sdp) => (sdp.match(/^a=candidate:.*$/gm) || []).map((l) => {
    const f = l.split(" ");
    return { protocol: f[2], type: f[f.indexOf("typ") + 1] };
  });

  async function selectedPair(pc) {
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) stats.forEach((s) => { if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s; });
    if (!pair) return null;
    const l = stats.get(pair.localCandidateId) || {};
    const r = stats.get(pair.remoteCandidateId) || {};
    return {
      local: { candidateType: l.candidateType, protocol: l.protocol, relayProtocol: l.relayProtocol, address: l.address, port: l.port, url: l.url },
      remote: { candidateType: r.candidateType, protocol: r.protocol, address: r.address, port: r.port },
      bytesSent: pair.bytesSent,
      bytesReceived: pair.bytesReceived,
    };
  }

  async function publish(iceServer) {
    const pc = peer(iceServer);
    const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    const transceivers = media.getTracks().map((t) => pc.addTransceiver(t, { direction: "sendonly" }));
    await pc.setLocalDescription(await pc.createOffer());
    const complete = await gathered(pc, 10000);
    const offer = pc.localDescription.sdp;
    const { sessionId } = await sb.apiOk("POST", "/sessions/new");
    const res = await sb.apiOk("POST", `/sessions/${sessionId}/tracks/new`, {
      sessionDescription: { type: "offer", sdp: offer },
      tracks: transceivers.map((tr) => ({ location: "local", mid: tr.mid, trackName: `relay-${tr.sender.track.kind}` })),
    });
    await pc.setRemoteDescription(res.sessionDescription);
    window.relayPc = pc;
    return { sessionId, gatheringComplete: complete, offerCandidates: candidates(offer), candidateErrors: pc.candidateErrors };
  }

  async function pull(iceServer, sessionId) {
    const pc = peer(iceServer);
    pc.ontrack = (e) => sb.attach(e.track);
    const { sessionId: own } = await sb.apiOk("POST", "/sessions/new");
    const res = await sb.apiOk("POST", `/sessions/${own}/tracks/new`, {
      tracks: ["relay-video", "relay-audio"].map((trackName) => ({ location: "remote", sessionId, trackName })),
    });
    if (!res.requiresImmediateRenegotiation || !res.sessionDescription) {
      throw new Error(`pull: expected a server offer, got ${JSON.stringify(res).slice(0, 300)}`);
    }
    await pc.setRemoteDescription(res.sessionDescription);
    await pc.setLocalDescription(await pc.createAnswer());
    const complete = await gathered(pc, 10000);
    await sb.apiOk("PUT", `/sessions/${own}/renegotiate`, {
      sessionDescription: { type: "answer", sdp: pc.localDescription.sdp },
    });
    window.relayPc = pc;
    window.relayVideoMid = res.tracks.find((t) => t.trackName === "relay-video").mid;
    return { sessionId: own, gatheringComplete: complete, answerCandidates: candidates(pc.localDescription.sdp), candidateErrors: pc.candidateErrors };
  }

  // Gathers with a fresh relay-only connection for at most ms.
  async function probe(iceServer, ms) {
    const pc = peer(iceServer);
    const relays = [];
    pc.addEventListener("icecandidate", (e) => {
      if (e.candidate && / typ relay( |$)/.test(e.candidate.candidate)) relays.push(e.candidate.candidate);
    });
    pc.addTransceiver("audio", { direction: "sendonly" });
    await pc.setLocalDescription(await pc.createOffer());
    const complete = await gathered(pc, ms);
    pc.close();
    return { relayCandidates: relays.length, gatheringComplete: complete, candidateErrors: pc.candidateErrors };
  }

  window.relay = { publish, pull, probe, selectedPair };
}

async function openTab(context, name) {
  const page = await preparePage(await context.newPage(), { pageUrl, apiBase, secret }, name);
  await page.evaluate(installRelayHelpers);
  return page;
}

async function run() {
  const fail = (reason) => { throw new Error(reason); };

  const gen = await turnApi("/generate-ice-servers", { ttl: 600 });
  figures.generate = { status: gen.status, urls: [].concat(gen.json?.iceServers || []).flatMap((s) => [].concat(s.urls || [])) };
  if (gen.status < 200 || gen.status >= 300 || !gen.json) fail(`generate-ice-servers: HTTP ${gen.status}: ${gen.text.slice(0, 300)}`);
  const iceServer = pickTurn(gen.json.iceServers);
  if (!iceServer || !iceServer.username || !iceServer.credential) fail(`no turn: URL with transport=${transport} and credentials`);
  figures.iceServer = { urls: iceServer.urls, username: iceServer.username };

  browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS, timeout: 20000 });
  const context = await browser.newContext();
  const a = await openTab(context, "A");
  const b = await openTab(context, "B");

  figures.publisher = await withTimeout(a.evaluate((s) => window.relay.publish(s), iceServer), 20000, "relay publish");
  if (!figures.publisher.offerCandidates.some((c) => c.type === "relay")) fail("A's offer has no relay candidate");
  figures.subscriber = await withTimeout(b.evaluate((s) => window.relay.pull(s.iceServer, s.sessionId),
    { iceServer, sessionId: figures.publisher.sessionId }), 20000, "relay pull");

  await withTimeout(Promise.all([
    a.evaluate(() => window.sb.waitConnected(window.relayPc, 10000, "A (relay)")),
    b.evaluate(() => window.sb.waitConnected(window.relayPc, 10000, "B (relay)")),
  ]), 12000, "connections");

  figures.framesDecoded = await withTimeout(b.evaluate(async (n) => {
    const { sb, relayPc: pc, relayVideoMid: mid } = window;
    await sb.waitFor(async () => (await sb.frames(pc, mid)) > n, 15000, `more than ${n} frames through the relay`).catch(() => {});
    return sb.frames(pc, mid);
  }, FRAMES), 17000, "frames");
  figures.sent = await a.evaluate(async () => {
    const out = {};
    for (const s of await window.sb.rtp(window.relayPc)) if (s.type === "outbound-rtp") out[s.kind] = { packets: s.packets, framesEncoded: s.framesEncoded };
    return out;
  });
  figures.selected = {
    A: await a.evaluate(() => window.relay.selectedPair(window.relayPc)),
    B: await b.evaluate(() => window.relay.selectedPair(window.relayPc)),
  };
  if (!(figures.framesDecoded > FRAMES)) fail(`B decoded ${figures.framesDecoded} video frames through the relay, want > ${FRAMES}`);
  if (!(figures.sent.video && figures.sent.video.packets > 0)) fail("A sent no video");
  for (const [k, pair] of Object.entries(figures.selected)) {
    if (!pair) fail(`${k}: no selected candidate pair`);
    if (pair.local.candidateType !== "relay") fail(`${k}: selected local candidate is ${pair.local.candidateType}, want relay`);
    if (pair.local.relayProtocol !== transport) fail(`${k}: relayProtocol ${pair.local.relayProtocol}, want ${transport}`);
  }
  await a.evaluate(() => window.relayPc.close());
  await b.evaluate(() => window.relayPc.close());

  const revoke = await turnApi(`/${encodeURIComponent(iceServer.username)}/revoke`);
  figures.revokeStatus = revoke.status;
  if (revoke.status !== 204) fail(`revoke: HTTP ${revoke.status}, want 204: ${revoke.text.slice(0, 300)}`);
  figures.afterRevoke = await withTimeout(a.evaluate((s) => window.relay.probe(s, 10000), iceServer), 12000, "gathering after revoke");
  if (figures.afterRevoke.relayCandidates > 0) fail("a relay candidate with revoked credentials");
}

try {
  await run();
  print({ passed: true, ...figures });
} catch (e) {
  print({ passed: false, reason: String(e && e.message ? e.message : e), ...figures });
} finally {
  await closeBrowser();
  clearTimeout(hardTimer);
}
