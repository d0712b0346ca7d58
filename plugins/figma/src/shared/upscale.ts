/**
 * Upscale results in Figma (pure): where each tile of the result is drawn in the ONE image fill, kept
 * within Figma's 4096 px createImage limit, and where the filled rectangle goes. The document does not
 * scale in Figma: the rectangle covers the region it upscales (the whole image, or the selection's
 * region) in design units, and the extra resolution lives in its fill.
 */

import { type Box, fitImageSize, type JobGeometry, MAX_IMAGE_SIDE, type Placement, type Size } from "./geometry";
import type { JobSpec, ModelDescription, TileProgress } from "./protocol.gen";

/** The three buttons (their protocol modes), labels and tips: the mirror of underpaint_protocol/upscale_panel.py. */
export type UpscaleAction = "upscale" | "refine_upscale" | "restore";
export const ACTIONS: Record<UpscaleAction, string> = {
  upscale: "Upscale",
  refine_upscale: "Refine-upscale",
  restore: "Restore",
};
export const LABELS = {
  section: "Upscale and restore",
  factor: "Factor",
  upscaler: "Upscaler",
  refiner: "Refine with",
  strength: "Strength",
  steps: "Steps",
  prompt: "Prompt",
  restorer: "Restorer",
} as const;
export const FACTOR_MIN = 1;
export const FACTOR_MAX = 16;
export const FACTOR_DEFAULT = 2;
/** Percent: a hires-fix pass keeps most of the upscale. */
export const REFINE_STRENGTH_DEFAULT = 30;
export type Role = "upscaler" | "refiner" | "restorer";
export const MODEL_MODES: Record<Role, UpscaleAction> = { upscaler: "upscale", refiner: "refine_upscale", restorer: "restore" };

/** The models a list shows for `role`, in welcome's order. */
export function modelsFor(models: Pick<ModelDescription, "id" | "modes">[], role: Role): string[] {
  return models.filter((model) => (model.modes ?? []).includes(MODEL_MODES[role])).map((model) => model.id);
}

export interface UpscaleForm {
  factor: number;
  upscaler: string;
  refiner: string;
  restorer: string;
  /** 0-100 % */
  strength: number;
  /** Diffusion steps of the refine pass; null: the model's default. */
  steps: number | null;
  prompt: string;
}

/**
 * The job of one button from the job the selection gives (`buildJob`): an upscale scales the whole image,
 * or the region under the shapes drawn over it; Restore needs those shapes (the faces). Throws the
 * sentence to show when the selection cannot do it.
 */
export function upscaleJob(base: JobSpec, geometry: JobGeometry, action: UpscaleAction, form: UpscaleForm): JobSpec {
  if (geometry.mode === "txt2img" || geometry.mode === "outpaint") {
    throw new Error(`${ACTIONS[action]} needs an image: select an image (and shapes over a region of it).`);
  }
  const job: JobSpec = { mode: action, canvas: geometry.canvas, prompt: "", negative_prompt: "", batch: 1 };
  if (geometry.selection) job.selection = geometry.selection;
  if (action === "restore") {
    if (!geometry.selection) throw new Error("Restore works on a selection: draw a shape over the face(s) and select it with the image.");
    if (form.restorer) job.model = form.restorer;
    return job;
  }
  const factor = Math.min(FACTOR_MAX, Math.max(FACTOR_MIN, Number.isFinite(form.factor) ? form.factor : FACTOR_DEFAULT));
  if (action === "upscale") {
    if (form.upscaler) job.model = form.upscaler;
    job.upscale = { factor };
    return job;
  }
  if (form.refiner) job.model = form.refiner;
  job.prompt = form.prompt;
  job.strength = Math.min(1, Math.max(0, form.strength / 100));
  if (form.steps !== null && Number.isFinite(form.steps) && form.steps >= 1) job.steps = Math.round(form.steps);
  if (base.seed !== undefined) job.seed = base.seed;
  job.upscale = form.upscaler ? { factor, model: form.upscaler } : { factor };
  return job;
}

/**
 * The artist's words for an upscale's `progress.tile`: "tile 3 of 12" (upscale), "upscaling tile 3 of 12"
 * then "refining tile 2 of 6, step 2 of 4" (refine_upscale); the mirror of underpaint_protocol/upscale.py.
 */
export function tileText(tile: TileProgress, mode: string): string {
  const where = `tile ${tile.index} of ${tile.count}`;
  if (tile.stage === "refine") return `refining ${where}${tile.step && tile.steps ? `, step ${tile.step} of ${tile.steps}` : ""}`;
  return mode === "refine_upscale" ? `upscaling ${where}` : where;
}

/** The document size after an upscale, as the daemon computes it (`round(side * factor)`). */
export function scaledSize(canvas: Size, factor: number): Size {
  return { width: Math.max(1, Math.round(canvas.width * factor)), height: Math.max(1, Math.round(canvas.height * factor)) };
}

export interface FittedTiles extends Size {
  /** True when the fill is smaller than the daemon's result (Figma's limit). */
  scaled: boolean;
  /** Each tile's rectangle inside the fill, in the order given. */
  rects: Box[];
}

/**
 * The fill's size for a result layer of `layer` (scaled-canvas pixels), and each tile's place in it.
 * Tile edges are scaled and rounded as edges, not as sizes, so neighbouring tiles meet exactly: no gap
 * and no overlap, whatever the scale.
 */
export function fitTiles(layer: Box, tiles: Box[], max = MAX_IMAGE_SIDE): FittedTiles {
  const fit = fitImageSize(layer.width, layer.height, max);
  const sx = fit.width / layer.width;
  const sy = fit.height / layer.height;
  const rects = tiles.map((tile) => {
    const left = Math.round((tile.x - layer.x) * sx);
    const top = Math.round((tile.y - layer.y) * sy);
    const right = Math.round((tile.x + tile.width - layer.x) * sx);
    const bottom = Math.round((tile.y + tile.height - layer.y) * sy);
    return { x: left, y: top, width: right - left, height: bottom - top };
  });
  return { width: fit.width, height: fit.height, scaled: fit.scaled, rects };
}

/**
 * Placement of an upscale's result: its pixels are in the SCALED canvas (`scaled`), `original` being the
 * exported image's size; so a design unit holds `placement.scale` times the upscale's ratio pixels.
 */
export function upscalePlacement(placement: Placement, original: Size, scaled: Size): Placement {
  const ratio = (scaled.width / original.width + scaled.height / original.height) / 2;
  return { ...placement, scale: placement.scale * ratio };
}
