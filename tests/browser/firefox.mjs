// Headless Firefox (and Chromium, for mixed pairs) against the demo page
// (src/api/demo.html), driven by puppeteer-core; tests/firefox.rs runs it
// inside a network namespace, since Firefox gathers no UDP candidate on a
// host with only loopback.
//
//   node tests/browser/firefox.mjs <base-url> <scenario> [--evidence]
//
// Scenarios (the pulled video must decode more than 60 frames):
//   echo                 Firefox clicks #start (publish fake camera + mic,
//                        pull them back through the server); the echo decodes.
//   firefox-to-firefox   Firefox tab 1 publishes (#start); tab 2 of the same
//                        browser pulls its session with #pull-session/#pull.
//   chromium-to-firefox  Chromium publishes, Firefox pulls.
//   firefox-to-chromium  Firefox publishes, Chromium pulls.
//   chat                 data channels: Chromium opens the demo's chat
//                        (#chat-open: it publishes "chat"), Firefox opens its
//                        own and joins Chromium's (subscribes with canReply);
//                        20 lines typed in Chromium must all reach Firefox,
//                        in order, and Firefox's reply must reach Chromium.
//   chat-firefox-publishes  the same with the roles swapped.
//   Both chat scenarios end once the server has had a consent answer from
//   each of the two sessions (its /metrics).
//
// Env: FIREFOX (default /usr/bin/firefox-esr), CHROMIUM (default
// /usr/bin/chromium), ECHO_TIMEOUT_MS (default 20000, counted from the first
// click). Prints one JSON line on stdout: {"ok":true,"framesDecoded":N,...}
// (exit 0) or {"ok":false,"reason":...} (exit 1); page consoles, and on
// failure (always with --evidence) every peer connection's SDP and stats, go
// to stderr. Exit 2 on bad usage.

import { launch, openPage, pollUntil, withTimeout } from "./browsers.mjs";

const FRAMES = 60;
const SCENARIOS = {
  "echo": ["firefox", null],
  "firefox-to-firefox": ["firefox", "firefox"],
  "chromium-to-firefox": ["chromium", "firefox"],
  "firefox-to-chromium": ["firefox", "chromium"],
  "chat": ["chromium", "firefox"],
  "chat-firefox-publishes": ["firefox", "chromium"],
};

const evidence = process.argv.includes("--evidence");
const [baseUrl, scenario, ...rest] = process.argv.slice(2).filter((a) => a !== "--evidence");
if (!baseUrl || !SCENARIOS[scenario] || rest.length) {
  console.error(`usage: node tests/browser/firefox.mjs <base-url> <${Object.keys(SCENARIOS).join("|")}> [--evidence]`);
  process.exit(2);
}
const timeoutMs = Number(process.env.ECHO_TIMEOUT_MS) || 20000;
const hardTimeoutMs = timeoutMs + 60000;
const t0 = Date.now();
const browsers = [];
const pages = [];
let finished = false;

function finish(result) {
  if (finished) return;
  finished = true;
  process.stdout.write(JSON.stringify({ ...result, scenario, totalMs: Date.now() - t0 }) + "\n");
  process.exitCode = result.ok ? 0 : 1;
}

async function closeAll() {
  await Promise.all(browsers.splice(0).map((b) => b.close()));
}

// Never hang: report, try to close the browsers, then exit.
const hardTimer = setTimeout(async () => {
  finish({ ok: false, reason: `hard timeout after ${hardTimeoutMs} ms` });
  await Promise.race([closeAll(), new Promise((r) => setTimeout(r, 8000))]);
  process.exit(1);
}, hardTimeoutMs);

