/**
 * The sidebar's result panels: the preview bar (step through a batch, Apply, Apply all as group,
 * Discard, the "land results directly" setting) and the history (thumbnails, prompt, seed, model,
 * mode; re-apply, reuse; the outputs folder's path to copy). The rules live in staging.ts and
 * history.ts; this file only draws them and wires their buttons.
 */

import type { JobContext, ResultItem, UiToMain } from "../shared/messages";
import type { JobSummary } from "../shared/protocol.gen";
import { History, type HistoryItem, historyLabel, reapplied, type ReusedFields, reuseFields } from "./history";
import { fitForFigma } from "./images";
import type { SessionEvent } from "./session";
import { Staging } from "./staging";
import { TileFill } from "./upscale";

export interface ResultsHost {
  toMain(message: UiToMain): void;
  /** The connected client's calls (null when not connected). */
  daemon(): { listJobs(): Promise<JobSummary[]>; fetch(jobId: string): void } | null;
  /** Whether the sidebar is still landing this job itself (a pending or running job). */
  isOwn(jobId: string): boolean;
  setStatus(text: string): void;
  showError(text: string): void;
  showImage(png: Uint8Array | null): void;
  reuse(fields: ReusedFields): void;
  saveLandDirectly(value: boolean): void;
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

export class ResultsPanel {
  readonly staging = new Staging();
  /** An upscale's tiles are drawn into one fill within Figma's limit as they arrive, never kept. */
  readonly history = new History((layer, count) => new TileFill(layer, count));
  landDirectly = false;
  private readonly urls = new Map<string, string>();
  private readonly el = {
    staged: $<HTMLDivElement>("staged"),
    label: $<HTMLSpanElement>("staged-label"),
    previous: $<HTMLButtonElement>("staged-previous"),
    next: $<HTMLButtonElement>("staged-next"),
    apply: $<HTMLButtonElement>("apply"),
    applyAll: $<HTMLButtonElement>("apply-all"),
    discard: $<HTMLButtonElement>("discard"),
    landDirectly: $<HTMLInputElement>("land-directly"),
    list: $<HTMLUListElement>("history"),
    refresh: $<HTMLButtonElement>("history-refresh"),
    outputsRow: $<HTMLDivElement>("outputs-row"),
    outputs: $<HTMLInputElement>("outputs"),
    copy: $<HTMLButtonElement>("outputs-copy"),
  };

  constructor(private readonly host: ResultsHost) {
    const send = (messages: UiToMain[]): void => {
      for (const message of messages) host.toMain(message);
      this.drawStaged();
    };
    /** The preview ends: its image leaves the sidebar too. */
    const end = (messages: UiToMain[]): void => {
      send(messages);
      host.showImage(null);
    };
    this.el.previous.addEventListener("click", () => send(this.staging.step(-1)));
    this.el.next.addEventListener("click", () => send(this.staging.step(1)));
    this.el.apply.addEventListener("click", () => end(this.staging.apply()));
    this.el.applyAll.addEventListener("click", () => end(this.staging.apply(true)));
    this.el.discard.addEventListener("click", () => {
      end(this.staging.discard());
      host.setStatus("Discarded: the preview is gone, nothing was placed.");
    });
    this.el.landDirectly.addEventListener("change", () => {
      this.landDirectly = this.el.landDirectly.checked;
      host.saveLandDirectly(this.landDirectly);
    });
    this.el.refresh.addEventListener("click", () => this.refresh());
    this.el.copy.addEventListener("click", () => this.copyOutputs());
  }

  setLandDirectly(value: boolean): void {
    this.landDirectly = value;
    this.el.landDirectly.checked = value;
  }

  /** A job's results: as nodes at once (the setting), else into the preview node. Returns false to land directly. */
  stage(jobId: string, context: JobContext, prompt: string, results: ResultItem[]): boolean {
    if (this.landDirectly) return false;
    for (const message of this.staging.stage(jobId, context, prompt, results)) this.host.toMain(message);
    this.drawStaged();
    this.host.setStatus(`Previewing ${this.staging.label()}: Apply keeps it, Discard removes it.`);
    return true;
  }

  private drawStaged(): void {
    const staged = this.staging.staged;
    this.el.staged.hidden = staged === null;
    if (staged === null) return;
    const many = staged.results.length > 1;
    this.el.label.textContent = this.staging.label();
    this.el.previous.disabled = !many;
    this.el.next.disabled = !many;
    this.el.applyAll.hidden = !many;
    this.host.showImage(this.staging.shown()?.png ?? null);
  }

