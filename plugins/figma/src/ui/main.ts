/** The sidebar: settings, connection, the job form, progress, errors; talks to code.ts by messages. */

import { addGuides, guideFrames, guideProblem } from "../shared/guides";
import { buildJob } from "../shared/job";
import { segmentJob, segmentModels } from "../shared/segment";
import type { JobContext, MainToUi, PreparedJob, ResultItem, Settings, UiToMain } from "../shared/messages";
import { DEFAULT_PORT, GENERATE_MODES, type LiveSpec, type Mode, type ServerMessageOf, type Welcome } from "../shared/protocol.gen";
import { buildUpload } from "../shared/upload";
import { type ConnectionState, DaemonError, UnderpaintClient } from "./client";
import { describeError } from "./errors";
import { ignoredFields, ignoredSummary, type ModelInfo, modelLabel, parseSeed, plan, progressText, strengthFraction } from "./fields";
import type { ReusedFields } from "./history";
import { cropPng, fitForFigma, randomClientId } from "./images";
import { mountLive } from "./livepanel";
import { ResultsPanel } from "./results";
import { mountPrompts } from "./prompts";
import { isEnded, JobRun } from "./run";
import type { SessionEvent } from "./session";
import { ACTIONS, scaledSize, tileText, type UpscaleAction, upscaleJob, upscalePlacement } from "../shared/upscale";
import { mountGuides } from "./guides";
import { mountUpscale, TileFill } from "./upscale";

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
  seedLock: $<HTMLInputElement>("seed-lock"),
  seed: $<HTMLInputElement>("seed"),
  plan: $<HTMLDivElement>("plan"),
  ignored: $<HTMLElement>("ignored"),
  batch: $<HTMLInputElement>("batch"),
  scale: $<HTMLSelectElement>("scale"),
  generate: $<HTMLButtonElement>("generate"),
  cancel: $<HTMLButtonElement>("cancel"),
  expand: $<HTMLButtonElement>("expand"),
  segmentModel: $<HTMLSelectElement>("segment-model"),
  segmentRefine: $<HTMLButtonElement>("segment-refine"),
  segmentWords: $<HTMLInputElement>("segment-words"),
  segmentWordsGo: $<HTMLButtonElement>("segment-words-go"),
  extents: ["left", "top", "right", "bottom"].map((side) => $<HTMLInputElement>(`ext-${side}`)),
  progress: $<HTMLProgressElement>("progress"),
  status: $<HTMLDivElement>("status"),
  preview: $<HTMLImageElement>("preview"),
  error: $<HTMLDivElement>("error"),
  notes: $<HTMLDivElement>("notes"),
};

/** The prompt library (ui/prompts.ts): styles, recent prompts, LoRAs, prompt from image, reuse a PNG. */
const prompts = mountPrompts($<HTMLDivElement>("prompt-library"), {
  client: () => (client?.isConnected ? client : null),
  prompt: ui.prompt,
  negative: ui.negative,
  readImage: async () => {
    const prepared = await prepare(false, false);
    const { width, height } = prepared.geometry.canvas;
    if (!prepared.image) throw new Error("Select an image to describe (or shapes over one).");
    const png = (data: Uint8Array) => ({ format: "png" as const, width, height, data });
    return { image: png(prepared.image), mask: prepared.mask ? png(prepared.mask) : null };
  },
  fill: (fields) => reuse(fields),
  showError: (error) => showError(error),
  setStatus: (text) => setStatus(text),
});
/** The selected nodes (what "Add control layer" and "Add reference" pick). */
let selectedNodes: { id: string; name: string }[] = [];
/** The "Control layers and references" section (ui/guides.ts), before Expand. */
const guides = mountGuides($("guides-mount"), () => selectedNodes, () => chosenModel(), () => updatePlan());

/** The "Upscale and restore" section (ui/upscale.ts), before the progress bar. */
const upscale = mountUpscale(ui.progress, (action) => void generate(false, undefined, action));

/** The "Live painting" section (ui/livepanel.ts), after it. */
const live = mountLive(ui.progress, {
  toMain: (message) => toMain(message),
  daemon: () => (client?.isConnected ? client : null),
  spec: () => liveSpec(),
  showError: (text) => showError({ code: "plugin", message: text }),
});