// Every peer connection of the demo page: states, SDP, and stats worth
// reading when media does not flow.
async function pageEvidence(page) {
  return withTimeout(page.evaluate(async () => {
    const d = window.demo || {};
    const pcs = [["pc1 (publisher)", d.pc1], ["pc2 (echo)", d.pc2],
      ...(d.pulls || []).map((p, i) => [`pull${i}`, p.pc])].filter(([, pc]) => pc);
    const out = [];
    for (const [name, pc] of pcs) {
      const stats = [];
      (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" || s.type === "outbound-rtp") {
          stats.push({
            type: s.type, kind: s.kind, ssrc: s.ssrc, rid: s.rid, packets: s.packetsReceived ?? s.packetsSent,
            bytes: s.bytesReceived ?? s.bytesSent, framesDecoded: s.framesDecoded, framesEncoded: s.framesEncoded,
            pli: s.pliCount, nack: s.nackCount, decoder: s.decoderImplementation, encoder: s.encoderImplementation,
          });
        } else if (s.type === "transport" || (s.type === "candidate-pair" && s.nominated)) {
          stats.push({ type: s.type, state: s.state, dtlsState: s.dtlsState, bytesSent: s.bytesSent, bytesReceived: s.bytesReceived });
        }
      });
      out.push({
        name, signaling: pc.signalingState, ice: pc.iceConnectionState, connection: pc.connectionState,
        stats, local: pc.localDescription?.sdp, remote: pc.remoteDescription?.sdp,
      });
    }
    return {
      status: document.getElementById("status")?.textContent,
      error: document.getElementById("error")?.textContent,
      pcs: out,
    };
  }), 5000, "reading the page");
}

async function dumpEvidence() {
  for (const { name, page } of pages) {
    let ev;
    try {
      ev = await pageEvidence(page);
    } catch (e) {
      console.error(`--- ${name}: no evidence: ${e.message}`);
      continue;
    }
    console.error(`--- ${name}: status ${JSON.stringify(ev.status)} error ${JSON.stringify(ev.error)}`);
    for (const pc of ev.pcs) {
      console.error(`--- ${name} ${pc.name}: signaling ${pc.signaling}, ice ${pc.ice}, connection ${pc.connection}`);
      for (const s of pc.stats) console.error(`    ${JSON.stringify(s)}`);
      console.error(`--- ${name} ${pc.name} local SDP ---\n${pc.local ?? "(none)"}`);
      console.error(`--- ${name} ${pc.name} remote SDP ---\n${pc.remote ?? "(none)"}`);
    }
  }
}

async function open(b, name) {
  const page = await openPage(b, name, baseUrl);
  pages.push({ name, page });
  return page;
}

// The page's error text, if it shows one.
const pageError = (page) => () =>
  page.evaluate(() => document.getElementById("error")?.textContent || null).catch((e) => `page unreadable: ${e.message}`);

const stats = (page) => page.evaluate(() => window.demoStats());

// The server's count of answered consent checks (RFC 7675), from /metrics.
async function consentAnswers() {
  const text = await (await fetch(new URL("/metrics", baseUrl))).text();
  const line = text.split("\n").find((l) => l.startsWith("switchboard_consent_answers_total "));
  return line ? Number(line.split(" ")[1]) : 0;
}

async function runEcho(ff) {
  const page = await open(ff, "firefox");
  const clicked = Date.now();
  await page.click("#start");
  let last = null;
  const r = await pollUntil(clicked + timeoutMs, `echo framesDecoded > ${FRAMES}`, async () => {
    last = await stats(page);
    return last.framesDecoded > FRAMES;
  }, pageError(page));
  if (r.value) return { ok: true, framesDecoded: last.framesDecoded, ms: Date.now() - clicked };
  return { ok: false, reason: r.reason, ms: Date.now() - clicked, stats: last };
}

async function runPull(pubBrowser, subBrowser) {
  const pub = await open(pubBrowser, `${pubBrowser.kind} publisher`);
  const sub = await open(subBrowser, `${subBrowser.kind} subscriber`);
  const clicked = Date.now();
  const deadline = clicked + timeoutMs;
  await pub.click("#start");
  const up = await pollUntil(deadline, "the publisher to connect", () =>
    pub.evaluate(() => (window.demo.state.connected ? window.demo.state.sessionId : null)), pageError(pub));
  if (!up.value) return { ok: false, reason: `publisher: ${up.reason}`, ms: Date.now() - clicked };
  const sessionId = up.value;
  await sub.evaluate((id) => {
    document.getElementById("pull-session").value = id;
    document.getElementById("pull-tracks").value = "audio,video";
  }, sessionId);
  await sub.click("#pull");
  let last = null;
  const r = await pollUntil(deadline, `subscriber pulledFramesDecoded > ${FRAMES}`, async () => {
    last = await stats(sub);
    return last.pulledFramesDecoded > FRAMES;
  }, pageError(sub));
  if (r.value) return { ok: true, framesDecoded: last.pulledFramesDecoded, ms: Date.now() - clicked, sessionId };
  return { ok: false, reason: `subscriber: ${r.reason}`, ms: Date.now() - clicked, sessionId, stats: last };
}

