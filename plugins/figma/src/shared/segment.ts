/** Selecting objects (a `segment` job, PROTOCOL.md section 8) for the Figma sidebar: the TypeScript
 * mirror of `underpaint_protocol/segment.py` (pure: the job, the checks, the mask out of a result). */

import type { JobSpec, ModelDescription, Rect, SegmentSpec } from "./protocol.gen";

export const COMBINE_MODES = ["replace", "add", "subtract", "intersect"] as const;
export type CombineMode = (typeof COMBINE_MODES)[number];
export type SegmentInput = "box" | "points" | "mask" | "text";

export interface SegmentRequest {
  box?: Rect;
  points?: [number, number][];
  negativePoints?: [number, number][];
  text?: string;
  /** Send the current rough selection (`selection` bounds + the uploaded mask) to refine. */
  selection?: Rect;
  /** Absent: the daemon's first model that takes these inputs. */
  model?: string;
  threshold?: number;
  soften?: number;
}

/** Which kinds of input a request uses. */
export function segmentInputs(request: SegmentRequest): SegmentInput[] {
  const used: SegmentInput[] = [];
  if (request.box) used.push("box");
  if (request.points?.length || request.negativePoints?.length) used.push("points");
  if (request.selection) used.push("mask");
  if (request.text !== undefined) used.push("text");
  return used;
}

/** The models that select objects (those taking `needs`, when given). */
export function segmentModels(models: ModelDescription[], needs?: SegmentInput): ModelDescription[] {
  return models.filter((m) => Array.isArray(m.segment_inputs) && (!needs || m.segment_inputs.includes(needs)));
}

/** Why the request cannot be sent, in the user's words (null: it can); `model` when one is chosen. */
export function segmentProblem(request: SegmentRequest, model?: ModelDescription): string | null {
  const used = segmentInputs(request);
  if (!used.length) return "Draw a box, click on the object, keep a rough selection to refine, or type what to select.";
  if (request.text !== undefined && !request.text.trim()) return "Type what to select (for example: the red car).";
  if (request.box && (request.box.width <= 0 || request.box.height <= 0)) {
    return "The box is empty: drag a rectangle around the object.";
  }
  if (model) {
    const can = model.segment_inputs;
    if (!Array.isArray(can)) return `The ${model.id} model cannot select objects; pick a segment model.`;
    const missing = used.filter((input) => !can.includes(input));
    if (missing.includes("text")) return `The ${model.id} model cannot select by words; pick a text model (CLIPSeg).`;
    if (missing.length) return `The ${model.id} model cannot use ${missing.join(", ")}; it takes ${can.join(", ")}.`;
  }
  return null;
}

/** The `job` object of a segment plan/submit (coordinates in canvas pixels). */
export function buildSegmentJob(canvas: { width: number; height: number }, request: SegmentRequest): JobSpec {
  const segment: SegmentSpec = {};
  if (request.box) segment.box = request.box;
  if (request.points?.length) segment.points = request.points.map(([x, y]) => ({ x: Math.round(x), y: Math.round(y) }));
  if (request.negativePoints?.length) {
    segment.negative_points = request.negativePoints.map(([x, y]) => ({ x: Math.round(x), y: Math.round(y) }));
  }
  if (request.text !== undefined) segment.text = request.text;
  if (request.threshold !== undefined) segment.threshold = request.threshold;
  if (request.soften !== undefined) segment.soften = request.soften;
  const job: JobSpec = { mode: "segment", canvas, segment };
  if (request.model) job.model = request.model;
  if (request.selection) job.selection = request.selection;
  return job;
}

/** The gray8 mask of a segment result's decoded RGBA (or BGRA) pixels: its alpha channel. */
export function maskFromPixels(pixels: Uint8Array | Uint8ClampedArray): Uint8Array {
  const mask = new Uint8Array(pixels.length / 4);
  for (let i = 0; i < mask.length; i++) mask[i] = pixels[i * 4 + 3];
  return mask;
}
