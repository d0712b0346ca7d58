/** The sidebar: settings, connection, the job form, progress, errors; talks to code.ts by messages. */

import type { JobContext, MainToUi, PreparedJob, ResultItem, Settings, UiToMain } from "../shared/messages";
import { type ConnectionState, DaemonError, UnderpaintClient } from "./client";
import { buildJob } from "../shared/job";
import { buildUpload } from "../shared/upload";
import { cropPng, fitForFigma, randomClientId } from "./images";
import type { Message, SessionEvent } from "./session";

declare const __VERSION__: string;
const VERSION = typeof __VERSION__ === "string" ? __VERSION__ : "dev";

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const ui = {
  address: $<HTMLInputElement>("address"),
  token: $<HTMLInputElement>("token"),
  connect: $<HTMLButtonElement>("connect"),
  state: $<HTMLDivElement>("state"),
  stateText: $<HTMLSpanElement>("state-text"),
  selection: $<HTMLDivElement>("selection"),
  model: $<HTMLSelectElement>("model"),
  prompt: $<HTMLTextAreaElement>("prompt"),
  negative: $<HTMLTextAreaElement>("negative"),
  strength: $<HTMLInputElement>("strength"),
  strengthAuto: $<HTMLInputElement>("strength-auto"),
  strengthValue: $<HTMLElement>("strength-value"),
  steps: $<HTMLInputElement>("steps"),
  seedMode: $<HTMLSelectElement>("seed-mode"),
  seed: $<HTMLInputElement>("seed"),
  batch: $<HTMLInputElement>("batch"),
  scale: $<HTMLSelectElement>("scale"),
  generate: $<HTMLButtonElement>("generate"),
  cancel: $<HTMLButtonElement>("cancel"),
  expand: $<HTMLButtonElement>("expand"),
  extents: ["left", "top", "right", "bottom"].map((side) => $<HTMLInputElement>(`ext-${side}`)),
  progress: $<HTMLProgressElement>("progress"),
  status: $<HTMLDivElement>("status"),
  preview: $<HTMLImageElement>("preview"),
  error: $<HTMLDivElement>("error"),
  notes: $<HTMLDivElement>("notes"),
};

interface RunningJob {
  context: JobContext;
  prompt: string;
  results: ResultItem[];
}

let settings: Settings = { address: "ws://localhost:7860", token: "", clientId: "" };
let client: UnderpaintClient | null = null;
let selectionOk = false;
let busy = false;
let currentJob: string | null = null;
let previewUrl: string | null = null;
/** The job whose preview or result the sidebar shows. */
let shownJob: string | null = null;
const jobs = new Map<string, RunningJob>();
const preparing = new Map<string, (reply: MainToUi) => void>();
let pending: Record<string, JobContext> = {};
let events: Promise<void> = Promise.resolve();
/** What tests and curious users can read from the console: the client, jobs, and results as received. */
const debug = {
  client: null as UnderpaintClient | null,
  jobs,
  results: [] as Message[],
  previews: 0,
  /** Per submitted job: the plan's upload rectangle and what was sent (region, frame formats and sizes). */
  uploads: [] as Message[],
  /** Drop the socket right after the next job is accepted (tests reconnect + fetch). */
  dropAfterAccept: false,
  /** Close the client for good right after the next job is accepted (tests a plugin reopened later). */
  closeAfterAccept: false,
};
(window as unknown as { underpaint: typeof debug }).underpaint = debug;

function toMain(message: UiToMain): void {
  parent.postMessage({ pluginMessage: message }, "*");
}

function setState(state: ConnectionState, text: string): void {
  ui.state.dataset.state = state;
  ui.stateText.textContent = text;
  updateButtons();
}

function showError(error: { code?: string; message: string; field?: string | null } | null): void {
  if (error === null) {
    ui.error.hidden = true;
    ui.error.textContent = "";
    return;
  }
  ui.error.hidden = false;
  ui.error.innerHTML = "";
  const code = document.createElement("code");
  code.textContent = error.code ?? "error";
  ui.error.append(code, document.createTextNode(`: ${error.message}`));
  if (error.field) ui.error.append(document.createTextNode(`\nfield: ${error.field}`));
  ui.error.dataset.code = error.code ?? "error";
}

