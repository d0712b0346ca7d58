/**
 * A segment job's mask -> a Figma mask node over its image. Figma has no pixel selection: the mask
 * (white, its alpha the soft mask) becomes an image-filled rectangle at the daemon's exact placement,
 * `isMask`, grouped under the image so the image shows only the object. Select that mask node with
 * the image to inpaint it: it counts as a mask shape (see `selection.ts`).
 */

import { resultRect } from "../shared/geometry";
import type { JobContext, ResultItem } from "../shared/messages";
import type { Placed } from "./place";

export const SEGMENT_KEY = "underpaint-segment";

export async function placeMask(context: JobContext, results: ResultItem[]): Promise<Placed> {
  const item = results[results.length - 1];
  if (!item) return { nodeIds: [], notes: [] };
  const base = await figma.getNodeByIdAsync(context.baseId);
  if (base === null || base.type === "DOCUMENT" || base.type === "PAGE") {
    throw new Error(`"${context.baseName}" is gone; the selection was not made.`);
  }
  const image = base as SceneNode;
  const parent = (image.parent ?? figma.currentPage) as BaseNode & ChildrenMixin;
  const rect = resultRect(context.placement, item);
  const node = figma.createRectangle();
  node.name = `Selection of ${context.baseName}`;
  const index = parent.children.findIndex((child) => child.id === image.id);
  parent.insertChild(Math.max(0, index), node); // below the image: a mask clips what is above it
  node.resize(Math.max(0.01, rect.width), Math.max(0.01, rect.height));
  node.x = rect.x;
  node.y = rect.y;
  node.fills = [{ type: "IMAGE", imageHash: figma.createImage(item.png).hash, scaleMode: "FILL" }];
  node.strokes = [];
  node.isMask = true;
  node.setPluginData(SEGMENT_KEY, "mask");
  const group = figma.group([node, image], parent, Math.max(0, index));
  for (const id of context.maskIds) {
    const drawn = await figma.getNodeByIdAsync(id); // the drawn box is used up
    if (drawn && "visible" in drawn) (drawn as SceneNode).visible = false;
  }
  group.name = `${context.baseName} (selected object)`;
  figma.currentPage.selection = [node, image];
  figma.commitUndo();
  return { nodeIds: [group.id, node.id], notes: [] };
}
