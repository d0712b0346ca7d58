import { beforeEach, describe, expect, it } from "vitest";
import type { FakeFigma } from "./fake-figma";
import { at, installFake, pixels, testImage } from "./helpers";
import { encodePng } from "../src/shared/png";
import type { JobContext, ResultItem } from "../src/shared/messages";
import { segmentJob, segmentModels } from "../src/shared/segment";

let fake: FakeFigma;

beforeEach(() => {
  fake = installFake();
});

/** A soft mask as the daemon sends it: white, alpha = selected (a 20 x 10 block, soft left column). */
async function maskPng(width: number, height: number): Promise<Uint8Array> {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const alpha = x >= 10 && x < 30 && y >= 5 && y < 15 ? (x === 10 ? 128 : 255) : 0;
      data.set([255, 255, 255, alpha], (y * width + x) * 4);
    }
  }
  return encodePng({ width, height, data });
}

describe("segment job", () => {
  it("Refine selection: the drawn shapes' bounds are the box and their shape the rough mask", () => {
    const geometry = { mode: "inpaint" as const, canvas: { width: 200, height: 160 }, selection: { x: 10, y: 20, width: 50, height: 40 } };
    expect(segmentJob(geometry, { model: "refine", text: null })).toEqual({
      mode: "segment",
      model: "refine",
      canvas: { width: 200, height: 160 },
      selection: { x: 10, y: 20, width: 50, height: 40 },
      segment: { box: { x: 10, y: 20, width: 50, height: 40 } },
    });
    expect(() => segmentJob({ mode: "img2img", canvas: { width: 200, height: 160 } }, { model: "", text: null })).toThrow(/Draw a rectangle/);
  });

  it("Select by words: the phrase only; segment models are those with segment_inputs", () => {
    const job = segmentJob({ mode: "img2img", canvas: { width: 200, height: 160 } }, { model: "", text: "the cup" });
    expect(job).toEqual({ mode: "segment", canvas: { width: 200, height: 160 }, segment: { text: "the cup" } });
    const models = [{ id: "classical" }, { id: "refine", segment_inputs: ["box", "points", "mask"] }] as any;
    expect(segmentModels(models).map((m) => m.id)).toEqual(["refine"]);
  });
});

describe("mask -> mask node", () => {
  it("an isMask image rectangle at the daemon's placement, grouped under the image; then it inpaints like any mask shape", async () => {
    const { placeMask, SEGMENT_KEY } = await import("../src/main/segment");
    const { prepareJob } = await import("../src/main/selection");
    const frame = fake.frame("Board", 500, 500, 400, 300);
    const photo = fake.imageNode("Photo", await testImage(100, 80), 20, 30, 100, 80, frame);
    const box = fake.shape("RECTANGLE", "Box", 25, 32, 30, 20, frame);
    const ctx: JobContext = { placement: { parentId: frame.id, x: 20, y: 30, scale: 1 }, baseId: photo.id, baseName: "Photo", maskIds: [box.id], mode: "segment" };
    const item: ResultItem = { index: 0, name: "mask", x: 4, y: 2, width: 40, height: 20, png: await maskPng(40, 20) };
    const placed = await placeMask(ctx, [item]);
    const group = fake.nodes.get(placed.nodeIds[0])!;
    const node = fake.nodes.get(placed.nodeIds[1])! as any;
    expect(group.type).toBe("GROUP");
    expect(group.parent).toBe(frame);
    expect(group.children).toEqual([node, photo]); // the mask below the image it clips
    expect(node.isMask).toBe(true);
    expect(node.getPluginData(SEGMENT_KEY)).toBe("mask");
    expect([node.x, node.y, node.width, node.height]).toEqual([24, 32, 40, 20]);
    expect(fake.images.get(node.fills[0].imageHash)!.bytes).toEqual(item.png);
    expect(box.visible).toBe(false); // the drawn box is used up
    expect(fake.undoCommits).toBe(1);
    expect(fake.figma.currentPage.selection).toEqual([node, photo]);

    // selected with the image (as placeMask leaves it), the mask node is an inpaint mask shape
    const job = await prepareJob(fake.figma.currentPage.selection, { scale: 1 });
    expect(job.geometry).toEqual({ mode: "inpaint", canvas: { width: 100, height: 80 }, selection: { x: 4, y: 2, width: 40, height: 20 } });
    const mask = await pixels(job.mask!);
    expect(at(mask, 4 + 20, 2 + 10)).toEqual([255, 255, 255, 255]); // selected
    expect(at(mask, 4 + 10, 2 + 10)[0]).toBeGreaterThan(100); // soft edge kept
    expect(at(mask, 4 + 10, 2 + 10)[0]).toBeLessThan(160);
    expect(at(mask, 4 + 2, 2 + 10)).toEqual([0, 0, 0, 255]); // inside the node, not selected
    expect(node.isMask).toBe(true); // only the temporary clone stopped masking
  });
});