function addNote(text: string): void {
  ui.notes.hidden = false;
  const line = document.createElement("div");
  line.textContent = text;
  ui.notes.append(line);
}

function setStatus(text: string, value?: number, max?: number): void {
  ui.status.textContent = text;
  if (max !== undefined) ui.progress.max = Math.max(1, max);
  if (value !== undefined) ui.progress.value = value;
}

function hidePreview(): void {
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = null;
  ui.preview.removeAttribute("src");
  ui.preview.hidden = true;
}

function showPreview(png: Uint8Array): void {
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(new Blob([png as BlobPart], { type: "image/png" }));
  ui.preview.src = previewUrl;
  ui.preview.hidden = false;
}

function updateButtons(): void {
  const connected = client?.isConnected === true;
  ui.generate.disabled = !connected || busy || !selectionOk;
  ui.expand.disabled = !connected || busy || !selectionOk;
  ui.cancel.disabled = currentJob === null;
}

function savePending(): void {
  toMain({ type: "save-pending", pending });
}

function fillModels(welcome: Message): void {
  const previous = ui.model.value;
  ui.model.innerHTML = "";
  for (const model of welcome.models as Message[]) {
    const option = document.createElement("option");
    option.value = model.id;
    option.textContent = `${model.id} (${(model.modes as string[]).join(", ")})`;
    ui.model.append(option);
  }
  ui.model.value = (welcome.models as Message[]).some((m) => m.id === previous) ? previous : welcome.default_model;
}

function connect(): void {
  client?.close();
  showError(null);
  settings = { ...settings, address: ui.address.value.trim() || "ws://localhost:7860", token: ui.token.value.trim() };
  toMain({ type: "save-settings", settings });
  client = new UnderpaintClient({
    url: settings.address,
    token: settings.token || undefined,
    clientId: settings.clientId,
    clientName: "underpaint-figma",
    clientVersion: VERSION,
    host: ["figma", "plugin-api-1.0"],
    adopt: Object.keys(pending),
    onEvent: (event) => {
      // One at a time, in arrival order: a result may need async scaling before `finished` is handled.
      events = events.then(() => onEvent(event)).catch((error) => showError({ code: "plugin", message: String(error) }));
    },
    onState: (state, detail, error) => {
      setState(state, state === "connected" ? `Connected to ${settings.address}.` : detail);
      if (state === "refused" && error) {
        const hint =
          error.code === "unauthorized"
            ? " Paste the token printed by `underpaint token` and press Connect."
            : "";
        showError({ code: error.code, message: error.message + hint, field: error.field });
      } else if (state === "connected" && ui.error.dataset.code === "unauthorized") {
        showError(null);
      }
      if (state !== "connected" && currentJob !== null) setStatus("Waiting for the daemon to come back…");
    },
  });
  debug.client = client;
  client.connect();
}

async function onEvent(event: SessionEvent): Promise<void> {
  const message = event.message;
  const jobId = event.jobId;
  const job = jobId ? jobs.get(jobId) : undefined;
  switch (event.type) {
    case "welcome":
      fillModels(message);
      if (message.client_id && message.client_id !== settings.clientId) {
        settings.clientId = String(message.client_id);
        toMain({ type: "save-settings", settings: { clientId: settings.clientId } });
      }
      return;
    case "queued":
      if (jobId === currentJob) setStatus(`Queued at position ${message.position}.`, 0);
      return;
    case "started":
      if (jobId === currentJob) setStatus("Running…", 0);
      return;
    case "progress":
      if (jobId === currentJob) setStatus(`Step ${message.step} of ${message.total}`, message.step, message.total);
      if (jobId === currentJob && event.image && event.image.format === "png") {
        debug.previews += 1;
        shownJob = jobId;
        showPreview(event.image.data);
      }
      return;
    case "result": {
      if (!job || !event.image) return;
      const layer = message.layer as Message;
      debug.results.push({ job_id: jobId, index: message.index, layer, canvas: message.canvas });
      const png = event.image.data.slice();
      const fitted = await fitForFigma(png, event.image.width, event.image.height);
      job.results.push({
        index: Number(message.index),
        name: String(layer.name),
        x: layer.x,
        y: layer.y,
        width: layer.width,
        height: layer.height,
        png: fitted.png,
        scaledFrom: fitted.scaledFrom,
      });
      if (jobId === currentJob) {
        shownJob = jobId;
        showPreview(png);
      }
      return;
    }
    case "finished":
    case "failed":
    case "cancelled":
      if (jobId) finishJob(jobId, message);
      return;
    case "error":
      if (message.request_id === undefined || message.request_id === null) {
        if (message.code === "unknown_job" && message.job_id) dropJob(String(message.job_id));
        showError({ code: message.code, message: message.message, field: message.field });
      }
      return;
  }
}

