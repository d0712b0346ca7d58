/**
 * Pure geometry between Figma's design space and the daemon's pixel space.
 *
 * Figma nodes live in design units; the plugin exports them at a scale (1x or 2x), so the daemon sees
 * a canvas of pixels. These functions turn a classified selection into the job's geometry (canvas,
 * selection bounds, outpaint extents) and a result's placement back into a node rectangle. The
 * daemon decides every crop; nothing here touches mask or crop math.
 */

import type { Mode } from "./protocol.gen";

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Extents {
  left: number;
  top: number;
  right: number;
  bottom: number;
}

export type { Mode };

/** What the main thread knows about one selected node, read from the figma API. */
export interface NodeInfo {
  id: string;
  name: string;
  type: string;
  /** Absolute bounds (design units). */
  box: Box;
  /** Absolute render bounds (include blur, strokes); null when the node renders nothing. */
  renderBox: Box | null;
  hasImageFill: boolean;
  /** Frames, components and instances: nodes that can be the canvas. */
  isFrame: boolean;
  /** Visible direct children with an image fill (for "frame larger than the image inside it"). */
  imageChildren: NodeInfo[];
  childCount: number;
  rotated: boolean;
  /** A selection made by underpaint (segment): a mask shape for inpainting, never the canvas. */
  segmentMask?: boolean;
}

export type Classified =
  | { mode: "inpaint"; base: NodeInfo; masks: NodeInfo[] }
  | { mode: "img2img"; base: NodeInfo }
  | { mode: "outpaint"; base: NodeInfo; frame: NodeInfo }
  | { mode: "txt2img"; base: NodeInfo };

export class SelectionError extends Error {}

const EMPTY_HINT =
  "Select an image (img2img), an image plus shapes drawn over it (inpaint), a frame larger than the image " +
  "inside it (outpaint), or an empty frame or rectangle (txt2img).";

const isCanvas = (node: NodeInfo): boolean => (node.hasImageFill || node.isFrame) && !node.segmentMask;
const area = (box: Box): number => box.width * box.height;

/** Decide what a selection means. Throws SelectionError with a sentence for the user. */
export function classifySelection(nodes: NodeInfo[]): Classified {
  if (nodes.length === 0) throw new SelectionError(`Nothing is selected. ${EMPTY_HINT}`);
  if (nodes.length === 1 && !nodes[0].segmentMask) {
    const node = nodes[0];
    if (node.hasImageFill) return { mode: "img2img", base: node };
    if (node.isFrame) {
      const inner = node.imageChildren.filter((child) => contains(node.box, child.box));
      if (inner.length === 1 && area(inner[0].box) < area(node.box) - 1e-6) {
        return { mode: "outpaint", base: inner[0], frame: node };
      }
      if (node.childCount > 0) return { mode: "img2img", base: node };
      return { mode: "txt2img", base: node };
    }
    return { mode: "txt2img", base: node };
  }
  const candidates = nodes.filter(isCanvas);
  if (candidates.length === 0) {
    throw new SelectionError(`None of the selected layers is an image or a frame. ${EMPTY_HINT}`);
  }
  const base = candidates.reduce((best, node) => (area(node.box) > area(best.box) ? node : best));
  const masks = nodes.filter((node) => node !== base);
  const images = masks.filter((node) => node.hasImageFill && !node.segmentMask);
  if (images.length > 0) {
    throw new SelectionError(
      `Select one image and the shapes to repaint; "${images[0].name}" is another image. ` +
        "Mask shapes are plain vector shapes drawn over the image.",
    );
  }
  return { mode: "inpaint", base, masks };
}

export function contains(outer: Box, inner: Box, slack = 1e-3): boolean {
  return (
    inner.x >= outer.x - slack &&
    inner.y >= outer.y - slack &&
    inner.x + inner.width <= outer.x + outer.width + slack &&
    inner.y + inner.height <= outer.y + outer.height + slack
  );
}

export function union(boxes: Box[]): Box | null {
  if (boxes.length === 0) return null;
  let left = Infinity;
  let top = Infinity;
  let right = -Infinity;
  let bottom = -Infinity;
  for (const b of boxes) {
    left = Math.min(left, b.x);
    top = Math.min(top, b.y);
    right = Math.max(right, b.x + b.width);
    bottom = Math.max(bottom, b.y + b.height);
  }
  return { x: left, y: top, width: right - left, height: bottom - top };
}

export interface Size {
  width: number;
  height: number;
}

/** Pixel size of a node exported at ``scale`` (Figma rounds to whole pixels, at least 1). */
export function exportSize(box: Box, scale: number): Size {
  return { width: Math.max(1, Math.round(box.width * scale)), height: Math.max(1, Math.round(box.height * scale)) };
}

