// Renegotiations in headless Chromium, with the Calls API driven from the
// page: closing tracks with a client offer, and an ICE restart.
//
//   node tests/browser/renegotiation.mjs <http-addr> <app-id> <app-secret> [scenario...]
//   (run by tests/chromium_renegotiation.rs; scenarios: close-push,
//   close-pull, ice-restart; default all, one after another)
//
// close-push: a publisher pushes audio (mid 0), video (mid 1) and a second
//   video (mid 2); a subscriber pulls both videos. The publisher stops only
//   transceiver 0, makes an offer and sends PUT tracks/close {tracks: mids 0
//   and 1, sessionDescription: offer, force: false}. The answer must apply,
//   answer mids 0 and 1 as rejected or inactive and keep a BUNDLE group, the
//   publisher must stay connected; for 3 s after the answer the subscriber
//   must keep decoding the second video (30 frames or more, no stall over
//   1 s) and stop decoding the first; GET session must list mids 0 and 1
//   inactive and mid 2 active.
// close-pull: the same on the receiving side: a subscriber pulls audio,
//   video and a second video, stops only the audio transceiver and closes
//   the audio and the first video with its offer (force false); the second
//   video must keep decoding.
// ice-restart: mid-call the publisher calls restartIce() and sends its offer
//   with POST tracks/new {sessionDescription: offer, tracks: []}; the answer
//   must carry new ice-ufrag/ice-pwd and apply, the publisher's selected
//   candidate pair must move to the new ufrag with ICE connected, for 4 s
//   after the answer the subscriber must keep decoding (30 frames or more,
//   no stall over 1 s), and GET session must show the tracks active.
//
// Results carry evidence: frames, the peers' RTP and transport counters and
// the server's forwarded/dropped counters (GET /metrics) before and after,
// and on failure the SDP lines of the exchange.
//
// Prints one JSON line: {"ok", "ms", "scenarios": [{name, ok, reason?,
// notes?, ...}]}. Env: CHROMIUM.

import { main } from "./lib.mjs";

const GROWTH = 30; // frames in the 3 s watch (the fake camera runs at about 20 fps here)
const STALL_MS = 1000; // longest time without a new frame that still counts as flowing