function dropJob(jobId: string): void {
  jobs.delete(jobId);
  client?.session.forget(jobId);
  if (pending[jobId]) {
    delete pending[jobId];
    savePending();
  }
  if (currentJob === jobId) {
    currentJob = null;
    busy = false;
    updateButtons();
  }
}

function finishJob(jobId: string, message: Message): void {
  const job = jobs.get(jobId);
  if (jobId === currentJob) {
    currentJob = null;
    busy = false;
    updateButtons();
  }
  if (message.type === "failed") {
    showError({ code: message.code, message: message.message, field: message.field });
    setStatus("Failed.", 0);
  } else if (message.type === "cancelled") {
    setStatus(job && job.results.length > 0 ? `Cancelled after ${job.results.length} result(s).` : "Cancelled: nothing was placed.", 0);
    // The preview showed unfinished work; a cancelled job leaves nothing to look at.
    if (jobId === shownJob) hidePreview();
  } else {
    setStatus(`Done: ${message.results} result${message.results === 1 ? "" : "s"}. Placing…`, 1, 1);
  }
  if (!job) {
    dropJob(jobId);
    return;
  }
  if (job.results.length > 0) {
    toMain({ type: "place", jobId, context: job.context, prompt: job.prompt, results: job.results });
  } else {
    dropJob(jobId);
  }
}

function readExtents(): { left: number; top: number; right: number; bottom: number } {
  const [left, top, right, bottom] = ui.extents.map((input) => Math.max(0, Number(input.value) || 0));
  return { left, top, right, bottom };
}

function prepare(expand: boolean): Promise<PreparedJob> {
  const requestId = `p${Date.now()}${Math.random().toString(36).slice(2, 6)}`;
  return new Promise((resolve, reject) => {
    preparing.set(requestId, (reply) => {
      if (reply.type === "prepared") resolve(reply.job);
      else if (reply.type === "prepare-error") reject(new Error(reply.message));
    });
    toMain({
      type: "prepare",
      requestId,
      options: { scale: ui.scale.value === "2" ? 2 : 1, expand: expand ? readExtents() : undefined },
    });
  });
}

