/**
 * A `segment` job from the prepared selection (pure; mirrors `underpaint_protocol.segment.build_segment_job`):
 * "Refine selection" sends the drawn shapes' bounds as the box and their shape as the rough mask
 * (the image plus a rectangle drawn over it is a drawn box); "Select by words" sends the phrase.
 */

import type { JobGeometry } from "./geometry";
import type { JobSpec, ModelDescription } from "./protocol.gen";

export interface SegmentForm {
  model: string;
  /** The phrase for "Select by words"; null for "Refine selection". */
  text: string | null;
}

export function segmentJob(geometry: JobGeometry, form: SegmentForm): JobSpec {
  const job: JobSpec = { mode: "segment", canvas: geometry.canvas, segment: {} };
  if (form.model) job.model = form.model;
  if (form.text !== null) {
    job.segment = { text: form.text };
    return job;
  }
  if (geometry.mode !== "inpaint" || !geometry.selection) {
    throw new Error("Draw a rectangle (or any shape) over the image around the object, and select both.");
  }
  job.segment = { box: geometry.selection };
  job.selection = geometry.selection;
  return job;
}

/** The welcome's models that select objects. */
export const segmentModels = (models: ModelDescription[]): ModelDescription[] => models.filter((m) => Array.isArray(m.segment_inputs));
