// Plays a recorded file in headless Chromium's <video>, as a user opens
// one (run by tests/recording_chromium.rs):
//
//   node tests/browser/play-file.mjs <file.webm>
//
// Writes play.html beside the file, opens it (file://), waits for the
// metadata, plays for 2 s, then seeks to 1 s before the end (the Cues) and
// plays on. Prints one JSON line: {"ok", duration, width, height,
// playedTo, seekedTo, framesDecoded, error?}. Env: CHROMIUM.

import { writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS } from "./chromium-args.mjs";

const [file] = process.argv.slice(2);
if (!file) {
  console.error("usage: node tests/browser/play-file.mjs <file>");
  process.exit(2);
}
const html = join(dirname(file), "play.html");
writeFileSync(html, `<!doctype html><video id="v" src="${basename(file)}" muted playsinline></video>`);
const hard = setTimeout(() => {
  process.stdout.write(JSON.stringify({ ok: false, error: "hard timeout" }) + "\n");
  process.exit(1);
}, 60000);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: CHROMIUM_ARGS,
  timeout: 20000,
});
let result;
try {
  const page = await browser.newPage();
  page.on("console", (m) => console.error(`[console.${m.type()}] ${m.text()}`));
  await page.goto(`file://${html}`);
  result = await page.evaluate(async () => {
    const v = document.getElementById("v");
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const error = () => (v.error ? `media error ${v.error.code}: ${v.error.message}` : null);
    for (let i = 0; i < 100 && v.readyState < 1 && !v.error; i++) await sleep(100);
    if (v.readyState < 1) return { ok: false, error: error() || "no metadata in 10 s" };
    const duration = v.duration;
    await v.play();
    await sleep(2000);
    const playedTo = v.currentTime;
    v.currentTime = Math.max(0, duration - 1);
    for (let i = 0; i < 50 && v.seeking; i++) await sleep(100);
    await sleep(500);
    const seekedTo = v.currentTime;
    const q = v.getVideoPlaybackQuality();
    return {
      ok: !v.error,
      duration,
      width: v.videoWidth,
      height: v.videoHeight,
      playedTo,
      seekedTo,
      framesDecoded: q.totalVideoFrames - q.droppedVideoFrames,
      error: error(),
    };
  });
} catch (e) {
  result = { ok: false, error: String(e && e.message ? e.message : e) };
} finally {
  await browser.close().catch(() => {});
  clearTimeout(hard);
}
process.stdout.write(JSON.stringify(result) + "\n");
process.exitCode = result.ok ? 0 : 1;
