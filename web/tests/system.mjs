// The system the page's tests run against: `make run`'s own program (target/debug/devstack) with
// its demo day, on free ports and a throwaway directory; and Debian's Chromium through playwright-core.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
const JWT_SECRET = "dev-jwt-secret-change-me";

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts the system; resolves once devstack prints READY. */
export async function startSystem() {
  const names = ["NATS_PORT", "POSTGRES_PORT", "GRPC_PORT", "WEB_PORT", "WEBHOOK_PORT", "SIM_PORT", "SMTP_PORT"];
  const ports = {};
  for (const name of names) ports[name] = String(await freePort());
  const data = mkdtempSync(join(tmpdir(), "msg-page-"));
  const env = { ...process.env, ...ports, DATA_DIR: data, MSG_PYTHON: join(ROOT, ".venv/bin/python") };
  const child = spawn(join(ROOT, "target/debug/devstack"), [], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (chunk) => (out += chunk));
  child.stderr.on("data", (chunk) => (out += chunk));
  await new Promise((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`devstack not ready in 180 s:\n${out}`)), 180_000);
    child.on("exit", (code) => reject(new Error(`devstack exited (${code}):\n${out}`)));
    const poll = setInterval(() => {
      if (out.includes("READY")) {
        clearInterval(poll);
        clearTimeout(deadline);
        resolve();
      }
    }, 200);
  });
  const link = /http:\/\/localhost:\d+\/#token=\S+/.exec(out)?.[0];
  if (!link) throw new Error(`devstack printed no page link:\n${out}`);
  const origin = new URL(link).origin;
  const natsUrl = () => {
    const nats = /msgctl demo --account \S+ --nats (\S+)/.exec(out)?.[1];
    if (!nats) throw new Error(`devstack printed no NATS URL:\n${out}`);
    return nats;
  };
  return {
    ports,
    link,
    origin,
    /** A dashboard token for `account`, as `make token` mints it; negative hours give an expired one. */
    token(account, hours = 1, role = "owner", technician = null) {
      const args = ["token", "--account", account, "--hours", String(hours), "--role", role, ...(technician ? ["--technician", technician] : [])];
      return execFileSync(join(ROOT, "target/debug/msgctl"), args, { env: { ...process.env, MSG_JWT_SECRET: JWT_SECRET } }).toString().trim();
    },
    /** A text from `from` to `to`, delivered by the provider simulator's signed inbound webhook. */
    async textIn(from, to, body) {
      const response = await fetch(`http://127.0.0.1:${ports.SIM_PORT}/sim/inbound`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ from, to, body }),
      });
      if (!response.ok) throw new Error(`simulator inbound: ${response.status} ${await response.text()}`);
      return response.json();
    },
    /** Publishes the demo day's job events for `account`, as devstack's "more events" line says. */
    demo(account) {
      return execFileSync(join(ROOT, "target/debug/msgctl"), ["demo", "--account", account, "--nats", natsUrl()]).toString();
    },
    /** Publishes one job event of `type` for `account` with `body`'s objects (`msgctl event`). */
    event(account, type, body) {
      const args = ["event", "--account", account, "--type", type, "--json", JSON.stringify(body), "--nats", natsUrl()];
      return execFileSync(join(ROOT, "target/debug/msgctl"), args).toString();
    },
    /** Every SMS the simulator was asked to send. */
    async smsSent() {
      const response = await fetch(`http://127.0.0.1:${ports.SIM_PORT}/sim/messages`);
      return response.json();
    },
    /** A new page of `browser` signed in with `token` (the demo owner's by default) at `query`;
     * `page.errors` collects the page's uncaught errors. */
    async open(browser, query = "", token = null, viewport = { width: 1280, height: 900 }) {
      const page = await browser.newPage({ viewport });
      const errors = [];
      page.on("pageerror", (e) => errors.push(e.message));
      page.errors = errors;
      const handed = token ?? new URL(link).hash.slice("#token=".length);
      await page.goto(`${origin}/${query}#token=${handed}`);
      return page;
    },
    log: () => out,
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGINT");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 60_000))]);
      if (!process.env.MSG_KEEP_TEST_DIRS) rmSync(data, { recursive: true, force: true });
    },
  };
}

/** Headless Chromium from Debian's package, with the flags a closed network needs. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** A TCP proxy in front of `port` whose connections can all be cut at once: a network drop. */
export async function dropper(port) {
  const sockets = new Set();
  const server = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    for (const [a, b] of [[client, upstream], [upstream, client]]) {
      sockets.add(a);
      a.pipe(b);
      a.on("error", () => b.destroy());
      a.on("close", () => {
        sockets.delete(a);
        b.destroy();
      });
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    /** Resets every open connection, both ways. */
    drop() {
      for (const socket of sockets) socket.resetAndDestroy();
    },
    close() {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.destroy();
      return closed;
    },
  };
}
