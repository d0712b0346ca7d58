/**
 * Upscale, Refine-upscale and Restore in the sidebar: the tiles of an upscale's result drawn into ONE
 * image within Figma's 4096 px limit (browser canvas; placement math in shared/upscale.ts).
 */

import type { Box, Size } from "../shared/geometry";
import { fitTiles } from "../shared/upscale";

export interface Tile extends Box {
  png: Uint8Array;
}

export interface Assembled extends Size {
  png: Uint8Array;
  /** The daemon's size of the layer when the fill is smaller (Figma's limit). */
  scaledFrom?: Size;
}

/**
 * One PNG for the whole result layer `layer` (scaled-canvas pixels) from its tiles. Each tile is
 * decoded straight to its size in the fill, so memory stays at the fill's size (at most 4096 x 4096),
 * never the daemon's full result.
 */
export async function assembleTiles(layer: Box, tiles: Tile[]): Promise<Assembled> {
  const fit = fitTiles(layer, tiles);
  if (tiles.length === 1 && !fit.scaled) return { png: tiles[0].png, width: fit.width, height: fit.height };
  const canvas = new OffscreenCanvas(fit.width, fit.height);
  const context = canvas.getContext("2d");
  if (context === null) throw new Error("no 2d canvas to join the upscale's tiles with");
  for (const [index, tile] of tiles.entries()) {
    const rect = fit.rects[index];
    if (rect.width <= 0 || rect.height <= 0) continue;
    const bitmap = await createImageBitmap(new Blob([tile.png as BlobPart], { type: "image/png" }), {
      resizeWidth: rect.width,
      resizeHeight: rect.height,
      resizeQuality: "high",
      premultiplyAlpha: "none",
      colorSpaceConversion: "none",
    });
    context.drawImage(bitmap, rect.x, rect.y);
    bitmap.close();
  }
  const blob = await canvas.convertToBlob({ type: "image/png" });
  const png = new Uint8Array(await blob.arrayBuffer());
  const scaledFrom = fit.scaled ? { width: layer.width, height: layer.height } : undefined;
  return { png, width: fit.width, height: fit.height, scaledFrom };
}
