/**
 * Control layers and reference images in Figma (pure): the rows the sidebar keeps (a node picked as a
 * control with its kind, strength, range and preprocess; a node as a reference with what to take and
 * its weight), the kind a new row starts with, the refusal before sending, and the job's items. The
 * mirror of underpaint_protocol/guides.py and guides_panel.py (the vitest compares the labels).
 */

import type { Size } from "./geometry";
import { pngSize } from "./png";
import type { Control, JobSpec, ModelDescription, Reference } from "./protocol.gen";
import { coversCanvas, type CropPng, type RawFrame, UploadError, uploadRegion } from "./upload";

export type ControlKind = Control["kind"];
export type ReferenceTake = NonNullable<Reference["take"]>;

/** The protocol's kinds, in its order (a model announces the ones it takes in `control_kinds`). */
export const CONTROL_KINDS: readonly ControlKind[] = ["scribble", "lineart", "softedge", "canny", "depth", "pose", "tile"];
export const REFERENCE_TAKES: readonly ReferenceTake[] = ["style", "composition", "both"];
export const KIND_LABELS: Record<ControlKind, string> = {
  scribble: "Scribble",
  lineart: "Line art",
  softedge: "Soft edges",
  canny: "Canny edges",
  depth: "Depth",
  pose: "Pose",
  tile: "Tile (details)",
};
export const TAKE_LABELS: Record<ReferenceTake, string> = { both: "Style and composition", style: "Style", composition: "Composition" };
export const LABELS = {
  section: "Control layers and references",
  add_control: "Add control layer",
  add_reference: "Add reference",
  remove: "Remove",
  reference: "Reference",
  kind: "Kind",
  strength: "Strength",
  start: "From",
  end: "To",
  preprocess: "Make from a picture",
  take: "Take",
  weight: "Weight",
} as const;
/** Kinds whose input an artist rarely has as a node: a new row asks the daemon to make it from the picture. */
export const PREPROCESSED_KINDS: readonly ControlKind[] = ["softedge", "canny", "depth"];
const NAME_HINTS: [ControlKind, string[]][] = [
  ["scribble", ["scribble", "sketch", "doodle"]],
  ["lineart", ["lineart", "line art", "lines", "ink"]],
  ["softedge", ["soft edge", "softedge", "hed"]],
  ["canny", ["canny", "edge"]],
  ["depth", ["depth", "zdepth"]],
  ["pose", ["pose", "openpose", "skeleton"]],
  ["tile", ["tile", "detail"]],
];
export const STRENGTH_MAX_PERCENT = 200;
export const WEIGHT_MAX_PERCENT = 200;

/** A node used as a control layer: its pixels are rendered over the job's canvas, never moved. */
export interface ControlRow {
  nodeId: string;
  name: string;
  kind: ControlKind;
  strength: number;
  start: number;
  end: number;
  preprocess: boolean;
}

/** A node used as a reference image (exported whole, any size). */
export interface ReferenceRow {
  nodeId: string;
  name: string;
  take: ReferenceTake;
  weight: number;
}

type ModelInfo = Pick<ModelDescription, "id"> & Partial<Pick<ModelDescription, "control_kinds" | "reference_modes">>;

/** The control kinds `model` takes, in the protocol's order. */
export function modelKinds(model: ModelInfo | undefined): ControlKind[] {
  const offered = new Set(model?.control_kinds ?? []);
  return CONTROL_KINDS.filter((kind) => offered.has(kind));
}

export function modelTakes(model: ModelInfo | undefined): ReferenceTake[] {
  const offered = new Set(model?.reference_modes ?? []);
  return REFERENCE_TAKES.filter((take) => offered.has(take));
}

/** The kind a new row starts with: the one the node's name says when the model takes it, else its first. */
export function defaultKind(name: string, kinds: ControlKind[]): ControlKind {
  const lowered = name.toLowerCase();
  for (const [kind, words] of NAME_HINTS) if (kinds.includes(kind) && words.some((word) => lowered.includes(word))) return kind;
  return kinds[0] ?? CONTROL_KINDS[0];
}

export function controlRow(nodeId: string, name: string, model: ModelInfo | undefined): ControlRow {
  const kind = defaultKind(name, modelKinds(model));
  return { nodeId, name, kind, strength: 1, start: 0, end: 1, preprocess: PREPROCESSED_KINDS.includes(kind) };
}

export function referenceRow(nodeId: string, name: string, model: ModelInfo | undefined): ReferenceRow {
  const takes = modelTakes(model);
  return { nodeId, name, take: takes.includes("both") || takes.length === 0 ? "both" : takes[0], weight: 0.6 };
}

