import { beforeEach, describe, expect, it, vi } from "vitest";
import type { FakeFigma, FakeNode } from "./fake-figma";
import { installFake, testImage } from "./helpers";
import { encodePng } from "../src/shared/png";
import type { JobContext, ResultItem } from "../src/shared/messages";

let fake: FakeFigma;

beforeEach(() => {
  fake = installFake();
  vi.resetModules(); // preview.ts keeps the one preview node per plugin run
});

async function solidPng(width: number, height: number, rgba: number[]): Promise<Uint8Array> {
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) data.set(rgba, i * 4);
  return encodePng({ width, height, data });
}

async function scene(): Promise<{ ctx: JobContext; frame: FakeNode; photo: FakeNode; mask: FakeNode; items: ResultItem[] }> {
  const frame = fake.frame("Board", 500, 500, 400, 300);
  const photo = fake.imageNode("Photo", await testImage(100, 80), 20, 30, 100, 80, frame);
  const mask = fake.shape("ELLIPSE", "Mask", 40, 40, 20, 20, frame);
  const ctx: JobContext = { placement: { parentId: frame.id, x: 20, y: 30, scale: 2 }, baseId: photo.id, baseName: "Photo", maskIds: [mask.id], mode: "inpaint" };
  const items: ResultItem[] = [];
  for (const index of [0, 1]) {
    items.push({ index, name: `ball [seed ${7 + index}]`, x: 16, y: 8, width: 64, height: 48, png: await solidPng(64, 48, [index * 200, 10, 10, 255]) });
  }
  return { ctx, frame, photo, mask, items };
}

/** The page as a tree of names, ids and geometry: what "nothing else changed" compares. */
const snapshot = (node: FakeNode): unknown => ({
  id: node.id,
  name: node.name,
  visible: node.visible,
  box: [node.x, node.y, node.width, node.height],
  fills: JSON.stringify(node.fills),
  children: node.children.map(snapshot),
});

describe("the preview node", () => {
  it("is one node over the result's region, above the mask shapes, refilled in place while stepping", async () => {
    const { showPreview } = await import("../src/main/preview");
    const { ctx, frame, mask, items } = await scene();
    const id = await showPreview(ctx, items[0], "1/2");
    const node = fake.nodes.get(id)!;
    expect(node.parent).toBe(frame);
    expect(frame.children.indexOf(node)).toBe(frame.children.indexOf(mask) + 1);
    expect([node.x, node.y, node.width, node.height]).toEqual([28, 34, 32, 24]);
    expect(node.name).toBe("[preview 1/2] ball [seed 7]");
    expect(node.locked).toBe(true);
    expect(mask.visible).toBe(true); // shown, not landed: the mask stays as the user drew it
    const count = fake.nodes.size;
    expect(await showPreview(ctx, items[1], "2/2")).toBe(id);
    expect(fake.nodes.size).toBe(count + 0);
    expect(node.name).toBe("[preview 2/2] ball [seed 8]");
    expect(fake.images.get(node.fills[0].imageHash)!.bytes).toEqual(items[1].png);
    expect(fake.undoCommits).toBe(0);
  });

  it("Apply lands exactly what a direct landing does, as one undo step, and the preview is gone", async () => {
    const { showPreview, endPreview } = await import("../src/main/preview");
    const { placeResults } = await import("../src/main/place");
    const { ctx, frame, items } = await scene();
    const direct = snapshot(frame) as any;
    const previewId = await showPreview(ctx, items[0], "1/2");
    await showPreview(ctx, items[1], "2/2");
    const applied = await endPreview({ context: ctx, prompt: "ball", results: [items[1]] });
    expect(fake.nodes.has(previewId)).toBe(false);
    expect(fake.undoCommits).toBe(1);
    const kept = fake.nodes.get(applied!.nodeIds[0])!;
    const afterApply = snapshot(frame) as any;
    // the same landing, directly, on an identical scene
    fake = installFake();
    const again = await scene();
    expect(snapshot(again.frame)).toMatchObject({ children: direct.children.map((c: any) => ({ name: c.name })) });
    const placed = await placeResults(again.ctx, "ball", [again.items[1]]);
    const directNode = fake.nodes.get(placed.nodeIds[0])!;
    const strip = (tree: any): any => ({ name: tree.name, visible: tree.visible, box: tree.box, children: tree.children.map(strip) });
    expect(strip(afterApply)).toEqual(strip(snapshot(again.frame)));
    expect([kept.name, kept.x, kept.y, kept.width, kept.height]).toEqual([directNode.name, directNode.x, directNode.y, directNode.width, directNode.height]);
    expect(fake.undoCommits).toBe(1);
  });

  it("Apply all lands the batch as one group (as a direct landing of a batch)", async () => {
    const { showPreview, endPreview } = await import("../src/main/preview");
    const { ctx, frame, items } = await scene();
    await showPreview(ctx, items[0], "1/2");
    const placed = await endPreview({ context: ctx, prompt: "ball", results: items });
    const group = fake.nodes.get(placed!.nodeIds[0])!;
    expect(group.type).toBe("GROUP");
    expect(group.children.map((n) => n.name)).toEqual(["ball [seed 7]", "ball [seed 8]"]);
    expect(frame.children.filter((n) => n.name.startsWith("[preview"))).toEqual([]);
    expect(fake.undoCommits).toBe(1);
  });

  it("Discard leaves the document exactly as it was", async () => {
    const { showPreview, endPreview } = await import("../src/main/preview");
    const { ctx, items } = await scene();
    const before = snapshot(fake.page);
    await showPreview(ctx, items[0], "1/2");
    await showPreview(ctx, items[1], "2/2");
    expect(await endPreview()).toBeNull();
    expect(snapshot(fake.page)).toEqual(before);
  });

  it("a preview the user deleted is made again; closing the plugin removes a preview left open", async () => {
    const { showPreview } = await import("../src/main/preview");
    const { ctx, items } = await scene();
    const first = await showPreview(ctx, items[0], "1/2");
    fake.nodes.get(first)!.remove();
    const second = await showPreview(ctx, items[1], "2/2");
    expect(second).not.toBe(first);
    await import("../src/main/code");
    fake.emit("close");
    expect(fake.nodes.has(second)).toBe(false);
  });
});

