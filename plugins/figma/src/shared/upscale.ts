/**
 * Upscale results in Figma (pure): where each tile of the result is drawn in the ONE image fill, kept
 * within Figma's 4096 px createImage limit, and where the filled rectangle goes. The document does not
 * scale in Figma: the rectangle covers the region it upscales (the whole image, or the selection's
 * region) in design units, and the extra resolution lives in its fill.
 */

import { type Box, fitImageSize, MAX_IMAGE_SIDE, type Placement, type Size } from "./geometry";

export interface FittedTiles extends Size {
  /** True when the fill is smaller than the daemon's result (Figma's limit). */
  scaled: boolean;
  /** Each tile's rectangle inside the fill, in the order given. */
  rects: Box[];
}

/**
 * The fill's size for a result layer of `layer` (scaled-canvas pixels), and each tile's place in it.
 * Tile edges are scaled and rounded as edges, not as sizes, so neighbouring tiles meet exactly: no gap
 * and no overlap, whatever the scale.
 */
export function fitTiles(layer: Box, tiles: Box[], max = MAX_IMAGE_SIDE): FittedTiles {
  const fit = fitImageSize(layer.width, layer.height, max);
  const sx = fit.width / layer.width;
  const sy = fit.height / layer.height;
  const rects = tiles.map((tile) => {
    const left = Math.round((tile.x - layer.x) * sx);
    const top = Math.round((tile.y - layer.y) * sy);
    const right = Math.round((tile.x + tile.width - layer.x) * sx);
    const bottom = Math.round((tile.y + tile.height - layer.y) * sy);
    return { x: left, y: top, width: right - left, height: bottom - top };
  });
  return { width: fit.width, height: fit.height, scaled: fit.scaled, rects };
}

/**
 * Placement of an upscale's result: its pixels are in the SCALED canvas (`scaled`), `original` being the
 * exported image's size; so a design unit holds `placement.scale` times the upscale's ratio pixels.
 */
export function upscalePlacement(placement: Placement, original: Size, scaled: Size): Placement {
  const ratio = (scaled.width / original.width + scaled.height / original.height) / 2;
  return { ...placement, scale: placement.scale * ratio };
}

/** What the sidebar and figma.notify say when the fill had to be smaller than the result. */
export function scaledNote(name: string, from: Size, to: Size): string {
  return (
    `"${name}" is ${from.width}×${from.height} px; Figma images stop at ${MAX_IMAGE_SIDE} px, so its fill is ` +
    `${to.width}×${to.height} px (placement is exact, resolution lower).`
  );
}
