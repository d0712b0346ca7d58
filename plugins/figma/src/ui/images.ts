/** Browser-side image helpers: Figma's createImage refuses sides over 4096 px, so scale first. */

import { fitImageSize } from "../shared/geometry";

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
