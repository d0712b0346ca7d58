/** The protocol's `job` object from the prepared geometry and the sidebar's form (pure). */

import type { JobGeometry } from "./geometry";
import type { JobSpec } from "./protocol.gen";

export interface JobForm {
  model: string;
  prompt: string;
  negativePrompt: string;
  /** null: the daemon's per-mode default ("auto"). */
  strength: number | null;
  /** null: the model's default step count. */
  steps: number | null;
  /** null: random. */
  seed: number | null;
  batch: number;
  /** A style by name (the daemon's styles); absent or "" for none. */
  style?: string;
}

const clamp = (value: number, low: number, high: number): number => Math.min(high, Math.max(low, value));

export function buildJob(geometry: JobGeometry, form: JobForm): JobSpec {
  const job: JobSpec = {
    mode: geometry.mode,
    prompt: form.prompt,
    negative_prompt: form.negativePrompt,
    batch: clamp(Math.round(Number.isFinite(form.batch) ? form.batch : 1), 1, 16),
    canvas: geometry.canvas,
  };
  if (form.model) job.model = form.model;
  if (geometry.selection) job.selection = geometry.selection;
  if (geometry.extend) job.extend = geometry.extend;
  // Strength is how much of the original survives: it means something wherever there is an original
  // (img2img, inpaint, outpaint), not for txt2img, which starts from nothing.
  if (form.strength !== null && Number.isFinite(form.strength) && geometry.mode !== "txt2img") {
    job.strength = clamp(form.strength, 0, 1);
  }
  if (form.steps !== null && Number.isFinite(form.steps)) job.steps = clamp(Math.round(form.steps), 1, 200);
  if (form.seed !== null && Number.isFinite(form.seed)) job.seed = clamp(Math.round(form.seed), 0, 2 ** 32 - 1);
  if (form.style) job.style = form.style;
  return job;
}
