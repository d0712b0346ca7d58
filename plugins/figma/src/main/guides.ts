/** Reading the nodes a job uses as control layers and references (main thread). */

import type { Box } from "../shared/geometry";
import type { GuidePixels } from "../shared/guides";
import { SelectionError } from "../shared/geometry";

async function nodeById(id: string, what: string): Promise<SceneNode> {
  const node = await figma.getNodeByIdAsync(id);
  if (node === null || node.type === "DOCUMENT" || node.type === "PAGE") {
    throw new SelectionError(`The ${what} node was deleted: remove its row, or pick another node.`);
  }
  return node as SceneNode;
}

/**
 * A control node's pixels over the job's canvas: the node alone (shown even when hidden, as sketches
 * often are) in a transparent temporary frame at the image's box, exported at the job's scale, so it
 * lines up with the image pixel for pixel. Transparent where the node has nothing.
 */
export async function renderControl(box: Box, node: SceneNode, scale: number): Promise<Uint8Array> {
  const frame = figma.createFrame();
  try {
    frame.name = "underpaint control (temporary)";
    figma.currentPage.appendChild(frame);
    frame.resize(Math.max(0.01, box.width), Math.max(0.01, box.height));
    frame.x = box.x;
    frame.y = box.y;
    frame.fills = [];
    frame.clipsContent = true;
    const clone = node.clone();
    frame.appendChild(clone);
    const t = node.absoluteTransform;
    clone.relativeTransform = [
      [t[0][0], t[0][1], t[0][2] - box.x],
      [t[1][0], t[1][1], t[1][2] - box.y],
    ];
    clone.visible = true;
    return await frame.exportAsync({ format: "PNG", constraint: { type: "SCALE", value: scale } });
  } finally {
    frame.remove();
  }
}

/** Every control node over the canvas at `box`, every reference node whole, at the job's scale. */
export async function readGuides(box: Box, scale: number, ids: { controls: string[]; references: string[] }): Promise<GuidePixels> {
  const controls = [];
  for (const id of ids.controls) controls.push(await renderControl(box, await nodeById(id, "control layer"), scale));
  const references = [];
  for (const id of ids.references) {
    const node = await nodeById(id, "reference");
    references.push(await node.exportAsync({ format: "PNG", constraint: { type: "SCALE", value: scale } }));
  }
  return { controls, references };
}
