/** Reading the figma selection into plain NodeInfo records, and exporting the pixels a job needs. */

import {
  type Box,
  type Classified,
  classifySelection,
  exportSize,
  jobGeometry,
  SelectionError,
  type NodeInfo,
} from "../shared/geometry";
import type { PreparedJob, PrepareOptions } from "../shared/messages";
import { pngSize } from "../shared/png";
import { readGuides } from "./guides";
import { SEGMENT_KEY } from "./segment";

const FRAME_TYPES = new Set(["FRAME", "COMPONENT", "INSTANCE"]);

function hasImageFill(node: SceneNode): boolean {
  if (!("fills" in node)) return false;
  const fills = node.fills;
  return Array.isArray(fills) && fills.some((fill: Paint) => fill.type === "IMAGE" && fill.visible !== false);
}

function absoluteBox(node: SceneNode): Box {
  const t = node.absoluteTransform;
  if (Math.abs(t[0][1]) < 1e-9 && Math.abs(t[1][0]) < 1e-9) {
    return { x: t[0][2], y: t[1][2], width: node.width * t[0][0], height: node.height * t[1][1] };
  }
  const b = node.absoluteBoundingBox;
  return b ? { x: b.x, y: b.y, width: b.width, height: b.height } : { x: t[0][2], y: t[1][2], width: node.width, height: node.height };
}

export function nodeInfo(node: SceneNode, withChildren = true): NodeInfo {
  const t = node.absoluteTransform;
  const render = "absoluteRenderBounds" in node ? node.absoluteRenderBounds : null;
  const children = "children" in node ? (node.children as readonly SceneNode[]) : [];
  return {
    id: node.id,
    name: node.name,
    type: node.type,
    box: absoluteBox(node),
    renderBox: render ? { x: render.x, y: render.y, width: render.width, height: render.height } : null,
    hasImageFill: hasImageFill(node),
    isFrame: FRAME_TYPES.has(node.type),
    imageChildren: withChildren
      ? children.filter((child) => child.visible && hasImageFill(child)).map((child) => nodeInfo(child, false))
      : [],
    childCount: children.length,
    rotated: Math.abs(t[0][1]) > 1e-6 || Math.abs(t[1][0]) > 1e-6 || t[0][0] < 0 || t[1][1] < 0,
    segmentMask: node.getPluginData(SEGMENT_KEY) === "mask",
  };
}