  /** After `welcome`: where the daemon saves results (a path to copy: a browser plugin cannot open folders). */
  welcomed(outputs: string | null | undefined): void {
    this.el.outputsRow.hidden = !outputs;
    this.el.outputs.value = outputs ?? "";
    this.refresh();
  }

  private copyOutputs(): void {
    const field = this.el.outputs;
    field.focus();
    field.select();
    let copied = false;
    try {
      copied = document.execCommand("copy");
    } catch {
      copied = false;
    }
    this.host.setStatus(copied ? "Copied the outputs folder's path." : "The path is selected: press Ctrl+C (Cmd+C) to copy it.");
  }

  /** Ask the daemon for this client id's jobs, then fetch the newest ones' pixels for thumbnails. */
  refresh(): void {
    const daemon = this.host.daemon();
    if (daemon === null) return;
    daemon
      .listJobs()
      .then((summaries) => {
        for (const jobId of this.history.listed(summaries, (jobId) => this.host.isOwn(jobId))) daemon.fetch(jobId);
        this.drawHistory();
      })
      .catch((error) => this.host.showError(`Could not list the daemon's jobs: ${error instanceof Error ? error.message : String(error)}`));
  }

  /** Events of a history fetch (true: handled here, not a job of this sidebar's). */
  async receive(event: SessionEvent): Promise<boolean> {
    if (!this.history.fetching(event.jobId)) return false;
    await this.history.receive(event);
    this.drawHistory();
    return true;
  }

  /** The connection dropped: fetches under way end (the next refresh fetches those items again). */
  lost(): void {
    this.history.lost();
    this.drawHistory();
  }

  private url(jobId: string, png: Uint8Array): string {
    let url = this.urls.get(jobId);
    if (url === undefined) {
      url = URL.createObjectURL(new Blob([png as BlobPart], { type: "image/png" }));
      this.urls.set(jobId, url);
    }
    return url;
  }

  private drawHistory(): void {
    const list = this.el.list;
    list.innerHTML = "";
    const alive = new Set(this.history.items.map((item) => item.summary.job_id));
    for (const [jobId, url] of this.urls) {
      if (!alive.has(jobId)) {
        URL.revokeObjectURL(url);
        this.urls.delete(jobId);
      }
    }
    if (this.history.items.length === 0) {
      const empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = "No results yet.";
      list.append(empty);
      return;
    }
    for (const item of this.history.items) list.append(this.row(item));
  }

  private row(item: HistoryItem): HTMLLIElement {
    const row = document.createElement("li");
    row.dataset.jobId = item.summary.job_id;
    const first = item.results[0];
    const thumb = document.createElement(first ? "img" : "div");
    thumb.className = "thumb";
    if (first) {
      (thumb as HTMLImageElement).src = this.url(item.summary.job_id, first.png);
      (thumb as HTMLImageElement).alt = "result";
      thumb.title = "Click to place it again";
      thumb.addEventListener("click", () => void this.reapply(item));
    } else {
      thumb.textContent = item.gone ? "gone" : item.fetching ? "…" : "";
    }
    const text = document.createElement("div");
    text.className = "text";
    const label = historyLabel(item);
    const prompt = document.createElement("div");
    prompt.className = "prompt";
    prompt.textContent = label.prompt;
    const details = document.createElement("small");
    details.textContent = label.details;
    text.append(prompt, details);
    const buttons = document.createElement("div");
    buttons.className = "actions";
    const reapply = document.createElement("button");
    reapply.className = "reapply";
    reapply.textContent = "Re-apply";
    reapply.disabled = !first;
    reapply.addEventListener("click", () => void this.reapply(item));
    const reuse = document.createElement("button");
    reuse.className = "reuse";
    reuse.textContent = "Reuse";
    reuse.title = "Copy its prompt, model, strength, steps and seed into the fields";
    reuse.disabled = !first;
    reuse.addEventListener("click", () => {
      if (first) this.host.reuse(reuseFields(first.message.params));
    });
    buttons.append(reapply, reuse);
    row.append(thumb, text, buttons);
    return row;
  }

  private async reapply(item: HistoryItem): Promise<void> {
    const result = item.results[0];
    if (!result) return;
    const fitted = await fitForFigma(result.png, result.width, result.height);
    const { item: placed, canvas } = reapplied(result, fitted.png, fitted.scaledFrom);
    this.host.toMain({ type: "reapply", jobId: item.summary.job_id, mode: item.summary.mode, canvas, item: placed });
  }
}