/** One line under the section: what the chosen model takes, or why it takes nothing. */
export function availability(model: ModelInfo | undefined): string {
  const name = model?.id ?? "This model";
  const kinds = modelKinds(model);
  const takes = modelTakes(model);
  if (kinds.length === 0 && takes.length === 0) {
    return (
      `${name} takes no control layers or references: start the daemon with a ControlNet for its ` +
      "family (underpaint serve --control KIND=SOURCE) or an IP-Adapter (--ip-adapter SOURCE)."
    );
  }
  const parts: string[] = [];
  if (kinds.length > 0) parts.push(`control layers: ${kinds.map((kind) => KIND_LABELS[kind].toLowerCase()).join(", ")}`);
  parts.push(takes.length > 0 ? "references" : "no references");
  return `${name} takes ${parts.join("; ")}.`;
}

/** What to do instead when the model cannot take these rows (said before anything is sent), else null. */
export function guideProblem(
  model: ModelInfo | undefined,
  controls: ControlRow[],
  references: ReferenceRow[],
  limits: { max_controls?: number; max_references?: number },
): string | null {
  const maxControls = limits.max_controls ?? controls.length;
  if (controls.length > maxControls) return `Use at most ${maxControls} control layers at once (the daemon's limit).`;
  const maxReferences = limits.max_references ?? references.length;
  if (references.length > maxReferences) return `Use at most ${maxReferences} reference image(s) at once (the daemon's limit).`;
  for (const control of controls) if (!(control.start < control.end)) return `The ${control.kind} control must start before it ends.`;
  if (model === undefined) return null;
  const kinds = model.control_kinds ?? [];
  for (const control of controls) {
    if (!kinds.includes(control.kind)) {
      const offer = kinds.length > 0 ? kinds.join(", ") : "no control layers";
      return `The ${model.id} model cannot use a ${control.kind} control layer (it takes ${offer}). Pick another kind or model.`;
    }
  }
  if (references.length > 0 && (model.reference_modes ?? []).length === 0) {
    return `The ${model.id} model cannot use reference images. Pick a model that takes them, or remove them.`;
  }
  return null;
}

/** The job's `controls` / `references` items (none: the job is unchanged). */
export function addGuides(job: JobSpec, controls: ControlRow[], references: ReferenceRow[]): JobSpec {
  const out = { ...job };
  if (controls.length > 0) {
    out.controls = controls.map((c) => ({ kind: c.kind, strength: c.strength, start: c.start, end: c.end, preprocess: c.preprocess }));
  }
  if (references.length > 0) out.references = references.map((r) => ({ take: r.take, weight: r.weight }));
  return out;
}

/** A field's percent back to the protocol's value, clamped to 0..`high` percent. */
export const fraction = (value: number, high = 100): number => Math.max(0, Math.min(high, Number.isFinite(value) ? value : 0)) / 100;
export const percent = (value: number): number => Math.round(value * 100);

/** What the main thread read for a job's rows: each control node over the whole canvas, each reference whole (PNGs). */
export interface GuidePixels {
  controls: Uint8Array[];
  references: Uint8Array[];
}

/**
 * The submit's control and reference frames: each control cut to `planned.control` (the canvas's
 * PNG as it is when the rectangle is the whole canvas; otherwise the crop, raw), each reference as
 * its PNG. Throws when the plan has no valid control rectangle inside the canvas.
 */
export async function guideFrames(control: unknown, canvas: Size, pixels: GuidePixels, crop: CropPng): Promise<{ controls: RawFrame[]; references: RawFrame[] }> {
  const references = pixels.references.map((png): RawFrame => {
    const size = pngSize(png);
    if (size === null) throw new UploadError("a reference did not export as a PNG");
    return { format: "png", width: size.width, height: size.height, data: png };
  });
  if (pixels.controls.length === 0) return { controls: [], references };
  const rect = control === null || control === undefined ? null : uploadRegion(control, canvas);
  if (rect === null) throw new UploadError("the daemon planned no control region; update it");
  const whole = coversCanvas(rect, canvas);
  const controls: RawFrame[] = [];
  for (const png of pixels.controls) {
    const size = pngSize(png);
    if (size === null || size.width !== canvas.width || size.height !== canvas.height) {
      throw new UploadError(`a control layer rendered at ${size?.width}x${size?.height}, not the canvas's ${canvas.width}x${canvas.height}`);
    }
    controls.push(whole ? { format: "png", ...canvas, data: png } : { format: "rgba8", width: rect.width, height: rect.height, data: await crop(png, rect) });
  }
  return { controls, references };
}