describe("re-applying a history result", () => {
  it("lands over the selected image when it has the result's canvas proportions, else at the viewport's centre", async () => {
    const { reapplyResult } = await import("../src/main/preview");
    const { frame, photo, items } = await scene();
    fake.page.selection = [photo] as any;
    // made at 2x: a 200x160 canvas over the 100x80 image
    const placed = await reapplyResult(items[0], { width: 200, height: 160 }, "inpaint");
    const node = fake.nodes.get(placed.nodeIds[0])!;
    expect(node.parent).toBe(frame);
    expect([node.x, node.y, node.width, node.height]).toEqual([28, 34, 32, 24]);
    expect(fake.undoCommits).toBe(1);
    fake.page.selection = [] as any;
    fake.figma.viewport.center = { x: 1000, y: 2000 };
    const loose = fake.nodes.get((await reapplyResult(items[1], { width: 64, height: 48 }, "txt2img")).nodeIds[0])!;
    expect(loose.parent).toBe(fake.page);
    expect([loose.x, loose.y, loose.width, loose.height]).toEqual([968 + 16, 1976 + 8, 64, 48]);
  });
});

describe("code.ts: preview messages", () => {
  it("show-preview, end-preview with keep, reapply answer with preview-shown / placed", async () => {
    await import("../src/main/code");
    const { ctx, items } = await scene();
    fake.fromUi({ type: "show-preview", context: ctx, item: items[0], label: "1/1" });
    await vi.waitFor(() => expect(fake.toUi.find((m: any) => m.type === "preview-shown")).toBeTruthy());
    fake.fromUi({ type: "end-preview", keep: { jobId: "j1", context: ctx, prompt: "ball", results: [items[0]] } });
    await vi.waitFor(() => expect(fake.toUi.find((m: any) => m.type === "placed")).toMatchObject({ jobId: "j1" }));
    fake.fromUi({ type: "end-preview" });
    await vi.waitFor(() => expect(fake.toUi.find((m: any) => m.type === "preview-ended")).toBeTruthy());
    fake.fromUi({ type: "load-settings" });
    await vi.waitFor(() => expect(fake.toUi.find((m: any) => m.type === "settings")).toMatchObject({ settings: { landDirectly: false } }));
  });
});
