import { beforeEach, describe, expect, it, vi } from "vitest";
import type { FakeFigma, FakeNode } from "./fake-figma";
import { at, installFake, pixels, testImage } from "./helpers";
import { encodePng } from "../src/shared/png";
import type { JobContext, ResultItem } from "../src/shared/messages";

let fake: FakeFigma;

beforeEach(() => {
  fake = installFake();
});

async function prepare(selection: FakeNode[], options: { scale: 1 | 2; expand?: any } = { scale: 1 }) {
  const { prepareJob } = await import("../src/main/selection");
  fake.page.selection = selection as any;
  return prepareJob(fake.figma.currentPage.selection, options);
}

async function solidPng(width: number, height: number, rgba = [200, 10, 10, 255]): Promise<Uint8Array> {
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) data.set(rgba, i * 4);
  return encodePng({ width, height, data });
}

describe("selection -> request", () => {
  it("image + ellipse over it: inpaint with the ellipse rendered white on black at the image's bounds", async () => {
    const photo = fake.imageNode("Photo", await testImage(160, 120), 40, 30, 160, 120);
    const ellipse = fake.shape("ELLIPSE", "Mask", 80, 60, 40, 40);
    const job = await prepare([ellipse, photo]);
    expect(job.geometry).toEqual({ mode: "inpaint", canvas: { width: 160, height: 120 }, selection: { x: 40, y: 30, width: 40, height: 40 } });
    const image = await pixels(job.image!);
    expect([image.width, image.height]).toEqual([160, 120]);
    expect(at(image, 50, 50)).toEqual([20, 40, 220, 255]); // the blue square, not the red mask shape
    const mask = await pixels(job.mask!);
    expect([mask.width, mask.height]).toEqual([160, 120]);
    expect(at(mask, 60, 50)).toEqual([255, 255, 255, 255]); // centre of the ellipse
    expect(at(mask, 41, 31)).toEqual([0, 0, 0, 255]); // inside its bounds, outside the ellipse
    expect(at(mask, 5, 5)).toEqual([0, 0, 0, 255]);
    // the temporary frame is gone, the mask shape is untouched until results are placed
    expect(fake.page.children.map((n) => n.name)).toEqual(["Photo", "Mask"]);
    expect(ellipse.visible).toBe(true);
    expect(ellipse.fills[0].color.g).toBeCloseTo(0.2);
    expect(job.context).toMatchObject({ placement: { parentId: fake.page.id, x: 40, y: 30, scale: 1 }, baseId: photo.id, maskIds: [ellipse.id] });
  });

  it("exports at 2x on request, and blurred shapes give a soft mask and a wider selection", async () => {
    const photo = fake.imageNode("Photo", await testImage(64, 64), 0, 0, 64, 64);
    const soft = fake.shape("RECTANGLE", "Soft", 20, 20, 16, 16);
    soft.effects = [{ type: "LAYER_BLUR", radius: 4, visible: true }, { type: "DROP_SHADOW", radius: 4, visible: true }];
    const job = await prepare([photo, soft], { scale: 2 });
    expect(job.geometry.canvas).toEqual({ width: 128, height: 128 });
    expect(job.geometry.selection).toEqual({ x: 32, y: 32, width: 48, height: 48 });
    const mask = await pixels(job.mask!);
    expect(at(mask, 56, 56)[0]).toBe(255);
    const edge = at(mask, 40, 56)[0];
    expect(edge).toBeGreaterThan(20);
    expect(edge).toBeLessThan(235);
    expect(at(mask, 10, 10)[0]).toBe(0);
    expect(fake.exports.map((e) => e.scale)).toEqual([2, 2]);
  });

  it("mask shapes inside a frame are hidden while the frame is exported as the image", async () => {
    const frame = fake.frame("Board", 100, 100, 80, 60);
    fake.imageNode("Photo", await solidPng(80, 60, [0, 200, 0, 255]), 0, 0, 80, 60, frame);
    const inner = fake.shape("RECTANGLE", "Hole", 10, 10, 20, 20, frame);
    const job = await prepare([frame, inner]);
    expect(job.geometry).toMatchObject({ mode: "inpaint", selection: { x: 10, y: 10, width: 20, height: 20 } });
    expect(at(await pixels(job.image!), 15, 15)).toEqual([0, 200, 0, 255]);
    expect(at(await pixels(job.mask!), 15, 15)).toEqual([255, 255, 255, 255]);
    expect(inner.visible).toBe(true);
  });

  it("image alone: img2img; with Expand extents: outpaint", async () => {
    const photo = fake.imageNode("Photo", await testImage(50, 40), 0, 0, 50, 40);
    const plain = await prepare([photo]);
    expect(plain.geometry).toEqual({ mode: "img2img", canvas: { width: 50, height: 40 } });
    expect(plain.mask).toBeUndefined();
    const grown = await prepare([photo], { scale: 1, expand: { left: 10, top: 0, right: 20, bottom: 5 } });
    expect(grown.geometry).toEqual({ mode: "outpaint", canvas: { width: 50, height: 40 }, extend: { left: 10, top: 0, right: 20, bottom: 5 } });
  });

  it("frame larger than the image inside it: outpaint to the frame, results go into the frame", async () => {
    const frame = fake.frame("Wide", 0, 0, 200, 100);
    const photo = fake.imageNode("Photo", await testImage(100, 100), 60, 0, 100, 100, frame);
    const job = await prepare([frame]);
    expect(job.geometry).toEqual({ mode: "outpaint", canvas: { width: 100, height: 100 }, extend: { left: 60, top: 0, right: 40, bottom: 0 } });
    expect(job.context.placement).toEqual({ parentId: frame.id, x: 60, y: 0, scale: 1 });
    expect(job.context.baseId).toBe(photo.id);
  });

  it("empty frame or rectangle: txt2img at its size, no pixels", async () => {
    const frame = fake.frame("Empty", 0, 0, 96, 64);
    const job = await prepare([frame], { scale: 2 });
    expect(job.geometry).toEqual({ mode: "txt2img", canvas: { width: 192, height: 128 } });
    expect(job.image).toBeUndefined();
  });

  it("refuses selections it cannot use, with a sentence", async () => {
    const a = fake.shape("RECTANGLE", "A", 0, 0, 10, 10);
    const b = fake.shape("ELLIPSE", "B", 0, 0, 10, 10);
    await expect(prepare([a, b])).rejects.toThrow(/image or a frame/);
    await expect(prepare([])).rejects.toThrow(/Nothing is selected/);
  });
});

