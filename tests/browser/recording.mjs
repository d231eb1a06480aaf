// Recordings of what headless Chromium publishes (run by
// tests/recording_chromium.rs, which probes the files with ffprobe and
// decodes them with ffmpeg).
//
//   node tests/browser/recording.mjs <http-addr> <app-id> <app-secret> [case...]
//
// Each case pushes the fake camera (its codec forced with
// setCodecPreferences) and the fake microphone (Opus), waits for media to
// flow, starts a recording of both tracks through the API, keeps it going
// for `seconds`, closes it, and returns the API's answers, how long the
// recording ran between the two answers, when (Unix ms) the recording
// was closed or the publisher left, and how many video frames the
// publisher encoded meanwhile. Cases:
//   vp8, vp9, av1 (WebM), h264 (Matroska): 10 s, one file;
//   segments: VP8, `segmentSeconds: 5` for 12 s (three files);
//   simulcast: the fake camera as three VP8 layers (f, h, q), video only:
//   recorded at the best layer (f, 1280x720);
//   renegotiate: VP8, the publisher adds a track (renegotiation) and
//   restarts ICE halfway; the recording goes on;
//   tracks-closed: VP8, the app closes the publisher's tracks after 4 s;
//   publisher-vanishes: VP8, the publisher closes its connection after 4 s
//   and is never heard of again (its session ends when consent and the
//   reconnect window run out): either way the recording ends itself.
//
// Prints one JSON line: {"ok", "scenarios": [{name, ok, created, closed,
// recordedMs, ...}]}. Env: CHROMIUM.

import { main } from "./lib.mjs";

// In the page: push, record, close.
async function record({ codec, container, seconds, segmentSeconds, renegotiate, leave }) {
  const sb = window.sb;
  const pub = await sb.push({ tracks: [{ kind: "video", name: "video", codec }, { kind: "audio", name: "audio" }] });
  await sb.waitConnected(pub.pc, 10000, "publisher");
  await sb.waitFor(async () => {
    const out = (await sb.rtp(pub.pc)).find((s) => s.type === "outbound-rtp" && s.kind === "video");
    sb.note("publisher", out);
    return out && out.framesEncoded > 30;
  }, 15000, "the publisher encodes");
  const body = {
    tracks: [{ sessionId: pub.sessionId, trackName: "video" }, { sessionId: pub.sessionId, trackName: "audio" }],
    container,
  };
  if (segmentSeconds) body.segmentSeconds = segmentSeconds;
  const encoded = async () => ((await sb.rtp(pub.pc)).find((s) => s.type === "outbound-rtp" && s.kind === "video") || {}).framesEncoded;
  const encodedBefore = await encoded();
  const created = await sb.api("POST", "/recordings/new", body);
  sb.note("created", created);
  if (created.status !== 201) throw new Error(`recordings/new: HTTP ${created.status} ${created.text}`);
  const t0 = performance.now();
  const id = created.json.recordingId;
  const during = [];
  if (renegotiate) {
    await sb.sleep(seconds * 500);
    // A third track: the publisher's offer renegotiates the session.
    const tr = pub.pc.addTransceiver((await navigator.mediaDevices.getUserMedia({ video: true })).getVideoTracks()[0], { direction: "sendonly" });
    await pub.pc.setLocalDescription(await pub.pc.createOffer());
    const res = await sb.apiOk("POST", `/sessions/${pub.sessionId}/tracks/new`, {
      sessionDescription: { type: "offer", sdp: pub.pc.localDescription.sdp },
      tracks: [{ location: "local", mid: tr.mid, trackName: "second" }],
    });
    await pub.pc.setRemoteDescription(res.sessionDescription);
    // Then an ICE restart (an offer with new credentials and no new track).
    pub.pc.restartIce();
    await pub.pc.setLocalDescription(await pub.pc.createOffer());
    const re = await sb.apiOk("POST", `/sessions/${pub.sessionId}/tracks/new`, {
      sessionDescription: { type: "offer", sdp: pub.pc.localDescription.sdp },
      tracks: [],
    });
    await pub.pc.setRemoteDescription(re.sessionDescription);
    await sb.waitConnected(pub.pc, 10000, "publisher after the ICE restart");
    during.push((await sb.api("GET", `/recordings/${id}`)).json);
    await sb.sleep(seconds * 500);
  } else if (leave) {
    await sb.sleep(leave.after * 1000);
    const framesEncoded = (await encoded()) - encodedBefore;
    const endedAt = Date.now();
    if (leave.how === "close-tracks") {
      // The app closes the publisher's tracks.
      await sb.apiOk("PUT", `/sessions/${pub.sessionId}/tracks/close`, {
        tracks: pub.transceivers.map((t) => ({ mid: t.mid })),
        force: true,
      });
    } else {
      // The publisher vanishes: its session ends when its consent and
      // reconnect window run out.
      pub.pc.close();
    }
    const left = performance.now();
    let state = null;
    await sb.waitFor(async () => {
      state = (await sb.api("GET", `/recordings/${id}`)).json;
      return state && state.state !== "recording";
    }, 60000, "the recording ends when its publisher is gone");
    pub.pc.close();
    return { created: created.json, ended: state, recordedMs: left - t0, endedAt, afterLeaveMs: performance.now() - left, framesEncoded };
  } else {
    await sb.sleep(seconds * 1000);
  }
  const framesEncoded = (await encoded()) - encodedBefore;
  const endedAt = Date.now();
  const closed = await sb.api("POST", `/recordings/${id}/close`);
  const recordedMs = performance.now() - t0;
  sb.note("closed", closed);
  if (closed.status !== 200) throw new Error(`close: HTTP ${closed.status} ${closed.text}`);
  const list = (await sb.api("GET", "/recordings")).json;
  pub.pc.close();
  return { created: created.json, closed: closed.json, recordedMs, endedAt, framesEncoded, during, listed: list.recordings.map((r) => r.recordingId) };
}

