/**
 * End to end: the built ui.html in an <iframe sandbox="allow-scripts"> (origin "null", as in Figma) in
 * headless Debian chromium, code.js against the fake figma in the host page, and the real underpaint
 * daemon every host test drives (tests/hosts/daemon.py) on a free port.
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { connect as tcpConnect, createServer as createTcpServer } from "node:net";
import { tmpdir } from "node:os";
import { crc32 } from "node:zlib";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { type BrowserContext, chromium, type Frame, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fitImageSize } from "../../src/shared/geometry";
import { DEFAULT_PORT } from "../../src/shared/protocol.gen";
import { decodePng } from "../../src/shared/png";
import { at, testImage } from "../helpers";

const here = dirname(fileURLToPath(import.meta.url));
const pluginDir = resolve(here, "../..");
const repo = resolve(pluginDir, "../..");
const dist = join(pluginDir, "dist");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const python = process.env.UNDERPAINT_PYTHON ?? (existsSync(join(repo, ".venv/bin/python")) ? join(repo, ".venv/bin/python") : "python3");

/** What tests/hosts/daemon.py offers beside tiny-random: its ControlNet, LoRA (and its trigger word), upscaler and restorer. */
const CONTROL = "canny=tiny-random";
const LORA = "tiny-style";
const LORA_TRIGGER = "inkwash";
const UPSCALER = "tiny-compact-x2";
const RESTORER = "tiny-restoreformer";
let daemon: ChildProcess | undefined;
let daemonLog = "";
let http: Server | undefined;
let browser: BrowserContext | undefined;
let page: Page;
let ui: Frame;
let token = "";
let daemonPort = 0;
let httpPort = 0;
let tmp = "";

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createTcpServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => ok(port));
    });
  });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 30000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}\n--- daemon log ---\n${daemonLog.slice(-3000)}`);
}

const portOpen = (port: number): Promise<boolean> =>
  new Promise((ok) => {
    const socket = tcpConnect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      ok(true);
    });
    socket.once("error", () => ok(false));
  });

async function sidebar(): Promise<{ state: string; stateText: string; error: string; status: string; selection: string; models: string[] }> {
  return ui.evaluate(() => {
    const text = (id: string) => document.getElementById(id)?.textContent ?? "";
    const error = document.getElementById("error")!;
    return {
      state: document.getElementById("state")!.dataset.state ?? "",
      stateText: text("state-text"),
      error: error.hidden ? "" : error.textContent ?? "",
      status: text("status"),
      selection: text("selection"),
      models: Array.from((document.getElementById("model") as HTMLSelectElement).options).map((o) => o.value),
    };
  });
}

/** The JSON sidecar the daemon wrote beside a result's PNG (its reproduction params). */
function sidecar(result: { output: string }): any {
  return JSON.parse(readFileSync(result.output.replace(/\.png$/, ".json"), "utf8"));
}

/** A node's image fill as decoded pixels, digested (host.ts): what "the picture differs" compares. */
const pixelDigest = (key: string): Promise<string> => page.evaluate((k) => (window as any).pixelDigest(k), key);
const alphaAt = (key: string, x: number, y: number): Promise<number> => page.evaluate(([k, px, py]) => (window as any).alphaAt(k, px, py), [key, x, y] as const);
const undoCommits = (): Promise<number> => page.evaluate(() => (window as any).undoCommits());

/** Click an upscale-section button; the node it adds (all tiles placed) and the job's result messages. */
async function upscaleAction(button: string, what: string): Promise<{ node: any; results: any[]; submit: any }> {
  const before = (await page.evaluate(() => (window as any).created())).length;
  await recordWire();
  await ui.click(button);
  const node = await waitFor(what, async () => {
    const nodes = await page.evaluate(() => (window as any).created());
    return nodes.length > before ? nodes.at(-1) : null;
  }, 300000);
  expect((await sidebar()).error).toBe("");
  return { node, results: await received("result"), submit: (await lastSubmit()).submit };
}

/** Forget what the injected recorder (inject.ts) saw so far. */
async function recordWire(): Promise<void> {
  await ui.evaluate(() => {
    const wire = (window as any).__wire;
    wire.sent = [];
    wire.received = [];
  });
}

/** Daemon messages of one type the sidebar received (results once each: a refetch replays them). */
async function received(type: string): Promise<any[]> {
  const messages: any[] = await ui.evaluate((t) => (window as any).__wire.received.map((r: any) => r.message).filter((m: any) => m.type === t), type);
  if (type !== "result") return messages;
  const seen = new Set<string>();
  return messages.filter((m) => !seen.has(`${m.job_id}/${m.index}`) && seen.add(`${m.job_id}/${m.index}`));
}

/** The last job's upload as seen on the wire: the plan's upload rectangle, the job id, and how long the cut took. */
async function lastUpload(): Promise<{ upload: any; job_id: string; cut_ms: number }> {
  return ui.evaluate(() => {
    const wire = (window as any).__wire;
    const planned = wire.received.filter((r: any) => r.message.type === "planned").at(-1);
    const submit = wire.sent.filter((m: any) => m.text?.type === "submit").at(-1);
    const accepted = wire.received.find((r: any) => r.message.type === "accepted" && r.message.request_id === submit.text.request_id);
    return { upload: planned.message.upload, job_id: accepted?.message.job_id, cut_ms: Math.round(submit.at - planned.at) };
  });
}

async function setFlag(flag: "dropAfterAccept" | "closeAfterAccept" | "holdSubmitMs", value: boolean | number = true): Promise<void> {
  await ui.evaluate(([name, v]) => {
    (window as any).__wire[name as string] = v;
  }, [flag, value] as const);
}

interface Wire {
  submit: any;
  frames: { header: any; bytes: number }[];
}

/** The last submit on the wire and the binary frames that followed it. */
async function lastSubmit(): Promise<Wire> {
  return ui.evaluate(() => {
    const wire = (window as any).__wire.sent as any[];
    const index = wire.map((m) => m.text?.type).lastIndexOf("submit");
    const frames = [];
    for (const item of wire.slice(index + 1)) {
      if (!item.header) break;
      frames.push({ header: item.header, bytes: item.payload.length });
    }
    return { submit: wire[index]?.text, frames };
  });
}

/** Pixels of a binary frame of the last submit (its index among the frames). */
async function framePayload(frame: number): Promise<Uint8Array> {
  const values: number[] = await ui.evaluate((n) => {
    const wire = (window as any).__wire.sent as any[];
    const index = wire.map((m) => m.text?.type).lastIndexOf("submit");
    return Array.from(wire[index + 1 + n].payload as Uint8Array);
  }, frame);
  return Uint8Array.from(values);
}

/**
 * After the sidebar's iframe navigated: its frame again, connected. The newest live frame on
 * /ui.html (a sandboxed frame may move to another process on navigation, leaving a stale one behind).
 */
async function reopenedSidebar(): Promise<void> {
  await waitFor("the reopened sidebar", async () => {
    const frame = page
      .frames()
      .filter((f) => f.url().endsWith("/ui.html") && !f.isDetached())
      .at(-1);
    if (!frame) return null;
    ui = frame;
    return (await sidebar()).state === "connected";
  });
}

async function connectWith(address: string, tokenValue: string): Promise<void> {
  await ui.fill("#address", address);
  await ui.fill("#token", tokenValue);
  await ui.click("#connect");
}

beforeAll(async () => {
  for (const file of ["manifest.json", "code.js", "ui.html"]) {
    if (!existsSync(join(dist, file))) throw new Error(`dist/${file} is missing: run \`npm run build\` first`);
  }
  if (!existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing: install Debian's chromium (apt-get install -y chromium)`);
  tmp = mkdtempSync(join(tmpdir(), "underpaint-figma-e2e-"));
  daemonPort = await freePort();
  const tokenFile = join(tmp, "token");
  // The one daemon every host test drives (tests/hosts/daemon.py): it builds its tiny models (LoRA,
  // IP-Adapter, upscaler, restorer) in `tmp`, then serves with its outputs, token, styles and history there.
  daemon = spawn(python, ["-m", "tests.hosts.daemon", tmp, String(daemonPort)], { cwd: repo, stdio: ["ignore", "pipe", "pipe"] });
  daemon.stdout!.on("data", (d) => (daemonLog += d));
  daemon.stderr!.on("data", (d) => (daemonLog += d));
  await waitFor("the daemon's port", async () => existsSync(tokenFile) && (await portOpen(daemonPort)), 300000);
  token = readFileSync(tokenFile, "utf8").trim();

  const host = await build({ entryPoints: [join(here, "host.ts")], bundle: true, format: "iife", target: "es2020", write: false, logLevel: "warning" });
  const files: Record<string, [string, string | Buffer]> = {
    "/host.html": ["text/html", '<!doctype html><html><head><meta charset="utf-8"><title>figma host</title></head><body style="margin:0;background:#eee"><script src="/host.js"></script><script src="/code.js"></script></body></html>'],
    "/host.js": ["text/javascript", host.outputFiles[0].text],
    "/code.js": ["text/javascript", readFileSync(join(dist, "code.js"))],
    "/ui.html": ["text/html", readFileSync(join(dist, "ui.html"))],
  };
  http = createServer((req, res) => {
    const file = files[(req.url ?? "").split("?")[0]];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": file[0] }).end(file[1]);
  });
  await new Promise<void>((ok) => http!.listen(0, "127.0.0.1", ok));
  httpPort = (http.address() as { port: number }).port;

  // A persistent context is how playwright takes a fresh --user-data-dir.
  browser = await chromium.launchPersistentContext(join(tmp, "chromium-profile"), {
    executablePath: chromiumPath,
    viewport: { width: 360, height: 1240 },
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  // The test's recorder goes into the sidebar's frame from outside: the shipped ui.html has no test code.
  const inject = await build({ entryPoints: [join(here, "inject.ts")], bundle: true, format: "iife", target: "es2020", write: false, logLevel: "warning" });
  await browser.addInitScript({ content: inject.outputFiles[0].text });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.on("pageerror", (error) => console.error("page error:", error));
  await page.goto(`http://127.0.0.1:${httpPort}/host.html`);
  // Start with an address nothing listens on and no token, as a first-time user would.
  const closedPort = await freePort();
  // Results land directly until the preview scenarios turn that setting off.
  await page.evaluate((settings) => (window as any).setupScene(settings), { address: `ws://localhost:${closedPort}`, token: "", landDirectly: true });
  await page.evaluate(() => (window as any).openUi());
  await waitFor("the sidebar iframe", async () => page.frames().find((f) => f.url().endsWith("/ui.html")));
  ui = page.frames().find((f) => f.url().endsWith("/ui.html"))!;
  await ui.waitForSelector("#connect");
}, 360000);

/** A PNG as A1111 saves it: its parameters in a `parameters` tEXt chunk before IEND. */
async function a1111Png(parameters: string): Promise<Buffer> {
  const png = Buffer.from(await testImage(8, 8));
  const body = Buffer.concat([Buffer.from("tEXt", "latin1"), Buffer.from(`parameters\0${parameters}`, "latin1")]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length - 4);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([png.subarray(0, png.length - 12), length, body, crc, png.subarray(png.length - 12)]);
}

afterAll(async () => {
  // E2E_DAEMON_LOG=/some/file keeps the daemon's log (job timings, cancels) for a look afterwards.
  if (process.env.E2E_DAEMON_LOG) writeFileSync(process.env.E2E_DAEMON_LOG, daemonLog);
  await browser?.close();
  http?.close();
  daemon?.kill("SIGTERM");
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe("figma plugin against a real daemon", () => {
  it("runs in an opaque-origin sandboxed iframe", async () => {
    expect(await ui.evaluate(() => window.origin)).toBe("null");
  });

  it("says how to start the daemon when nothing listens", async () => {
    const state = await waitFor("the daemon-down message", async () => {
      const s = await sidebar();
      return s.state === "disconnected" && s.stateText.includes("not answering") ? s : null;
    });
    expect(state.stateText).toContain("underpaint serve");
  });

  it("says so when the address is an http:// one", async () => {
    await connectWith(`http://localhost:${daemonPort}`, "");
    const state = await waitFor("the http address message", async () => {
      const s = await sidebar();
      return s.state === "refused" ? s : null;
    });
    expect(state.stateText).toContain("web (http) address");
    expect(state.stateText).toContain(`ws://localhost:${DEFAULT_PORT}`);
  });

  it("says so when a plain web server (not the daemon) answers at the address", async () => {
    // the test's own page server plays a web UI such as A1111 or Gradio
    await connectWith(`ws://localhost:${httpPort}`, "");
    const state = await waitFor("the plain web server message", async () => {
      const s = await sidebar();
      return s.state === "disconnected" && s.stateText.includes("plain web server") ? s : null;
    });
    expect(state.stateText).toContain(`port ${DEFAULT_PORT}`);
  });

  it("shows the daemon's unauthorized error for a missing and for a wrong token", async () => {
    const address = `ws://localhost:${daemonPort}`;
    await connectWith(address, "");
    let state = await waitFor("unauthorized (no token)", async () => {
      const s = await sidebar();
      return s.state === "refused" ? s : null;
    });
    expect(state.error).toContain("unauthorized");
    expect(state.error).toContain("token");
    expect(state.error).toContain("field: token");
    await connectWith(address, "not-the-token");
    await new Promise((r) => setTimeout(r, 300));
    state = await waitFor("unauthorized (wrong token)", async () => {
      const s = await sidebar();
      return s.state === "refused" ? s : null;
    });
    expect(state.error).toContain("unauthorized");
  });

  it("connects with the token, lists the models and keeps the settings in clientStorage", async () => {
    await connectWith(`ws://localhost:${daemonPort}`, token);
    const state = await waitFor("connected", async () => {
      const s = await sidebar();
      return s.state === "connected" && s.models.length > 0 ? s : null;
    });
    expect(state.models).toContain("classical");
    expect(state.error).toBe("");
    const stored = await page.evaluate(() => (window as any).fake.storage.get("underpaint-settings"));
    expect(stored).toMatchObject({ address: `ws://localhost:${daemonPort}`, token });
    expect(stored.clientId).toMatch(/^[A-Za-z0-9_-]{16,64}$/);
  });

  it("inpaints the image under the ellipse and places the result exactly over its region", async () => {
    await page.evaluate(() => (window as any).select("Photo", "Mask"));
    await waitFor("the selection summary", async () => (await sidebar()).selection.startsWith("Inpaint"));
    await ui.selectOption("#model", "tiny-random"); // the classical engine ignores (disables) the prompt
    await ui.fill("#prompt", "a red ball");
    await ui.selectOption("#model", "classical");
    await ui.click("#generate");
    const created = await waitFor("the result node", async () => {
      const nodes = await page.evaluate(() => (window as any).created());
      return nodes.length > 0 ? nodes : null;
    });
    const results = await received("result");
    expect(results).toHaveLength(1);
    const layer = results[0].layer;
    const [node] = created;
    // same parent as the image, directly above it; position = image position + layer offset (1x)
    expect(node.parent).toBe("Board");
    expect([node.x, node.y, node.width, node.height]).toEqual([40 + layer.x, 60 + layer.y, layer.width, layer.height]);
    expect(node.pixels).toEqual({ width: layer.width, height: layer.height });
    expect(node.name).toContain("a red ball");
    expect(node.name).toMatch(/seed \d+/);
    // the result covers the ellipse (image coords 80..144 x 50..98) and stays on the image
    expect(layer.x).toBeLessThanOrEqual(80);
    expect(layer.y).toBeLessThanOrEqual(50);
    expect(layer.x + layer.width).toBeGreaterThanOrEqual(144);
    expect(layer.y + layer.height).toBeGreaterThanOrEqual(98);
    expect(layer.x).toBeGreaterThanOrEqual(0);
    expect(layer.x + layer.width).toBeLessThanOrEqual(256);
    expect(results[0].canvas).toEqual({ x: 0, y: 0, width: 256, height: 192 });
    expect(await page.evaluate(() => (window as any).nodeState("Mask"))).toMatchObject({ visible: false, exists: true });
    expect(await page.evaluate(() => (window as any).undoCommits())).toBe(1);
    const order: string[] = await page.evaluate(() => (window as any).fake.page.children[0].children.map((n: any) => n.name));
    expect(order[0]).toBe("Photo");
    expect(order.indexOf(node.name)).toBe(order.indexOf("Photo") + 1);
    await waitFor("the placed status", async () => (await sidebar()).status.startsWith("Placed"));
  });

  it("outpaints with Expand at 2x, batch 2, across a dropped socket: reconnects, fetches, groups", async () => {
    await page.evaluate(() => (window as any).select("Lone photo"));
    await waitFor("img2img summary", async () => (await sidebar()).selection.startsWith("img2img"));
    await ui.selectOption("#scale", "2");
    await ui.fill("#batch", "2");
    await ui.fill("#ext-left", "32");
    await ui.fill("#ext-top", "0");
    await ui.fill("#ext-right", "0");
    await ui.fill("#ext-bottom", "16");
    await setFlag("dropAfterAccept");
    const before = (await received("result")).length;
    await ui.click("#expand");
    const created = await waitFor(
      "the grouped results",
      async () => {
        const nodes = await page.evaluate(() => (window as any).created());
        const grouped = nodes.filter((n: any) => n.parentType === "GROUP");
        return grouped.length === 2 ? grouped : null;
      },
      60000,
    );
    const results = (await received("result")).slice(before);
    expect(results).toHaveLength(2);
    for (const result of results) {
      // 96x64 at 2x = 192x128, grown by 64 left and 32 bottom
      expect(result.canvas).toEqual({ x: -64, y: 0, width: 256, height: 160 });
      const node = created.find((n: any) => n.name === result.layer.name);
      expect(node).toBeTruthy();
      expect([node.x, node.y, node.width, node.height]).toEqual([
        result.layer.x / 2,
        result.layer.y / 2,
        result.layer.width / 2,
        result.layer.height / 2,
      ]);
      expect(node.grandparent).toBe("Page 1");
      expect(node.x).toBeLessThan(0);
    }
    expect(await page.evaluate(() => (window as any).undoCommits())).toBe(2);
    // the drop really happened: the client reconnected (and fetched the job's results)
    expect(daemonLog).toMatch(/underpaint-figma[^\n]*disconnected[\s\S]*underpaint-figma[^\n]*connected/);
    expect((await sidebar()).state).toBe("connected");
  });

  it("fetches a job's results after the sidebar was closed and reopened (pending jobs in clientStorage)", async () => {
    await page.evaluate(() => (window as any).select("Photo", "Mask"));
    await ui.selectOption("#model", "tiny-random"); // the classical engine ignores (disables) the prompt
    await ui.fill("#prompt", "after reopening");
    await ui.selectOption("#model", "classical");
    await ui.selectOption("#scale", "1");
    await ui.fill("#batch", "1");
    await setFlag("closeAfterAccept");
    await ui.click("#generate");
    const pending = await waitFor("a pending job in clientStorage", async () => {
      const stored = await page.evaluate(() => (window as any).fake.storage.get("underpaint-pending"));
      return stored && Object.keys(stored).length === 1 ? stored : null;
    });
    await new Promise((r) => setTimeout(r, 500)); // the job finishes while no sidebar listens
    expect((await page.evaluate(() => (window as any).created())).filter((n: any) => n.name.startsWith("after reopening"))).toEqual([]);
    await page.evaluate(() => (window as any).reopenUi());
    await reopenedSidebar();
    const node = await waitFor("the fetched result", async () =>
      (await page.evaluate(() => (window as any).created())).find((n: any) => n.name.startsWith("after reopening")),
    );
    expect(node.parent).toBe("Board");
    // the sidebar forgets the job once it has landed (a message to the main thread after the paste)
    await waitFor("no pending job left in clientStorage", async () => {
      const stored = await page.evaluate(() => (window as any).fake.storage.get("underpaint-pending"));
      return Object.keys(stored).length === 0;
    });
    expect(Object.keys(pending)).toHaveLength(1);
  });

  it("refuses up front what the model cannot do, and shows daemon job errors with code, message and field", async () => {
    // The classical engine cannot img2img: the plan line says so and Generate is disabled...
    await page.evaluate(() => (window as any).select("Lone photo"));
    await ui.selectOption("#model", "classical");
    await ui.selectOption("#scale", "1");
    await ui.fill("#batch", "1");
    await waitFor("the refusal", async () => ((await ui.textContent("#plan")) ?? "").includes("classical model cannot refine the whole image"));
    expect(await ui.isDisabled("#generate")).toBe(true);
    expect(await ui.isDisabled("#prompt")).toBe(true); // a field the classical engine ignores
    expect(await ui.isHidden("#ignored")).toBe(false);
    // ...and were the button pressed anyway (a stale model list), the daemon answers unsupported_mode on job.mode.
    await ui.evaluate(() => {
      const button = document.getElementById("generate") as HTMLButtonElement;
      button.disabled = false;
      button.click();
    });
    const state = await waitFor("the error box", async () => {
      const s = await sidebar();
      return s.error ? s : null;
    });
    expect(state.error).toContain("unsupported_mode");
    expect(state.error).toContain("field: job.mode");
  });

  it("txt2img into an empty frame with a diffusion model shows live previews and fills the frame", async () => {
    await page.evaluate(() => (window as any).select("Empty"));
    await waitFor("txt2img summary", async () => (await sidebar()).selection.startsWith("txt2img"));
    await ui.selectOption("#model", "tiny-random");
    await ui.fill("#prompt", "noise");
    await ui.click("#generate");
    const node = await waitFor(
      "the txt2img result",
      async () => (await page.evaluate(() => (window as any).created())).find((n: any) => n.name.startsWith("noise")),
      // the first diffusion job loads the model: minutes on a busy CI machine
      420000,
    );
    expect(node.parent).toBe("Page 1");
    expect([node.x, node.y, node.width, node.height]).toEqual([600, 40, 64, 48]);
    expect(node.pixels).toEqual({ width: 64, height: 48 });
    expect((await received("progress")).filter((m) => m.preview).length).toBeGreaterThan(0);
    expect(await ui.evaluate(() => (document.getElementById("preview") as HTMLImageElement).src)).toMatch(/^blob:/);
    await waitFor("the placed status", async () => (await sidebar()).status.startsWith("Placed"));
  }, 480000);

  it("uploads only the region the daemon planned: raw rgba8 + gray8 crops of a large image", async () => {
    await recordWire();
    await page.evaluate(() => (window as any).select("Big photo", "Dot"));
    await waitFor("the inpaint summary", async () => (await sidebar()).selection.includes("Big photo"));
    await ui.selectOption("#model", "tiny-random"); // the classical engine ignores (disables) the prompt
    await ui.fill("#prompt", "small patch");
    await ui.selectOption("#model", "classical");
    await ui.selectOption("#scale", "1");
    await ui.fill("#batch", "1");
    await ui.click("#generate");
    const node = await waitFor("the patch", async () =>
      (await page.evaluate(() => (window as any).created())).find((n: any) => n.name.startsWith("small patch")),
    );
    const upload = await lastUpload();
    const { submit, frames } = await lastSubmit();
    const planned = upload.upload;
    // what went on the wire is exactly the daemon's planned upload, far smaller than the 1200x900 image
    expect(submit.job.canvas).toEqual({ width: 1200, height: 900 });
    expect(submit.job.selection).toEqual({ x: 700, y: 500, width: 40, height: 30 });
    expect(submit.region).toEqual(planned);
    expect(planned.width * planned.height).toBeLessThan((1200 * 900) / 4);
    expect(planned.width).toBeGreaterThanOrEqual(40);
    expect(submit.image).toMatchObject({ format: "rgba8", width: planned.width, height: planned.height });
    expect(submit.mask).toMatchObject({ format: "gray8", width: planned.width, height: planned.height });
    expect(frames.map((f) => f.header)).toEqual([submit.image, submit.mask]);
    expect(frames.map((f) => f.bytes)).toEqual([planned.width * planned.height * 4, planned.width * planned.height]);
    // the image frame holds the image's own pixels at that place, the mask frame the ellipse
    const source = await decodePng(await testImage(1200, 900));
    const sent = { width: planned.width, height: planned.height, data: await framePayload(0) };
    for (const [x, y] of [[0, 0], [planned.width - 1, planned.height - 1], [Math.floor(planned.width / 2), 3]]) {
      expect(at(sent, x, y)).toEqual(at(source, planned.x + x, planned.y + y));
    }
    const mask = await framePayload(1);
    expect(mask[(515 - planned.y) * planned.width + (720 - planned.x)]).toBe(255); // the ellipse's centre
    expect(mask[0]).toBe(0);
    // and the result lands over the planned area, on the image
    const result = (await received("result")).at(-1);
    expect([node.x, node.y, node.width, node.height]).toEqual([result.layer.x, 1000 + result.layer.y, result.layer.width, result.layer.height]);
    expect(result.layer.x).toBeGreaterThanOrEqual(planned.x);
    expect(result.layer.x + result.layer.width).toBeLessThanOrEqual(planned.x + planned.width);
    console.log(`upload: ${planned.width}x${planned.height} of 1200x900, ${frames[0].bytes + frames[1].bytes} bytes raw, cut in ${upload.cut_ms} ms`);
  });

  it("results over 4096 px (2x of a 2100 px wide image) are scaled to fit, placed exactly, with a note", async () => {
    await recordWire();
    await page.evaluate(() => (window as any).select("Wide photo"));
    await waitFor("img2img summary", async () => (await sidebar()).selection.includes("Wide photo"));
    await ui.selectOption("#model", "tiny-random"); // the classical engine ignores (disables) the prompt
    await ui.fill("#prompt", "wide");
    // a strength set by the user (80%) goes with outpaint too (set before picking classical, which disables it)
    await ui.uncheck("#strength-auto");
    await ui.fill("#strength", "80");
    await ui.selectOption("#model", "classical");
    await ui.selectOption("#scale", "2");
    await ui.fill("#batch", "1");
    for (const [side, value] of [["left", "0"], ["top", "0"], ["right", "0"], ["bottom", "20"]]) await ui.fill(`#ext-${side}`, value);
    await ui.click("#expand");
    const node = await waitFor(
      "the wide result",
      async () => (await page.evaluate(() => (window as any).created())).find((n: any) => n.name.startsWith("wide")),
      60000,
    );
    await ui.selectOption("#model", "tiny-random");
    await ui.check("#strength-auto"); // back to the mode default for the next tests
    const { submit } = await lastSubmit();
    expect(submit.job).toMatchObject({ mode: "outpaint", canvas: { width: 4200, height: 120 }, extend: { left: 0, top: 0, right: 0, bottom: 40 }, strength: 0.8 });
    // only the strip next to the new area went up, raw
    expect(submit.region.width).toBe(4200);
    expect(submit.region.height).toBeLessThan(120);
    expect(submit.image.format).toBe("rgba8");
    const upload = await lastUpload();
    console.log(`upload: ${submit.region.width}x${submit.region.height} of 4200x120, cut in ${upload.cut_ms} ms`);
    const result = (await received("result")).at(-1);
    const layer = result.layer;
    expect(layer.width).toBeGreaterThan(4096);
    expect([node.x, node.y, node.width, node.height]).toEqual([layer.x / 2, 2000 + layer.y / 2, layer.width / 2, layer.height / 2]);
    const fit = fitImageSize(layer.width, layer.height);
    expect(node.pixels).toEqual({ width: fit.width, height: fit.height });
    expect(node.pixels.width).toBe(4096);
    const notes = await ui.evaluate(() => {
      const notes = document.getElementById("notes")!;
      return notes.hidden ? "" : notes.textContent ?? "";
    });
    expect(notes).toContain(`${layer.width}×${layer.height} px`);
    expect(notes).toContain("4096");
    const notified: string[] = await page.evaluate(() => (window as any).fake.notifications.map((n: any) => n.message));
    expect(notified.some((m) => m.includes(`${layer.width}×${layer.height} px`))).toBe(true);
  });

  it("cancels a slow job from the sidebar: shows cancelled, creates nothing, the daemon keeps serving", async () => {
    await recordWire();
    await page.evaluate(() => (window as any).select("Slow"));
    await waitFor("txt2img summary", async () => (await sidebar()).selection.includes("Slow"));
    await ui.selectOption("#model", "tiny-random");
    await ui.selectOption("#scale", "1");
    await ui.fill("#batch", "1");
    await ui.fill("#steps", "200");
    await ui.fill("#prompt", "never finished");
    const createdBefore = (await page.evaluate(() => (window as any).created())).length;
    await ui.click("#generate");
    await waitFor("the slow job's first steps", async () => /^Step \d+ of 200/.test((await sidebar()).status), 60000);
    expect(await ui.isEnabled("#cancel")).toBe(true);
    await ui.click("#cancel");
    const state = await waitFor("the cancelled status", async () => {
      const s = await sidebar();
      return s.status.startsWith("Cancelled") ? s : null;
    });
    expect(state.status).toBe("Cancelled: nothing was placed.");
    expect(state.error).toBe("");
    const { submit } = await lastSubmit();
    expect(submit.job).toMatchObject({ mode: "txt2img", steps: 200, canvas: { width: 320, height: 240 } });
    const jobId = (await lastUpload()).job_id;
    expect(await ui.evaluate(() => (window as any).__wire.sent.some((m: any) => m.text?.type === "cancel"))).toBe(true);
    await waitFor("the daemon's log of the cancel", async () => daemonLog.includes(`job ${jobId.slice(0, 8)} cancelled`), 10000);
    expect(await ui.isEnabled("#cancel")).toBe(false);
    expect(await ui.isEnabled("#generate")).toBe(true);
    expect(await ui.evaluate(() => (document.getElementById("preview") as HTMLImageElement).hidden)).toBe(true);
    mkdirSync(join(repo, "artifacts"), { recursive: true });
    await page.locator("#plugin-ui").screenshot({ path: join(repo, "artifacts/figma-cancel.png") });
    await new Promise((r) => setTimeout(r, 300));
    let created = await page.evaluate(() => (window as any).created());
    expect(created.filter((n: any) => n.name.startsWith("never finished"))).toEqual([]);
    expect(created).toHaveLength(createdBefore);
    expect(Object.keys(await page.evaluate(() => (window as any).fake.storage.get("underpaint-pending")))).toEqual([]);
    // the daemon keeps serving: the next job runs to the end and is placed
    await ui.fill("#steps", "2");
    await ui.fill("#prompt", "after cancel");
    await ui.click("#generate");
    const node = await waitFor(
      "the job after the cancel",
      async () => (await page.evaluate(() => (window as any).created())).find((n: any) => n.name.startsWith("after cancel")),
      120000,
    );
    expect([node.x, node.y, node.width, node.height]).toEqual([700, 40, 320, 240]);
    await ui.fill("#steps", "");
    created = await page.evaluate(() => (window as any).created());
    expect(created.filter((n: any) => n.name.startsWith("never finished"))).toEqual([]);
    expect((await sidebar()).state).toBe("connected");
  }, 240000);

  it("cancels before the daemon accepted the job: sends cancel once the id is known, places nothing", async () => {
    await recordWire();
    await page.evaluate(() => (window as any).select("Photo", "Mask"));
    await waitFor("the inpaint summary", async () => (await sidebar()).selection.startsWith("Inpaint"));
    await ui.selectOption("#model", "classical"); // classical ignores (and disables) prompt and steps
    const createdBefore = (await page.evaluate(() => (window as any).created())).length;
    // the submit waits on the wire for 3 s: the job is "submitted", the daemon does not know it yet
    await setFlag("holdSubmitMs", 3000);
    await ui.click("#generate");
    await waitFor("the submitted state", async () => (await sidebar()).status === "Submitting…");
    expect(await ui.evaluate(() => (window as any).__wire.received.some((r: any) => r.message.type === "accepted"))).toBe(false);
    await ui.click("#cancel");
    expect((await sidebar()).status).toBe("Cancelling…");
    const state = await waitFor("the cancelled status", async () => {
      const s = await sidebar();
      return s.status.startsWith("Cancelled") ? s : null;
    });
    expect(state.status).toBe("Cancelled: nothing was placed.");
    expect(state.error).toBe("");
    const { job_id: jobId } = await lastUpload();
    const sent = await ui.evaluate(() => (window as any).__wire.sent.filter((m: any) => m.text).map((m: any) => m.text));
    expect(sent.map((m: any) => m.type).slice(-2)).toEqual(["submit", "cancel"]);
    expect(sent.at(-1)).toEqual({ type: "cancel", job_id: jobId });
    // whether the daemon cancelled it or (a classical fill is quick) finished it first, nothing lands
    await waitFor("the daemon's end of the job", async () => new RegExp(`job ${jobId.slice(0, 8)} (cancelled|finished)`).test(daemonLog), 10000);
    await new Promise((r) => setTimeout(r, 300));
    const created = await page.evaluate(() => (window as any).created());
    expect(created.length).toBe(createdBefore);
    expect(Object.keys(await page.evaluate(() => (window as any).fake.storage.get("underpaint-pending")))).toEqual([]);
    expect(await ui.isEnabled("#generate")).toBe(true);
  });

  it("upscales the selected image by 2 into ONE fill over the image, and a region over its region", async () => {
    await recordWire();
    await ui.selectOption("#scale", "1");
    await page.evaluate(() => (window as any).select("Photo"));
    await waitFor("img2img summary", async () => (await sidebar()).selection.includes("Photo"));
    await ui.click("#upscale-section summary");
    await ui.fill("#upscale-factor", "2");
    await ui.selectOption("#upscale-upscaler", "classical-upscale");
    const before = (await page.evaluate(() => (window as any).created())).length;
    await ui.click("#upscale-upscale");
    const whole = await waitFor("the upscale node", async () => {
      const nodes = await page.evaluate(() => (window as any).created());
      return nodes.length > before ? nodes.at(-1) : null;
    }, 60000);
    const { submit } = await lastSubmit();
    expect(submit.job).toMatchObject({ mode: "upscale", model: "classical-upscale", canvas: { width: 256, height: 192 }, upscale: { factor: 2 } });
    expect(submit.job.selection ?? null).toBeNull();
    const jobId = (await lastUpload()).job_id;
    const tiles = (await received("result")).filter((m) => m.job_id === jobId);
    expect(tiles.length).toBe(tiles[0].upscale.tiles);
    expect(tiles[0].upscale.layer).toEqual({ x: 0, y: 0, width: 512, height: 384 });
    expect(whole.parent).toBe("Board");
    expect([whole.x, whole.y, whole.width, whole.height]).toEqual([40, 60, 256, 192]); // over the image, same design size
    expect(whole.pixels).toEqual({ width: 512, height: 384 }); // twice the pixels in its fill

    await recordWire();
    await page.evaluate(() => (window as any).select("Photo", "Mask"));
    await waitFor("inpaint summary", async () => (await sidebar()).selection.startsWith("Inpaint"));
    await ui.click("#upscale-upscale");
    const region = await waitFor("the region's upscale node", async () => {
      const nodes = await page.evaluate(() => (window as any).created());
      return nodes.length > before + 1 ? nodes.at(-1) : null;
    }, 60000);
    const job = (await lastSubmit()).submit.job;
    expect(job.selection).toEqual({ x: 80, y: 50, width: 64, height: 48 });
    const layer = (await received("result")).at(-1).upscale.layer;
    expect(layer).toEqual({ x: 160, y: 100, width: 128, height: 96 });
    expect([region.x, region.y, region.width, region.height]).toEqual([40 + 80, 60 + 50, 64, 48]); // over the region
    expect(region.pixels).toEqual({ width: 128, height: 96 });
    expect(await page.evaluate(() => (window as any).nodeState("Mask"))).toMatchObject({ exists: true });
  });

  it("an upscale past 4096 px fills within Figma's limit, placed exactly, and says it scaled", async () => {
    await recordWire();
    await page.evaluate(() => (window as any).select("Wide photo"));
    await waitFor("img2img summary", async () => (await sidebar()).selection.includes("Wide photo"));
    await ui.evaluate(() => ((document.getElementById("upscale-section") as HTMLDetailsElement).open = true));
    await ui.selectOption("#upscale-upscaler", "classical-upscale");
    await ui.fill("#upscale-factor", "2");
    const before = (await page.evaluate(() => (window as any).created())).length;
    await ui.click("#upscale-upscale");
    const node = await waitFor("the wide upscale node", async () => {
      const nodes = await page.evaluate(() => (window as any).created());
      return nodes.length > before ? nodes.at(-1) : null;
    }, 90000);
    const layer = (await received("result")).at(-1).upscale.layer;
    expect(layer).toEqual({ x: 0, y: 0, width: 4200, height: 120 });
    expect([node.x, node.y, node.width, node.height]).toEqual([0, 2000, 2100, 60]);
    const fit = fitImageSize(4200, 120);
    expect(node.pixels).toEqual({ width: fit.width, height: fit.height });
    expect(node.pixels.width).toBe(4096);
    const notes = await ui.evaluate(() => document.getElementById("notes")!.textContent ?? "");
    expect(notes).toContain("4200×120 px");
    expect(notes).toContain("4096");
  });

  it("upscales with the spandrel model, refine-upscales with a prompt (one undo step, full size) and restores a selection", async () => {
    await ui.selectOption("#scale", "1");
    await page.evaluate(() => (window as any).select("Lone photo"));
    await waitFor("img2img summary", async () => (await sidebar()).selection.includes("Lone photo"));
    await ui.evaluate(() => ((document.getElementById("upscale-section") as HTMLDetailsElement).open = true));
    await ui.fill("#upscale-factor", "2");
    // Upscale with the tiny Real-ESRGAN Compact: one fill of twice the pixels over the image, one undo step
    expect(await ui.locator("#upscale-upscaler option").allTextContents()).toContain(UPSCALER);
    await ui.selectOption("#upscale-upscaler", UPSCALER);
    let undo = await undoCommits();
    const plain = await upscaleAction("#upscale-upscale", "the spandrel upscale node");
    expect(plain.submit.job).toMatchObject({ mode: "upscale", model: UPSCALER, upscale: { factor: 2 } });
    expect(plain.results[0].params).toMatchObject({ mode: "upscale", model: UPSCALER, upscale: { factor: 2, model: UPSCALER } });
    expect([plain.node.x, plain.node.y, plain.node.width, plain.node.height]).toEqual([0, 0, 96, 64]);
    expect(plain.node.pixels).toEqual({ width: 192, height: 128 });
    expect(await undoCommits()).toBe(undo + 1);

    // Refine-upscale: the same upscaler and factor, then tiny-random repaints at 40 % with the prompt
    expect(await ui.locator("#upscale-refiner option").allTextContents()).toContain("tiny-random");
    await ui.selectOption("#upscale-refiner", "tiny-random");
    await ui.fill("#upscale-strength", "40");
    await ui.fill("#upscale-steps", "10");
    await ui.fill("#upscale-prompt", "crisp refined photo");
    undo = await undoCommits();
    const refined = await upscaleAction("#upscale-refine_upscale", "the refine-upscale node");
    expect(refined.submit.job).toMatchObject({
      mode: "refine_upscale",
      model: "tiny-random",
      prompt: "crisp refined photo",
      strength: 0.4,
      steps: 10,
      upscale: { factor: 2, model: UPSCALER },
    });
    // the progress line names the tile and the step within it, as the daemon's progress.tile says
    const last = (await received("progress")).at(-1);
    expect(last.tile).toMatchObject({ stage: "refine", index: last.tile.count, step: last.tile.steps });
    expect(await ui.locator("#upscale-progress").textContent()).toContain(
      `refine_upscale: refining tile ${last.tile.count} of ${last.tile.count}, step ${last.tile.steps} of ${last.tile.steps}`,
    );
    expect(await undoCommits()).toBe(undo + 1); // the whole layer, all its tiles: one step
    expect([refined.node.x, refined.node.y, refined.node.width, refined.node.height]).toEqual([0, 0, 96, 64]);
    expect(refined.node.pixels).toEqual({ width: 192, height: 128 }); // the full-size layer
    expect(refined.results.length).toBe(refined.results[0].upscale.tiles);
    expect(refined.results[0].upscale.layer).toEqual({ x: 0, y: 0, width: 192, height: 128 });
    const side = sidecar(refined.results[0]);
    expect(side.params).toMatchObject({ mode: "refine_upscale", model: "tiny-random", prompt: "crisp refined photo", strength: 0.4, steps: 10 });
    expect(side.params.upscale).toMatchObject({ factor: 2, model: UPSCALER });
    expect(await pixelDigest(refined.node.id)).not.toBe(await pixelDigest(plain.node.id)); // the refine pass painted

    // Restore the ellipse's region of the photo: a layer over it, placed where the daemon says
    await page.evaluate(() => {
      for (const node of (window as any).fake.nodes.values()) if (node.name === "Mask") node.visible = true;
      (window as any).select("Photo", "Mask");
    });
    await waitFor("the inpaint summary", async () => (await sidebar()).selection.startsWith("Inpaint"));
    expect(await ui.locator("#upscale-restorer option").allTextContents()).toContain(RESTORER);
    await ui.selectOption("#upscale-restorer", RESTORER);
    const photo = await pixelDigest("Photo");
    undo = await undoCommits();
    const restored = await upscaleAction("#upscale-restore", "the restored node");
    expect(restored.submit.job).toMatchObject({ mode: "restore", model: RESTORER, selection: { x: 80, y: 50, width: 64, height: 48 } });
    const result = restored.results.at(-1);
    const layer = result.layer;
    expect(result.params).toMatchObject({ mode: "restore", model: RESTORER });
    expect(sidecar(result).params).toMatchObject({ mode: "restore", model: RESTORER });
    expect(restored.node.parent).toBe("Board");
    expect([restored.node.x, restored.node.y, restored.node.width, restored.node.height]).toEqual([40 + layer.x, 60 + layer.y, layer.width, layer.height]);
    expect(restored.node.pixels).toEqual({ width: layer.width, height: layer.height });
    // over the ellipse (image pixels 80..144 x 50..98), on the image
    expect([layer.x <= 80, layer.y <= 50, layer.x + layer.width >= 144, layer.y + layer.height >= 98]).toEqual([true, true, true, true]);
    expect(layer.x >= 0 && layer.y >= 0 && layer.x + layer.width <= 256 && layer.y + layer.height <= 192).toBe(true);
    // outside the selection the layer is clear and the photo untouched; inside, the restored pixels
    expect(await alphaAt(restored.node.id, 0, 0)).toBe(0);
    expect(await alphaAt(restored.node.id, 112 - layer.x, 74 - layer.y)).toBeGreaterThan(200);
    expect(await pixelDigest("Photo")).toBe(photo);
    expect(await undoCommits()).toBe(undo + 1);
  }, 600000);

  it("Refine selection turns a drawn box into a mask node over the image, which then inpaints", async () => {
    await page.evaluate(() => (window as any).select("Object photo", "Drawn box"));
    await waitFor("the selection summary", async () => (await sidebar()).selection.includes("Object photo"));
    await waitFor("the segment models", async () => ui.evaluate(() => Array.from((document.getElementById("segment-model") as HTMLSelectElement).options).some((o) => o.value === "refine")));
    await ui.selectOption("#segment-model", "refine");
    await recordWire();
    await ui.click("#segment-refine");
    const name = "Selection of Object photo";
    const [mask] = await waitFor("the mask node", async () => {
      const nodes = (await page.evaluate(() => (window as any).created())).filter((n: any) => n.name === name);
      return nodes.length > 0 ? nodes : null;
    }, 60000);
    const submit = (await lastSubmit()).submit;
    expect(submit.job).toMatchObject({ mode: "segment", model: "refine", segment: { box: { x: 30, y: 20, width: 60, height: 50 } }, selection: { x: 30, y: 20, width: 60, height: 50 } });
    const [result] = await received("result");
    const layer = result.layer;
    // exactly at the daemon's placement, an isMask node below the image in one group
    expect([mask.x, mask.y, mask.width, mask.height]).toEqual([layer.x, 3000 + layer.y, layer.width, layer.height]);
    expect(mask.isMask).toBe(true);
    expect(mask.parentType).toBe("GROUP");
    expect(mask.siblings).toEqual([name, "Object photo"]);
    // the blue square is selected, the gradient inside the box is not
    expect(await page.evaluate(([n, x, y]) => (window as any).fillAlpha(n, x, y), [name, 60 - layer.x, 45 - layer.y] as const)).toBeGreaterThan(200);
    expect(await page.evaluate(([n, x, y]) => (window as any).fillAlpha(n, x, y), [name, 32 - layer.x, 22 - layer.y] as const)).toBeLessThan(60);
    expect(await page.evaluate(() => (window as any).nodeState("Drawn box"))).toMatchObject({ visible: false });

    // the mask node and the image stay selected: Generate inpaints the selected object
    await waitFor("the inpaint summary", async () => (await sidebar()).selection.startsWith("Inpaint"));
    await ui.selectOption("#model", "classical");
    await recordWire();
    await ui.click("#generate");
    const [filled] = await waitFor("the inpainted node", async () => {
      const nodes = (await page.evaluate(() => (window as any).created())).filter((n: any) => n.name !== name && n.parent === "Object photo (selected object)");
      return nodes.length > 0 ? nodes : null;
    }, 60000);
    const inpaint = (await lastSubmit()).submit.job;
    expect(inpaint.mode).toBe("inpaint");
    expect(inpaint.selection).toEqual({ x: layer.x, y: layer.y, width: layer.width, height: layer.height });
    const [painted] = await received("result");
    expect([filled.x, filled.y]).toEqual([painted.layer.x, 3000 + painted.layer.y]);
  });

  it("previews a batch first: one preview node, image k of n, Apply lands what a direct landing would, one undo step", async () => {
    await ui.uncheck("#land-directly");
    await waitFor("the setting in clientStorage", async () => (await page.evaluate(() => (window as any).fake.storage.get("underpaint-settings"))).landDirectly === false);
    // the user unhides the mask shape (an earlier landing hid it) to paint again
    await page.evaluate(() => {
      for (const node of (window as any).fake.nodes.values()) if (node.name === "Mask") node.visible = true;
    });
    await page.evaluate(() => (window as any).select("Photo", "Mask"));
    await waitFor("the inpaint summary", async () => (await sidebar()).selection.startsWith("Inpaint"));
    // the classical engine (quick on a loaded machine); it ignores (disables) the prompt, set first
    await ui.selectOption("#model", "tiny-random");
    await ui.fill("#prompt", "previewed");
    await ui.selectOption("#model", "classical");
    await ui.selectOption("#scale", "1");
    await ui.fill("#batch", "2");
    const before = (await received("result")).length;
    const createdBefore = (await page.evaluate(() => (window as any).created())).length;
    const undoBefore: number = await page.evaluate(() => (window as any).undoCommits());
    await ui.click("#generate");
    const previews = async (): Promise<any[]> =>
      (await page.evaluate(() => (window as any).created())).filter((n: any) => n.name.startsWith("[preview"));
    const [first] = await waitFor("the preview node", async () => ((await previews()).length === 1 ? previews() : null), 120000);
    await waitFor("the preview bar", async () => (await ui.textContent("#staged-label")) === "image 1 of 2");
    expect(await ui.isVisible("#staged")).toBe(true);
    expect(await ui.isVisible("#apply-all")).toBe(true);
    const results = (await received("result")).slice(before).sort((a, b) => a.index - b.index);
    expect(results).toHaveLength(2);
    expect(first.name).toBe(`[preview 1/2] ${results[0].layer.name}`);
    expect(first.parent).toBe("Board");
    expect([first.x, first.y, first.width, first.height]).toEqual([40 + results[0].layer.x, 60 + results[0].layer.y, results[0].layer.width, results[0].layer.height]);
    // shown, not landed: the mask shape is as the user drew it, nothing else was created, no undo step yet
    const order: string[] = await page.evaluate(() => (window as any).fake.page.children[0].children.map((n: any) => n.name));
    expect(order.indexOf(first.name)).toBeGreaterThan(order.indexOf("Mask"));
    expect(await page.evaluate(() => (window as any).nodeState("Mask"))).toMatchObject({ visible: true });
    expect((await page.evaluate(() => (window as any).created())).length).toBe(createdBefore + 1);
    expect(await page.evaluate(() => (window as any).undoCommits())).toBe(undoBefore);
    mkdirSync(join(repo, "artifacts"), { recursive: true });
    await ui.evaluate(() => document.getElementById("staged")!.scrollIntoView({ block: "center" }));
    await page.locator("#plugin-ui").screenshot({ path: join(repo, "artifacts/figma-preview.png") });
    // step to the second image: the same node, refilled
    await ui.click("#staged-next");
    await waitFor("image 2 of 2", async () => (await ui.textContent("#staged-label")) === "image 2 of 2");
    const [second] = await waitFor("the refilled preview", async () => {
      const nodes = await previews();
      return nodes.length === 1 && nodes[0].name === `[preview 2/2] ${results[1].layer.name}` ? nodes : null;
    });
    expect(second.id).toBe(first.id);
    // Apply: the preview goes, the second image lands as a direct landing would (over its region, right above the image, mask hidden)
    await ui.click("#apply");
    const landed = await waitFor("the applied result", async () =>
      (await page.evaluate(() => (window as any).created())).find((n: any) => n.name === results[1].layer.name),
    );
    expect(await previews()).toEqual([]);
    expect(landed.parent).toBe("Board");
    expect([landed.x, landed.y, landed.width, landed.height]).toEqual([40 + results[1].layer.x, 60 + results[1].layer.y, results[1].layer.width, results[1].layer.height]);
    expect(landed.pixels).toEqual({ width: results[1].layer.width, height: results[1].layer.height });
    const after: string[] = await page.evaluate(() => (window as any).fake.page.children[0].children.map((n: any) => n.name));
    expect(after.indexOf(landed.name)).toBe(after.indexOf("Photo") + 1);
    expect(await page.evaluate(() => (window as any).nodeState("Mask"))).toMatchObject({ visible: false });
    expect((await page.evaluate(() => (window as any).created())).length).toBe(createdBefore + 1);
    expect(await page.evaluate(() => (window as any).undoCommits())).toBe(undoBefore + 1);
    expect(await ui.isHidden("#staged")).toBe(true);
    await waitFor("the placed status", async () => (await sidebar()).status.startsWith("Placed the result"));
  }, 240000);

  it("Discard removes the preview and leaves the document as it was", async () => {
    await page.evaluate(() => (window as any).select("Photo", "Mask"));
    await waitFor("the inpaint summary", async () => (await sidebar()).selection.startsWith("Inpaint"));
    await ui.selectOption("#model", "tiny-random");
    await ui.fill("#prompt", "discarded");
    await ui.selectOption("#model", "classical");
    await ui.fill("#batch", "1");
    const tree = await page.evaluate(() => (window as any).tree());
    const undoBefore: number = await page.evaluate(() => (window as any).undoCommits());
    await ui.click("#generate");
    await waitFor("the preview bar", async () => (await ui.textContent("#staged-label")) === "image 1 of 1", 120000);
    expect(await ui.isHidden("#apply-all")).toBe(true);
    expect(await ui.isDisabled("#staged-next")).toBe(true);
    await waitFor("the preview node", async () => JSON.stringify(await page.evaluate(() => (window as any).tree())).includes("[preview 1/1] discarded"));
    await ui.click("#discard");
    await waitFor("the document as it was", async () => JSON.stringify(await page.evaluate(() => (window as any).tree())) === JSON.stringify(tree));
    expect(await ui.isHidden("#staged")).toBe(true);
    expect((await sidebar()).status).toContain("Discarded");
    expect(await page.evaluate(() => (window as any).undoCommits())).toBeLessThanOrEqual(undoBefore + 1);
  }, 240000);

  it("history: a CLI job under the plugin's client id, made while the sidebar was closed, is listed, re-applied and reused", async () => {
    const clientId: string = (await page.evaluate(() => (window as any).fake.storage.get("underpaint-settings"))).clientId;
    await page.evaluate(() => (window as any).closeUi());
    const seed = 3000000061; // over 2^31: no host field may clamp it
    const cli = spawnSync(
      python,
      ["-m", "underpaint", "generate", "txt2img", "--server", `ws://localhost:${daemonPort}`, "--token", token, "--client-id", clientId,
        "--width", "64", "--height", "48", "--prompt", "from the cli", "--model", "tiny-random", "--steps", "3", "--seed", String(seed),
        "--out", join(tmp, "cli.png")],
      { cwd: repo, encoding: "utf8", timeout: 180000, env: { ...process.env, HF_HUB_OFFLINE: "1" } },
    );
    expect(cli.status, `${cli.stdout}\n${cli.stderr}`).toBe(0);
    await page.evaluate(() => (window as any).openAgain());
    await reopenedSidebar();
    const row = ui.locator("#history li", { hasText: "from the cli" });
    await waitFor("the CLI job in the history, with its thumbnail and seed", async () =>
      (await row.count()) === 1 && (await row.locator("img.thumb").count()) === 1 && ((await row.textContent()) ?? "").includes(`seed ${seed}`),
    );
    expect(await row.textContent()).toContain("txt2img · tiny-random");
    // the sidebar's own jobs are there too (this client id's, newest first)
    const rows = await ui.locator("#history li").allTextContents();
    expect(rows[0]).toContain("from the cli");
    expect(rows.some((text) => text.includes("previewed"))).toBe(true);
    // the outputs folder: a path to copy (a browser plugin cannot open folders)
    expect(await ui.isVisible("#outputs")).toBe(true);
    expect(await ui.inputValue("#outputs")).toBe(join(tmp, "outputs"));
    await ui.click("#outputs-copy");
    expect((await sidebar()).status).toMatch(/Copied the outputs folder's path|The path is selected/);
    // re-apply over the 64x48 frame it fits: exactly over it
    await page.evaluate(() => (window as any).select("Empty"));
    const createdBefore = (await page.evaluate(() => (window as any).created())).length;
    await row.locator("button.reapply").click();
    const node = await waitFor("the re-applied result", async () =>
      (await page.evaluate(() => (window as any).created())).find((n: any) => n.name.startsWith("from the cli")),
    );
    expect([node.x, node.y, node.width, node.height]).toEqual([600, 40, 64, 48]);
    expect(node.pixels).toEqual({ width: 64, height: 48 });
    expect((await page.evaluate(() => (window as any).created())).length).toBe(createdBefore + 1);
    // reuse: its parameters into the fields, the seed locked as it was
    await row.locator("button.reuse").click();
    expect(await ui.inputValue("#prompt")).toBe("from the cli");
    expect(await ui.inputValue("#seed")).toBe(String(seed));
    expect(await ui.isChecked("#seed-lock")).toBe(true);
    expect(await ui.inputValue("#steps")).toBe("3");
    expect(await ui.inputValue("#model")).toBe("tiny-random");
    // and Generate sends exactly that seed (the re-applied result is selected now: select the frame again)
    await page.evaluate(() => (window as any).select("Empty"));
    await waitFor("txt2img summary", async () => (await sidebar()).selection.startsWith("txt2img"));
    await recordWire();
    await ui.click("#generate");
    await waitFor("the preview of the reused job", async () => (await ui.textContent("#staged-label")) === "image 1 of 1", 240000);
    const { submit } = await lastSubmit();
    expect(submit.job).toMatchObject({ mode: "txt2img", seed, steps: 3, prompt: "from the cli" });
    const result = (await received("result")).at(-1);
    expect(result.params.seed).toBe(seed);
    await ui.click("#discard");
    await ui.uncheck("#seed-lock");
    await ui.fill("#steps", "");
    // an upscale's row (the newest classical one: the 4200 px wide layer): the fetch's tiles drawn into
    // one fill within Figma's limit; re-applied as one node of the scaled canvas's pixels
    const upscaled = ui.locator("#history li", { hasText: "upscale · classical-upscale" }).first();
    await waitFor("the upscale's thumbnail", async () => (await upscaled.locator("img.thumb").count()) === 1, 60000);
    expect(await upscaled.textContent()).not.toContain("images");
    const before = (await page.evaluate(() => (window as any).created())).length;
    await upscaled.locator("button.reapply").click();
    const again = await waitFor("the re-applied upscale", async () => {
      const nodes = await page.evaluate(() => (window as any).created());
      return nodes.length > before ? nodes.at(-1) : null;
    }, 60000);
    expect((await page.evaluate(() => (window as any).created())).length).toBe(before + 1);
    expect([again.width, again.height]).toEqual([4200, 120]);
    expect(again.pixels).toEqual({ width: 4096, height: fitImageSize(4200, 120).height });
  }, 540000);

  it("prompt library: a style saved in the sidebar runs, Prompt from image fills the prompt, Reuse parameters reads PNGs", async () => {
    await ui.check("#land-directly");
    await page.evaluate(() => {
      for (const node of (window as any).fake.nodes.values()) if (node.name === "Mask") node.visible = true;
    });
    await page.evaluate(() => (window as any).select("Photo", "Mask"));
    await waitFor("the inpaint summary", async () => (await sidebar()).selection.startsWith("Inpaint"));
    await waitFor("the daemon's styles", async () => (await ui.locator("#style option").allTextContents()).includes("Photograph"));
    // Save: the prompt field becomes the style's template
    await ui.selectOption("#model", "tiny-random");
    await ui.fill("#prompt", "figma look of {prompt}");
    await ui.fill("#negative", "");
    await ui.fill("#style-name", "Figma e2e");
    await ui.click("#style-save");
    await waitFor("the saved style chosen", async () => (await ui.inputValue("#style")) === "Figma e2e");
    expect(await ui.isEnabled("#style-rename")).toBe(true);
    // Generate names it; the result's params hold the resolved prompt and what the user typed
    await ui.fill("#prompt", "a styled ball");
    await ui.selectOption("#model", "classical");
    await ui.fill("#batch", "1");
    await recordWire();
    await ui.click("#generate");
    const [result] = await waitFor("the styled result", async () => {
      const found = await received("result");
      return found.length > 0 ? found : null;
    }, 120000);
    expect((await lastSubmit()).submit.job.style).toBe("Figma e2e");
    expect(result.params).toMatchObject({ prompt: "figma look of a styled ball", user_prompt: "a styled ball", style: "Figma e2e" });
    await waitFor("the placed status", async () => (await sidebar()).status.startsWith("Placed"));
    // the recent prompts start with it
    await waitFor("the recent prompt", async () => ((await ui.locator("#recent option").first().textContent()) ?? "") === "a styled ball [Figma e2e]");

    // Prompt from image: the selected image and its mask go to the daemon's (tiny) interrogator
    await page.evaluate(() => {
      for (const node of (window as any).fake.nodes.values()) if (node.name === "Mask") node.visible = true;
    });
    await page.evaluate(() => (window as any).select("Photo", "Mask"));
    await waitFor("the inpaint summary", async () => (await sidebar()).selection.startsWith("Inpaint"));
    await ui.selectOption("#model", "tiny-random"); // the classical engine disables the prompt field
    await ui.fill("#prompt", "");
    await ui.click("#describe");
    const described = await waitFor("the described prompt", async () => (await ui.inputValue("#prompt")) || null, 120000);
    const [answer] = await received("interrogated");
    expect(described).toBe(answer.prompt);
    expect(described).toContain(answer.terms.mediums[0]);
    const sent = await ui.evaluate(() => (window as any).__wire.sent.find((m: any) => m.text?.type === "interrogate")?.text);
    expect(sent.image.format).toBe("png");
    expect(sent.mask).toBeTruthy();
    expect((await sidebar()).error).toBe("");

    // Reuse parameters: our result's PNG gives what the user typed, its style and seed (locked)
    await waitFor("the result's PNG on disk", async () => existsSync(result.output)); // written after the result
    const ours = readFileSync(result.output);
    await ui.setInputFiles("#reuse-file", { name: "ours.png", mimeType: "image/png", buffer: ours });
    await waitFor("our parameters", async () => (await ui.inputValue("#prompt")) === "a styled ball");
    expect(await ui.inputValue("#style")).toBe("Figma e2e");
    expect(await ui.inputValue("#seed")).toBe(String(result.params.seed));
    expect(await ui.isChecked("#seed-lock")).toBe(true);
    // and an A1111 PNG its prompt, negative prompt, steps and seed; no style
    const a1111 = await a1111Png("a red boat\nNegative prompt: fog\nSteps: 12, Sampler: Euler a, CFG scale: 5, Seed: 77");
    await ui.setInputFiles("#reuse-file", { name: "a1111.png", mimeType: "image/png", buffer: a1111 });
    await waitFor("the A1111 parameters", async () => (await ui.inputValue("#prompt")) === "a red boat");
    expect([await ui.inputValue("#negative"), await ui.inputValue("#steps"), await ui.inputValue("#seed")]).toEqual(["fog", "12", "77"]);
    expect(await ui.inputValue("#style")).toBe("");
    // a PNG without parameters: said, nothing changed
    await ui.setInputFiles("#reuse-file", { name: "plain.png", mimeType: "image/png", buffer: Buffer.from(await testImage(8, 8)) });
    await waitFor("the no-parameters error", async () => (await sidebar()).error.includes("no generation parameters"));
    expect(await ui.inputValue("#prompt")).toBe("a red boat");
    await ui.selectOption("#model", "tiny-random");
    await ui.uncheck("#seed-lock");
    await ui.fill("#steps", "");
    await ui.fill("#negative", "");
  }, 300000);

  it("a LoRA from the picker: listed with its trigger word, added to the prompt, its weight in the sidecar; the same seed without it differs", async () => {
    await ui.check("#land-directly");
    await ui.selectOption("#model", "tiny-random");
    await ui.selectOption("#style", "");
    // listed with its trigger words, the most frequent training tag first
    await waitFor("the daemon's LoRAs", async () => (await ui.locator("#lora option").allTextContents()).some((label) => label.startsWith(`${LORA} — ${LORA_TRIGGER}`)));
    await ui.check("#seed-lock");
    await ui.fill("#seed", "43");
    await ui.fill("#steps", "2");
    await ui.fill("#batch", "1");
    const runs: { submit: any; result: any; digest: string }[] = [];
    for (const withLora of [false, true]) {
      await ui.fill("#prompt", `a ball, ${LORA_TRIGGER}`); // the trigger word both times: only the LoRA differs
      if (withLora) {
        await ui.selectOption("#lora", LORA);
        await ui.fill("#lora-weight", "0.7");
        await ui.click("#lora-add");
        expect(await ui.inputValue("#prompt")).toBe(`a ball, ${LORA_TRIGGER} <lora:${LORA}:0.7>`);
      }
      await page.evaluate(() => {
        for (const node of (window as any).fake.nodes.values()) if (node.name === "Mask") node.visible = true; // a landing hid it
        (window as any).select("Photo", "Mask");
      });
      await waitFor("the inpaint summary", async () => (await sidebar()).selection.startsWith("Inpaint"));
      await recordWire();
      await ui.click("#generate");
      const result = await waitFor("the result", async () => (await received("result")).at(-1), 240000);
      const node = await waitFor("its node", async () =>
        (await page.evaluate(() => (window as any).created())).find((n: any) => n.name === result.layer.name),
      );
      runs.push({ submit: (await lastSubmit()).submit, result, digest: await pixelDigest(node.id) });
      await page.evaluate((id) => (window as any).fake.nodes.get(id).remove(), node.id);
    }
    const [plain, styled] = runs;
    expect(styled.submit.job.prompt).toBe(`a ball, ${LORA_TRIGGER} <lora:${LORA}:0.7>`);
    expect(plain.result.params.loras).toEqual([]);
    expect(sidecar(styled.result).params).toMatchObject({ seed: 43, prompt: `a ball, ${LORA_TRIGGER}`, loras: [{ name: LORA, weight: 0.7 }] });
    expect(sidecar(plain.result).params).toMatchObject({ seed: 43, prompt: `a ball, ${LORA_TRIGGER}`, loras: [] });
    expect(styled.digest).not.toBe(plain.digest); // the LoRA changed the picture
    await ui.fill("#prompt", "");
    await ui.uncheck("#seed-lock");
    await ui.fill("#steps", "");
  }, 540000);
  it("a node picked as a control layer, and a node as a reference, guide an inpaint: the job carries each, and the same seed without them differs", async () => {
    // a hidden node of white lines over the photo, picked in the sidebar's section
    await page.evaluate(() => {
      const fake = (window as any).fake;
      const board = [...fake.nodes.values()].find((n: any) => n.name === "Board");
      const lines = fake.shape("RECTANGLE", "Control lines", 60, 90, 150, 10, board);
      lines.fills = [{ type: "SOLID", color: { r: 1, g: 1, b: 1 } }];
      lines.visible = false;
    });
    await ui.check("#land-directly"); // results land at once (the preview scenarios turned that off)
    await ui.selectOption("#model", "tiny-random");
    await ui.fill("#prompt", "guided");
    await ui.check("#seed-lock");
    await ui.fill("#seed", "41");
    await ui.fill("#steps", "2");
    await ui.fill("#batch", "1");
    await ui.selectOption("#scale", "1");
    const runs: { submit: any; frames: any[]; image: string; result: any; digest: string }[] = [];
    for (const guide of ["none", "control", "reference"] as const) {
      if (guide === "control") {
        await page.evaluate(() => (window as any).select("Control lines"));
        await waitFor("the node to add", async () => (await ui.getAttribute("#guides-add-control", "title"))?.includes('"Control lines"'));
        await ui.click("#guides-section > summary");
        expect(await ui.textContent("#guides-hint")).toBe("tiny-random takes control layers: canny edges; references.");
        await ui.click("#guides-add-control");
        await ui.selectOption("#guide-kind-0", "canny");
        await ui.fill("#guide-strength-0", "90");
        await ui.uncheck("#guide-preprocess-0"); // the lines are the canny input as they are
      }
      if (guide === "reference") {
        // the control goes; another image becomes the reference
        await ui.click("#guide-remove-0");
        await page.evaluate(() => (window as any).select("Object photo"));
        await waitFor("the node to add", async () => (await ui.getAttribute("#guides-add-reference", "title"))?.includes('"Object photo"'));
        await ui.click("#guides-add-reference");
        expect(await ui.textContent("#guides-rows")).toContain("Reference: Object photo");
        await ui.selectOption("#reference-take-0", "both");
        await ui.fill("#reference-weight-0", "80");
      }
      await page.evaluate(() => {
        for (const node of (window as any).fake.nodes.values()) if (node.name === "Mask") node.visible = true; // a landing hid it
        (window as any).select("Photo", "Mask");
      });
      await waitFor("the inpaint summary", async () => (await sidebar()).selection.startsWith("Inpaint"));
      expect(await ui.textContent("#plan")).toContain("inpaint");
      await recordWire();
      await ui.click("#generate");
      const result = await waitFor("the result", async () => (await received("result")).at(-1), 240000);
      const node = await waitFor("its node", async () =>
        (await page.evaluate(() => (window as any).created())).find((n: any) => n.name === result.layer.name),
      );
      const { submit, frames } = await lastSubmit();
      const image = Array.from(await framePayload(0)).join(",");
      runs.push({ submit, frames, image, result, digest: await pixelDigest(node.id) });
      await page.evaluate((id) => (window as any).fake.nodes.get(id).remove(), node.id);
    }
    const [plain, guided, referenced] = runs;
    expect(plain.submit.job.controls).toBeUndefined();
    expect(plain.submit.job.references).toBeUndefined();
    expect(guided.submit.job.controls).toEqual([{ kind: "canny", strength: 0.9, start: 0, end: 1, preprocess: false }]);
    // the control frame follows the image and mask, cut to the planned control rectangle
    expect(guided.frames.map((f) => f.header.id)).toEqual([guided.submit.image.id, guided.submit.mask.id, guided.submit.controls[0].id]);
    expect([guided.submit.controls[0].width, guided.submit.controls[0].height]).toEqual([guided.submit.region.width, guided.submit.region.height]);
    expect(plain.image).toBe(guided.image); // all started from the same pixels
    expect(plain.image).toBe(referenced.image);
    for (const run of runs) expect(run.result.params.seed).toBe(41);
    expect(plain.result.params.controls).toEqual([]);
    expect(guided.result.params.controls).toEqual(guided.submit.job.controls);
    expect(guided.result.params.engine_params.controls).toEqual([CONTROL]);
    expect(plain.digest).not.toBe(guided.digest); // the control layer changed the result
    // the reference: the whole node (160 x 120 px) after the image and mask, listed in the sidecar
    expect(referenced.submit.job.controls).toBeUndefined();
    expect(referenced.submit.job.references).toEqual([{ take: "both", weight: 0.8 }]);
    expect(referenced.frames.map((f) => f.header.id)).toEqual([referenced.submit.image.id, referenced.submit.mask.id, referenced.submit.references[0].id]);
    expect([referenced.submit.references[0].width, referenced.submit.references[0].height]).toEqual([160, 120]);
    expect(sidecar(referenced.result).params).toMatchObject({ seed: 41, references: [{ take: "both", weight: 0.8 }], controls: [] });
    expect(sidecar(plain.result).params.references).toEqual([]);
    expect(referenced.digest).not.toBe(plain.digest); // the reference changed the result
    await ui.click("#reference-remove-0");
    expect(await ui.locator("#guides-rows > *").count()).toBe(0);
    await ui.click("#guides-section > summary");
    await ui.uncheck("#seed-lock");
    await ui.fill("#steps", "");
    await ui.uncheck("#land-directly");
  }, 720000);

  it("paints live: the frame's pixels stream, results fill ONE node above it, a dab gives a newer one, Apply copies it, Live off removes it", async () => {
    await page.evaluate(() => (window as any).select("Empty"));
    await waitFor("txt2img summary", async () => (await sidebar()).selection.startsWith("txt2img"));
    await ui.selectOption("#model", "tiny-random");
    await ui.fill("#prompt", "live");
    await ui.fill("#steps", "1");
    await ui.check("#seed-lock");
    await ui.fill("#seed", "5");
    await ui.evaluate(() => ((document.getElementById("live-section") as HTMLDetailsElement).open = true));
    await recordWire();
    const undoBefore: number = await page.evaluate(() => (window as any).undoCommits());
    const empty = await page.evaluate(() => (window as any).nodeState("Empty"));
    await ui.click("#live-toggle");
    const liveNodes = async (): Promise<any[]> =>
      (await page.evaluate(() => (window as any).created())).filter((n: any) => n.name.startsWith("Live"));
    const [first] = await waitFor("the live node", async () => ((await liveNodes()).length === 1 ? liveNodes() : null), 240000);
    const started = (await received("live_started"))[0];
    expect(started).toMatchObject({ region: { x: 0, y: 0, width: 64, height: 48 }, seed: 5, model: "tiny-random" });
    const frames = async (): Promise<any[]> =>
      ui.evaluate(() => (window as any).__wire.sent.filter((m: any) => m.text?.type === "live_frame").map((m: any) => m.text));
    expect((await frames())[0]).toMatchObject({ seq: 1, rect: { x: 0, y: 0, width: 64, height: 48 } });
    expect(first.siblings.indexOf(first.name)).toBe(first.siblings.indexOf("Empty") + 1); // right above the frame
    expect([first.x, first.y]).toEqual([empty.x, empty.y]);
    // the artist paints a dab: one frame of the dab's rectangle only, and a newer picture in the SAME node
    await page.evaluate(() => (window as any).dab("Empty", 20, 10, 8, 6));
    const newer = await waitFor(
      "a newer live result",
      async () => {
        const results = await received("live_result");
        return results.length > 0 && results.at(-1).seq >= 2 ? results.at(-1) : null;
      },
      240000,
    );
    const dabFrame = (await frames())[1];
    expect(dabFrame).toMatchObject({ seq: 2, rect: { x: 20, y: 10, width: 8, height: 6 } });
    expect(newer.session_id).toBe(started.session_id);
    const [again] = await waitFor("the refilled live node", async () => {
      const nodes = await liveNodes();
      return nodes.length === 1 ? nodes : null;
    });
    expect(again.id).toBe(first.id);
    await waitFor("the live status", async () => /^Live: frame \d+/.test((await ui.textContent("#live-status")) ?? ""));
    expect(await page.evaluate(() => (window as any).undoCommits())).toBe(undoBefore); // showing results: no undo steps
    // Apply: a normal (unlocked) copy right below the live node, one undo step
    await ui.click("#live-apply");
    const applied = await waitFor("the applied copy", async () => {
      const nodes = (await page.evaluate(() => (window as any).created())).filter((n: any) => n.name === "live [seed 5]");
      return nodes.length === 1 ? nodes[0] : null;
    });
    expect([applied.x, applied.y, applied.width, applied.height]).toEqual([again.x, again.y, again.width, again.height]);
    expect(await page.evaluate(() => (window as any).undoCommits())).toBe(undoBefore + 1);
    // Live off: the live node goes, the session ends in the daemon, the frame keeps what the artist painted
    await ui.click("#live-toggle");
    await waitFor("the live node removed", async () => (await liveNodes()).length === 0);
    await waitFor("live_stopped", async () => (await received("live_stopped")).length === 1);
    expect(await ui.textContent("#live-status")).toBe("Live is off.");
    expect(await page.evaluate(() => (window as any).nodeState("Empty"))).toEqual(empty);
    expect(await page.evaluate(() => (window as any).nodeState("Dab"))).toMatchObject({ exists: true, visible: true });
    await ui.uncheck("#seed-lock");
    await ui.fill("#steps", "");
  }, 600000);

  it("saves a screenshot of the sidebar at the size Figma opens it", async () => {
    const size = await page.evaluate(() => (window as any).fake.uiOptions.options);
    expect([size.width, size.height]).toEqual([340, 760]);
    await page.evaluate(([w, h]) => (window as any).sizeUi(w, h), [size.width, size.height]);
    await ui.evaluate(() => window.scrollTo(0, 0));
    mkdirSync(join(repo, "artifacts"), { recursive: true });
    await page.locator("#plugin-ui").screenshot({ path: join(repo, "artifacts/figma-sidebar.png") });
    // nothing in the sidebar is wider than it: no sideways scrolling
    expect(await ui.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth)).toBe(true);
    await ui.evaluate(() => document.getElementById("history")!.scrollIntoView({ block: "center" }));
    await page.locator("#plugin-ui").screenshot({ path: join(repo, "artifacts/figma-history.png") });
  });
});
