/**
 * Upscale, Refine-upscale and Restore in the sidebar: the section's widgets, and the tiles of an
 * upscale's result drawn into ONE image within Figma's 4096 px limit (browser canvas). Labels, model
 * lists, jobs and placement math are in shared/upscale.ts.
 */

import type { Box, Size } from "../shared/geometry";
import type { ModelDescription } from "../shared/protocol.gen";
import {
  ACTIONS,
  FACTOR_DEFAULT,
  FACTOR_MAX,
  FACTOR_MIN,
  fitTiles,
  LABELS,
  modelsFor,
  REFINE_STRENGTH_DEFAULT,
  type Role,
  type UpscaleAction,
  type UpscaleForm,
} from "../shared/upscale";

export interface Tile extends Box {
  png: Uint8Array;
}

export interface Assembled extends Size {
  png: Uint8Array;
  /** The daemon's size of the layer when the fill is smaller (Figma's limit). */
  scaledFrom?: Size;
}

/**
 * The ONE image fill of an upscale's result layer `layer` (scaled-canvas pixels), drawn tile by tile as
 * the tiles arrive: each is decoded straight to its size in the fill and let go, so what is held is the
 * fill (at most 4096 x 4096) and the tile being drawn, never the daemon's full result nor its tiles.
 */
export class TileFill {
  private readonly fit: Size & { scaled: boolean };
  private canvas: OffscreenCanvas | null = null;
  private only: Uint8Array | null = null;
  private readonly seen = new Set<number>();
  private drawn = 0;

  constructor(
    private readonly layer: Box,
    private readonly count: number,
  ) {
    this.fit = fitTiles(layer, []);
  }

  /** Draw tile `index` (repeats ignored); true once every tile of the layer is drawn. */
  async add(index: number, tile: Tile): Promise<boolean> {
    if (this.seen.has(index)) return false;
    this.seen.add(index);
    if (this.count === 1 && !this.fit.scaled) {
      this.only = tile.png.slice(); // the whole layer already, at its size: no decoding
    } else {
      const [rect] = fitTiles(this.layer, [tile]).rects;
      const blob = new Blob([tile.png as BlobPart], { type: "image/png" });
      if (rect.width > 0 && rect.height > 0) {
        const bitmap = await createImageBitmap(blob, {
          resizeWidth: rect.width,
          resizeHeight: rect.height,
          resizeQuality: "high",
          premultiplyAlpha: "none",
          colorSpaceConversion: "none",
        });
        this.context().drawImage(bitmap, rect.x, rect.y);
        bitmap.close();
      }
    }
    this.drawn += 1;
    return this.drawn === this.count;
  }

  /** The fill as one PNG, and the daemon's size when Figma's limit made it smaller. */
  async finish(): Promise<Assembled> {
    const { width, height, scaled } = this.fit;
    const scaledFrom = scaled ? { width: this.layer.width, height: this.layer.height } : undefined;
    if (this.only !== null) return { png: this.only, width, height, scaledFrom };
    const blob = await this.context().canvas.convertToBlob({ type: "image/png" });
    this.canvas = null;
    return { png: new Uint8Array(await blob.arrayBuffer()), width, height, scaledFrom };
  }

  private context(): OffscreenCanvasRenderingContext2D {
    this.canvas ??= new OffscreenCanvas(this.fit.width, this.fit.height);
    const context = this.canvas.getContext("2d");
    if (context === null) throw new Error("no 2d canvas to draw the upscale's tiles in");
    return context;
  }
}

export interface UpscaleSection {
  /** The models each list offers, from a welcome. */
  fill(models: ModelDescription[]): void;
  setEnabled(enabled: boolean): void;
  form(): UpscaleForm;
  /** The tile progress line of the section. */
  say(text: string): void;
}

function field(label: string, control: HTMLElement): HTMLElement {
  const wrap = document.createElement("div");
  const title = document.createElement("label");
  title.textContent = label;
  title.htmlFor = control.id;
  wrap.append(title, control);
  return wrap;
}

