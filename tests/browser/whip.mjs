// WHIP (RFC 9725) and WHEP against real Chromium, through a published npm
// client: `whip-whep` (medooze's whip.js / whep.js, plain ES modules without
// dependencies, pinned in package.json). The modules are read from
// node_modules and imported in the page from a blob: URL, so the page keeps
// the server's origin (no CORS) and nothing is bundled.
//
//   publish-play  page A publishes the fake camera and microphone with
//                 WHIPClient.publish to stream "show"; page B plays it with
//                 WHEPClient.view: over 10 s its video decodes more than 60
//                 frames and its audio has energy; page C pulls show-video
//                 and show-audio with the Calls API (the session id from
//                 GET .../whip/show) and decodes more than 60 frames; then
//                 WHEPClient.stop and WHIPClient.stop DELETE their
//                 resources (2xx) and GET .../whip/show answers 404.
//
// Every request the clients make (method, path, content type, If-Match,
// status, Location, ETag, Link, X-Calls-Session, the trickle fragments'
// candidate count) is in the result as `http`.
//
// Usage: node tests/browser/whip.mjs <http-addr> <app-id> <token> [publish-play]
// Prints lib.mjs's one JSON line ({"ok", "ms", "scenarios": [{..., "passed"}]}).

import { readFileSync } from "node:fs";
import { main, parseArgs, preparePage, withTimeout } from "./lib.mjs";

const SCENARIOS = ["publish-play", "simulcast"];
const STREAM = "show";
const VIDEO_FRAMES = 60;

const args = parseArgs("whip.mjs", SCENARIOS);
const whipUrl = `${args.apiBase}/whip/${STREAM}`;
const whepUrl = `${args.apiBase}/whep/${STREAM}`;

// The clients' sources, exported names as keys.
const CLIENTS = {
  WHIPClient: readFileSync(new URL("./node_modules/whip-whep/whip.js", import.meta.url), "utf8"),
  WHEPClient: readFileSync(new URL("./node_modules/whip-whep/whep.js", import.meta.url), "utf8"),
};

// In the page: window.fetch records every WHIP/WHEP request in
// window.httpLog; then the npm modules are imported (blob: URLs) and their
// classes set on window.
function installClients(sources) {
  const log = [];
  window.httpLog = log;
  const fetch0 = window.fetch.bind(window);
  window.fetch = async (input, init = {}) => {
    const url = String(input instanceof Request ? input.url : input);
    if (!/\/wh[ie]p\//.test(url)) return fetch0(input, init);
    const h = new Headers(init.headers || {});
    const body = typeof init.body === "string" ? init.body : "";
    const entry = {
      method: init.method || "GET",
      url: url.startsWith(location.origin) ? url.slice(location.origin.length) : url,
      contentType: h.get("content-type"),
      ifMatch: h.get("if-match"),
      bearer: /^Bearer \S+/.test(h.get("authorization") || ""),
    };
    if (entry.method === "PATCH") {
      entry.candidates = (body.match(/^a=candidate:/gm) || []).length;
      entry.endOfCandidates = /^a=end-of-candidates/m.test(body);
    }
    log.push(entry);
    try {
      const res = await fetch0(input, init);
      entry.status = res.status;
      for (const name of ["location", "etag", "link", "x-calls-session", "content-type"]) {
        const v = res.headers.get(name);
        if (v !== null) entry[name === "content-type" ? "responseType" : name] = v;
      }
      return res;
    } catch (e) {
      entry.error = String(e);
      throw e;
    }
  };
  return (async () => {
    for (const [name, src] of Object.entries(sources)) {
      const url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
      try {
        window[name] = (await import(url))[name];
      } finally {
        URL.revokeObjectURL(url);
      }
      if (typeof window[name] !== "function") throw new Error(`${name} not exported by the module`);
    }
    return Object.keys(sources);
  })();
}

// A second tab in the scenario's browser context.
async function openTab(first, name) {
  return preparePage(await first.context().newPage(), args, name);
}

// GET of the WHIP stream (from here): {status, json}.
async function whipInfo() {
  const res = await fetch(whipUrl, { headers: { Authorization: `Bearer ${args.secret}` } });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text: json ? undefined : text.slice(0, 200) };
}

