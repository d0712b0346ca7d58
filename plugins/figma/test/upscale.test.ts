import { describe, expect, it } from "vitest";
import { resultRect } from "../src/shared/geometry";
import { fitTiles, scaledNote, upscalePlacement } from "../src/shared/upscale";

describe("fitTiles", () => {
  it("keeps a result within 4096 px as it is", () => {
    const fit = fitTiles({ x: 0, y: 0, width: 1200, height: 800 }, [
      { x: 0, y: 0, width: 600, height: 800 },
      { x: 600, y: 0, width: 600, height: 800 },
    ]);
    expect(fit).toEqual({
      width: 1200,
      height: 800,
      scaled: false,
      rects: [
        { x: 0, y: 0, width: 600, height: 800 },
        { x: 600, y: 0, width: 600, height: 800 },
      ],
    });
  });

  it("scales a larger result to 4096 px with tiles meeting exactly (no gap, no overlap)", () => {
    const layer = { x: 300, y: 100, width: 9000, height: 3001 };
    const tiles = [];
    for (let y = 100; y < 3101; y += 1000) {
      for (let x = 300; x < 9300; x += 777) {
        tiles.push({ x, y, width: Math.min(777, 9300 - x), height: Math.min(1000, 3101 - y) });
      }
    }
    const fit = fitTiles(layer, tiles);
    expect(fit.scaled).toBe(true);
    expect(fit.width).toBe(4096);
    expect(fit.height).toBe(Math.round((3001 * 4096) / 9000));
    let area = 0;
    for (const rect of fit.rects) {
      expect(rect.x).toBeGreaterThanOrEqual(0);
      expect(rect.y).toBeGreaterThanOrEqual(0);
      expect(rect.x + rect.width).toBeLessThanOrEqual(fit.width);
      expect(rect.y + rect.height).toBeLessThanOrEqual(fit.height);
      area += rect.width * rect.height;
    }
    expect(area).toBe(fit.width * fit.height); // inside the fill and summing to it: covered exactly once
    const right = fit.rects[0].x + fit.rects[0].width;
    expect(fit.rects[1].x).toBe(right);
  });
});

describe("upscalePlacement", () => {
  it("a whole-image upscale covers the image it scales; a region's lands over that region", () => {
    const placement = { parentId: "0:1", x: 40, y: 30, scale: 1 };
    const scaled = upscalePlacement(placement, { width: 160, height: 120 }, { width: 320, height: 240 });
    expect(resultRect(scaled, { x: 0, y: 0, width: 320, height: 240 })).toEqual({ x: 40, y: 30, width: 160, height: 120 });
    expect(resultRect(scaled, { x: 80, y: 60, width: 40, height: 20 })).toEqual({ x: 80, y: 60, width: 20, height: 10 });
    const twice = upscalePlacement({ ...placement, scale: 2 }, { width: 320, height: 240 }, { width: 960, height: 720 });
    expect(resultRect(twice, { x: 0, y: 0, width: 960, height: 720 })).toEqual({ x: 40, y: 30, width: 160, height: 120 });
  });
});

it("says when the fill was scaled, and to what", () => {
  expect(scaledNote("up x4", { width: 8000, height: 6000 }, { width: 4096, height: 3072 })).toBe(
    '"up x4" is 8000×6000 px; Figma images stop at 4096 px, so its fill is 4096×3072 px (placement is exact, resolution lower).',
  );
});