/** Live paints with the Generate fields; the seed is held for every frame (random when not locked). */
function liveSpec(): LiveSpec {
  let seed: number | null = null;
  try {
    seed = ui.seedLock.checked ? parseSeed(ui.seed.value) : null;
  } catch {
    seed = null;
  }
  const spec: LiveSpec = { canvas: { width: 1, height: 1 }, prompt: ui.prompt.value, negative_prompt: ui.negative.value };
  if (ui.model.value) spec.model = ui.model.value;
  if (!ui.strengthAuto.checked) spec.strength = strengthFraction(Number(ui.strength.value));
  if (ui.steps.value.trim() !== "") spec.steps = Number(ui.steps.value);
  if (seed !== null) spec.seed = seed;
  return spec;
}

interface RunningJob {
  context: JobContext;
  prompt: string;
  results: ResultItem[];
  /** This session's run of the job; absent for jobs adopted from an earlier session. */
  run?: JobRun;
  /** An upscale's fill, drawn tile by tile until the whole layer is here. */
  fill?: TileFill;
}

const DEFAULT_ADDRESS = `ws://localhost:${DEFAULT_PORT}`;
let settings: Settings = { address: DEFAULT_ADDRESS, token: "", clientId: "", landDirectly: false };
let client: UnderpaintClient | null = null;
let selectionOk = false;
let selectionMode: string | null = null;
let selectionSummary = "";
let welcome: Welcome | null = null;
/** Whether the plan line refuses Generate now (what to do instead is on the line). */
let refused = false;
/** When the shown job was started, and its batch size, for the progress line. */
let startedAt = 0;
let batchSize = 1;
/** The job the sidebar shows and Cancel acts on, from planning to its end. */
let current: JobRun | null = null;
/** The mode of the job `current` runs (known once its job is built). */
let currentMode = "";
let previewUrl: string | null = null;
/** The job whose preview or result the sidebar shows. */
let shownJob: string | null = null;
const jobs = new Map<string, RunningJob>();
const preparing = new Map<string, (reply: MainToUi) => void>();
let pending: Record<string, JobContext> = {};
let events: Promise<void> = Promise.resolve();

const busy = (): boolean => current !== null && !isEnded(current.state);
const currentJobId = (): string | null => (busy() ? (current?.jobId ?? null) : null);

function toMain(message: UiToMain): void {
  parent.postMessage({ pluginMessage: message }, "*");
}

function setState(state: ConnectionState, text: string): void {
  ui.state.dataset.state = state;
  ui.stateText.textContent = text;
  updateButtons();
  live.update();
}

/** A protocol error (worded from the generated table), or one of the plugin's own (`plugin`, `place_failed`). */
function showError(error: { code: string; message: string; field?: string | null } | null, hint = ""): void {
  if (error === null) {
    ui.error.hidden = true;
    ui.error.textContent = "";
    delete ui.error.dataset.code;
    return;
  }
  const local = error.code === "plugin" || error.code === "place_failed";
  const shown = local ? { code: error.code, text: error.message, detail: "", field: null } : describeError(error);
  ui.error.hidden = false;
  ui.error.innerHTML = "";
  const code = document.createElement("code");
  code.textContent = shown.code;
  ui.error.append(code, document.createTextNode(`: ${shown.text}${hint}`));
  if (shown.detail) ui.error.append(document.createTextNode(`\n${shown.detail}`));
  if (shown.field) ui.error.append(document.createTextNode(`\nfield: ${shown.field}`));
  ui.error.dataset.code = shown.code;
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
  ui.generate.disabled = !connected || busy() || !selectionOk || refused;
  ui.expand.disabled = !connected || busy() || !selectionOk;
  ui.cancel.disabled = !busy() || current?.cancelRequested === true;
  const segmenting = !connected || busy() || !selectionOk || ui.segmentModel.value === "";
  ui.segmentRefine.disabled = segmenting;
  ui.segmentWordsGo.disabled = segmenting;
  upscale.setEnabled(connected && !busy() && selectionOk);
  prompts.setEnabled(connected);
}

function savePending(): void {
  toMain({ type: "save-pending", pending });
}

