/**
 * The session's results as the daemon keeps them (`list_jobs` + `fetch`): every job of this client
 * id, from this sidebar, an earlier one, or the CLI run with `--client-id`. The rules of the history
 * part of underpaint_protocol/controller.py (HistoryItem, _listed, reuse). No DOM here: an upscale's
 * tiles are drawn by what `History` is given (the sidebar's `TileFill`).
 */

import type { Box, Size } from "../shared/geometry";
import type { ResultItem } from "../shared/messages";
import type { JobSummary, ServerMessageOf } from "../shared/protocol.gen";
import { strengthPercent } from "./fields";
import type { SessionEvent } from "./session";

/** How many of the newest jobs are fetched for thumbnails (each fetch moves the full images). */
export const HISTORY_FETCHED = 12;

export interface HistoryResult {
  message: ServerMessageOf<"result">;
  png: Uint8Array;
  width: number;
  height: number;
  /** An upscale's layer drawn smaller than the daemon's (Figma's 4096 px limit): the daemon's size. */
  scaledFrom?: Size;
}

/** Draws an upscale's tiles into ONE image as they arrive (`TileFill`: at most 4096 px a side). */
export interface TileDrawer {
  /** Draw tile `index` (repeats ignored); true once every tile of the layer is drawn. */
  add(index: number, tile: Box & { png: Uint8Array }): Promise<boolean>;
  finish(): Promise<Size & { png: Uint8Array; scaledFrom?: Size }>;
}

export interface HistoryItem {
  summary: JobSummary;
  results: HistoryResult[];
  fetching: boolean;
  /** The daemon no longer has the job's pixels. */
  gone: boolean;
  /** An upscale's layer while its tiles arrive. */
  fill?: TileDrawer;
}

/** The `result` of a whole upscale layer from one of its tiles' (`upscale.whole_message`). */
export function wholeMessage(tile: ServerMessageOf<"result">): ServerMessageOf<"result"> {
  const whole = tile.upscale?.layer;
  if (!whole) return tile;
  const { x, y, width, height } = whole;
  return { ...tile, index: 0, layer: { ...tile.layer, x, y, width, height } };
}

/**
 * What re-applying `result` places: the item, and the canvas its coordinates are in (the SCALED
 * canvas for an upscale, whose layer is in its pixels; else the canvas the job was made for).
 */
export function reapplied(result: HistoryResult, png: Uint8Array, scaledFrom?: Size): { item: ResultItem; canvas: Size } {
  const { message } = result;
  const made = message.params.canvas as { width?: number; height?: number } | undefined;
  const canvas = message.upscale ? message.upscale.canvas : made?.width && made?.height ? { width: made.width, height: made.height } : message.canvas;
  const { name, x, y, width, height } = message.layer;
  return {
    item: { index: 0, name, x, y, width, height, png, scaledFrom: result.scaledFrom ?? scaledFrom },
    canvas: { width: canvas.width, height: canvas.height },
  };
}

/** A row's text: mode, model, prompt, seed (of the first result once fetched), how many images. */
export function historyLabel(item: HistoryItem): { prompt: string; details: string } {
  const prompt = (item.summary.prompt || "(no prompt)").replace(/\s+/g, " ").slice(0, 60);
  const seed = item.results[0]?.message.params.seed;
  const parts = [item.summary.mode, item.summary.model];
  if (typeof seed === "number") parts.push(`seed ${seed}`);
  const tiled = item.summary.mode === "upscale" || item.summary.mode === "refine_upscale"; // results count its tiles
  if (item.summary.results > 1 && !tiled) parts.push(`${item.summary.results} images`);
  return { prompt, details: parts.join(" · ") };
}

/** The fields "reuse" fills: a result's own parameters, its seed included (Controller.reuse). */
export interface ReusedFields {
  model: string | null;
  prompt: string;
  negativePrompt: string;
  /** Percent, or null for the mode default. */
  strength: number | null;
  steps: number | null;
  seed: number | null;
  /** The style to choose (null: none). */
  style?: string | null;
}

