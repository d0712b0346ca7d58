/**
 * Preview, then apply: the rules of underpaint_protocol/controller.py (Staged, preview_step, apply,
 * discard, land_directly) for the sidebar. One job's results wait in the ONE preview node; the user
 * steps through a batch, then Apply lands the shown result (or the whole batch as a group) exactly as
 * a direct landing would, or Discard removes the preview. A newer job's results replace an older
 * preview. Pure: each action returns the messages for the main thread.
 */

import type { JobContext, ResultItem, UiToMain } from "../shared/messages";

export interface StagedJob {
  jobId: string;
  context: JobContext;
  prompt: string;
  /** In batch order. */
  results: ResultItem[];
  /** The result the preview node shows. */
  index: number;
}

export class Staging {
  staged: StagedJob | null = null;

  /** Show a finished job's results in the preview (an older preview is discarded first). */
  stage(jobId: string, context: JobContext, prompt: string, results: ResultItem[]): UiToMain[] {
    if (results.length === 0) return [];
    const out = this.staged !== null && this.staged.jobId !== jobId ? this.discard() : [];
    this.staged = { jobId, context, prompt, results: [...results].sort((a, b) => a.index - b.index), index: 0 };
    return [...out, this.show()];
  }

  /** The batch's next (`delta` 1) or previous (-1) result, wrapping around. */
  step(delta: number): UiToMain[] {
    const staged = this.staged;
    if (staged === null || staged.results.length < 2) return [];
    staged.index = (staged.index + delta + staged.results.length) % staged.results.length;
    return [this.show()];
  }

  /** "image k of n" for the sidebar. */
  label(): string {
    const staged = this.staged;
    return staged === null ? "" : `image ${staged.index + 1} of ${staged.results.length}`;
  }

  shown(): ResultItem | null {
    return this.staged === null ? null : this.staged.results[this.staged.index];
  }

  /** Land the shown result (`all`: the whole batch, as one group); the preview node goes. */
  apply(all = false): UiToMain[] {
    const staged = this.staged;
    this.staged = null;
    if (staged === null) return [];
    const results = all ? staged.results : [staged.results[staged.index]];
    return [{ type: "end-preview", keep: { jobId: staged.jobId, context: staged.context, prompt: staged.prompt, results } }];
  }

  /** Remove the preview node; nothing else in the document changes (the daemon keeps the results). */
  discard(): UiToMain[] {
    const had = this.staged !== null;
    this.staged = null;
    return had ? [{ type: "end-preview" }] : [];
  }

  private show(): UiToMain {
    const staged = this.staged!;
    const label = `${staged.index + 1}/${staged.results.length}`;
    return { type: "show-preview", context: staged.context, item: staged.results[staged.index], label };
  }
}
