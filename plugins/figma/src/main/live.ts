/**
 * Live painting on the main thread: watch the selected node, send its pixels to the UI when they
 * change, show each live result in ONE image-filled node above it (refilled in place), copy it to a
 * normal result node on Apply, remove it on Live off. The session (frames, sequence numbers, what
 * changed) is the UI's (ui/live.ts), where the websocket lives.
 *
 * Changes are found from the page's "nodechange" events: a change to the watched node or anything
 * inside it (or a node removed or moved, which cannot say where it was) exports the node again (Figma
 * renders off the main thread, exportAsync never blocks it) and compares the bytes with the last
 * export; only a changed export travels to the UI. A change that arrives while an export runs asks for
 * one more export after it (latest wins: never a backlog). What Figma reports on no node of the frame
 * (a main component edited on another page, a style or variable changed) is caught by a slow check
 * every SAFETY_MS.
 */

import type { LiveShow } from "../shared/messages";

const LIVE_KEY = "underpaint-live";
export const SAFETY_MS = 2000;

interface Watch {
  node: SceneNode;
  last: Uint8Array | null;
  busy: boolean;
  /** A change arrived while an export ran: export once more when it ends. */
  again: boolean;
  timer: ReturnType<typeof setInterval>;
  onChange: (event: NodeChangeEvent) => void;
}

let watch: Watch | null = null;
let liveNode: RectangleNode | null = null;

function sameBytes(a: Uint8Array | null, b: Uint8Array): boolean {
  if (a === null || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Live on for the one selected node: its pixels now (the first frame), then whenever they change. */
export async function startWatching(send: (png: Uint8Array, width: number, height: number) => void): Promise<void> {
  stopWatching();
  const selection = figma.currentPage.selection;
  if (selection.length !== 1 || !("exportAsync" in selection[0])) {
    throw new Error("Select one frame or image to paint live on.");
  }
  const node = selection[0];
  const current: Watch = {
    node,
    last: null,
    busy: false,
    again: false,
    timer: setInterval(() => void check(current), SAFETY_MS),
    onChange: (event) => {
      if (event.nodeChanges.some((change) => touches(node, change))) void check(current);
    },
  };
  watch = current;
  figma.currentPage.on("nodechange", current.onChange);
  async function check(w: Watch): Promise<void> {
    if (watch !== w) return;
    if (w.busy) {
      w.again = true;
      return;
    }
    if (w.node.removed) {
      stopWatching();
      return;
    }
    w.busy = true;
    try {
      do {
        w.again = false;
        const png = await w.node.exportAsync({ format: "PNG", constraint: { type: "SCALE", value: 1 }, useAbsoluteBounds: true });
        if (watch === w && !sameBytes(w.last, png)) {
          w.last = png;
          send(png, Math.round(w.node.width), Math.round(w.node.height));
        }
      } while (w.again && watch === w && !w.node.removed);
    } finally {
      w.busy = false;
    }
  }
  await check(current);
}

/** Whether `change` may have changed what `watched` looks like: a change to it or inside it, or a node
 *  removed or moved (its old place is unknown). The plugin's own live node sits beside it: not inside. */
export function touches(watched: SceneNode, change: NodeChange): boolean {
  if (change.type === "DELETE") return true;
  if (change.type === "PROPERTY_CHANGE" && change.properties.includes("parent")) return true;
  for (let node: BaseNode | null = change.node as SceneNode; node !== null; node = node.parent) {
    if (node.id === watched.id) return true;
  }
  return false;
}

/** Stop sending pixels (the live node stays until `endLive`). */
export function stopWatching(): void {
  if (watch !== null) {
    clearInterval(watch.timer);
    figma.currentPage.off("nodechange", watch.onChange);
  }
  watch = null;
}

function current(): RectangleNode | null {
  return liveNode !== null && !liveNode.removed ? liveNode : null;
}

/** The live result in the one live node right above the watched node (made once, then refilled). */
export function showLive(layer: LiveShow): string {
  const base = watch?.node;
  if (base === undefined) throw new Error("Live is off.");
  let node = current();
  if (node === null) {
    node = figma.createRectangle();
    node.setPluginData(LIVE_KEY, "1");
    const parent = (base.parent ?? figma.currentPage) as BaseNode & ChildrenMixin;
    parent.insertChild(parent.children.indexOf(base) + 1, node);
    node.strokes = [];
    node.locked = true;
    liveNode = node;
  }
  node.resize(Math.max(0.01, layer.width), Math.max(0.01, layer.height));
  node.x = base.x + layer.x;
  node.y = base.y + layer.y;
  node.fills = [{ type: "IMAGE", imageHash: figma.createImage(layer.png).hash, scaleMode: "FILL" }];
  node.name = layer.name;
  return node.id;
}

/** Apply: a copy of the live node as a normal, unlocked result node above it (one undo step). */
export function applyLive(name: string): string {
  const node = current();
  if (node === null) throw new Error("There is no live result to apply yet.");
  const copy = node.clone();
  copy.locked = false;
  copy.name = name;
  copy.setPluginData(LIVE_KEY, "");
  copy.setPluginData("underpaint-mode", "live");
  const parent = node.parent as BaseNode & ChildrenMixin;
  parent.insertChild(parent.children.indexOf(node), copy);
  figma.commitUndo();
  return copy.id;
}

/** Live off (or the plugin closes): no more pixels, and the live node goes. */
export function endLive(): void {
  stopWatching();
  current()?.remove();
  liveNode = null;
}