// In the page (these functions see only their arguments and window.sb):
// close two tracks of one session with its offer, where only the first of
// them was stopped; a third track must keep flowing.
async function closeWithOffer({ side, growth, stallMs }) {
  const sb = window.sb;
  const pub = await sb.push({
    tracks: [{ kind: "audio", name: "audio" }, { kind: "video", name: "video" }, { kind: "video", name: "video2" }],
  });
  await sb.waitConnected(pub.pc, 10000, "publisher");
  const names = side === "push" ? ["video", "video2"] : ["audio", "video", "video2"];
  const sub = await sb.pull(pub.sessionId, names);
  await sb.waitConnected(sub.pc, 10000, "subscriber");
  const closer = side === "push" ? pub : sub;
  const mids = side === "push" ? pub.transceivers.map((t) => t.mid)
    : ["audio", "video", "video2"].map((n) => sub.mids[n]);
  const watched = { closed: sub.mids.video, kept: sub.mids.video2 };
  sb.note("mids", { closer: mids, subscriber: sub.mids });
  await sb.waitFor(async () => (await sb.frames(sub.pc, watched.kept)) > growth
    && (await sb.frames(sub.pc, watched.closed)) > growth, 10000, "both videos decoding before the close");

  const flowBefore = { publisher: await sb.flow(pub.pc), subscriber: await sb.flow(sub.pc), server: await sb.metrics() };
  const keptTransceiver = closer.pc.getTransceivers().find((t) => t.mid === mids[2]);
  const dtlsOf = (t) => (side === "push" ? t.sender.transport : t.receiver.transport);
  const dtlsBefore = dtlsOf(keptTransceiver);
  closer.pc.getTransceivers().find((t) => t.mid === mids[0]).stop();
  await closer.pc.setLocalDescription(await closer.pc.createOffer());
  const offer = closer.pc.localDescription.sdp;
  sb.note("closeOffer", sb.sdpSummary(offer));
  const r = await sb.api("PUT", `/sessions/${closer.sessionId}/tracks/close`, {
    tracks: [{ mid: mids[0] }, { mid: mids[1] }],
    sessionDescription: { type: "offer", sdp: offer },
    force: false,
  });
  sb.note("closeResponse", { status: r.status, body: r.json ? { ...r.json, sessionDescription: undefined } : r.text });
  if (r.status !== 200 || !r.json || !r.json.sessionDescription) {
    throw new Error(`tracks/close: HTTP ${r.status}: ${r.text.slice(0, 600)}`);
  }
  const answer = r.json.sessionDescription;
  sb.note("closeAnswer", sb.sdpSummary(answer.sdp));
  const itemErrors = (r.json.tracks || []).filter((t) => t.errorCode);
  if (itemErrors.length) throw new Error(`tracks/close item errors: ${JSON.stringify(itemErrors)}`);
  try {
    await closer.pc.setRemoteDescription(answer);
  } catch (e) {
    throw new Error(`setRemoteDescription(answer of tracks/close) failed: ${e.message}`);
  }
  const dtlsAfter = dtlsOf(keptTransceiver);

  // The answer: closed m-lines rejected (port 0) or inactive, the third kept.
  const sections = answer.sdp.split(/\r\nm=/).slice(1).map((m) => ({
    port: m.split(" ")[1],
    mid: (m.match(/a=mid:(\S+)/) || [])[1],
    inactive: /\r\na=inactive/.test(m),
  }));
  const closedOk = mids.slice(0, 2).every((m) => sections.some((x) => x.mid === m && (x.port === "0" || x.inactive)));
  const keptOk = sections.some((x) => x.mid === mids[2] && x.port !== "0" && !x.inactive);

  // Media for 3 s after the answer: the kept video flows, the closed one stops.
  const closedAt = (async () => {
    await sb.sleep(1000);
    const from = await sb.frames(sub.pc, watched.closed);
    await sb.sleep(2000);
    return { from, to: await sb.frames(sub.pc, watched.closed) };
  })();
  const kept = await sb.watchFrames(sub.pc, watched.kept, 3000);
  const closed = await closedAt;
  const flowAfter = { publisher: await sb.flow(pub.pc), subscriber: await sb.flow(sub.pc), server: await sb.metrics() };
  const session = await sb.apiOk("GET", `/sessions/${closer.sessionId}`);
  const status = Object.fromEntries((session.tracks || []).map((t) => [t.mid, t.status]));
  const states = {
    closer: closer.pc.connectionState,
    dtlsTransportReplaced: dtlsBefore !== dtlsAfter,
    dtlsState: dtlsAfter && dtlsAfter.state,
    transceivers: closer.pc.getTransceivers().map((t) => ({ mid: t.mid, direction: t.direction, currentDirection: t.currentDirection })),
  };
  const failures = [];
  if (!closedOk || !keptOk) failures.push(`answer m-lines ${JSON.stringify(sections)}: mids ${mids[0]}, ${mids[1]} must be rejected or inactive, ${mids[2]} active`);
  if (!/a=group:BUNDLE \S/.test(answer.sdp)) failures.push("answer has no a=group:BUNDLE");
  if (states.closer !== "connected") failures.push(`connection ${states.closer} after the close`);
  if (kept.end - kept.start < growth || kept.longestStallMs > stallMs) {
    failures.push(`kept video after the close: frames ${kept.start} → ${kept.end} in 3 s, longest stall ${kept.longestStallMs} ms`);
  }
  if (closed.to - closed.from > 2) failures.push(`closed video still decoding ${closed.from} → ${closed.to}`);
  if (status[mids[0]] !== "inactive" || status[mids[1]] !== "inactive" || status[mids[2]] !== "active") {
    failures.push(`GET session statuses ${JSON.stringify(status)}`);
  }
  return {
    ok: failures.length === 0, reason: failures.join("; ") || undefined,
    kept, closed, statuses: status, states, flowBefore, flowAfter,
    answerBundle: answer.sdp.split("\r\n").find((l) => l.startsWith("a=group:")) || null,
    notes: failures.length ? sb.notes : undefined,
  };
}

