/**
 * What a job uploads: only the pixels the daemon asked for in `planned.upload`.
 *
 * The main thread exports the whole image (and mask) as PNG at the canvas size; the daemon's plan
 * names the rectangle of canvas pixels it needs (the selection plus context, clamped to the canvas).
 * A region smaller than the canvas is cut out of the decoded PNG and sent raw (`rgba8` for the image,
 * `gray8` for the mask): on loopback raw bytes cost nothing to move, and neither side has to encode
 * or decode a PNG of the crop. When the daemon wants the whole canvas (img2img, small images) the
 * exported PNG is already exactly that, so it goes as it is. Everything here is pure; the pixel
 * decoding itself is injected (`CropPng`): canvas 2D in the browser, a PNG decoder in the tests.
 */

import type { Box, Size } from "./geometry";

export interface RawFrame {
  format: "png" | "rgba8" | "gray8";
  width: number;
  height: number;
  data: Uint8Array;
}

export interface Upload {
  /** The `region` of the submit, in canvas pixels; null when the job needs no pixels (txt2img). */
  region: Box | null;
  image: RawFrame | null;
  mask: RawFrame | null;
}

/** Straight-alpha RGBA pixels of `box` (in the PNG's pixel space) out of a PNG. */
export type CropPng = (png: Uint8Array, box: Box) => Promise<Uint8Array>;

export class UploadError extends Error {}

const isInt = (value: unknown): value is number => typeof value === "number" && Number.isInteger(value);

/**
 * The region to upload from `planned.upload`: null when it is empty (txt2img). The daemon clamps it
 * to the canvas; anything else is a protocol error we refuse to paper over.
 */
export function uploadRegion(upload: unknown, canvas: Size): Box | null {
  const u = upload as Partial<Box> | null | undefined;
  if (!u || !isInt(u.x) || !isInt(u.y) || !isInt(u.width) || !isInt(u.height)) {
    throw new UploadError(`the daemon's plan has no valid upload region: ${JSON.stringify(upload)}`);
  }
  if (u.width <= 0 || u.height <= 0) return null;
  if (u.x < 0 || u.y < 0 || u.x + u.width > canvas.width || u.y + u.height > canvas.height) {
    throw new UploadError(
      `the daemon asked for pixels ${u.x},${u.y} ${u.width}x${u.height} outside the ${canvas.width}x${canvas.height} canvas`,
    );
  }
  return { x: u.x, y: u.y, width: u.width, height: u.height };
}

export const coversCanvas = (region: Box, canvas: Size): boolean =>
  region.x === 0 && region.y === 0 && region.width === canvas.width && region.height === canvas.height;

/** Cut `box` out of straight RGBA pixels `width` wide. */
export function cropRgba(rgba: Uint8Array, width: number, box: Box): Uint8Array {
  const height = rgba.length / (width * 4);
  if (!Number.isInteger(height) || box.x < 0 || box.y < 0 || box.x + box.width > width || box.y + box.height > height) {
    throw new UploadError(`cannot crop ${box.x},${box.y} ${box.width}x${box.height} out of ${width}x${height} pixels`);
  }
  const out = new Uint8Array(box.width * box.height * 4);
  const row = box.width * 4;
  for (let y = 0; y < box.height; y++) {
    const from = ((box.y + y) * width + box.x) * 4;
    out.set(rgba.subarray(from, from + row), y * row);
  }
  return out;
}

/**
 * A mask as `gray8` from its RGBA pixels: luminance times alpha, i.e. the mask composited over black
 * (the main thread renders white shapes on black, so this is the shapes' coverage; blur stays soft).
 */
export function maskToGray8(rgba: Uint8Array): Uint8Array {
  const out = new Uint8Array(rgba.length / 4);
  for (let i = 0, j = 0; j < out.length; i += 4, j++) {
    const luma = (rgba[i] * 299 + rgba[i + 1] * 587 + rgba[i + 2] * 114) / 1000;
    out[j] = Math.round((luma * rgba[i + 3]) / 255);
  }
  return out;
}

export interface UploadInput {
  /** `planned.upload` as the daemon sent it. */
  upload: unknown;
  canvas: Size;
  image?: Uint8Array;
  mask?: Uint8Array;
  /** `welcome.limits.max_frame_bytes` (0: unknown). */
  maxFrameBytes?: number;
}

/** The submit's region and frames for a plan: the planned region, raw; the whole canvas as PNG. */
export async function buildUpload(input: UploadInput, crop: CropPng): Promise<Upload> {
  const region = uploadRegion(input.upload, input.canvas);
  if (region === null) return { region: null, image: null, mask: null };
  if (!input.image) throw new UploadError("the daemon needs pixels for this job, but there is no exported image");
  const limit = input.maxFrameBytes ?? 0;
  const rawTooLarge = limit > 0 && region.width * region.height * 4 + 4096 > limit;
  if (coversCanvas(region, input.canvas) || rawTooLarge) {
    // The exported PNGs are exactly the canvas; a region larger than the plan's is accepted and cropped.
    const whole = { x: 0, y: 0, width: input.canvas.width, height: input.canvas.height };
    const png = (data: Uint8Array): RawFrame => ({ format: "png", width: whole.width, height: whole.height, data });
    return { region: whole, image: png(input.image), mask: input.mask ? png(input.mask) : null };
  }
  const { width, height } = region;
  const image: RawFrame = { format: "rgba8", width, height, data: await crop(input.image, region) };
  const mask: RawFrame | null = input.mask
    ? { format: "gray8", width, height, data: maskToGray8(await crop(input.mask, region)) }
    : null;
  for (const frame of [image, mask]) {
    const channels = frame?.format === "gray8" ? 1 : 4;
    if (frame && frame.data.length !== width * height * channels) {
      throw new UploadError(`the ${frame.format} crop is ${frame.data.length} bytes, not ${width}x${height}x${channels}`);
    }
  }
  return { region, image, mask };
}
