import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { resultRect } from "../src/shared/geometry";
import {
  ACTIONS,
  FACTOR_DEFAULT,
  FACTOR_MAX,
  FACTOR_MIN,
  fitTiles,
  LABELS,
  modelsFor,
  REFINE_STRENGTH_DEFAULT,
  tileText,
  upscaleJob,
  upscalePlacement,
} from "../src/shared/upscale";

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

describe("tileText", () => {
  it("says which tile of which pass, and the step within a refine tile, like the Python hosts", () => {
    expect(tileText({ stage: "upscale", index: 3, count: 12 }, "upscale")).toBe("tile 3 of 12");
    expect(tileText({ stage: "upscale", index: 3, count: 12 }, "refine_upscale")).toBe("upscaling tile 3 of 12");
    expect(tileText({ stage: "refine", index: 3, count: 6, step: 2, steps: 4 }, "refine_upscale")).toBe("refining tile 3 of 6, step 2 of 4");
    const python = readFileSync(resolve(__dirname, "../../../protocol/underpaint_protocol/upscale.py"), "utf8");
    for (const words of ['"refining {where}', '", step {tile[', '"upscaling {where}"', '"tile {tile.get(']) expect(python).toContain(words);
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

describe("the section's jobs", () => {
  const form = { factor: 2, upscaler: "classical", refiner: "tiny-random", restorer: "GFPGANv1.4", strength: 25, steps: null, prompt: "fur" };
  const whole = { mode: "img2img" as const, canvas: { width: 160, height: 120 } };
  const region = { mode: "inpaint" as const, canvas: { width: 160, height: 120 }, selection: { x: 10, y: 20, width: 30, height: 40 } };
  const base = { mode: "img2img" as const, canvas: whole.canvas, prompt: "p", negative_prompt: "", batch: 3, seed: 7 };

  it("Upscale scales the whole image, or the region under the shapes, with the chosen upscaler", () => {
    expect(upscaleJob(base, whole, "upscale", form)).toEqual({
      mode: "upscale",
      canvas: whole.canvas,
      prompt: "",
      negative_prompt: "",
      batch: 1,
      model: "classical",
      upscale: { factor: 2 },
    });
    expect(upscaleJob(base, region, "upscale", { ...form, factor: 99 })).toMatchObject({ selection: region.selection, upscale: { factor: 16 } });
  });

  it("Refine-upscale carries the refiner, strength, prompt, seed and the upscaler; Restore needs shapes", () => {
    expect(upscaleJob(base, whole, "refine_upscale", form)).toMatchObject({
      mode: "refine_upscale",
      model: "tiny-random",
      prompt: "fur",
      strength: 0.25,
      seed: 7,
      upscale: { factor: 2, model: "classical" },
    });
    expect(upscaleJob(base, whole, "refine_upscale", form).steps).toBeUndefined(); // the model's default
    expect(upscaleJob(base, whole, "refine_upscale", { ...form, steps: 12 })).toMatchObject({ steps: 12 });
    expect(upscaleJob(base, whole, "upscale", { ...form, steps: 12 }).steps).toBeUndefined();
    expect(upscaleJob(base, region, "restore", form)).toMatchObject({ mode: "restore", model: "GFPGANv1.4", selection: region.selection });
    expect(upscaleJob(base, region, "restore", form).upscale).toBeUndefined();
    expect(() => upscaleJob(base, whole, "restore", form)).toThrow(/draw a shape over the face/);
    expect(() => upscaleJob(base, { mode: "txt2img", canvas: whole.canvas }, "upscale", form)).toThrow(/needs an image/);
  });

  it("lists the models that run each action", () => {
    const models = [
      { id: "classical", modes: ["inpaint", "upscale"] as any },
      { id: "tiny-random", modes: ["img2img", "refine_upscale"] as any },
      { id: "GFPGANv1.4", modes: ["restore"] as any },
    ];
    expect([modelsFor(models, "upscaler"), modelsFor(models, "refiner"), modelsFor(models, "restorer")]).toEqual([
      ["classical"],
      ["tiny-random"],
      ["GFPGANv1.4"],
    ]);
  });

  it("reads the same as the Krita docker and the GIMP panel (underpaint_protocol/upscale_panel.py)", () => {
    const python = readFileSync(resolve(__dirname, "../../../protocol/underpaint_protocol/upscale_panel.py"), "utf8");
    for (const [mode, label] of Object.entries(ACTIONS)) expect(python).toContain(`"${mode}": "${label}"`);
    for (const [key, label] of Object.entries(LABELS)) expect(python).toContain(`"${key}": "${label}"`);
    expect(python).toContain(`REFINE_STRENGTH_DEFAULT = ${REFINE_STRENGTH_DEFAULT}\n`);
    expect(python).toContain(`FACTOR_MIN, FACTOR_MAX, FACTOR_DEFAULT = ${FACTOR_MIN.toFixed(1)}, ${FACTOR_MAX.toFixed(1)}, ${FACTOR_DEFAULT.toFixed(1)}\n`);
  });
});