// In the page: restart ICE on the publisher mid-call.
async function iceRestart({ growth, stallMs }) {
  const sb = window.sb;
  const pub = await sb.push({ tracks: [{ kind: "audio", name: "audio" }, { kind: "video", name: "video" }] });
  await sb.waitConnected(pub.pc, 10000, "publisher");
  const sub = await sb.pull(pub.sessionId, ["video"]);
  await sb.waitConnected(sub.pc, 10000, "subscriber");
  await sb.waitFor(async () => (await sb.frames(sub.pc, sub.mids.video)) > growth, 10000, "video decoding before the restart");
  const oldLocal = sb.iceCredentials(pub.pc.localDescription.sdp);
  const oldRemote = sb.iceCredentials(pub.pc.remoteDescription.sdp);

  const flowBefore = { publisher: await sb.flow(pub.pc), subscriber: await sb.flow(sub.pc), server: await sb.metrics() };
  pub.pc.restartIce();
  await pub.pc.setLocalDescription(await pub.pc.createOffer());
  const newLocal = sb.iceCredentials(pub.pc.localDescription.sdp);
  sb.note("restartOffer", sb.sdpSummary(pub.pc.localDescription.sdp));
  const r = await sb.api("POST", `/sessions/${pub.sessionId}/tracks/new`, {
    sessionDescription: { type: "offer", sdp: pub.pc.localDescription.sdp },
    tracks: [],
  });
  sb.note("restartResponse", { status: r.status, body: r.json ? { ...r.json, sessionDescription: undefined } : r.text });
  if (r.status !== 200 || !r.json || !r.json.sessionDescription) {
    throw new Error(`tracks/new with the restart offer: HTTP ${r.status}: ${r.text.slice(0, 600)}`);
  }
  const answer = r.json.sessionDescription;
  sb.note("restartAnswer", sb.sdpSummary(answer.sdp));
  const newRemote = sb.iceCredentials(answer.sdp);
  if (newRemote.ufrag === oldRemote.ufrag || newRemote.pwd === oldRemote.pwd) {
    throw new Error(`the answer keeps the ICE credentials (ufrag ${oldRemote.ufrag} → ${newRemote.ufrag})`);
  }
  try {
    await pub.pc.setRemoteDescription(answer);
  } catch (e) {
    throw new Error(`setRemoteDescription(restart answer) failed: ${e.message}`);
  }

  // From the answer on, for 4 s: the subscriber keeps decoding, and the
  // publisher connects again on the new credentials (the selected pair's
  // local candidate carries the new ufrag).
  const watching = sb.watchFrames(sub.pc, sub.mids.video, 4000);
  let selected = null;
  await sb.waitFor(async () => {
    const report = await pub.pc.getStats();
    report.forEach((s) => {
      if (s.type !== "transport" || !s.selectedCandidatePairId) return;
      const pair = report.get(s.selectedCandidatePairId);
      const local = pair && report.get(pair.localCandidateId);
      selected = { iceState: s.iceState, ufrag: s.iceLocalUsernameFragment || (local && local.usernameFragment), pairState: pair && pair.state };
    });
    sb.note("selectedAfterRestart", selected);
    const ice = pub.pc.iceConnectionState;
    return selected && selected.ufrag === newLocal.ufrag && (ice === "connected" || ice === "completed");
  }, 10000, () => `ICE connected on the new ufrag ${newLocal.ufrag} (ice ${pub.pc.iceConnectionState}, selected ${JSON.stringify(selected)})`);
  const video = await watching;
  const flowAfter = { publisher: await sb.flow(pub.pc), subscriber: await sb.flow(sub.pc), server: await sb.metrics() };
  const inbound = (await sb.rtp(sub.pc)).find((s) => s.type === "inbound-rtp");
  const session = await sb.apiOk("GET", `/sessions/${pub.sessionId}`);
  const failures = [];
  if (video.end - video.start < growth || video.longestStallMs > stallMs) {
    failures.push(`subscriber video after the restart: frames ${video.start} → ${video.end} in 4 s, longest stall ${video.longestStallMs} ms`);
  }
  if (pub.pc.connectionState !== "connected") failures.push(`publisher connection ${pub.pc.connectionState}`);
  if (!(session.tracks || []).length || session.tracks.some((t) => t.status !== "active")) {
    failures.push(`GET session tracks ${JSON.stringify(session.tracks)}`);
  }
  return {
    ok: failures.length === 0, reason: failures.join("; ") || undefined,
    video, selected, flowBefore, flowAfter, subscriberInbound: inbound,
    ufrags: { local: [oldLocal.ufrag, newLocal.ufrag], server: [oldRemote.ufrag, newRemote.ufrag] },
    tracks: session.tracks, notes: failures.length ? sb.notes : undefined,
  };
}

const limits = { growth: GROWTH, stallMs: STALL_MS };

await main({
  script: "renegotiation.mjs",
  hardTimeoutMs: 110000,
  scenarios: [
    { name: "close-push", timeoutMs: 30000, run: (page) => page.evaluate(closeWithOffer, { side: "push", ...limits }) },
    { name: "close-pull", timeoutMs: 30000, run: (page) => page.evaluate(closeWithOffer, { side: "pull", ...limits }) },
    { name: "ice-restart", timeoutMs: 30000, run: (page) => page.evaluate(iceRestart, limits) },
  ],
});
