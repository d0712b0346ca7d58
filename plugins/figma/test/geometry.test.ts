import { describe, expect, it } from "vitest";
import {
  classifySelection,
  fitImageSize,
  frameExtents,
  jobGeometry,
  maskSelection,
  type NodeInfo,
  resultRect,
  SelectionError,
} from "../src/shared/geometry";

function info(partial: Partial<NodeInfo> & { id: string }): NodeInfo {
  return {
    name: partial.id,
    type: "RECTANGLE",
    box: { x: 0, y: 0, width: 100, height: 100 },
    renderBox: null,
    hasImageFill: false,
    isFrame: false,
    imageChildren: [],
    childCount: 0,
    rotated: false,
    ...partial,
  };
}

const image = info({ id: "img", hasImageFill: true, box: { x: 10, y: 20, width: 200, height: 100 } });

describe("classifySelection", () => {
  it("image alone is img2img", () => {
    expect(classifySelection([image]).mode).toBe("img2img");
  });
  it("image plus shapes is inpaint, the image being the base whatever the order", () => {
    const shape = info({ id: "s", type: "ELLIPSE", box: { x: 50, y: 50, width: 20, height: 20 } });
    const result = classifySelection([shape, image]);
    expect(result.mode).toBe("inpaint");
    expect(result.base.id).toBe("img");
    expect(result.mode === "inpaint" && result.masks.map((m) => m.id)).toEqual(["s"]);
  });
  it("a frame larger than the single image inside it is outpaint", () => {
    const inner = info({ id: "in", hasImageFill: true, box: { x: 50, y: 50, width: 100, height: 100 } });
    const frame = info({ id: "f", type: "FRAME", isFrame: true, box: { x: 0, y: 0, width: 300, height: 200 }, imageChildren: [inner], childCount: 1 });
    const result = classifySelection([frame]);
    expect(result.mode).toBe("outpaint");
    expect(result.base.id).toBe("in");
  });
  it("a frame with content but no larger image is img2img of the frame; an empty frame is txt2img", () => {
    const full = info({ id: "f", type: "FRAME", isFrame: true, childCount: 3 });
    expect(classifySelection([full]).mode).toBe("img2img");
    const empty = info({ id: "e", type: "FRAME", isFrame: true });
    expect(classifySelection([empty]).mode).toBe("txt2img");
    expect(classifySelection([info({ id: "r" })]).mode).toBe("txt2img");
  });
  it("explains bad selections", () => {
    expect(() => classifySelection([])).toThrow(SelectionError);
    expect(() => classifySelection([info({ id: "a" }), info({ id: "b" })])).toThrow(/image or a frame/);
    const other = info({ id: "other", hasImageFill: true, box: { x: 0, y: 0, width: 10, height: 10 } });
    expect(() => classifySelection([image, other])).toThrow(/another image/);
  });
});

describe("job geometry", () => {
  it("mask bounds become the selection, relative to the image, scaled, rounded outwards, clipped", () => {
    const sel = maskSelection({ x: 10, y: 20, width: 200, height: 100 }, [{ x: 30.5, y: 10, width: 20, height: 30 }], 2, { width: 400, height: 200 });
    expect(sel).toEqual({ x: 41, y: 0, width: 40, height: 40 });
    expect(maskSelection({ x: 0, y: 0, width: 10, height: 10 }, [{ x: 20, y: 20, width: 5, height: 5 }], 1, { width: 10, height: 10 })).toBeNull();
  });
  it("inpaint uses render bounds (blur) when known", () => {
    const shape = info({ id: "s", box: { x: 60, y: 40, width: 20, height: 20 }, renderBox: { x: 55, y: 35, width: 30, height: 30 } });
    const g = jobGeometry({ mode: "inpaint", base: image, masks: [shape] }, 1, { width: 200, height: 100 });
    expect(g).toEqual({ mode: "inpaint", canvas: { width: 200, height: 100 }, selection: { x: 45, y: 15, width: 30, height: 30 } });
  });
  it("shapes off the image are an error", () => {
    const shape = info({ id: "s", box: { x: 500, y: 500, width: 20, height: 20 } });
    expect(() => jobGeometry({ mode: "inpaint", base: image, masks: [shape] }, 1, { width: 200, height: 100 })).toThrow(/overlap/);
  });
  it("outpaint extents come from the frame around the image", () => {
    expect(frameExtents({ x: 50, y: 60, width: 100, height: 100 }, { x: 0, y: 0, width: 300, height: 200 }, 2)).toEqual({ left: 100, top: 120, right: 300, bottom: 80 });
  });
  it("Expand turns img2img into outpaint with scaled extents", () => {
    const g = jobGeometry({ mode: "img2img", base: image }, 2, { width: 400, height: 200 }, { left: 0, top: 10, right: 64, bottom: 0 });
    expect(g).toEqual({ mode: "outpaint", canvas: { width: 400, height: 200 }, extend: { left: 0, top: 20, right: 128, bottom: 0 } });
    expect(jobGeometry({ mode: "img2img", base: image }, 1, { width: 200, height: 100 }, { left: 0, top: 0, right: 0, bottom: 0 }).mode).toBe("img2img");
  });
  it("txt2img is the node's size", () => {
    expect(jobGeometry({ mode: "txt2img", base: image }, 1, { width: 200, height: 100 })).toEqual({ mode: "txt2img", canvas: { width: 200, height: 100 } });
  });
});

describe("result -> node rect", () => {
  it("places layers at the base position plus the layer offset, divided by the export scale", () => {
    const placement = { parentId: "p", x: 10, y: 20, scale: 2 };
    expect(resultRect(placement, { x: 40, y: 10, width: 64, height: 32 })).toEqual({ x: 30, y: 25, width: 32, height: 16 });
    expect(resultRect(placement, { x: -128, y: 0, width: 528, height: 200 })).toEqual({ x: -54, y: 20, width: 264, height: 100 });
  });
  it("fits images into Figma's 4096 px limit keeping the aspect", () => {
    expect(fitImageSize(4096, 100)).toEqual({ width: 4096, height: 100, scaled: false });
    expect(fitImageSize(8192, 1000)).toEqual({ width: 4096, height: 500, scaled: true });
    expect(fitImageSize(1000, 5000)).toEqual({ width: 819, height: 4096, scaled: true });
  });
});
