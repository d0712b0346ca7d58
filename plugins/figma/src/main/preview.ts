/**
 * Preview, then apply: the ONE preview node (an image-filled rectangle where the result would land,
 * above the mask shapes so it is seen), refilled in place while the user steps through a batch, then
 * removed: Apply lands the result through `placeResults` (the same nodes and undo step as a direct
 * landing), Discard leaves the document as it was. Mirrors PreviewCanvas in underpaint_protocol/controller.py.
 * Also `reapplyResult`: a history result landed again.
 */

import { resultRect } from "../shared/geometry";
import type { Mode } from "../shared/geometry";
import type { JobContext, ResultItem } from "../shared/messages";
import { parentOf, type Placed, placeResults } from "./place";

const PREVIEW_KEY = "underpaint-preview";
/** The preview node while one is shown (the user may delete it: `removed` says so). */
let preview: RectangleNode | null = null;

function previewNode(): RectangleNode | null {
  return preview !== null && !preview.removed ? preview : null;
}

/** Show `item` in the preview node (made on first use, else refilled and moved in place); its id. */
export async function showPreview(context: JobContext, item: ResultItem, label: string): Promise<string> {
  const { parent, index } = await parentOf(context);
  let node = previewNode();
  if (node === null || node.parent !== parent) {
    node?.remove();
    node = figma.createRectangle();
    node.setPluginData(PREVIEW_KEY, "1");
    // Above the image and the shapes drawn over it, so the preview is not hidden under the mask.
    const masks = parent.children.map((child, at) => (context.maskIds.includes(child.id) ? at + 1 : 0));
    parent.insertChild(Math.min(Math.max(index, ...masks), parent.children.length), node);
    node.strokes = [];
    node.locked = true;
  }
  const rect = resultRect(context.placement, item);
  node.resize(Math.max(0.01, rect.width), Math.max(0.01, rect.height));
  node.x = rect.x;
  node.y = rect.y;
  node.fills = [{ type: "IMAGE", imageHash: figma.createImage(item.png).hash, scaleMode: "FILL" }];
  node.name = `[preview ${label}] ${item.name}`;
  preview = node;
  return node.id;
}

/** Remove the preview node; with `keep` (Apply) land those results exactly as a direct landing does. */
export async function endPreview(keep?: { context: JobContext; prompt: string; results: ResultItem[] }): Promise<Placed | null> {
  previewNode()?.remove();
  preview = null;
  if (keep) return placeResults(keep.context, keep.prompt, keep.results);
  figma.commitUndo();
  return null;
}

/** The plugin closes: a preview left behind would look like a result. */
export function dropPreviewNow(): void {
  previewNode()?.remove();
  preview = null;
}

/**
 * A history result (any session's, the CLI's) landed again: over the selected node when its
 * proportions match the canvas the result was made for (the place it was made), else at the
 * viewport's centre, one design unit per pixel. One undo step.
 */
export async function reapplyResult(item: ResultItem, canvas: { width: number; height: number }, mode: Mode): Promise<Placed> {
  const base = figma.currentPage.selection[0];
  const fits = base !== undefined && Math.abs(base.height - (base.width * canvas.height) / canvas.width) < 1;
  const scale = fits ? canvas.width / base.width : 1;
  const parentId = fits && base.parent ? base.parent.id : figma.currentPage.id;
  const center = figma.viewport.center;
  const origin = fits ? { x: base.x, y: base.y } : { x: Math.round(center.x - canvas.width / 2), y: Math.round(center.y - canvas.height / 2) };
  const context: JobContext = {
    placement: { parentId, x: origin.x, y: origin.y, scale },
    baseId: fits ? base.id : "",
    baseName: fits ? base.name : "",
    maskIds: [],
    mode,
  };
  return placeResults(context, "", [item]);
}
