// Opens the demo page in a headless Chromium and starts its echo (publish
// the fake camera and microphone, pull them back through the server):
// shared by the measurements that watch the echo (lossy.mjs,
// bottleneck.mjs). Returns {browser, page}; the page's console goes to
// stderr. Env: CHROMIUM.

import { chromium } from "playwright-core";
import { CHROMIUM_ARGS } from "./chromium-args.mjs";

export async function startEcho(url) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 20000,
  });
  const page = await (await browser.newContext()).newPage();
  page.on("console", (m) => console.error(`[console.${m.type()}] ${m.text()}`));
  await page.goto(url, { waitUntil: "load", timeout: 10000 });
  await page.click("#start");
  return { browser, page };
}
