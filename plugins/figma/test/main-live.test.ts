import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { FakeFigma } from "./fake-figma";
import { installFake, pixels, testImage } from "./helpers";
import { encodePng } from "../src/shared/png";

let fake: FakeFigma;

beforeEach(() => {
  fake = installFake();
  vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
});

afterEach(async () => {
  const { endLive } = await import("../src/main/live");
  endLive();
  vi.useRealTimers();
});

async function solidPng(width: number, height: number, rgba: number[]): Promise<Uint8Array> {
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) data.set(rgba, i * 4);
  return encodePng({ width, height, data });
}

describe("live painting on the main thread", () => {
  it("sends the watched node's pixels at once, then on the page's changes to it, only when they changed", async () => {
    const { startWatching } = await import("../src/main/live");
    const board = fake.frame("Board", 0, 0, 64, 48);
    const photo = fake.imageNode("Photo", await testImage(48, 32), 10, 20, 48, 32, board);
    const other = fake.imageNode("Other", await testImage(8, 8), 100, 100, 8, 8);
    fake.page.selection = [board] as any;
    const sent: { png: Uint8Array; width: number; height: number }[] = [];
    await startWatching((png, width, height) => sent.push({ png, width, height }));
    expect(sent.map((s) => [s.width, s.height])).toEqual([[64, 48]]);
    expect(fake.exports).toHaveLength(1);
    other.fills = [...other.fills]; // a change outside the frame: no export
    await Promise.resolve();
    await Promise.resolve();
    expect(fake.exports).toHaveLength(1);
    photo.fills = [...photo.fills]; // inside, but the same pixels: exported, nothing sent
    await vi.waitFor(() => expect(fake.exports).toHaveLength(2));
    expect(sent).toHaveLength(1);
    const image = fake.figma.createImage(await solidPng(48, 32, [250, 0, 0, 255]));
    photo.fills = [{ type: "IMAGE", imageHash: image.hash, scaleMode: "FILL", visible: true }];
    await vi.waitFor(() => expect(sent).toHaveLength(2));
    const now = await pixels(sent[1].png);
    expect(Array.from(now.data.subarray(10 * 4 + 20 * 64 * 4, 10 * 4 + 20 * 64 * 4 + 4))).toEqual([250, 0, 0, 255]);
    fake.shape("RECTANGLE", "Dab", 2, 2, 4, 4, board); // a dab painted into the frame
    await vi.waitFor(() => expect(sent).toHaveLength(3));
  });

  it("exports once more when changes come during an export, never one per change", async () => {
    const { startWatching } = await import("../src/main/live");
    const board = fake.frame("Board", 0, 0, 32, 32);
    fake.page.selection = [board] as any;
    const sent: Uint8Array[] = [];
    await startWatching((png) => sent.push(png));
    for (let i = 0; i < 5; i++) fake.shape("RECTANGLE", `Dab ${i}`, i * 4, 2, 3, 3, board);
    await vi.waitFor(() => expect(sent).toHaveLength(2));
    await new Promise((done) => setTimeout(done, 20));
    expect(fake.exports.length).toBeLessThanOrEqual(3); // the first, one for the batch, at most one more
    expect(sent.length).toBeLessThanOrEqual(3);
  });

  it("still looks every SAFETY_MS for what Figma reports on no node of the frame", async () => {
    const { startWatching, SAFETY_MS } = await import("../src/main/live");
    const photo = fake.imageNode("Photo", await testImage(48, 32), 10, 20, 48, 32);
    fake.page.selection = [photo] as any;
    await startWatching(() => undefined);
    await vi.advanceTimersByTimeAsync(SAFETY_MS);
    await vi.waitFor(() => expect(fake.exports).toHaveLength(2));
  });

  it("stops listening when Live goes off", async () => {
    const { startWatching, stopWatching } = await import("../src/main/live");
    const board = fake.frame("Board", 0, 0, 32, 32);
    fake.page.selection = [board] as any;
    await startWatching(() => undefined);
    expect(fake.pageListeners).toHaveLength(1);
    stopWatching();
    expect(fake.pageListeners).toHaveLength(0);
    fake.shape("RECTANGLE", "Dab", 2, 2, 4, 4, board);
    await new Promise((done) => setTimeout(done, 10));
    expect(fake.exports).toHaveLength(1);
  });

  it("refuses anything but one node", async () => {
    const { startWatching } = await import("../src/main/live");
    fake.page.selection = [] as any;
    await expect(startWatching(() => undefined)).rejects.toThrow(/Select one frame/);
  });

  it("shows results in ONE locked node above the watched one, refilled in place; Apply copies it; Live off removes it", async () => {
    const { applyLive, endLive, showLive, startWatching } = await import("../src/main/live");
    const photo = fake.imageNode("Photo", await testImage(48, 32), 10, 20, 48, 32);
    const other = fake.imageNode("Other", await testImage(8, 8), 100, 100, 8, 8);
    fake.page.selection = [photo] as any;
    await startWatching(() => undefined);
    const layer = { name: "Live: a cat", x: 4, y: 2, width: 24, height: 16, png: await solidPng(24, 16, [1, 2, 3, 255]) };
    const first = showLive(layer);
    const second = showLive({ ...layer, png: await solidPng(24, 16, [9, 9, 9, 255]) });
    expect(second).toBe(first);
    expect(fake.page.children.map((n) => n.name)).toEqual(["Photo", "Live: a cat", "Other"]);
    const live = fake.page.children[1];
    expect([live.x, live.y, live.width, live.height, live.locked]).toEqual([14, 22, 24, 16, true]);
    const shown = await pixels(await fake.figma.getImageByHash(live.fills[0].imageHash)!.getBytesAsync());
    expect(Array.from(shown.data.subarray(0, 4))).toEqual([9, 9, 9, 255]);
    const undo = fake.undoCommits;
    const applied = applyLive("a cat [seed 5]");
    expect(fake.undoCommits).toBe(undo + 1);
    expect(fake.page.children.map((n) => n.name)).toEqual(["Photo", "a cat [seed 5]", "Live: a cat", "Other"]);
    const copy = fake.page.children[1];
    expect([copy.id, copy.locked, copy.x, copy.y, copy.fills[0].imageHash]).toEqual([applied, false, 14, 22, live.fills[0].imageHash]);
    endLive();
    expect(fake.page.children.map((n) => n.name)).toEqual(["Photo", "a cat [seed 5]", "Other"]);
    expect(() => applyLive("again")).toThrow(/no live result/);
    expect(() => showLive(layer)).toThrow(/Live is off/);
    expect(other.removed).toBe(false);
  });
});
