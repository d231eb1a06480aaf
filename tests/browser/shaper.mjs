// A bottleneck on the server → subscriber direction, for scripts run as
// root inside a network namespace where the browser and the server share
// lo: an HTB qdisc whose default class is unlimited and whose class 1:2
// carries <kbit> kbit/s through a 40 KB FIFO; filters send the datagrams
// from the server's media port to chosen ports through it.
//
//   const shaper = installShaper(kbit);  shaper.limit(ports);
//   shaper.lift();  shaper.remove();
//
// `bottleneckArgs(script)` reads the command line such scripts share:
// <demo-url> <kbit> <clean s> <limited s> <lifted s>; it also arms a hard
// timeout (the phases plus 90 s) that prints a failure and exits.
// `endRun(result, {browser, shaper, hard})` removes the shaper, prints the
// one-line JSON result, sets the exit code and closes the browser.

import { execFileSync } from "node:child_process";

const tc = (...args) => execFileSync("tc", args, { stdio: ["ignore", "pipe", "pipe"] });

export function installShaper(kbit, mediaPort = 40000) {
  tc("qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "1", "r2q", "1000");
  tc("class", "add", "dev", "lo", "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit");
  tc("class", "add", "dev", "lo", "parent", "1:", "classid", "1:2", "htb", "rate", `${kbit}kbit`, "ceil", `${kbit}kbit`, "burst", "4k", "cburst", "4k");
  tc("qdisc", "add", "dev", "lo", "parent", "1:2", "handle", "20:", "bfifo", "limit", "40000");
  return {
    // Datagrams from the media port to these ports go through the limit.
    limit(ports) {
      for (const port of ports) {
        tc("filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
          "match", "ip", "sport", String(mediaPort), "0xffff", "match", "ip", "dport", String(port), "0xffff", "flowid", "1:2");
      }
    },
    lift() {
      tc("filter", "del", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1");
    },
    remove() {
      try {
        tc("qdisc", "del", "dev", "lo", "root");
      } catch {}
    },
  };
}

export function bottleneckArgs(script) {
  const [url, kbitArg, cleanArg, limitedArg, liftedArg] = process.argv.slice(2);
  const [kbit, clean, limited, lifted] = [kbitArg, cleanArg, limitedArg, liftedArg].map(Number);
  if (!url || !kbit || !clean || !limited || !lifted) {
    console.error(`usage: node tests/browser/${script} <demo-url> <kbit> <clean s> <limited s> <lifted s>`);
    process.exit(2);
  }
  const hard = setTimeout(() => {
    process.stdout.write(JSON.stringify({ ok: false, reason: "hard timeout" }) + "\n");
    process.exit(1);
  }, (clean + limited + lifted + 90) * 1000);
  return { url, kbit, clean, limited, lifted, hard };
}

export async function endRun(result, { browser, shaper, hard }) {
  if (shaper) shaper.remove();
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exitCode = result && result.ok ? 0 : 1;
  if (browser) await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  clearTimeout(hard);
}
