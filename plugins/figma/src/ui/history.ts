/**
 * The session's results as the daemon keeps them (`list_jobs` + `fetch`): every job of this client
 * id, from this sidebar, an earlier one, or the CLI run with `--client-id`. The rules of the history
 * part of underpaint_protocol/controller.py (HistoryItem, _listed, reuse). No DOM here.
 */

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
}

export interface HistoryItem {
  summary: JobSummary;
  results: HistoryResult[];
  fetching: boolean;
  /** The daemon no longer has the job's pixels. */
  gone: boolean;
}

/** A row's text: mode, model, prompt, seed (of the first result once fetched). */
export function historyLabel(item: HistoryItem): { prompt: string; details: string } {
  const prompt = (item.summary.prompt || "(no prompt)").replace(/\s+/g, " ").slice(0, 60);
  const seed = item.results[0]?.message.params.seed;
  const parts = [item.summary.mode, item.summary.model];
  if (typeof seed === "number") parts.push(`seed ${seed}`);
  if (item.summary.results > 1) parts.push(`${item.summary.results} images`);
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

  /** One event of a fetch: a result (kept, in batch order), or its end. */
  receive(event: SessionEvent): void {
    const item = this.items.find((i) => i.summary.job_id === event.jobId);
    if (item === undefined) return;
    const message = event.message;
    if (message.type === "result" && event.image && event.image.format === "png") {
      if (item.results.some((r) => r.message.index === message.index)) return;
      item.results.push({ message, png: event.image.data.slice(), width: event.image.width, height: event.image.height });
      item.results.sort((a, b) => a.message.index - b.message.index);
    } else if (message.type === "finished" || message.type === "failed" || message.type === "cancelled") {
      item.fetching = false;
    } else if (message.type === "error") {
      item.fetching = false;
      item.gone = true;
    }
  }

  find(jobId: string): HistoryItem | undefined {
    return this.items.find((item) => item.summary.job_id === jobId);
  }
}