describe("result -> nodes", () => {
  async function context(): Promise<{ ctx: JobContext; photo: FakeNode; mask: FakeNode; frame: FakeNode }> {
    const frame = fake.frame("Board", 500, 500, 400, 300);
    const photo = fake.imageNode("Photo", await testImage(100, 80), 20, 30, 100, 80, frame);
    const mask = fake.shape("ELLIPSE", "Mask", 40, 40, 20, 20, frame);
    const ctx: JobContext = { placement: { parentId: frame.id, x: 20, y: 30, scale: 2 }, baseId: photo.id, baseName: "Photo", maskIds: [mask.id], mode: "inpaint" };
    return { ctx, photo, mask, frame };
  }

  it("one result: an image-filled rectangle exactly over its region, above the image, one undo step, mask hidden", async () => {
    const { placeResults } = await import("../src/main/place");
    const { ctx, photo, mask, frame } = await context();
    const png = await solidPng(64, 48);
    const item: ResultItem = { index: 0, name: "a red ball [seed 7]", x: 16, y: 8, width: 64, height: 48, png };
    const placed = await placeResults(ctx, "a red ball", [item]);
    const node = fake.nodes.get(placed.nodeIds[0])!;
    expect(node.type).toBe("RECTANGLE");
    expect(node.parent).toBe(frame);
    expect(frame.children.indexOf(node)).toBe(frame.children.indexOf(photo) + 1);
    expect([node.x, node.y, node.width, node.height]).toEqual([28, 34, 32, 24]);
    expect(node.name).toBe("a red ball [seed 7]");
    expect(node.fills[0]).toMatchObject({ type: "IMAGE", scaleMode: "FILL" });
    expect(fake.images.get(node.fills[0].imageHash)!.bytes).toEqual(png);
    expect(mask.visible).toBe(false);
    expect(fake.nodes.has(mask.id)).toBe(true);
    expect(fake.undoCommits).toBe(1);
    expect(fake.figma.currentPage.selection).toEqual([node]);
    // what the user sees: the exported frame shows the result's pixels over the image
    const shown = await pixels(await frame.exportAsync({ format: "PNG", constraint: { type: "SCALE", value: 1 } }));
    expect(at(shown, 20 + 8 + 5, 30 + 4 + 5)).toEqual([200, 10, 10, 255]);
  });

  it("a batch is grouped, each item at its own place; notes for results scaled to fit 4096 px", async () => {
    const { placeResults } = await import("../src/main/place");
    const { ctx, frame } = await context();
    const items: ResultItem[] = [1, 0].map((index) => ({
      index,
      name: `cat [seed ${10 + index}]`,
      x: -20,
      y: 0,
      width: 240,
      height: 160,
      png: new Uint8Array(),
      scaledFrom: index === 1 ? { width: 9000, height: 6000 } : undefined,
    }));
    for (const item of items) item.png = await solidPng(24, 16);
    const placed = await placeResults(ctx, "cat", items);
    const group = fake.nodes.get(placed.nodeIds[0])!;
    expect(group.type).toBe("GROUP");
    expect(group.parent).toBe(frame);
    expect(group.name).toBe("cat (2 variations)");
    expect(group.children.map((n) => n.name)).toEqual(["cat [seed 10]", "cat [seed 11]"]);
    for (const node of group.children) expect([node.x, node.y, node.width, node.height]).toEqual([10, 30, 120, 80]);
    expect(placed.notes).toHaveLength(1);
    expect(placed.notes[0]).toMatch(/9000×6000/);
    expect(fake.undoCommits).toBe(1);
  });

  it("createImage refuses what Figma refuses (over 4096 px)", async () => {
    const big = await solidPng(4097, 1);
    expect(() => fake.figma.createImage(big)).toThrow(/too large/);
  });
});