async function publishPlay(pageA) {
  const figures = { stream: STREAM };
  const pages = { A: pageA };
  const http = async () => {
    const out = {};
    for (const [k, p] of Object.entries(pages)) {
      out[k] = await withTimeout(p.evaluate(() => window.httpLog || null), 2000, "httpLog").catch((e) => String(e));
    }
    return out;
  };
  const fail = (reason) => { throw new Error(reason); };
  try {
    await withTimeout(pageA.evaluate(installClients, CLIENTS), 5000, "loading the clients in page A");

    // A: WHIP publish.
    figures.publish = await withTimeout(pageA.evaluate(async ({ url, token }) => {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
      for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: "sendonly" });
      const client = new window.WHIPClient();
      window.whip = { pc, client };
      await client.publish(pc, url, token);
      await window.sb.waitConnected(pc, 10000, "WHIP publisher");
      return {
        resourceURL: String(client.resourceURL),
        etag: client.etag,
        transceivers: pc.getTransceivers().map((t) => ({ mid: t.mid, kind: t.sender.track.kind })),
      };
    }, { url: whipUrl, token: args.secret }), 15000, "WHIP publish");

    const info = await whipInfo();
    figures.whipGet = info;
    const sessionId = info.json && info.json.sessionId;
    if (info.status !== 200 || !sessionId) fail(`GET ${whipUrl}: HTTP ${info.status}, no sessionId`);
    const names = (info.json.tracks || []).map((t) => t.trackName);
    for (const want of [`${STREAM}-audio`, `${STREAM}-video`]) {
      if (!names.includes(want)) fail(`GET ${whipUrl}: no track ${want} in ${JSON.stringify(names)}`);
    }
    const post = (await pageA.evaluate(() => window.httpLog)).find((e) => e.method === "POST");
    figures.sessionHeaderMatches = !!post && post["x-calls-session"] === sessionId;

    // B: WHEP play, 10 s of it.
    pages.B = await openTab(pageA, "B");
    await withTimeout(pages.B.evaluate(installClients, CLIENTS), 5000, "loading the clients in page B");
    figures.play = await withTimeout(pages.B.evaluate(async ({ url, token, frames }) => {
      const sb = window.sb;
      const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
      pc.addTransceiver("audio", { direction: "recvonly" });
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.ontrack = (e) => sb.attach(e.track);
      const client = new window.WHEPClient();
      window.whep = { pc, client };
      await client.view(pc, url, token);
      await sb.waitConnected(pc, 10000, "WHEP player");
      const stat = async (kind) => (await sb.rtp(pc)).find((s) => s.type === "inbound-rtp" && s.kind === kind) || {};
      await sb.waitFor(async () => (await stat("video")).framesDecoded > 0, 10000, "WHEP player's first video frame");
      const v0 = await stat("video");
      let audioLevel = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < 10000) {
        await sb.sleep(250);
        audioLevel = Math.max(audioLevel, (await stat("audio")).audioLevel || 0);
        if ((await stat("video")).framesDecoded - v0.framesDecoded > frames && audioLevel > 0) break;
      }
      const v1 = await stat("video");
      const a1 = await stat("audio");
      return {
        resourceURL: String(client.resourceURL),
        seconds: Math.round(performance.now() - t0) / 1000,
        framesDecoded: v1.framesDecoded - v0.framesDecoded,
        videoCodec: v1.codec && v1.codec.mimeType,
        audioLevel,
        totalAudioEnergy: a1.totalAudioEnergy || 0,
        totalSamplesReceived: a1.totalSamplesReceived || 0,
        audioPackets: a1.packets || 0,
      };
    }, { url: whepUrl, token: args.secret, frames: VIDEO_FRAMES }), 35000, "WHEP play");
    const play = figures.play;
    if (!(play.framesDecoded > VIDEO_FRAMES)) fail(`WHEP player decoded ${play.framesDecoded} video frames, want > ${VIDEO_FRAMES}`);
    if (!(play.audioLevel > 0 || play.totalAudioEnergy > 0)) fail("WHEP player's audio has no energy");

    // C: the same tracks through the Calls API.
    pages.C = await openTab(pageA, "C");
    figures.callsPull = await withTimeout(pages.C.evaluate(async ({ sessionId, names, frames }) => {
      const sb = window.sb;
      const p = await sb.pull(sessionId, names);
      window.pulled = p;
      await sb.waitConnected(p.pc, 10000, "Calls API puller");
      const video = p.mids[names[0]];
      await sb.waitFor(async () => (await sb.frames(p.pc, video)) > frames, 10000, `Calls API puller > ${frames} frames`);
      const audio = (await sb.rtp(p.pc)).find((s) => s.type === "inbound-rtp" && s.kind === "audio") || {};
      return { mids: p.mids, framesDecoded: await sb.frames(p.pc, video), audioPackets: audio.packets || 0 };
    }, { sessionId, names: [`${STREAM}-video`, `${STREAM}-audio`], frames: VIDEO_FRAMES }), 25000, "Calls API pull");

    // Tear down through the clients.
    await withTimeout(pages.C.evaluate(() => window.pulled.pc.close()), 5000, "closing C");
    const deleted = async (page, which) => withTimeout(page.evaluate(async (which) => {
      await window[which].client.stop();
      const del = window.httpLog.filter((e) => e.method === "DELETE").pop();
      return del ? { status: del.status, url: del.url, error: del.error } : null;
    }, which), 5000, `${which} stop`);
    figures.whepDelete = await deleted(pages.B, "whep");
    figures.whipDelete = await deleted(pageA, "whip");
    figures.whipGetAfterDelete = (await whipInfo()).status;

    const ok2xx = (d) => d && d.status >= 200 && d.status < 300;
    if (!ok2xx(figures.whepDelete)) fail(`WHEP DELETE: ${JSON.stringify(figures.whepDelete)}`);
    if (!ok2xx(figures.whipDelete)) fail(`WHIP DELETE: ${JSON.stringify(figures.whipDelete)}`);
    if (figures.whipGetAfterDelete !== 404) fail(`GET ${whipUrl} after DELETE: HTTP ${figures.whipGetAfterDelete}, want 404`);

    // The clients throw (unhandled, in a timer) on a PATCH answered with
    // anything but 2xx, 405 or 501.
    const log = await http();
    const patches = Object.values(log).flatMap((l) => (Array.isArray(l) ? l : [])).filter((e) => e.method === "PATCH");
    figures.patches = patches.map((p) => p.status);
    const badPatch = patches.find((p) => !(p.status >= 200 && p.status < 300) && p.status !== 405 && p.status !== 501);
    if (badPatch) fail(`trickle PATCH answered ${badPatch.status || badPatch.error}`);
    return { ok: true, passed: true, ...figures, http: log };
  } catch (e) {
    return { ok: false, passed: false, reason: String(e && e.message ? e.message : e), ...figures, http: await http() };
  } finally {
    for (const k of ["B", "C"]) if (pages[k]) await withTimeout(pages[k].close(), 3000, "close").catch(() => {});
  }
}