// In the page: a simulcast publisher (VP8 f, h, q), recorded for `seconds`.
async function recordSimulcast({ seconds }) {
  const sb = window.sb;
  const pub = await sb.pushSimulcast("video");
  await sb.waitConnected(pub.pc, 10000, "publisher");
  await sb.waitFor(async () => {
    const e = await pub.encodings();
    sb.note("encodings", e);
    return e.f && e.f.frames > 30;
  }, 40000, "the top layer encodes (its bandwidth estimate ramps up first)");
  const created = await sb.apiOk("POST", "/recordings/new", {
    tracks: [{ sessionId: pub.sessionId, trackName: "video" }],
  });
  const t0 = performance.now();
  const before = (await pub.encodings()).f.frames;
  await sb.sleep(seconds * 1000);
  const after = await pub.encodings();
  const endedAt = Date.now();
  const closed = await sb.apiOk("POST", `/recordings/${created.recordingId}/close`);
  pub.pc.close();
  return { created, closed, recordedMs: performance.now() - t0, endedAt, framesEncoded: after.f.frames - before, encodings: after };
}

function recordCase(name, codec, container, extra = {}) {
  return {
    name,
    timeoutMs: 90000,
    run: async (page) => {
      const r = await page.evaluate(record, { codec, container, seconds: 10, ...extra });
      const final = r.closed || r.ended;
      const ok = final && final.state === "closed" && final.files.length > 0;
      return { ok, reason: ok ? undefined : `final state ${JSON.stringify(final)}`, ...r };
    },
  };
}

const VP8 = { mime: "video/VP8" };
const CASES = [
  recordCase("vp8", VP8, "webm"),
  recordCase("vp9", { mime: "video/VP9", fmtp: ["profile-id=0"] }, "webm"),
  recordCase("av1", { mime: "video/AV1" }, "webm"),
  recordCase("h264", { mime: "video/H264", fmtp: ["packetization-mode=1", "profile-level-id=42e01f"] }, "mkv"),
  recordCase("segments", VP8, "webm", { seconds: 12, segmentSeconds: 5 }),
  recordCase("renegotiate", VP8, "webm", { renegotiate: true }),
  {
    name: "simulcast",
    timeoutMs: 90000,
    run: async (page) => {
      const r = await page.evaluate(recordSimulcast, { seconds: 10 });
      const ok = r.closed.state === "closed" && r.closed.files.length === 1;
      return { ok, reason: ok ? undefined : `final state ${JSON.stringify(r.closed)}`, ...r };
    },
  },
  recordCase("tracks-closed", VP8, "webm", { leave: { after: 4, how: "close-tracks" } }),
  recordCase("publisher-vanishes", VP8, "webm", { leave: { after: 4, how: "vanish" } }),
];

await main({ script: "recording.mjs", scenarios: CASES, hardTimeoutMs: 400000 });