async function generate(expand: boolean): Promise<void> {
  if (!client?.isConnected) return;
  showError(null);
  ui.notes.hidden = true;
  ui.notes.innerHTML = "";
  busy = true;
  updateButtons();
  setStatus("Reading the selection…", 0);
  try {
    const prepared = await prepare(expand);
    const geometry = prepared.geometry;
    const numberOrNull = (text: string): number | null => (text.trim() === "" ? null : Number(text));
    const job: Message = buildJob(geometry, {
      model: ui.model.value,
      prompt: ui.prompt.value,
      negativePrompt: ui.negative.value,
      strength: ui.strengthAuto.checked ? null : Number(ui.strength.value),
      steps: numberOrNull(ui.steps.value),
      seed: ui.seedMode.value === "fixed" ? Number(ui.seed.value) || 0 : null,
      batch: Number(ui.batch.value) || 1,
    });
    setStatus(`${prepared.summary}: planning…`, 0);
    const planned = await client.plan(job);
    setStatus("Cutting out the region the daemon needs…", 0);
    // Only the pixels the daemon asked for: the planned region, cut from the export and sent raw.
    const cutStarted = performance.now();
    const { region, image, mask } = await buildUpload(
      {
        upload: planned.upload,
        canvas: geometry.canvas,
        image: prepared.image,
        mask: prepared.mask,
        maxFrameBytes: Number(client.welcome?.limits?.max_frame_bytes ?? 0),
      },
      cropPng,
    );
    debug.uploads.push({
      upload: planned.upload,
      canvas: geometry.canvas,
      region,
      image: image && { format: image.format, width: image.width, height: image.height, bytes: image.data.byteLength },
      mask: mask && { format: mask.format, width: mask.width, height: mask.height, bytes: mask.data.byteLength },
      cut_ms: Math.round(performance.now() - cutStarted),
    });
    setStatus(region ? `Uploading ${region.width}×${region.height} px…` : "Submitting…", 0);
    const accepted = await client.submit(job, region, image, mask);
    const jobId = String(accepted.job_id);
    jobs.set(jobId, { context: prepared.context, prompt: ui.prompt.value, results: [] });
    debug.uploads[debug.uploads.length - 1].job_id = jobId;
    pending[jobId] = prepared.context;
    savePending();
    currentJob = jobId;
    if (ui.seedMode.value === "random") ui.seed.value = String(accepted.seed);
    setStatus(`Accepted (seed ${accepted.seed}).`, 0);
    updateButtons();
    if (debug.closeAfterAccept) {
      debug.closeAfterAccept = false;
      client.close();
    }
    if (debug.dropAfterAccept) {
      debug.dropAfterAccept = false;
      client.dropForTest();
    }
  } catch (error) {
    busy = false;
    updateButtons();
    setStatus("Not started.", 0);
    if (error instanceof DaemonError) showError({ code: error.code, message: error.message, field: error.field });
    else showError({ code: "plugin", message: error instanceof Error ? error.message : String(error) });
  }
}

window.addEventListener("message", (event: MessageEvent) => {
  const message = (event.data as { pluginMessage?: MainToUi } | null)?.pluginMessage;
  if (!message) return;
  switch (message.type) {
    case "settings":
      settings = message.settings;
      pending = message.pending ?? {};
      if (!settings.clientId) {
        settings.clientId = randomClientId();
        toMain({ type: "save-settings", settings: { clientId: settings.clientId } });
      }
      ui.address.value = settings.address;
      ui.token.value = settings.token;
      for (const [jobId, context] of Object.entries(pending)) jobs.set(jobId, { context, prompt: "", results: [] });
      connect();
      return;
    case "selection":
      selectionOk = message.ok;
      ui.selection.textContent = message.summary;
      ui.selection.classList.toggle("bad", !message.ok);
      updateButtons();
      return;
    case "prepared":
    case "prepare-error": {
      const waiter = preparing.get(message.requestId);
      preparing.delete(message.requestId);
      waiter?.(message);
      return;
    }
    case "placed":
      dropJob(message.jobId);
      for (const note of message.notes) addNote(note);
      setStatus(`Placed ${message.nodeIds.length > 1 ? "a group of results" : "the result"} on the canvas.`, 1, 1);
      return;
    case "place-error":
      showError({ code: "place_failed", message: message.message });
      return;
  }
});

ui.connect.addEventListener("click", connect);
ui.generate.addEventListener("click", () => void generate(false));
ui.expand.addEventListener("click", () => void generate(true));
ui.cancel.addEventListener("click", () => {
  if (currentJob && client?.isConnected) {
    try {
      client.cancel(currentJob);
      setStatus("Cancelling…");
    } catch (error) {
      showError({ code: "plugin", message: String(error) });
    }
  }
});
ui.strengthAuto.addEventListener("change", () => {
  ui.strength.disabled = ui.strengthAuto.checked;
  ui.strengthValue.textContent = ui.strengthAuto.checked ? "auto" : ui.strength.value;
});
ui.strength.addEventListener("input", () => {
  ui.strengthValue.textContent = ui.strength.value;
});
ui.seedMode.addEventListener("change", () => {
  ui.seed.disabled = ui.seedMode.value === "random";
});

toMain({ type: "load-settings" });
