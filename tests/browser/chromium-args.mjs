// The flags every Chromium in these tests runs with: headless-friendly, no
// background network traffic (this machine's network is closed), fake
// camera and microphone, and loopback candidates allowed. Shared by the
// playwright-core drivers (echo.mjs, lib.mjs) and the puppeteer-core one
// (browsers.mjs).

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--autoplay-policy=no-user-gesture-required",
];
