// Data channels in headless Chromium through the Calls API, driven from the
// page: one publisher and two subscribers, each its own RTCPeerConnection
// and session.
//
//   node tests/browser/datachannels.mjs <http-addr> <app-id> <app-secret> [scenario...]
//   (run by tests/chromium_datachannels.rs; scenario: fanout)
//
// fanout: the publisher and the second subscriber establish with a server
//   offer (datachannels/establish without SDP, answered through
//   renegotiate), the first subscriber with its own offer (an in-band
//   "server-events" channel). The publisher publishes "chat" (ordered) and
//   "fast" (unordered); both subscribers subscribe to both, the first with
//   canReply on "chat". Each side opens its channels with
//   createDataChannel(label, {negotiated: true, id}) and the id the API gave.
//   The publisher sends 1,000 messages on "chat" (strings and binary, 0 to
//   64 KiB) and 200 on "fast", at 1 MB/s; every subscriber must get every
//   "chat" message once and in order, and every "fast" message once. The
//   first subscriber sends 1,000 back on "chat": the publisher must get them all,
//   in order, and none of the 20 the second subscriber sends. After
//   datachannels/update gives canReply to the second, only its messages
//   reach the publisher. GET shows every channel active.
//
// Prints one JSON line: {"ok", "ms", "scenarios": [{name, ok, reason?,
// ...}]}. Env: CHROMIUM.

import { main } from "./lib.mjs";

