/**
 * Browser-side image helpers: cut the planned region out of an exported PNG (canvas 2D), and scale
 * results down first where Figma's createImage refuses sides over 4096 px.
 */

import { type Box, fitImageSize } from "../shared/geometry";

/**
 * Straight RGBA pixels of `box` out of a PNG: the browser decodes (only the crop is drawn) and
 * canvas 2D reads them back. No colour conversion. Canvas pixels are premultiplied inside, so colour
 * under fully transparent pixels is lost (the daemon composites on its own); opaque pixels are exact.
 */
export async function cropPng(png: Uint8Array, box: Box): Promise<Uint8Array> {
  const bitmap = await createImageBitmap(new Blob([png as BlobPart], { type: "image/png" }), box.x, box.y, box.width, box.height, {
    premultiplyAlpha: "none",
    colorSpaceConversion: "none",
  });
  try {
    const canvas = new OffscreenCanvas(box.width, box.height);
    const context = canvas.getContext("2d", { willReadFrequently: true });
    if (context === null) throw new Error("no 2d canvas to read the exported image with");
    context.drawImage(bitmap, 0, 0);
    const data = context.getImageData(0, 0, box.width, box.height).data;
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } finally {
    bitmap.close();
  }
}

export interface Fitted {
  png: Uint8Array;
  scaledFrom?: { width: number; height: number };
}

export async function fitForFigma(png: Uint8Array, width: number, height: number): Promise<Fitted> {
  const fit = fitImageSize(width, height);
  if (!fit.scaled) return { png };
  const bitmap = await createImageBitmap(new Blob([png as BlobPart], { type: "image/png" }), {
    resizeWidth: fit.width,
    resizeHeight: fit.height,
    resizeQuality: "high",
    premultiplyAlpha: "none",
    colorSpaceConversion: "none",
  });
  const canvas = new OffscreenCanvas(fit.width, fit.height);
  const context = canvas.getContext("2d");
  if (context === null) throw new Error("no 2d canvas to scale the result with");
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const blob = await canvas.convertToBlob({ type: "image/png" });
  return { png: new Uint8Array(await blob.arrayBuffer()), scaledFrom: { width, height } };
}

export function randomClientId(): string {
  const bytes = new Uint8Array(18);
  crypto.getRandomValues(bytes);
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