/**
 * The job's selection rect in canvas pixels: the mask shapes' render bounds relative to the image,
 * scaled, rounded outwards and clipped to the canvas. Null when no shape overlaps the image.
 */
export function maskSelection(base: Box, masks: Box[], scale: number, canvas: Size): Box | null {
  const bounds = union(masks);
  if (bounds === null) return null;
  const left = Math.max(0, Math.floor((bounds.x - base.x) * scale + 1e-6));
  const top = Math.max(0, Math.floor((bounds.y - base.y) * scale + 1e-6));
  const right = Math.min(canvas.width, Math.ceil((bounds.x + bounds.width - base.x) * scale - 1e-6));
  const bottom = Math.min(canvas.height, Math.ceil((bounds.y + bounds.height - base.y) * scale - 1e-6));
  if (right <= left || bottom <= top) return null;
  return { x: left, y: top, width: right - left, height: bottom - top };
}

/** Outpaint extents in pixels from a frame around the image (parts of the image outside count as 0). */
export function frameExtents(image: Box, frame: Box, scale: number): Extents {
  const px = (value: number): number => Math.max(0, Math.round(value * scale));
  return {
    left: px(image.x - frame.x),
    top: px(image.y - frame.y),
    right: px(frame.x + frame.width - (image.x + image.width)),
    bottom: px(frame.y + frame.height - (image.y + image.height)),
  };
}

/** Extents typed by the user (design units) in pixels. */
export function scaleExtents(extents: Extents, scale: number): Extents {
  const px = (value: number): number => Math.max(0, Math.round((Number.isFinite(value) ? value : 0) * scale));
  return { left: px(extents.left), top: px(extents.top), right: px(extents.right), bottom: px(extents.bottom) };
}

export const isZero = (e: Extents): boolean => e.left + e.top + e.right + e.bottom === 0;

export interface JobGeometry {
  mode: Mode;
  canvas: Size;
  selection?: Box;
  extend?: Extents;
}

/**
 * The geometric part of the job for a classified selection. ``canvas`` is the exported image's pixel
 * size (from the PNG itself when there is one); ``expand`` (design units) turns img2img into outpaint.
 */
export function jobGeometry(classified: Classified, scale: number, canvas: Size, expand?: Extents): JobGeometry {
  switch (classified.mode) {
    case "txt2img":
      return { mode: "txt2img", canvas };
    case "img2img": {
      const extend = expand ? scaleExtents(expand, scale) : null;
      if (extend && !isZero(extend)) return { mode: "outpaint", canvas, extend };
      return { mode: "img2img", canvas };
    }
    case "outpaint": {
      const extend = frameExtents(classified.base.box, classified.frame.box, scale);
      if (expand) {
        const more = scaleExtents(expand, scale);
        extend.left += more.left;
        extend.top += more.top;
        extend.right += more.right;
        extend.bottom += more.bottom;
      }
      if (isZero(extend)) throw new SelectionError("The frame is no larger than the image: nothing to outpaint.");
      return { mode: "outpaint", canvas, extend };
    }
    case "inpaint": {
      const boxes = classified.masks.map((mask) => mask.renderBox ?? mask.box);
      const selection = maskSelection(classified.base.box, boxes, scale, canvas);
      if (selection === null) {
        throw new SelectionError(`The selected shapes do not overlap "${classified.base.name}": draw them over the image.`);
      }
      return { mode: "inpaint", canvas, selection };
    }
  }
}

/** Where results go: the base node's parent and its position there, in design units. */
export interface Placement {
  parentId: string;
  /** The base node's x, y in its parent's coordinate space (node.x, node.y). */
  x: number;
  y: number;
  scale: number;
}

export interface LayerGeometry {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** The rectangle (parent coordinates, design units) that a result layer covers. */
export function resultRect(placement: Placement, layer: LayerGeometry): Box {
  const s = placement.scale;
  return { x: placement.x + layer.x / s, y: placement.y + layer.y / s, width: layer.width / s, height: layer.height / s };
}

export const MAX_IMAGE_SIDE = 4096;

/** The largest size within Figma's createImage limit with the same aspect ratio. */
export function fitImageSize(width: number, height: number, max = MAX_IMAGE_SIDE): Size & { scaled: boolean } {
  if (width <= max && height <= max) return { width, height, scaled: false };
  const factor = max / Math.max(width, height);
  return {
    width: Math.max(1, Math.min(max, Math.round(width * factor))),
    height: Math.max(1, Math.min(max, Math.round(height * factor))),
    scaled: true,
  };
}