export function classify(selection: readonly SceneNode[]): Classified {
  const classified = classifySelection(selection.map((node) => nodeInfo(node)));
  if (classified.base.rotated) {
    throw new SelectionError(`"${classified.base.name}" is rotated or flipped; underpaint needs an unrotated image or frame.`);
  }
  return classified;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;

export function describe(classified: Classified): string {
  const base = classified.base;
  const size = `${Math.round(base.box.width)}×${Math.round(base.box.height)}`;
  switch (classified.mode) {
    case "inpaint":
      return `Inpaint "${base.name}" (${size}) under ${plural(classified.masks.length, "mask shape")}`;
    case "img2img":
      return `img2img on "${base.name}" (${size}); set extents and press Expand to outpaint`;
    case "outpaint":
      return `Outpaint "${base.name}" (${size}) to fill frame "${classified.frame.name}"`;
    case "txt2img":
      return `txt2img into "${base.name}" (${size})`;
  }
}

async function nodeById(id: string): Promise<SceneNode> {
  const node = await figma.getNodeByIdAsync(id);
  if (node === null || node.type === "DOCUMENT" || node.type === "PAGE") throw new SelectionError(`layer ${id} is gone`);
  return node as SceneNode;
}

function isDescendant(node: BaseNode, ancestor: BaseNode): boolean {
  for (let p = node.parent; p !== null; p = p.parent) if (p.id === ancestor.id) return true;
  return false;
}

const WHITE: SolidPaint = { type: "SOLID", color: { r: 1, g: 1, b: 1 } };
const BLACK: SolidPaint = { type: "SOLID", color: { r: 0, g: 0, b: 0 } };

/** Paint a cloned mask shape white (fills and strokes), keeping only blur effects (soft edges). */
function whiten(node: SceneNode): void {
  if ("fills" in node && Array.isArray(node.fills) && node.fills.length > 0) node.fills = [WHITE];
  if ("strokes" in node && node.strokes.length > 0) node.strokes = [WHITE];
  if ("effects" in node) node.effects = node.effects.filter((effect) => effect.type === "LAYER_BLUR");
  if ("blendMode" in node) node.blendMode = "NORMAL";
  if ("children" in node) for (const child of node.children) whiten(child);
}

/** The mask: the shapes rendered white on black at the image's bounds, through a temporary frame. */
export async function renderMask(base: SceneNode, masks: SceneNode[], scale: number): Promise<Uint8Array> {
  const box = absoluteBox(base);
  const frame = figma.createFrame();
  try {
    frame.name = "underpaint mask (temporary)";
    figma.currentPage.appendChild(frame);
    frame.resize(Math.max(0.01, box.width), Math.max(0.01, box.height));
    frame.x = box.x;
    frame.y = box.y;
    frame.fills = [BLACK];
    frame.clipsContent = true;
    for (const mask of masks) {
      const clone = mask.clone();
      frame.appendChild(clone);
      const t = mask.absoluteTransform;
      clone.relativeTransform = [
        [t[0][0], t[0][1], t[0][2] - box.x],
        [t[1][0], t[1][1], t[1][2] - box.y],
      ];
      clone.visible = true;
      // A selection made by underpaint is already its soft mask (white, alpha = selected): drawn, not masking.
      if (mask.getPluginData(SEGMENT_KEY) === "mask") (clone as RectangleNode).isMask = false;
      else whiten(clone);
    }
    return await frame.exportAsync({ format: "PNG", constraint: { type: "SCALE", value: scale } });
  } finally {
    frame.remove();
  }
}

/** The node's own pixels at ``scale``, with mask shapes inside it hidden while exporting. */
export async function exportImage(base: SceneNode, hide: SceneNode[], scale: number): Promise<Uint8Array> {
  const hidden = hide.filter((node) => node.visible && isDescendant(node, base));
  for (const node of hidden) node.visible = false;
  try {
    return await base.exportAsync({ format: "PNG", constraint: { type: "SCALE", value: scale }, useAbsoluteBounds: true });
  } finally {
    for (const node of hidden) node.visible = true;
  }
}

/** Selection -> everything the UI needs to plan and submit a job. */
export async function prepareJob(selection: readonly SceneNode[], options: PrepareOptions): Promise<PreparedJob> {
  const scale = options.scale === 2 ? 2 : 1;
  const classified = classify(selection);
  const base = await nodeById(classified.base.id);
  const masks = classified.mode === "inpaint" ? await Promise.all(classified.masks.map((m) => nodeById(m.id))) : [];
  let image: Uint8Array | undefined;
  let mask: Uint8Array | undefined;
  let canvas = exportSize(classified.base.box, scale);
  if (classified.mode !== "txt2img") {
    // control layers drawn over the image (inside its frame) guide it: they are not part of it
    const controls = await Promise.all((options.guides?.controls ?? []).map((id) => figma.getNodeByIdAsync(id)));
    const hide = controls.filter((node): node is SceneNode => node !== null && "visible" in node);
    image = await exportImage(base, [...masks, ...hide], scale);
    const size = pngSize(image);
    if (size === null) throw new Error("figma exported something that is not a PNG");
    canvas = size;
  } else if (options.expand) {
    throw new SelectionError("Expand needs an image: select an image or a frame with content.");
  }
  const geometry = jobGeometry(classified, scale, canvas, options.expand);
  if (geometry.mode === "inpaint") {
    mask = await renderMask(base, masks, scale);
    const size = pngSize(mask);
    if (size === null || size.width !== canvas.width || size.height !== canvas.height) {
      throw new Error(`the mask rendered at ${size?.width}x${size?.height}, not the image's ${canvas.width}x${canvas.height}`);
    }
  }
  const parent = base.parent;
  let summary = describe(classified);
  if (geometry.mode === "outpaint" && classified.mode === "img2img") {
    const e = geometry.extend!;
    summary = `Outpaint "${base.name}" by ${e.left}/${e.top}/${e.right}/${e.bottom} px (left/top/right/bottom)`;
  }
  const guides = options.guides && (options.guides.controls.length > 0 || options.guides.references.length > 0);
  return {
    geometry,
    image,
    mask,
    summary,
    guides: guides ? await readGuides(classified.base.box, scale, options.guides!) : undefined,
    context: {
      placement: { parentId: parent ? parent.id : figma.currentPage.id, x: base.x, y: base.y, scale },
      baseId: base.id,
      baseName: base.name,
      maskIds: masks.map((m) => m.id),
      mode: geometry.mode,
    },
  };
}