async function fanout({ count, fastCount, replies }) {
  const sb = window.sb;
  const sizes = [0, 1, 100, 1200, 1201, 5000, 16384];
  // Message n: its kind and length, recognisable without an index (empty
  // messages carry none).
  const make = (tag, n) => {
    const size = n % 97 === 96 ? 65536 : sizes[n % sizes.length];
    const text = n % 2 === 0;
    const byte = (tag + n) % 250;
    if (text) return String.fromCharCode(97 + (byte % 26)).repeat(size);
    return new Uint8Array(size).fill(byte);
  };
  const describe = (m) => (typeof m === "string" ? `s${m.length}:${m.charCodeAt(0) || ""}`
    : `b${m.byteLength}:${new Uint8Array(m)[0] ?? ""}`);

  async function establish(serverOffer, what) {
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    const { sessionId } = await (async () => {
      const r = await sb.api("POST", "/sessions/new");
      return r.json;
    })();
    const path = `/sessions/${sessionId}/datachannels/establish`;
    const dataChannel = { location: "remote", dataChannelName: "server-events" };
    if (serverOffer) {
      const res = await sb.apiOk("POST", path, { dataChannel });
      if (!res.requiresImmediateRenegotiation || res.dataChannel.id !== 0) {
        throw new Error(`${what}: establish ${JSON.stringify(res)}`);
      }
      await pc.setRemoteDescription(res.sessionDescription);
      await pc.setLocalDescription(await pc.createAnswer());
      await sb.apiOk("PUT", `/sessions/${sessionId}/renegotiate`, {
        sessionDescription: { type: "answer", sdp: pc.localDescription.sdp },
      });
    } else {
      pc.createDataChannel("server-events");
      await pc.setLocalDescription(await pc.createOffer());
      const res = await sb.apiOk("POST", path, {
        dataChannel, sessionDescription: { type: "offer", sdp: pc.localDescription.sdp },
      });
      await pc.setRemoteDescription(res.sessionDescription);
    }
    await sb.waitConnected(pc, 10000, what);
    await sb.waitFor(() => pc.sctp && pc.sctp.state === "connected", 10000, `${what} SCTP connected`);
    return { pc, sessionId };
  }

  async function channels(session, op, items) {
    const method = op === "new" ? "POST" : "PUT";
    const res = await sb.apiOk(method, `/sessions/${session.sessionId}/datachannels/${op}`, { dataChannels: items });
    const failed = res.dataChannels.filter((c) => c.errorCode);
    if (failed.length) throw new Error(`datachannels/${op}: ${JSON.stringify(failed)}`);
    return res.dataChannels;
  }

  function open(session, label, id, ordered) {
    const ch = session.pc.createDataChannel(label, { negotiated: true, id, ordered });
    ch.binaryType = "arraybuffer";
    const got = [];
    ch.onmessage = (e) => got.push(describe(e.data));
    ch.onerror = (e) => sb.note(`error ${label} ${id} ${session.sessionId.slice(0, 6)}`, {
      message: e.error && e.error.message, detail: e.error && e.error.errorDetail,
      sctpCause: e.error && e.error.sctpCauseCode, received: got.length,
    });
    ch.onclose = () => sb.note(`close ${label} ${id} ${session.sessionId.slice(0, 6)}`, {
      sctp: session.pc.sctp && session.pc.sctp.state, received: got.length,
    });
    return { ch, got };
  }

  // The sender keeps to a rate its receivers drain (the server sheds what
  // would wait in its queue to a receiver for more than 0.5 s, and this
  // debug build shares two cores with three peer connections).
  const bytesPerSecond = 1_000_000;
  async function send(ch, n, tag) {
    const start = performance.now();
    let sent = 0;
    for (let i = 0; i < n; i++) {
      while (ch.bufferedAmount > 256 * 1024 || sent > bytesPerSecond * (performance.now() - start) / 1000) {
        await new Promise((r) => setTimeout(r, 5));
      }
      if (ch.readyState !== "open") {
        throw new Error(`${ch.label} ${ch.id} ${ch.readyState} after ${i} of ${n} sent: ${JSON.stringify(sb.notes)}`);
      }
      const message = make(tag, i);
      ch.send(message);
      sent += typeof message === "string" ? message.length : message.byteLength;
    }
  }

  const pub = await establish(true, "publisher");
  const sub1 = await establish(false, "subscriber 1");
  const sub2 = await establish(true, "subscriber 2");

  const published = await channels(pub, "new", [
    { location: "local", dataChannelName: "chat" },
    { location: "local", dataChannelName: "fast", ordered: false },
  ]);
  const pubChat = open(pub, "chat", published[0].id, true);
  const pubFast = open(pub, "fast", published[1].id, false);
  const subs = [];
  for (const [session, canReply] of [[sub1, true], [sub2, false]]) {
    const items = await channels(session, "new", [
      { location: "remote", sessionId: pub.sessionId, dataChannelName: "chat", canReply },
      { location: "remote", sessionId: pub.sessionId, dataChannelName: "fast" },
    ]);
    subs.push({
      session,
      chat: open(session, "chat", items[0].id, true),
      fast: open(session, "fast", items[1].id, false),
    });
  }
  const all = [pubChat, pubFast, ...subs.flatMap((s) => [s.chat, s.fast])];
  await sb.waitFor(() => all.every((c) => c.ch.readyState === "open"), 10000, "every channel open");

  await send(pubChat.ch, count, 0);
  await send(pubFast.ch, fastCount, 100);
  const expected = Array.from({ length: count }, (_, i) => describe(make(0, i)));
  const expectedFast = Array.from({ length: fastCount }, (_, i) => describe(make(100, i))).sort();
  const failures = [];
  try {
    await sb.waitFor(() => subs.every((s) => s.chat.got.length >= count && s.fast.got.length >= fastCount),
      30000, () => `every message at every subscriber (${subs.map((s) => `${s.chat.got.length}+${s.fast.got.length}`)})`);
  } catch (e) {
    return { ok: false, reason: e.message, metrics: await sb.metrics() };
  }
  subs.forEach((s, i) => {
    const bad = s.chat.got.findIndex((d, k) => d !== expected[k]);
    if (s.chat.got.length !== count || bad >= 0) {
      failures.push(`subscriber ${i + 1} chat: ${s.chat.got.length} messages, first wrong at ${bad}: ${s.chat.got[bad]} for ${expected[bad]}`);
    }
    if (JSON.stringify([...s.fast.got].sort()) !== JSON.stringify(expectedFast)) {
      failures.push(`subscriber ${i + 1} fast: ${s.fast.got.length} messages, not each of ${fastCount} once`);
    }
  });

  // Replies: only the holder of canReply reaches the publisher.
  await send(subs[1].chat.ch, 20, 200);
  await send(subs[0].chat.ch, replies, 50);
  const expectedReplies = Array.from({ length: replies }, (_, i) => describe(make(50, i)));
  try {
    await sb.waitFor(() => pubChat.got.length >= replies, 30000, () => `replies at the publisher (${pubChat.got.length})`);
  } catch (e) {
    return { ok: false, reason: e.message, metrics: await sb.metrics() };
  }
  await new Promise((r) => setTimeout(r, 500));
  const badReply = pubChat.got.findIndex((d, k) => d !== expectedReplies[k]);
  if (pubChat.got.length !== replies || badReply >= 0) {
    failures.push(`replies: ${pubChat.got.length} at the publisher, first wrong at ${badReply}`);
  }
  // The grant moves.
  await channels(sub2, "update", [{ location: "remote", sessionId: pub.sessionId, dataChannelName: "chat", canReply: true }]);
  pubChat.got.length = 0;
  subs[0].chat.ch.send("one");
  subs[1].chat.ch.send("two");
  await sb.waitFor(() => pubChat.got.length >= 1, 5000, "a reply after the move");
  await new Promise((r) => setTimeout(r, 500));
  if (JSON.stringify(pubChat.got) !== JSON.stringify([describe("two")])) {
    failures.push(`after the move the publisher got ${JSON.stringify(pubChat.got)}`);
  }
  const statuses = {};
  for (const [name, s] of [["publisher", pub], ["subscriber1", sub1], ["subscriber2", sub2]]) {
    const g = await sb.apiOk("GET", `/sessions/${s.sessionId}`);
    statuses[name] = g.dataChannels.map((c) => `${c.dataChannelName}:${c.status}`);
    if (g.dataChannels.some((c) => c.status !== "active")) failures.push(`${name} GET ${statuses[name]}`);
  }
  const metrics = await sb.metrics();
  return {
    ok: failures.length === 0, reason: failures.join("; ") || undefined,
    received: subs.map((s) => ({ chat: s.chat.got.length, fast: s.fast.got.length })),
    replies: replies, statuses, metrics,
  };
}

await main({
  script: "datachannels.mjs",
  hardTimeoutMs: 110000,
  scenarios: [
    { name: "fanout", timeoutMs: 90000, run: (page) => page.evaluate(fanout, { count: 1000, fastCount: 200, replies: 1000 }) },
  ],
});