// simulcast: page A publishes the fake camera at 1280x720 as three VP8
// layers (f, h, q) with WHIPClient; GET .../whip/cast lists one video track
// (the layers are one track); WHEP players asking for ?rid=q and ?rid=h get
// pictures 320 and 640 wide.
async function simulcast(pageA) {
  const figures = {};
  const players = [];
  const fail = (reason) => { throw new Error(reason); };
  const url = `${args.apiBase}/whip/cast`;
  try {
    await withTimeout(pageA.evaluate(installClients, CLIENTS), 5000, "loading the clients in page A");
    figures.publish = await withTimeout(pageA.evaluate(async ({ url, token }) => {
      const sb = window.sb;
      const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
      await sb.simulcastTransceiver(pc);
      const client = new window.WHIPClient();
      window.whip = { pc, client };
      await client.publish(pc, url, token);
      await sb.waitConnected(pc, 10000, "WHIP simulcast publisher");
      const layers = async () => {
        const out = {};
        (await pc.getStats()).forEach((s) => {
          if (s.type === "outbound-rtp" && s.kind === "video") out[s.rid] = s.frameWidth || 0;
        });
        return out;
      };
      const t0 = performance.now();
      while (performance.now() - t0 < 20000 && Object.values(await layers()).filter((w) => w > 0).length < 3) await sb.sleep(250);
      const lines = (sdp) => sdp.split("\r\n").filter((l) => /^a=(rid|simulcast|mid)|^m=/.test(l));
      return { layers: await layers(), offer: lines(pc.localDescription.sdp), answer: lines(pc.remoteDescription.sdp) };
    }, { url, token: args.secret }), 30000, "WHIP simulcast publish");
    if (Object.values(figures.publish.layers).filter((w) => w > 0).length < 3) fail("three layers not encoded within 20 s");
    const info = await fetch(url, { headers: { Authorization: `Bearer ${args.secret}` } });
    figures.whipGet = await info.json();
    const video = (figures.whipGet.tracks || []).filter((t) => t.kind === "video");
    if (video.length !== 1 || video[0].trackName !== "cast-video") fail(`GET: want one video track cast-video: ${JSON.stringify(figures.whipGet)}`);

    for (const [rid, width] of [["q", 320], ["h", 640]]) {
      const page = await openTab(pageA, `player-${rid}`);
      players.push(page);
      await withTimeout(page.evaluate(installClients, CLIENTS), 5000, "loading the clients");
      figures[`rid-${rid}`] = await withTimeout(page.evaluate(async ({ url, token, width }) => {
        const sb = window.sb;
        const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
        pc.addTransceiver("video", { direction: "recvonly" });
        const client = new window.WHEPClient();
        await client.view(pc, url, token);
        await sb.waitConnected(pc, 10000, "WHEP player");
        const stat = async () => {
          let found = {};
          (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") found = s; });
          return found;
        };
        await sb.waitFor(async () => (await stat()).frameWidth === width && (await stat()).framesDecoded > 10, 15000, `frames ${width} wide`);
        const s = await stat();
        await client.stop();
        return { frameWidth: s.frameWidth, framesDecoded: s.framesDecoded };
      }, { url: `${args.apiBase}/whep/cast?rid=${rid}`, token: args.secret, width }), 30000, `WHEP ?rid=${rid}`);
    }
    await withTimeout(pageA.evaluate(() => window.whip.client.stop()), 5000, "WHIP stop");
    return { ok: true, passed: true, ...figures };
  } catch (e) {
    return { ok: false, passed: false, reason: String(e && e.message ? e.message : e), ...figures };
  } finally {
    for (const p of players) await withTimeout(p.close(), 3000, "close").catch(() => {});
  }
}

await main({
  script: "whip.mjs",
  hardTimeoutMs: 120000,
  scenarios: [
    { name: "publish-play", timeoutMs: 52000, run: publishPlay },
    { name: "simulcast", timeoutMs: 60000, run: simulcast },
  ],
});
