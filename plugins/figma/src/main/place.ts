/** Results -> figma nodes: image-filled rectangles exactly over the region they replace. */

import { resultRect } from "../shared/geometry";
import type { JobContext, ResultItem } from "../shared/messages";

type Parent = BaseNode & ChildrenMixin;

export async function parentOf(context: JobContext): Promise<{ parent: Parent; index: number }> {
  const found = await figma.getNodeByIdAsync(context.placement.parentId);
  const parent = (found && "children" in found ? found : figma.currentPage) as Parent;
  const base = parent.children.findIndex((child) => child.id === context.baseId);
  // Directly above the image (or frame) the result replaces; on top when it is gone.
  return { parent, index: base >= 0 ? base + 1 : parent.children.length };
}

export interface Placed {
  nodeIds: string[];
  notes: string[];
}

export async function placeResults(context: JobContext, prompt: string, results: ResultItem[]): Promise<Placed> {
  const notes: string[] = [];
  if (results.length === 0) return { nodeIds: [], notes };
  const { parent, index } = await parentOf(context);
  const nodes: RectangleNode[] = [];
  for (const item of [...results].sort((a, b) => a.index - b.index)) {
    const rect = resultRect(context.placement, item);
    const image = figma.createImage(item.png);
    const node = figma.createRectangle();
    node.name = item.name;
    parent.insertChild(Math.min(index + nodes.length, parent.children.length), node);
    node.resize(Math.max(0.01, rect.width), Math.max(0.01, rect.height));
    node.x = rect.x;
    node.y = rect.y;
    node.fills = [{ type: "IMAGE", imageHash: image.hash, scaleMode: "FILL" }];
    node.strokes = [];
    if (item.scaledFrom) {
      const note = `"${item.name}" is ${item.scaledFrom.width}×${item.scaledFrom.height} px; Figma images stop at 4096 px, so it was scaled down (placement is exact, resolution lower).`;
      notes.push(note);
      node.setPluginData("underpaint-note", note);
    }
    node.setPluginData("underpaint-mode", context.mode);
    nodes.push(node);
  }
  let top: SceneNode = nodes[0];
  if (nodes.length > 1) {
    const group = figma.group(nodes, parent, index);
    const label = prompt.trim() ? prompt.trim().slice(0, 40) : context.mode;
    group.name = `${label} (${nodes.length} variations)`;
    top = group;
  }
  for (const id of context.maskIds) {
    const mask = await figma.getNodeByIdAsync(id);
    if (mask && "visible" in mask) (mask as SceneNode).visible = false;
  }
  figma.currentPage.selection = [top];
  figma.commitUndo();
  return { nodeIds: [top.id, ...(nodes.length > 1 ? nodes.map((n) => n.id) : [])], notes };
}
