/** The plugin's main thread: selection in, nodes out. The websocket lives in the UI iframe. */

import { SelectionError } from "../shared/geometry";
import type { JobContext, MainToUi, Settings, UiToMain } from "../shared/messages";
import { DEFAULT_PORT } from "../shared/protocol.gen";
import { applyLive, endLive, showLive, startWatching } from "./live";
import { placeResults } from "./place";
import { dropPreviewNow, endPreview, reapplyResult, showPreview } from "./preview";
import { placeMask } from "./segment";
import { classify, describe, prepareJob } from "./selection";

const SETTINGS_KEY = "underpaint-settings";
const PENDING_KEY = "underpaint-pending";
/** localhost, not 127.0.0.1: the manifest's networkAccess names localhost, as Figma asks. */
export const DEFAULT_ADDRESS = `ws://localhost:${DEFAULT_PORT}`;

function post(message: MainToUi): void {
  figma.ui.postMessage(message);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function sendSelection(): void {
  const nodes = figma.currentPage.selection.map((node) => ({ id: node.id, name: node.name }));
  try {
    const classified = classify(figma.currentPage.selection);
    post({ type: "selection", summary: describe(classified), ok: true, mode: classified.mode, nodes });
  } catch (error) {
    post({ type: "selection", summary: errorText(error), ok: false, nodes });
  }
}

async function loadSettings(): Promise<void> {
  const stored = ((await figma.clientStorage.getAsync(SETTINGS_KEY)) ?? {}) as Partial<Settings>;
  const pending = ((await figma.clientStorage.getAsync(PENDING_KEY)) ?? {}) as Record<string, JobContext>;
  post({
    type: "settings",
    settings: {
      address: stored.address || DEFAULT_ADDRESS,
      token: stored.token || "",
      clientId: stored.clientId || "",
      landDirectly: stored.landDirectly === true,
    },
    pending,
  });
}

async function handle(message: UiToMain): Promise<void> {
  switch (message.type) {
    case "load-settings":
      await loadSettings();
      sendSelection();
      return;
    case "save-settings": {
      const stored = ((await figma.clientStorage.getAsync(SETTINGS_KEY)) ?? {}) as Partial<Settings>;
      await figma.clientStorage.setAsync(SETTINGS_KEY, { ...stored, ...message.settings });
      return;
    }
    case "save-pending":
      await figma.clientStorage.setAsync(PENDING_KEY, message.pending);
      return;
    case "prepare":
      try {
        const job = await prepareJob(figma.currentPage.selection, message.options);
        post({ type: "prepared", requestId: message.requestId, job });
      } catch (error) {
        const text = error instanceof SelectionError ? error.message : `Could not read the selection: ${errorText(error)}`;
        post({ type: "prepare-error", requestId: message.requestId, message: text });
      }
      return;
    case "place":
      try {
        const placed =
          message.context.mode === "segment"
            ? await placeMask(message.context, message.results)
            : await placeResults(message.context, message.prompt, message.results);
        for (const note of placed.notes) figma.notify(note, { timeout: 8000 });
        post({ type: "placed", jobId: message.jobId, ...placed });
      } catch (error) {
        post({ type: "place-error", jobId: message.jobId, message: errorText(error) });
      }
      return;
    case "show-preview":
      try {
        post({ type: "preview-shown", nodeId: await showPreview(message.context, message.item, message.label) });
      } catch (error) {
        post({ type: "place-error", jobId: "", message: errorText(error) });
      }
      return;
    case "end-preview":
    case "reapply": {
      const jobId = message.type === "reapply" ? message.jobId : message.keep?.jobId;
      try {
        const placed =
          message.type === "reapply" ? await reapplyResult(message.item, message.canvas, message.mode) : await endPreview(message.keep);
        if (placed === null || jobId === undefined) {
          post({ type: "preview-ended" });
          return;
        }
        for (const note of placed.notes) figma.notify(note, { timeout: 8000 });
        post({ type: "placed", jobId, ...placed });
      } catch (error) {
        post({ type: "place-error", jobId: jobId ?? "", message: errorText(error) });
      }
      return;
    }
    case "notify":
      figma.notify(message.message, { error: message.error === true });
      return;
    case "live-watch":
    case "live-show":
    case "live-apply":
      try {
        if (message.type === "live-watch") await startWatching((png, width, height) => post({ type: "live-pixels", png, width, height }));
        else if (message.type === "live-show") post({ type: "live-shown", nodeId: showLive(message.layer) });
        else post({ type: "live-applied", nodeId: applyLive(message.name) });
      } catch (error) {
        post({ type: "live-error", message: errorText(error) });
      }
      return;
    case "live-end":
      endLive();
      return;
  }
}

figma.showUI(__html__, { width: 340, height: 760, themeColors: true, title: "underpaint" });
figma.ui.onmessage = (message: UiToMain) => {
  void handle(message);
};
figma.on("selectionchange", sendSelection);
figma.on("close", () => {
  dropPreviewNow();
  endLive();
});
