import { describe, expect, it } from "vitest";
import { decodePng, encodePng } from "../src/shared/png";
import { buildUpload, coversCanvas, cropRgba, maskToGray8, uploadRegion, UploadError } from "../src/shared/upload";
import { buildJob } from "../src/shared/job";
import { at, testImage } from "./helpers";

/** The tests' CropPng: decode the whole PNG, then cut (the browser does the same with canvas 2D). */
const crop = async (png: Uint8Array, box: { x: number; y: number; width: number; height: number }) => {
  const image = await decodePng(png);
  return cropRgba(image.data, image.width, box);
};

describe("the upload region is the plan's", () => {
  const canvas = { width: 400, height: 300 };
  it("takes planned.upload as it is; empty means no pixels (txt2img)", () => {
    expect(uploadRegion({ x: 10, y: 20, width: 30, height: 40 }, canvas)).toEqual({ x: 10, y: 20, width: 30, height: 40 });
    expect(uploadRegion({ x: 0, y: 0, width: 0, height: 0 }, canvas)).toBeNull();
  });
  it("refuses a region off the canvas or malformed instead of guessing", () => {
    expect(() => uploadRegion({ x: 390, y: 0, width: 20, height: 10 }, canvas)).toThrow(UploadError);
    expect(() => uploadRegion({ x: -1, y: 0, width: 20, height: 10 }, canvas)).toThrow(/outside/);
    expect(() => uploadRegion({ x: 0.5, y: 0, width: 20, height: 10 }, canvas)).toThrow(/no valid upload/);
    expect(() => uploadRegion(undefined, canvas)).toThrow(/no valid upload/);
  });
  it("knows when the region is the whole canvas", () => {
    expect(coversCanvas({ x: 0, y: 0, width: 400, height: 300 }, canvas)).toBe(true);
    expect(coversCanvas({ x: 0, y: 0, width: 399, height: 300 }, canvas)).toBe(false);
  });
});

describe("pixels", () => {
  it("cropRgba cuts rows out of the right place", () => {
    // 3x2 image whose red channel is the pixel index
    const rgba = new Uint8Array(3 * 2 * 4);
    for (let i = 0; i < 6; i++) rgba.set([i, 0, 0, 255], i * 4);
    expect(Array.from(cropRgba(rgba, 3, { x: 1, y: 0, width: 2, height: 2 })).filter((_, i) => i % 4 === 0)).toEqual([1, 2, 4, 5]);
    expect(() => cropRgba(rgba, 3, { x: 2, y: 0, width: 2, height: 1 })).toThrow(UploadError);
  });
  it("maskToGray8 is coverage over black: white 255, black 0, grey and transparency in between", () => {
    const rgba = new Uint8Array([255, 255, 255, 255, 0, 0, 0, 255, 128, 128, 128, 255, 255, 255, 255, 0, 255, 255, 255, 128]);
    expect(Array.from(maskToGray8(rgba))).toEqual([255, 0, 128, 0, 128]);
  });
});