/** A styled result gives what the user typed and its style, not the resolved prompt (styled again). */
export function reuseFields(params: Record<string, unknown>): ReusedFields {
  const num = (value: unknown): number | null => (typeof value === "number" && Number.isFinite(value) ? value : null);
  const strength = num(params.strength);
  const steps = num(params.steps);
  const style = typeof params.style === "string" && params.style ? params.style : null;
  const typed = style ? ["user_prompt", "user_negative_prompt"] : ["prompt", "negative_prompt"];
  return {
    model: typeof params.model === "string" && params.model ? params.model : null,
    prompt: typeof params[typed[0]] === "string" ? (params[typed[0]] as string) : "",
    negativePrompt: typeof params[typed[1]] === "string" ? (params[typed[1]] as string) : "",
    strength: strength === null ? null : strengthPercent(strength),
    steps: steps ? steps : null,
    seed: num(params.seed),
    style,
  };
}

export class History {
  items: HistoryItem[] = [];

  /** `newFill`: a drawer for an upscale's layer `layer` of `count` tiles. */
  constructor(private readonly newFill: (layer: Box, count: number) => TileDrawer) {}

  /**
   * A fresh `jobs` list: finished jobs with results, newest first (fetched ones kept); the ids to
   * fetch. `mine` says which jobs the sidebar is still landing itself (their events are its own).
   */
  listed(summaries: JobSummary[], mine: (jobId: string) => boolean = () => false): string[] {
    const known = new Map(this.items.map((item) => [item.summary.job_id, item]));
    this.items = summaries
      .filter((s) => s.state === "finished" && s.results > 0)
      .sort((a, b) => b.created - a.created)
      .map((summary) => {
        const item = known.get(summary.job_id) ?? { summary, results: [], fetching: false, gone: false };
        item.summary = summary;
        return item;
      });
    const wanted = this.items.slice(0, HISTORY_FETCHED).filter((item) => item.results.length === 0 && !item.fetching && !item.gone && !mine(item.summary.job_id));
    for (const item of wanted) item.fetching = true;
    return wanted.map((item) => item.summary.job_id);
  }

  /** Whether `jobId`'s events are a history fetch's replay. */
  fetching(jobId: string | undefined): boolean {
    return jobId !== undefined && this.items.some((item) => item.summary.job_id === jobId && item.fetching);
  }

  /**
   * One event of a fetch: a result (kept, in batch order), or its end. An upscale's tiles are drawn
   * into one fill as they come and let go; the finished fill is its one result (the whole layer).
   */
  async receive(event: SessionEvent): Promise<void> {
    const item = this.items.find((i) => i.summary.job_id === event.jobId);
    if (item === undefined) return;
    const message = event.message;
    if (message.type === "result" && event.image && event.image.format === "png") {
      if (message.upscale) {
        if (item.results.length > 0) return; // drawn already
        item.fill ??= this.newFill(message.upscale.layer, message.upscale.tiles);
        const fill = item.fill;
        if (!(await fill.add(message.index, { ...message.layer, png: event.image.data }))) return;
        const drawn = await fill.finish();
        if (item.fill !== fill) return; // the fetch was cut off meanwhile
        item.fill = undefined;
        item.results.push({ message: wholeMessage(message), png: drawn.png, width: drawn.width, height: drawn.height, scaledFrom: drawn.scaledFrom });
        return;
      }
      if (item.results.some((r) => r.message.index === message.index)) return;
      item.results.push({ message, png: event.image.data.slice(), width: event.image.width, height: event.image.height });
      item.results.sort((a, b) => a.message.index - b.message.index);
    } else if (message.type === "finished" || message.type === "failed" || message.type === "cancelled") {
      item.fetching = false;
      item.fill = undefined;
    } else if (message.type === "error") {
      item.fetching = false;
      item.fill = undefined;
      item.gone = true;
    }
  }

  /** The connection dropped: the fetches under way will not end; what came is dropped, to fetch again. */
  lost(): void {
    for (const item of this.items) {
      if (!item.fetching) continue;
      item.fetching = false;
      item.fill = undefined;
      item.results = [];
    }
  }

  find(jobId: string): HistoryItem | undefined {
    return this.items.find((item) => item.summary.job_id === jobId);
  }
}
