/**
 * The sidebar's "Live painting" section: the Live toggle, Apply, the status line, and the wiring
 * between the session (ui/live.ts), the websocket client and the main thread (main/live.ts): the
 * main thread's pixels become frames, each newest result goes back to it to show in the live node.
 */

import { decodePng } from "../shared/png";
import type { LiveShow, MainToUi, UiToMain } from "../shared/messages";
import type { LiveSpec, ServerMessage } from "../shared/protocol.gen";
import type { UnderpaintClient } from "./client";
import { LiveRun } from "./live";
import type { SessionEvent } from "./session";

export interface LiveDeps {
  toMain: (message: UiToMain) => void;
  daemon: () => UnderpaintClient | null;
  /** The live settings from the Generate fields (model, prompt, strength, seed, steps). */
  spec: () => LiveSpec;
  showError: (text: string) => void;
}

export interface LivePanel {
  run: LiveRun | null;
  /** A daemon event: true when it was live painting's (`live_result`, `live_stopped`). */
  receive(event: SessionEvent): boolean;
  /** A main-thread message: true when it was live painting's. */
  fromMain(message: MainToUi): boolean;
  /** Connection changes: the toggle needs a connected daemon. */
  update(): void;
}

export function mountLive(before: Element, deps: LiveDeps): LivePanel {
  const section = document.createElement("details");
  section.id = "live-section";
  const summary = document.createElement("summary");
  summary.textContent = "Live painting";
  const toggle = Object.assign(document.createElement("button"), {
    id: "live-toggle",
    textContent: "Live",
    disabled: true,
    title: "Redraw the selected frame with the fields above whenever it changes; the picture shows in one node above it",
  });
  const apply = Object.assign(document.createElement("button"), {
    id: "live-apply",
    textContent: "Apply",
    disabled: true,
    title: "Copy the current live picture to a normal result node (one undo step)",
  });
  const status = Object.assign(document.createElement("div"), { id: "live-status", textContent: "Live is off." });
  const row = document.createElement("div");
  row.className = "row";
  row.append(toggle, apply);
  section.append(summary, row, status);
  before.parentElement?.insertBefore(section, before);

  const panel: LivePanel = { run: null, receive, fromMain, update };
  let shown: { name: string } | null = null;
  /** Live was turned on and waits for the node's first pixels (they give the canvas size). */
  let armed = false;
  /** The main thread's pixels arrive in order; decoding is async, so they queue. */
  let pixels: Promise<void> = Promise.resolve();

  function update(): void {
    const run = panel.run;
    const on = armed || (run?.active ?? false);
    toggle.textContent = on ? "Live off" : "Live";
    toggle.setAttribute("aria-pressed", String(on));
    toggle.disabled = !on && deps.daemon() === null;
    apply.disabled = shown === null;
    status.textContent = armed && !run?.active ? "Live: reading the selected frame…" : run?.status() ?? "Live is off.";
  }

  function off(): void {
    deps.toMain({ type: "live-end" });
    shown = null;
    update();
  }

  /** Live on: the main thread watches the selected node; its first pixels start the session. */
  function arm(): void {
    armed = true;
    shown = null;
    deps.toMain({ type: "live-watch" });
    status.textContent = "Live: reading the selected frame…";
    toggle.textContent = "Live off";
  }

  async function start(client: UnderpaintClient, width: number, height: number): Promise<LiveRun> {
    const run = new LiveRun(client);
    panel.run = run;
    const started = run.start({ ...deps.spec(), canvas: { width, height } });
    void started.then(() => {
      if (run.state === "off" && panel.run === run) {
        deps.toMain({ type: "live-end" });
        if (run.note) deps.showError(run.note);
      }
      update();
    });
    return run;
  }

  toggle.addEventListener("click", () => {
    const run = panel.run;
    if (armed || run?.active) {
      armed = false;
      if (run?.active) void run.stop().then(update);
      off();
      return;
    }
    if (deps.daemon() !== null) arm();
  });
  apply.addEventListener("click", () => {
    const run = panel.run;
    if (shown === null || run === null) return;
    // named as the Python hosts name an applied live result: the prompt's first words and the seed
    const words = (run.prompt.split(/\s+/).join(" ").trim().slice(0, 48) || "Live").trim();
    deps.toMain({ type: "live-apply", name: run.started ? `${words} [seed ${run.started.seed}]` : words });
  });

  function receive(event: SessionEvent): boolean {
    const message: ServerMessage = event.message;
    const run = panel.run;
    if (message.type === "live_result") {
      if (run !== null && event.image?.format === "png" && run.result(message)) {
        const { name, x, y, width, height } = message.layer;
        const layer: LiveShow = { name, x, y, width, height, png: event.image.data.slice() };
        shown = { name };
        deps.toMain({ type: "live-show", layer });
        update();
      }
      return true;
    }
    if (message.type === "live_stopped") {
      if (run !== null && run.stoppedByDaemon(message)) {
        off();
        deps.showError(run.note);
      }
      return true;
    }
    return false;
  }

  function fromMain(message: MainToUi): boolean {
    const run = panel.run;
    switch (message.type) {
      case "live-pixels":
        pixels = pixels
          .then(async () => {
            const image = await decodePng(message.png);
            let live = panel.run;
            if (armed) {
              armed = false;
              const client = deps.daemon();
              if (client === null) return off();
              live = await start(client, image.width, image.height);
            }
            if (live === null || !live.active) return;
            live.pixels({ width: image.width, height: image.height, data: image.data });
            update();
          })
          .catch((error) => deps.showError(`Could not read the frame: ${String(error)}`));
        return true;
      case "live-shown":
      case "live-applied":
        update();
        return true;
      case "live-error":
        armed = false;
        if (run?.active) void run.stop();
        off();
        deps.showError(message.message);
        return true;
      default:
        return false;
    }
  }

  update();
  return panel;
}
