/**
 * What every host panel shows the same way (a mirror of underpaint_protocol/panel.py and the
 * controller's plan/progress wording): strength in %, seeds 0..2^32-1 or random, model names,
 * the fields a model ignores, what Generate will do, the progress line. Pure functions.
 */

export const SEED_MAX = 2 ** 32 - 1;

/** Engines that fill from the image alone: prompt, strength, steps and seed change nothing. */
export const NON_GENERATIVE_ENGINES = ["classical", "echo"];
export const GENERATIVE_ONLY = ["prompt", "negative_prompt", "strength", "steps", "seed"] as const;
export type FieldName = (typeof GENERATIVE_ONLY)[number];

export const MODE_WORDS: Record<string, string> = {
  inpaint: "inpaint the selection",
  outpaint: "expand the canvas",
  img2img: "refine the whole image",
  txt2img: "paint a new image",
};

export interface ModelInfo {
  id: string;
  engine?: string;
  description?: string;
  modes?: string[];
}

export const strengthPercent = (strength: number): number => Math.max(0, Math.min(100, Math.round(strength * 100)));
export const strengthFraction = (percent: number): number => Math.max(0, Math.min(1, percent / 100));

/** A seed field's text: empty or "random" -> null (the daemon picks); throws with why otherwise. */
export function parseSeed(text: string): number | null {
  const cleaned = text.trim().toLowerCase();
  if (cleaned === "" || cleaned === "random") return null;
  if (!/^\d+$/.test(cleaned) || Number(cleaned) > SEED_MAX) {
    throw new Error(`Seed must be a whole number between 0 and ${SEED_MAX}, or random.`);
  }
  return Number(cleaned);
}

/** A model's name in a list: its id, plus its engine when that says more (never "classical (classical)"). */
export function modelLabel(model: ModelInfo): string {
  const engine = model.engine ?? "";
  return !engine || engine === model.id || model.id.includes(engine) ? model.id : `${model.id} (${engine})`;
}

/** The fields ``model`` ignores, each with the hint shown on the disabled field. */
export function ignoredFields(model: ModelInfo | undefined): Partial<Record<FieldName, string>> {
  if (!model || !NON_GENERATIVE_ENGINES.includes(model.engine ?? "")) return {};
  const why = `${model.id} ignores this: ${model.description || "it fills from the surroundings"}.`;
  return Object.fromEntries(GENERATIVE_ONLY.map((name) => [name, why]));
}

/** One line when fields are off: which, and why ("" when the model uses them all); as ignored_summary. */
export function ignoredSummary(model: ModelInfo | undefined): string {
  if (!model || Object.keys(ignoredFields(model)).length === 0) return "";
  const why = (model.description || "it fills from the surroundings").replace(/\.+$/, "");
  return `${model.id} does not use prompt, strength, steps or seed: ${why}.`;
}

/** What Generate will do now, and why it would be refused (before anything is sent). */
export function plan(mode: string | null, summary: string, model: ModelInfo | undefined): { sentence: string; refusal: string | null } {
  if (mode === null) return { sentence: summary, refusal: summary };
  const sentence = `Generate will ${MODE_WORDS[mode] ?? mode}: ${summary}.`;
  const modes = model?.modes;
  if (!model || !modes || modes.includes(mode)) return { sentence, refusal: null };
  const refusal =
    (mode === "txt2img" || mode === "img2img") && modes.includes("inpaint")
      ? `The ${model.id} model cannot ${MODE_WORDS[mode]}: draw shapes over the image to mark what to fill, or pick a diffusion model.`
      : `The ${model.id} model cannot ${MODE_WORDS[mode] ?? mode}. Pick another model.`;
  return { sentence: refusal, refusal };
}

/** Elapsed time as a panel shows it: "7 s", "1:05", "1:02:03". */
export function elapsedText(seconds: number): string {
  const whole = Math.max(0, Math.floor(seconds));
  if (whole < 60) return `${whole} s`;
  const minutes = Math.floor(whole / 60);
  const secs = String(whole % 60).padStart(2, "0");
  if (minutes < 60) return `${minutes}:${secs}`;
  return `${Math.floor(minutes / 60)}:${String(minutes % 60).padStart(2, "0")}:${secs}`;
}

/**
 * The progress line while running: step count, "image k of n" for a batch, elapsed time. `unit`: "tile"
 * for an upscale (its work comes tile by tile), else "step"; `where`: an upscale's words for its
 * `progress.tile` ("refining tile 3 of 6, step 2 of 4"), said instead of the count.
 */
export function progressText(step: number, total: number, results: number, batch: number, seconds: number, unit = "step", where: string | null = null): string {
  const parts = [where ?? (total ? `${unit} ${step} of ${total}` : "starting")];
  if (batch > 1) parts.push(`image ${Math.min(results + 1, batch)} of ${batch}`);
  return `${parts.join(", ")}, ${elapsedText(seconds)}`;
}
