/** Messages between the UI iframe and the main thread (figma.ui.postMessage / parent.postMessage). */

import type { Extents, JobGeometry, Mode, Placement } from "./geometry";
import type { GuidePixels } from "./guides";

export interface Settings {
  address: string;
  token: string;
  clientId: string;
  /** Results land as nodes at once (no preview node to Apply or Discard first). */
  landDirectly: boolean;
}

export interface PrepareOptions {
  scale: 1 | 2;
  /** Extents in design units for the Expand action (outpaint); absent for Generate. */
  expand?: Extents;
  /** Node ids of the job's control layers and references (read with the image). */
  guides?: { controls: string[]; references: string[] };
}

/** Everything the main thread needs later to place a job's results. */
export interface JobContext {
  placement: Placement;
  baseId: string;
  baseName: string;
  maskIds: string[];
  mode: Mode;
}

export interface PreparedJob {
  geometry: JobGeometry;
  image?: Uint8Array;
  mask?: Uint8Array;
  context: JobContext;
  summary: string;
  /** The control nodes over the whole canvas and the references, when `guides` asked for them. */
  guides?: GuidePixels;
}

export interface ResultItem {
  index: number;
  name: string;
  x: number;
  y: number;
  width: number;
  height: number;
  png: Uint8Array;
  /** Set when the PNG was scaled down to fit Figma's 4096 px limit. */
  scaledFrom?: { width: number; height: number };
}

/** A live result to show in the one live node: placed at (x, y) of the watched node, in its pixels. */
export interface LiveShow {
  name: string;
  x: number;
  y: number;
  width: number;
  height: number;
  png: Uint8Array;
}

export type UiToMain =
  | { type: "load-settings" }
  | { type: "save-settings"; settings: Partial<Settings> }
  | { type: "prepare"; requestId: string; options: PrepareOptions }
  | { type: "place"; jobId: string; context: JobContext; prompt: string; results: ResultItem[] }
  | { type: "notify"; message: string; error?: boolean }
  | { type: "save-pending"; pending: Record<string, JobContext> }
  /** Show `item` in the one preview node (made, or refilled in place), where it would land. */
  | { type: "show-preview"; context: JobContext; item: ResultItem; label: string }
  /** Remove the preview node; with `keep`, land those results as `place` does (Apply). */
  | { type: "end-preview"; keep?: { jobId: string; context: JobContext; prompt: string; results: ResultItem[] } }
  /** Land a history result over the selected image when it has the result's canvas proportions, else at the viewport's centre. */
  | { type: "reapply"; jobId: string; item: ResultItem; canvas: { width: number; height: number }; mode: Mode }
  /** Live on: watch the selected node and send its pixels (`live-pixels`) now and whenever they change. */
  | { type: "live-watch" }
  | { type: "live-show"; layer: LiveShow }
  /** Copy the live node to a normal result node named `name` (one undo step). */
  | { type: "live-apply"; name: string }
  /** Live off: stop watching, remove the live node. */
  | { type: "live-end" };

export type MainToUi =
  | { type: "settings"; settings: Settings; pending: Record<string, JobContext> }
  /** `nodes`: the selected nodes, for picking control layers and references. */
  | { type: "selection"; summary: string; ok: boolean; mode?: string; nodes: { id: string; name: string }[] }
  | { type: "prepared"; requestId: string; job: PreparedJob }
  | { type: "prepare-error"; requestId: string; message: string }
  | { type: "placed"; jobId: string; nodeIds: string[]; notes: string[] }
  | { type: "place-error"; jobId: string; message: string }
  | { type: "preview-shown"; nodeId: string }
  | { type: "preview-ended" }
  | { type: "live-pixels"; png: Uint8Array; width: number; height: number }
  | { type: "live-shown"; nodeId: string }
  | { type: "live-applied"; nodeId: string }
  | { type: "live-error"; message: string };