function fillModels(hello: Welcome): void {
  welcome = hello;
  const previous = ui.model.value;
  ui.model.innerHTML = "";
  // Generate's models make images; segment, upscale and restore models have their own sections
  const generating = hello.models.filter((m) => m.modes.some((mode) => (GENERATE_MODES as readonly Mode[]).includes(mode)));
  for (const model of generating) {
    const option = document.createElement("option");
    option.value = model.id;
    option.textContent = modelLabel(model);
    option.title = model.description ?? "";
    ui.model.append(option);
  }
  ui.model.value = generating.some((m) => m.id === previous) ? previous : hello.default_model;
  const previousSegment = ui.segmentModel.value;
  const able = segmentModels(hello.models);
  ui.segmentModel.innerHTML = "";
  for (const model of able) {
    const option = document.createElement("option");
    option.value = model.id;
    option.textContent = modelLabel(model);
    option.title = `starts from: ${(model.segment_inputs ?? []).join(", ")}`;
    ui.segmentModel.append(option);
  }
  if (able.some((m) => m.id === previousSegment)) ui.segmentModel.value = previousSegment;
  upscale.fill(hello.models);
  guides.refresh();
  updatePlan();
  updateButtons();
}

function chosenModel(): ModelInfo | undefined {
  return welcome?.models.find((m) => m.id === (ui.model.value || welcome?.default_model));
}

/** The line saying what Generate will do, and the fields the chosen model ignores (disabled, with why). */
function updatePlan(): void {
  const model = chosenModel();
  const planned = selectionOk ? plan(selectionMode, selectionSummary, model) : { sentence: selectionSummary, refusal: selectionSummary };
  const problem = guideProblem(model, guides.controls(), guides.references(), welcome?.limits ?? {});
  ui.plan.textContent = problem ?? planned.sentence;
  refused = planned.refusal !== null || problem !== null;
  const ignored = ignoredFields(model);
  const fields: [keyof typeof ignored, HTMLElement[]][] = [
    ["prompt", [ui.prompt]],
    ["negative_prompt", [ui.negative]],
    ["strength", [ui.strengthAuto]],
    ["steps", [ui.steps]],
    ["seed", [ui.seedLock]],
  ];
  for (const [name, elements] of fields) {
    for (const element of elements as (HTMLInputElement | HTMLTextAreaElement)[]) {
      element.disabled = ignored[name] !== undefined;
      element.title = ignored[name] ?? "";
    }
  }
  ui.strength.disabled = ui.strengthAuto.checked || ignored.strength !== undefined;
  ui.seed.disabled = !ui.seedLock.checked || ignored.seed !== undefined;
  const summary = ignoredSummary(model);
  ui.ignored.hidden = summary === "";
  ui.ignored.textContent = summary;
  updateButtons();
}

function connect(): void {
  client?.close();
  showError(null);
  settings = { ...settings, address: ui.address.value.trim() || DEFAULT_ADDRESS, token: ui.token.value.trim() };
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
      if (state === "connected") void prompts.load();
      if (state === "refused" && error) {
        const hint = error.code === "unauthorized" ? " Paste the token printed by `underpaint token` and press Connect." : "";
        showError(error, hint);
      } else if (state === "connected" && ui.error.dataset.code === "unauthorized") {
        showError(null);
      }
      if (state !== "connected") results.lost();
      if (state !== "connected" && currentJobId() !== null) setStatus("Waiting for the daemon to come back…");
    },
  });
  client.connect();
}