async function runChat(pubBrowser, subBrowser) {
  const pub = await open(pubBrowser, `${pubBrowser.kind} chat`);
  const sub = await open(subBrowser, `${subBrowser.kind} chat`);
  const started = Date.now();
  const deadline = started + timeoutMs;
  const openChat = async (page, what) => {
    await page.click("#chat-open");
    const r = await pollUntil(deadline, `${what} chat open`, () => page.evaluate(() =>
      (window.demo.chat && window.demo.chat.channel.readyState === "open" ? window.demo.chat.sessionId : null)),
    pageError(page));
    if (!r.value) throw new Error(`${what}: ${r.reason}`);
    return r.value;
  };
  const pubSession = await openChat(pub, "publisher");
  await openChat(sub, "subscriber");
  await sub.evaluate((id) => { document.getElementById("chat-join-session").value = id; }, pubSession);
  await sub.click("#chat-join");
  const joined = await pollUntil(deadline, "the subscription open", () => sub.evaluate(() =>
    window.demo.chat.joined && window.demo.chat.channel.readyState === "open"), pageError(sub));
  if (!joined.value) return { ok: false, reason: `subscriber: ${joined.reason}` };
  const lines = Array.from({ length: 20 }, (_, i) => `line ${i} from ${pubBrowser.kind}`);
  await pub.evaluate((ls) => ls.forEach((l) => window.demo.chat.send(l)), lines);
  const got = await pollUntil(deadline, "every line at the subscriber", () =>
    sub.evaluate((n) => window.demo.chat.messages.length >= n, lines.length), pageError(sub));
  const reply = `reply from ${subBrowser.kind}`;
  await sub.evaluate((r) => window.demo.chat.send(r), reply);
  const back = await pollUntil(deadline, "the reply at the publisher", () =>
    pub.evaluate((r) => window.demo.chat.messages.includes(r), reply), pageError(pub));
  const received = await sub.evaluate(() => window.demo.chat.messages);
  const inOrder = JSON.stringify(received) === JSON.stringify(lines);
  // The chat can be over within a second of connecting, before the server's
  // first consent check (its liveness scan runs once a second): keep both
  // browsers connected until it has had an answer from each session, which
  // the test then checks from the server's side.
  const consent = await pollUntil(deadline, "a consent answer from each session", async () =>
    (await consentAnswers()) >= 2);
  if (got.value && back.value && inOrder && consent.value) return { ok: true, ms: Date.now() - started, received: received.length };
  return { ok: false, reason: got.reason || back.reason || consent.reason || `lines out of order: ${JSON.stringify(received)}` };
}

try {
  const [pubKind, subKind] = SCENARIOS[scenario];
  const kinds = [...new Set([pubKind, subKind].filter(Boolean))];
  const launched = await Promise.allSettled(kinds.map((k) => launch(k)));
  for (const l of launched) if (l.status === "fulfilled") browsers.push(l.value);
  const failed = launched.find((l) => l.status === "rejected");
  if (failed) throw failed.reason;
  const byKind = Object.fromEntries(browsers.map((b) => [b.kind, b]));
  const versions = Object.fromEntries(await Promise.all(browsers.map(async (b) => [b.kind, await b.browser.version()])));
  const result = scenario.startsWith("chat") ? await runChat(byKind[pubKind], byKind[subKind])
    : subKind ? await runPull(byKind[pubKind], byKind[subKind]) : await runEcho(byKind[pubKind]);
  if (!result.ok || evidence) await dumpEvidence();
  finish({ ...result, browsers: versions });
} catch (e) {
  finish({ ok: false, reason: `exception: ${e && e.message ? e.message : e}` });
  await dumpEvidence();
} finally {
  await closeAll();
  clearTimeout(hardTimer);
}