describe("buildUpload", () => {
  it("a small region of a large image goes raw: rgba8 image and gray8 mask of exactly that region", async () => {
    const canvas = { width: 640, height: 480 };
    const image = await testImage(640, 480);
    const maskPixels = new Uint8Array(640 * 480 * 4);
    for (let i = 0; i < 640 * 480; i++) maskPixels.set([0, 0, 0, 255], i * 4);
    maskPixels.set([255, 255, 255, 255], (250 * 640 + 300) * 4); // one selected pixel at (300, 250)
    const mask = await encodePng({ width: 640, height: 480, data: maskPixels });
    const upload = { x: 280, y: 200, width: 64, height: 96 };
    const out = await buildUpload({ upload, canvas, image, mask, maxFrameBytes: 1 << 28 }, crop);
    expect(out.region).toEqual(upload);
    expect(out.image).toMatchObject({ format: "rgba8", width: 64, height: 96 });
    expect(out.image!.data.length).toBe(64 * 96 * 4);
    expect(out.mask).toMatchObject({ format: "gray8", width: 64, height: 96 });
    expect(out.mask!.data.length).toBe(64 * 96);
    // pixel (x, y) of the region is pixel (280 + x, 200 + y) of the image
    const source = await decodePng(image);
    const sent = { width: 64, height: 96, data: out.image!.data };
    for (const [x, y] of [[0, 0], [63, 95], [20, 40], [40, 10]]) expect(at(sent, x, y)).toEqual(at(source, 280 + x, 200 + y));
    expect(out.mask!.data[(250 - 200) * 64 + (300 - 280)]).toBe(255);
    expect(out.mask!.data.reduce((n, v) => n + v, 0)).toBe(255);
  });

  it("the whole canvas goes as the exported PNG, untouched (nothing to cut, fewer bytes)", async () => {
    const image = await testImage(50, 40);
    const out = await buildUpload({ upload: { x: 0, y: 0, width: 50, height: 40 }, canvas: { width: 50, height: 40 }, image }, async () => {
      throw new Error("must not decode");
    });
    expect(out.region).toEqual({ x: 0, y: 0, width: 50, height: 40 });
    expect(out.image).toEqual({ format: "png", width: 50, height: 40, data: image });
    expect(out.mask).toBeNull();
  });

  it("outpaint: the strip next to the new area, image only", async () => {
    const image = await testImage(120, 80);
    const out = await buildUpload({ upload: { x: 70, y: 0, width: 50, height: 80 }, canvas: { width: 120, height: 80 }, image }, crop);
    expect(out.region).toEqual({ x: 70, y: 0, width: 50, height: 80 });
    expect(out.image).toMatchObject({ format: "rgba8", width: 50, height: 80 });
    expect(out.mask).toBeNull();
  });

  it("txt2img uploads nothing; a plan that needs pixels without an image is an error", async () => {
    const none = await buildUpload({ upload: { x: 0, y: 0, width: 0, height: 0 }, canvas: { width: 64, height: 48 } }, crop);
    expect(none).toEqual({ region: null, image: null, mask: null });
    await expect(buildUpload({ upload: { x: 0, y: 0, width: 8, height: 8 }, canvas: { width: 64, height: 48 } }, crop)).rejects.toThrow(
      /no exported image/,
    );
  });

  it("a raw crop over the daemon's frame limit falls back to the whole PNG (the daemon crops a larger region)", async () => {
    const image = await testImage(100, 100);
    const out = await buildUpload(
      { upload: { x: 10, y: 10, width: 80, height: 80 }, canvas: { width: 100, height: 100 }, image, maxFrameBytes: 80 * 80 * 4 },
      crop,
    );
    expect(out.region).toEqual({ x: 0, y: 0, width: 100, height: 100 });
    expect(out.image!.format).toBe("png");
  });
});

describe("buildJob", () => {
  const form = { model: "m", prompt: "p", negativePrompt: "n", strength: 0.4, steps: null, seed: null, batch: 2 };
  it("sends strength for outpaint, img2img and inpaint when set, never for txt2img", () => {
    const canvas = { width: 10, height: 10 };
    expect(buildJob({ mode: "outpaint", canvas, extend: { left: 0, top: 0, right: 5, bottom: 0 } }, form).strength).toBe(0.4);
    expect(buildJob({ mode: "img2img", canvas }, form).strength).toBe(0.4);
    expect(buildJob({ mode: "inpaint", canvas, selection: { x: 0, y: 0, width: 2, height: 2 } }, form).strength).toBe(0.4);
    expect(buildJob({ mode: "txt2img", canvas }, form)).not.toHaveProperty("strength");
    expect(buildJob({ mode: "outpaint", canvas, extend: { left: 1, top: 0, right: 0, bottom: 0 } }, { ...form, strength: null })).not.toHaveProperty("strength");
  });
  it("builds the protocol's job: geometry, steps and seed when set, clamped batch", () => {
    const job = buildJob(
      { mode: "inpaint", canvas: { width: 10, height: 10 }, selection: { x: 1, y: 2, width: 3, height: 4 } },
      { ...form, steps: 150.4, seed: 2 ** 33, batch: 40 },
    );
    expect(job).toEqual({
      mode: "inpaint",
      model: "m",
      prompt: "p",
      negative_prompt: "n",
      batch: 16,
      canvas: { width: 10, height: 10 },
      selection: { x: 1, y: 2, width: 3, height: 4 },
      strength: 0.4,
      steps: 150,
      seed: 2 ** 32 - 1,
    });
    expect(buildJob({ mode: "txt2img", canvas: { width: 1, height: 1 } }, { ...form, model: "" })).not.toHaveProperty("model");
  });
});