async function onEvent(event: SessionEvent): Promise<void> {
  const message = event.message;
  const jobId = event.jobId;
  const job = jobId ? jobs.get(jobId) : undefined;
  if (live.receive(event)) return;
  if (job === undefined && (await results.receive(event))) return;
  const run = job?.run;
  if (run) run.receive(message);
  const isCurrent = jobId !== undefined && jobId === currentJobId();
  switch (message.type) {
    case "welcome":
      fillModels(message);
      if (message.client_id !== settings.clientId) {
        settings.clientId = message.client_id;
        toMain({ type: "save-settings", settings: { clientId: settings.clientId } });
      }
      results.welcomed(message.outputs);
      return;
    case "queued":
      if (isCurrent) setStatus(`Queued at position ${message.position}.`, 0);
      return;
    case "started":
      if (isCurrent) setStatus("Running…", 0);
      return;
    case "progress":
      if (isCurrent && !run?.cancelRequested) {
        const done = job?.results.length ?? 0;
        const unit = currentMode === "upscale" ? "tile" : "step";
        const where = message.tile ? tileText(message.tile, currentMode) : null;
        const text = progressText(message.step, message.total, done, batchSize, (Date.now() - startedAt) / 1000, unit, where);
        setStatus(text[0].toUpperCase() + text.slice(1), message.step, message.total);
        if (currentMode in ACTIONS) upscale.say(`${currentMode}: ${text}`);
      }
      if (isCurrent && !run?.cancelRequested && event.image && event.image.format === "png") {
        shownJob = jobId ?? null;
        showPreview(event.image.data);
      }
      return;
    case "result": {
      if (!job || !event.image || (run && !run.placesResults)) return;
      if (message.upscale) {
        // one tile of the layer: drawn into the one fill at once, not kept
        const tile = message.layer;
        const whole = message.upscale.layer;
        job.fill ??= new TileFill(whole, message.upscale.tiles);
        if (!(await job.fill.add(message.index, { ...tile, png: event.image.data }))) return;
        const fill = await job.fill.finish();
        job.fill = undefined;
        job.results.push({ index: 0, name: tile.name, ...whole, png: fill.png, scaledFrom: fill.scaledFrom });
        if (jobId === current?.jobId) {
          shownJob = jobId ?? null;
          showPreview(fill.png);
        }
        return;
      }
      const layer = message.layer;
      const png = event.image.data.slice();
      const fitted = await fitForFigma(png, event.image.width, event.image.height);
      job.results.push({
        index: message.index,
        name: layer.name,
        x: layer.x,
        y: layer.y,
        width: layer.width,
        height: layer.height,
        png: fitted.png,
        scaledFrom: fitted.scaledFrom,
      });
      if (jobId === current?.jobId) {
        shownJob = jobId ?? null;
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
        if (message.code === "unknown_job" && message.job_id) dropJob(message.job_id);
        // A cancel that came too late: the job's own outcome follows and says what happened.
        if (message.code === "not_cancellable" && run) return;
        showError(message);
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
  updateButtons();
}

function finishJob(jobId: string, message: ServerMessageOf<"finished" | "failed" | "cancelled">): void {
  const job = jobs.get(jobId);
  const run = job?.run;
  const wasCurrent = run !== undefined && run === current;
  updateButtons();
  // A job cancelled before the daemon accepted it ends cancelled, even when the daemon finished it first.
  const outcome = run && run.state === "cancelled" ? "cancelled" : message.type;
  if (outcome === "failed" && message.type === "failed") {
    showError(message);
    if (wasCurrent) setStatus("Failed.", 0);
  } else if (outcome === "cancelled") {
    const kept = run?.placesResults === false ? [] : (job?.results ?? []);
    if (job) job.results = kept;
    if (wasCurrent || !run) {
      setStatus(kept.length > 0 ? `Cancelled after ${kept.length} result(s).` : "Cancelled: nothing was placed.", 0);
    }
    // The preview showed unfinished work; a cancelled job leaves nothing to look at.
    if (jobId === shownJob) hidePreview();
  } else if (message.type === "finished") {
    setStatus(`Done: ${message.results} result${message.results === 1 ? "" : "s"}. Placing…`, 1, 1);
  }
  if (job && job.results.length > 0 && results.stage(jobId, job.context, job.prompt, job.results)) {
    dropJob(jobId);
    results.refresh();
  } else if (job && job.results.length > 0) {
    toMain({ type: "place", jobId, context: job.context, prompt: job.prompt, results: job.results });
  } else {
    dropJob(jobId);
  }
}

function readExtents(): { left: number; top: number; right: number; bottom: number } {
  const [left, top, right, bottom] = ui.extents.map((input) => Math.max(0, Number(input.value) || 0));
  return { left, top, right, bottom };
}

function prepare(expand: boolean, withGuides: boolean): Promise<PreparedJob> {
  const requestId = `p${Date.now()}${Math.random().toString(36).slice(2, 6)}`;
  return new Promise((resolve, reject) => {
    preparing.set(requestId, (reply) => {
      if (reply.type === "prepared") resolve(reply.job);
      else if (reply.type === "prepare-error") reject(new Error(reply.message));
    });
    toMain({
      type: "prepare",
      requestId,
      options: {
        scale: ui.scale.value === "2" ? 2 : 1,
        expand: expand ? readExtents() : undefined,
        guides: withGuides
          ? { controls: guides.controls().map((row) => row.nodeId), references: guides.references().map((row) => row.nodeId) }
          : undefined,
      },
    });
  });
}

const RUN_STATUS: Partial<Record<JobRun["state"], string>> = {
  planning: "Planning…",
  uploading: "Cutting out the region the daemon needs…",
  submitted: "Submitting…",
};

function onRunState(run: JobRun): void {
  if (run !== current) return;
  if (run.cancelRequested && !isEnded(run.state)) setStatus("Cancelling…");
  else if (run.state === "cancelled" && run.jobId === null) setStatus("Cancelled: nothing was placed.", 0);
  else if (RUN_STATUS[run.state]) setStatus(RUN_STATUS[run.state]!, 0);
  updateButtons();
}

/** ``segment``: a segment job ("Refine selection": text null; "Select by words": the phrase); ``action``: an upscale section button. */
async function generate(expand: boolean, segment?: { text: string | null }, action?: UpscaleAction): Promise<void> {
  const connected = client;
  if (!connected?.isConnected || busy()) return;
  showError(null);
  let seed: number | null = null;
  try {
    seed = ui.seedLock.checked ? parseSeed(ui.seed.value) : null;
  } catch (error) {
    showError({ code: "plugin", message: `${(error as Error).message} Untick Lock for a random seed.` });
    return;
  }
  startedAt = Date.now();
  batchSize = Math.max(1, Number(ui.batch.value) || 1);
  ui.notes.hidden = true;
  ui.notes.innerHTML = "";
  const run = new JobRun(connected, onRunState);
  current = run;
  updateButtons();
  setStatus("Reading the selection…", 0);
  try {
    const guided = !segment && !action; // control layers and references guide Generate and Expand
    const prepared = await prepare(expand, guided);
    if (run.cancelRequested) {
      run.cancel();
      return;
    }
    const geometry = prepared.geometry;
    const numberOrNull = (text: string): number | null => (text.trim() === "" ? null : Number(text));
    if (segment) prepared.context.mode = "segment";
    const job = segment
      ? segmentJob(geometry, { model: ui.segmentModel.value, text: segment.text })
      : buildJob(geometry, {
      model: ui.model.value,
      prompt: ui.prompt.value,
      negativePrompt: ui.negative.value,
      strength: ui.strengthAuto.checked ? null : strengthFraction(Number(ui.strength.value)),
      steps: numberOrNull(ui.steps.value),
      seed,
      batch: Number(ui.batch.value) || 1,
      style: prompts.style(),
    });
    const spec = action ? upscaleJob(job, geometry, action, upscale.form()) : guided ? addGuides(job, guides.controls(), guides.references()) : job;
    let context = prepared.context;
    if (spec.upscale) {
      const scaled = scaledSize(geometry.canvas, spec.upscale.factor);
      context = { ...context, placement: upscalePlacement(context.placement, geometry.canvas, scaled), mode: spec.mode };
    } else if (action) {
      context = { ...context, mode: spec.mode };
    }
    currentMode = spec.mode;
    const accepted = await run.start(spec, async (planned) => {
      // Only the pixels the daemon asked for: the planned region, cut from the export and sent raw.
      const upload = await buildUpload(
        {
          upload: planned.upload,
          canvas: geometry.canvas,
          image: prepared.image,
          mask: spec.upscale || (segment && segment.text !== null) ? undefined : prepared.mask, // words and upscales: no mask
          maxFrameBytes: connected.welcome?.limits.max_frame_bytes ?? 0,
        },
        cropPng,
      );
      if (upload.region) setStatus(`Uploading ${upload.region.width}×${upload.region.height} px…`, 0);
      if (!prepared.guides) return upload;
      // each control node over the planned control rectangle, so it lines up with the canvas pixel for pixel
      return { ...upload, guides: await guideFrames(planned.control, geometry.canvas, prepared.guides, cropPng) };
    });
    if (accepted === null) return;
    const jobId = accepted.job_id;
    jobs.set(jobId, { context, prompt: spec.prompt ?? "", results: [], run });
    if (!run.cancelRequested) {
      pending[jobId] = context;
      savePending();
      if (!ui.seedLock.checked && !segment) ui.seed.value = String(accepted.seed); // the seed used, to lock it
      setStatus(`Accepted (seed ${accepted.seed}).`, 0);
      if (!segment && !action) void prompts.loadHistory(); // the recent prompts now start with this one
    }
    updateButtons();
  } catch (error) {
    if (current === run && !isEnded(run.state)) current = null;
    updateButtons();
    if (run.cancelRequested) {
      setStatus("Cancelled: nothing was placed.", 0);
      return;
    }
    setStatus("Not started.", 0);
    if (error instanceof DaemonError) showError(error);
    else showError({ code: "plugin", message: error instanceof Error ? error.message : String(error) });
  }
}

window.addEventListener("message", (event: MessageEvent) => {
  const message = (event.data as { pluginMessage?: MainToUi } | null)?.pluginMessage;
  if (!message || live.fromMain(message)) return;
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
      results.setLandDirectly(settings.landDirectly);
      for (const [jobId, context] of Object.entries(pending)) jobs.set(jobId, { context, prompt: "", results: [] });
      connect();
      return;
    case "selection":
      selectionOk = message.ok;
      selectionMode = message.mode ?? null;
      selectionSummary = message.summary;
      selectedNodes = message.nodes ?? [];
      guides.refresh();
      ui.selection.textContent = message.summary;
      ui.selection.classList.toggle("bad", !message.ok);
      updatePlan();
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
      results.refresh();
      return;
    case "preview-shown":
    case "preview-ended":
      return;
    case "place-error":
      showError({ code: "place_failed", message: message.message });
      return;
  }
});

/** "Reuse" on a history row: its parameters, its own seed locked, into the fields. */
function reuse(fields: ReusedFields): void {
  if (fields.model !== null && welcome?.models.some((m) => m.id === fields.model)) ui.model.value = fields.model;
  ui.prompt.value = fields.prompt;
  ui.negative.value = fields.negativePrompt;
  ui.strengthAuto.checked = fields.strength === null;
  if (fields.strength !== null) ui.strength.value = String(fields.strength);
  ui.strengthValue.textContent = fields.strength === null ? "mode default" : `${fields.strength}%`;
  ui.steps.value = fields.steps === null ? "" : String(fields.steps);
  ui.seedLock.checked = fields.seed !== null;
  ui.seed.value = fields.seed === null ? "" : String(fields.seed);
  ui.batch.value = "1";
  if (fields.style !== undefined) prompts.setStyle(fields.style ?? "");
  updatePlan();
  setStatus("Reused a result's parameters (its seed is locked).");
}

const results = new ResultsPanel({
  toMain,
  daemon: () => (client?.isConnected ? client : null),
  isOwn: (jobId) => jobs.has(jobId),
  setStatus: (text) => setStatus(text),
  showError: (text) => showError({ code: "plugin", message: text }),
  showImage: (png) => (png ? showPreview(png) : hidePreview()),
  reuse,
  saveLandDirectly: (landDirectly) => {
    settings.landDirectly = landDirectly;
    toMain({ type: "save-settings", settings: { landDirectly } });
  },
});

ui.connect.addEventListener("click", connect);
ui.generate.addEventListener("click", () => void generate(false));
ui.expand.addEventListener("click", () => void generate(true));
ui.segmentRefine.addEventListener("click", () => void generate(false, { text: null }));
ui.segmentWordsGo.addEventListener("click", () => void generate(false, { text: ui.segmentWords.value }));
ui.cancel.addEventListener("click", () => {
  if (!current || !busy()) return;
  try {
    current.cancel();
  } catch (error) {
    showError({ code: "plugin", message: String(error) });
  }
});
ui.strengthAuto.addEventListener("change", () => {
  ui.strengthValue.textContent = ui.strengthAuto.checked ? "mode default" : `${ui.strength.value}%`;
  updatePlan();
});
ui.strength.addEventListener("input", () => {
  ui.strengthValue.textContent = `${ui.strength.value}%`;
});
ui.seedLock.addEventListener("change", updatePlan);
ui.model.addEventListener("change", () => {
  guides.refresh();
  updatePlan();
});

toMain({ type: "load-settings" });