describe("code.ts message flow", () => {
  it("stores settings in clientStorage, reports the selection, prepares and places through messages", async () => {
    vi.resetModules();
    await import("../src/main/code");
    expect(fake.uiOptions.options).toMatchObject({ themeColors: true });
    const photo = fake.imageNode("Photo", await testImage(32, 32), 0, 0, 32, 32);
    fake.page.selection = [photo] as any;
    expect(fake.toUi.at(-1)).toMatchObject({ type: "selection", ok: true });
    fake.fromUi({ type: "save-settings", settings: { address: "ws://localhost:7999", token: "secret", clientId: "abcdefghijklmnopqrstuv" } });
    await vi.waitFor(() => expect(fake.storage.get("underpaint-settings")).toBeTruthy());
    fake.fromUi({ type: "load-settings" });
    await vi.waitFor(() => expect(fake.toUi.find((m: any) => m.type === "settings")).toBeTruthy());
    expect(fake.toUi.find((m: any) => m.type === "settings")).toMatchObject({ settings: { address: "ws://localhost:7999", token: "secret" } });
    fake.fromUi({ type: "prepare", requestId: "p1", options: { scale: 1 } });
    await vi.waitFor(() => expect(fake.toUi.find((m: any) => m.type === "prepared")).toBeTruthy());
    const prepared: any = fake.toUi.find((m: any) => m.type === "prepared");
    expect(prepared.job.geometry.mode).toBe("img2img");
    fake.page.selection = [] as any;
    fake.fromUi({ type: "prepare", requestId: "p2", options: { scale: 1 } });
    await vi.waitFor(() => expect(fake.toUi.find((m: any) => m.type === "prepare-error")).toBeTruthy());
  });
});
