/**
 * The e2e host page's script: plays Figma. It installs the fake `figma` global for code.js, builds a
 * scene with real PNG pixels, and bridges messages between the main thread and the sandboxed UI
 * iframe exactly as Figma does ({pluginMessage} objects through postMessage).
 */

import { FakeFigma, type FakeNode } from "../fake-figma";
import { decodePng } from "../../src/shared/png";
import { testImage } from "../helpers";

const fake = new FakeFigma();
fake.install(window);
const w = window as unknown as Record<string, unknown>;
w.fake = fake;

const byName = (name: string): FakeNode => {
  const node = [...fake.nodes.values()].find((n) => n.name === name);
  if (!node) throw new Error(`no node ${name}`);
  return node;
};

w.setupScene = async (settings: unknown) => {
  if (settings) await fake.figma.clientStorage.setAsync("underpaint-settings", settings);
  const board = fake.frame("Board", 1000, 500, 400, 300);
  fake.imageNode("Photo", await testImage(256, 192), 40, 60, 256, 192, board);
  fake.shape("ELLIPSE", "Mask", 120, 110, 64, 48, board);
  fake.imageNode("Lone photo", await testImage(96, 64), 0, 0, 96, 64);
  fake.frame("Empty", 600, 40, 64, 48);
  // A large image with a small shape on it: the upload must be the daemon's small crop, not the image.
  fake.imageNode("Big photo", await testImage(1200, 900), 0, 1000, 1200, 900);
  fake.shape("ELLIPSE", "Dot", 700, 1500, 40, 30);
  // Over 2048 design units wide: at 2x its results pass Figma's 4096 px limit.
  fake.imageNode("Wide photo", await testImage(2100, 60), 0, 2000, 2100, 60);
  // A moderate empty frame for a slow txt2img to cancel.
  fake.frame("Slow", 700, 40, 320, 240);
  // A rectangle drawn around the blue square (image pixels 40..80 x 30..60) for "Refine selection".
  fake.imageNode("Object photo", await testImage(160, 120), 0, 3000, 160, 120);
  fake.shape("RECTANGLE", "Drawn box", 30, 3020, 60, 50);
};

w.select = (...names: string[]) => {
  fake.figma.currentPage.selection = names.map(byName);
};

w.openUi = () => {
  const iframe = document.createElement("iframe");
  iframe.id = "plugin-ui";
  iframe.setAttribute("sandbox", "allow-scripts");
  iframe.src = "/ui.html";
  iframe.style.cssText = "width:340px;height:1200px;border:1px solid #ccc;display:block";
  fake.onUiMessage = (message) => iframe.contentWindow?.postMessage({ pluginMessage: message }, "*");
  window.addEventListener("message", (event) => {
    if (event.source !== iframe.contentWindow) return;
    const data = event.data as { pluginMessage?: unknown } | null;
    if (data && data.pluginMessage !== undefined) fake.fromUi(data.pluginMessage);
  });
  document.body.append(iframe);
};

/** Close the sidebar and open it again, as a user closing and relaunching the plugin would. */
w.reopenUi = () => {
  const iframe = document.getElementById("plugin-ui") as HTMLIFrameElement;
  iframe.src = "about:blank";
  setTimeout(() => {
    iframe.src = "/ui.html";
  }, 50);
};

/** The nodes the plugin created, with geometry and the decoded size of their image fill. */
w.created = async () => {
  const out = [];
  for (const node of fake.nodes.values()) {
    const fill = node.fills.find((f) => f.type === "IMAGE");
    if (!fill || ["Photo", "Lone photo", "Big photo", "Wide photo", "Object photo"].includes(node.name)) continue;
    const image = fake.images.get(fill.imageHash)!;
    const decoded = await decodePng(image.bytes);
    out.push({
      id: node.id,
      name: node.name,
      parent: node.parent?.name,
      parentType: node.parent?.type,
      grandparent: node.parent?.parent?.name,
      x: node.x,
      y: node.y,
      width: node.width,
      height: node.height,
      pixels: { width: decoded.width, height: decoded.height },
      isMask: (node as unknown as { isMask?: boolean }).isMask === true,
      siblings: node.parent?.children.map((n) => n.name),
    });
  }
  return out;
};

w.nodeState = (name: string) => {
  const node = byName(name);
  return { visible: node.visible, exists: !node.removed, x: node.x, y: node.y, width: node.width, height: node.height };
};

/** The artist paints: a small red rectangle inside the frame `name` (frame coordinates). */
w.dab = (name: string, x: number, y: number, width: number, height: number) => {
  fake.shape("RECTANGLE", "Dab", x, y, width, height, byName(name));
};

w.undoCommits = () => fake.undoCommits;
w.pageNames = () => fake.page.children.map((n) => n.name);

/** The whole page as names, visibility, geometry and fills: what "the document is unchanged" compares. */
w.tree = () => {
  const walk = (node: FakeNode): unknown => ({
    id: node.id,
    name: node.name,
    visible: node.visible,
    box: [node.x, node.y, node.width, node.height],
    fills: JSON.stringify(node.fills),
    children: node.children.map(walk),
  });
  return walk(fake.page);
};

/** Close the sidebar (the plugin's window) without reopening it; `openAgain` brings it back. */
w.closeUi = () => {
  (document.getElementById("plugin-ui") as HTMLIFrameElement).src = "about:blank";
};
w.openAgain = () => {
  (document.getElementById("plugin-ui") as HTMLIFrameElement).src = "/ui.html";
};

/** The sidebar at the size Figma opens it (code.ts's showUI), or the test's taller one. */
w.sizeUi = (width: number, height: number) => {
  const iframe = document.getElementById("plugin-ui") as HTMLIFrameElement;
  iframe.style.width = `${width}px`;
  iframe.style.height = `${height}px`;
};

/** The alpha of a node's image fill at a pixel of that image. */
w.fillAlpha = async (name: string, x: number, y: number) => {
  const fill = byName(name).fills.find((f) => f.type === "IMAGE");
  const decoded = await decodePng(fake.images.get(fill.imageHash)!.bytes);
  return decoded.data[(y * decoded.width + x) * 4 + 3];
};

/** A node by id, else by name (the plugin's result nodes share names). */
const byIdOrName = (key: string): FakeNode => fake.nodes.get(key) ?? byName(key);

/** SHA-256 of a node's decoded image-fill pixels (RGBA) with its size: equal pictures, equal digests. */
w.pixelDigest = async (key: string) => {
  const fill = byIdOrName(key).fills.find((f) => f.type === "IMAGE");
  const decoded = await decodePng(fake.images.get(fill.imageHash)!.bytes);
  const hash = await crypto.subtle.digest("SHA-256", new Uint8Array(decoded.data));
  const hex = Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, "0")).join("");
  return `${decoded.width}x${decoded.height}:${hex}`;
};

/** The alpha of a node's image fill (by id or name) at a pixel of that image. */
w.alphaAt = async (key: string, x: number, y: number) => {
  const fill = byIdOrName(key).fills.find((f) => f.type === "IMAGE");
  const decoded = await decodePng(fake.images.get(fill.imageHash)!.bytes);
  return decoded.data[(y * decoded.width + x) * 4 + 3];
};