/**
 * The "Upscale and restore" section, made here and put before `before` (ui.html stays as it is):
 * factor, upscaler, the refine pass (model, strength, prompt), the restorer, and one button per action.
 */
export function mountUpscale(before: Element, onAction: (action: UpscaleAction) => void): UpscaleSection {
  const section = document.createElement("details");
  section.id = "upscale-section";
  const summary = document.createElement("summary");
  summary.textContent = LABELS.section;
  const factor = Object.assign(document.createElement("input"), {
    id: "upscale-factor",
    type: "number",
    min: String(FACTOR_MIN),
    max: String(FACTOR_MAX),
    step: "0.5",
    value: String(FACTOR_DEFAULT),
    title: "How many times larger: 2, 3, 4 or any number up to 16",
  });
  const lists = {} as Record<Role, HTMLSelectElement>;
  for (const role of ["upscaler", "refiner", "restorer"] as Role[]) {
    lists[role] = Object.assign(document.createElement("select"), { id: `upscale-${role}` });
  }
  const strength = Object.assign(document.createElement("input"), {
    id: "upscale-strength",
    type: "number",
    min: "1",
    max: "100",
    step: "5",
    value: String(REFINE_STRENGTH_DEFAULT),
    title: "How much the refine pass repaints: low keeps the upscale, 100% paints anew",
  });
  const steps = Object.assign(document.createElement("input"), {
    id: "upscale-steps",
    type: "number",
    min: "1",
    max: "150",
    step: "1",
    placeholder: "model default",
    title: "Diffusion steps of the refine pass (of which the strength runs); empty: the model's default",
  });
  const prompt = Object.assign(document.createElement("input"), { id: "upscale-prompt", type: "text", placeholder: "prompt for every tile" });
  const buttons = {} as Record<UpscaleAction, HTMLButtonElement>;
  for (const action of Object.keys(ACTIONS) as UpscaleAction[]) {
    const button = Object.assign(document.createElement("button"), { id: `upscale-${action}`, textContent: ACTIONS[action], disabled: true });
    button.addEventListener("click", () => onAction(action));
    buttons[action] = button;
  }
  const progress = Object.assign(document.createElement("div"), { id: "upscale-progress" });
  section.append(
    summary,
    field(`${LABELS.factor} (×)`, factor),
    field(LABELS.upscaler, lists.upscaler),
    buttons.upscale,
    field(LABELS.refiner, lists.refiner),
    field(`${LABELS.strength} (%)`, strength),
    field(LABELS.steps, steps),
    field(LABELS.prompt, prompt),
    buttons.refine_upscale,
    field(LABELS.restorer, lists.restorer),
    buttons.restore,
    progress,
  );
  before.before(section);
  let enabled = false;
  const roleOf: Record<UpscaleAction, Role> = { upscale: "upscaler", refine_upscale: "refiner", restore: "restorer" };
  const update = (): void => {
    for (const action of Object.keys(buttons) as UpscaleAction[]) buttons[action].disabled = !enabled || lists[roleOf[action]].options.length === 0;
  };
  return {
    fill(models) {
      for (const role of Object.keys(lists) as Role[]) {
        const list = lists[role];
        const previous = list.value;
        list.innerHTML = "";
        for (const id of modelsFor(models, role)) list.append(Object.assign(document.createElement("option"), { value: id, textContent: id }));
        if (Array.from(list.options).some((option) => option.value === previous)) list.value = previous;
      }
      update();
    },
    setEnabled(on) {
      enabled = on;
      update();
    },
    form: () => ({
      factor: Number(factor.value),
      upscaler: lists.upscaler.value,
      refiner: lists.refiner.value,
      restorer: lists.restorer.value,
      strength: Number(strength.value),
      steps: steps.value.trim() === "" ? null : Number(steps.value),
      prompt: prompt.value,
    }),
    say(text) {
      progress.textContent = text;
    },
  };
}
