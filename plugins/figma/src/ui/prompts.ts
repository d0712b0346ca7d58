/**
 * The sidebar's prompt library (PROTOCOL.md §10), the same section the Krita and GIMP panels have:
 * the daemon's styles to pick (save the prompt as a style, rename or delete the user's own), recent
 * prompts to reuse, LoRAs to add to the prompt, "Prompt from image" (interrogate the selected image
 * or the masked part of it) and "Reuse parameters" from a PNG file. Rules are in shared/prompts.ts
 * and shared/pnginfo.ts; this file is the widgets and the daemon calls.
 */

import type { HistoryEntry, LoraDescription, Style, StyleList } from "../shared/protocol.gen";
import { pngFields } from "../shared/pnginfo";
import {
  historyLabel,
  LORA_WEIGHT,
  loraLabel,
  NO_PARAMETERS,
  NO_STYLE,
  RECENT,
  withLora,
} from "../shared/prompts";
import type { UnderpaintClient } from "./client";
import { strengthPercent } from "./fields";
import type { ReusedFields } from "./history";
import type { ImageData } from "./session";

/** What the section needs from the sidebar. */
export interface PromptHost {
  client(): UnderpaintClient | null;
  prompt: HTMLTextAreaElement;
  negative: HTMLTextAreaElement;
  /** The selected image (and the mask over it, if any) as the daemon takes them. */
  readImage(): Promise<{ image: ImageData; mask: ImageData | null }>;
  fill(fields: ReusedFields): void;
  showError(error: { code: string; message: string; field?: string | null } | null): void;
  setStatus(text: string): void;
}

export interface PromptSection {
  /** The chosen style's name ("" for none): every job names it. */
  style(): string;
  setStyle(name: string): void;
  /** Ask the daemon for its styles, recent prompts and LoRAs (on connecting). */
  load(): Promise<void>;
  /** The recent prompts again (after a job was submitted). */
  loadHistory(): Promise<void>;
  setEnabled(connected: boolean): void;
  /** Fill the fields from the PNG's parameters; false (with the reason shown) when it carries none. */
  reusePng(bytes: Uint8Array): Promise<boolean>;
  describe(): Promise<boolean>;
  readonly element: HTMLElement;
}

function element<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}): HTMLElementTagNameMap[K] {
  return Object.assign(document.createElement(tag), props);
}

function row(...children: HTMLElement[]): HTMLDivElement {
  const div = element("div", { className: "row" });
  div.style.marginTop = "4px";
  div.append(...children);
  return div;
}

/** Mount the section into `container` (an empty element of ui.html). */
export function mountPrompts(container: HTMLElement, host: PromptHost): PromptSection {
  let styles: Style[] = [];
  let history: HistoryEntry[] = [];
  let loras: LoraDescription[] = [];
  let chosen = "";

  const styleSelect = element("select", { id: "style", title: "A style wraps your prompt in a template (shared by every program using the daemon)" });
  const styleName = element("input", { id: "style-name", type: "text", placeholder: "style name", spellcheck: false });
  const save = element("button", { id: "style-save", textContent: "Save", className: "fit" });
  save.title = "Save the prompt (and negative prompt) as a style under this name; {prompt} marks where a job's prompt goes (added in front when missing)";
  const rename = element("button", { id: "style-rename", textContent: "Rename", className: "fit", title: "Give the chosen style (your own) this name" });
  const remove = element("button", { id: "style-delete", textContent: "Delete", className: "fit", title: "Delete the chosen style (your own)" });
  const recent = element("select", { id: "recent", title: "A prompt you used recently (in any program)" });
  const useRecent = element("button", { id: "recent-use", textContent: "Use", className: "fit", title: "Fill the fields with it, its style and settings" });
  const lora = element("select", { id: "lora", title: "LoRAs in the daemon's models folders, with their trigger words" });
  const weight = element("input", { id: "lora-weight", type: "number", min: "-4", max: "4", step: "0.05", value: String(LORA_WEIGHT), className: "fit" });
  weight.style.width = "64px";
  weight.title = "How strongly the LoRA applies";
  const addLora = element("button", { id: "lora-add", textContent: "Add", className: "fit", title: "Add the LoRA (<lora:name:weight>) and its trigger words to the prompt" });
  const describeButton = element("button", { id: "describe", textContent: "Prompt from image", title: "Write a prompt describing the selected image (or the masked part of it)" });
  const file = element("input", { id: "reuse-file", type: "file", accept: "image/png" });
  file.hidden = true;
  const reuseButton = element("button", { id: "reuse-png", textContent: "Reuse parameters…", title: "Fill the fields from the parameters in a PNG (underpaint, A1111, ComfyUI)" });

  const label = (text: string, target: HTMLElement): HTMLLabelElement => element("label", { textContent: text, htmlFor: target.id });
  container.append(
    label("Style", styleSelect),
    styleSelect,
    row(styleName, save, rename, remove),
    label("Recent prompts", recent),
    row(recent, useRecent),
    label("LoRA", lora),
    row(lora, weight, addLora),
    row(describeButton, reuseButton),
    file,
  );

  const info = (): Style | undefined => styles.find((style) => style.name.toLowerCase() === chosen.toLowerCase() && chosen !== "");
  const editable = (): boolean => {
    const style = info();
    return style !== undefined && !style.builtin;
  };
  let connectedNow = false;

  function draw(): void {
    styleSelect.replaceChildren(...["", ...styles.map((style) => style.name)].map((name) => element("option", { value: name, textContent: name || NO_STYLE })));
    styleSelect.value = info()?.name ?? "";
    const style = info();
    styleSelect.title = style ? `${style.prompt ?? "{prompt}"}${style.negative_prompt ? `\nnegative: ${style.negative_prompt}` : ""}` : "A style wraps your prompt in a template";
    recent.replaceChildren(...history.map((entry, index) => element("option", { value: String(index), textContent: historyLabel(entry) })));
    lora.replaceChildren(
      ...loras.map((item) => {
        const option = element("option", { value: item.name, textContent: loraLabel(item) });
        option.disabled = Boolean(item.refused);
        return option;
      }),
    );
    const usable = loras.find((item) => !item.refused);
    if (usable) lora.value = usable.name;
    enable();
  }

  function enable(): void {
    for (const control of [styleSelect, styleName, save, describeButton]) control.disabled = !connectedNow;
    useRecent.disabled = !connectedNow || history.length === 0;
    rename.disabled = remove.disabled = !connectedNow || !editable();
    const anyUsable = loras.some((item) => !item.refused);
    lora.disabled = weight.disabled = addLora.disabled = !connectedNow || !anyUsable;
  }

  function setStyle(name: string): void {
    chosen = name;
    styleName.value = name;
    draw();
  }

  function listed(list: StyleList, choose?: string): void {
    styles = list.styles;
    if (choose !== undefined) chosen = choose;
    if (chosen && info() === undefined) chosen = ""; // renamed or deleted in another program
    styleName.value = chosen;
    if (list.notice) host.showError({ code: "styles_file", message: list.notice });
    draw();
  }

  /** A library call: its failure is the daemon's error, shown like any other. */
  async function ask<T>(call: (client: UnderpaintClient) => Promise<T>): Promise<T | null> {
    const client = host.client();
    if (client === null) {
      host.showError({ code: "plugin", message: "Not connected to the daemon." });
      return null;
    }
    try {
      return await call(client);
    } catch (error) {
      const e = error as { code?: string; message?: string; field?: string | null };
      host.showError({ code: e.code ?? "plugin", message: e.message ?? String(error), field: e.field ?? null });
      return null;
    }
  }

  async function loadHistory(): Promise<void> {
    const entries = await ask((client) => client.history(RECENT));
    if (entries !== null) {
      history = entries;
      draw();
    }
  }

  async function reusePng(bytes: Uint8Array): Promise<boolean> {
    const fields = await pngFields(bytes);
    if (fields === null) {
      host.showError({ code: "plugin", message: NO_PARAMETERS });
      return false;
    }
    setStyle(fields.style ?? "");
    host.fill({
      model: fields.model,
      prompt: fields.prompt,
      negativePrompt: fields.negativePrompt,
      strength: fields.strength === null ? null : strengthPercent(fields.strength),
      steps: fields.steps,
      seed: fields.seed,
      style: fields.style,
    });
    host.setStatus(`Parameters from the PNG (${fields.source}) are in the fields.`);
    return true;
  }

  async function describe(): Promise<boolean> {
    host.showError(null);
    host.setStatus("Describing the image…");
    let read: { image: ImageData; mask: ImageData | null };
    try {
      read = await host.readImage();
    } catch (error) {
      host.showError({ code: "plugin", message: error instanceof Error ? error.message : String(error) });
      return false;
    }
    const found = await ask((client) => client.interrogate(read.image, read.mask));
    if (found === null) return false;
    host.prompt.value = found.prompt;
    host.prompt.dispatchEvent(new Event("input"));
    host.setStatus("The prompt describes the image.");
    return true;
  }

  styleSelect.addEventListener("change", () => setStyle(styleSelect.value));
  save.addEventListener("click", async () => {
    const prompt = host.prompt.value;
    const template = (prompt.includes("{prompt}") ? prompt : `{prompt}, ${prompt}`).replace(/^[,\s]+|[,\s]+$/g, "");
    const style: Style = { name: styleName.value.trim(), prompt: template, negative_prompt: host.negative.value };
    const list = await ask((client) => client.saveStyle(style));
    if (list) listed(list, style.name);
  });
  rename.addEventListener("click", async () => {
    const newName = styleName.value.trim();
    const list = await ask((client) => client.renameStyle(chosen, newName));
    if (list) listed(list, newName);
  });
  remove.addEventListener("click", async () => {
    const list = await ask((client) => client.deleteStyle(chosen));
    if (list) listed(list, "");
  });
  useRecent.addEventListener("click", () => {
    const entry = history[Number(recent.value)];
    if (!entry) return;
    setStyle(entry.style ?? "");
    host.fill({
      model: entry.model || null,
      prompt: entry.prompt,
      negativePrompt: entry.negative_prompt,
      strength: entry.strength === null || entry.strength === undefined ? null : strengthPercent(entry.strength),
      steps: entry.steps ?? null,
      seed: null,
      style: entry.style ?? null,
    });
  });
  addLora.addEventListener("click", () => {
    const item = loras.find((candidate) => candidate.name === lora.value && !candidate.refused);
    if (!item) return;
    host.prompt.value = withLora(host.prompt.value, item, Number(weight.value) || LORA_WEIGHT);
    host.prompt.dispatchEvent(new Event("input"));
  });
  describeButton.addEventListener("click", () => void describe());
  reuseButton.addEventListener("click", () => file.click());
  file.addEventListener("change", async () => {
    const chosenFile = file.files?.[0];
    file.value = "";
    if (chosenFile) await reusePng(new Uint8Array(await chosenFile.arrayBuffer()));
  });

  return {
    element: container,
    style: () => info()?.name ?? "",
    setStyle,
    async load() {
      const list = await ask((client) => client.styles());
      if (list) listed(list);
      const found = await ask((client) => client.loras());
      if (found) loras = found;
      await loadHistory();
    },
    loadHistory,
    setEnabled(connected: boolean) {
      connectedNow = connected;
      enable();
    },
    reusePng,
    describe,
  };
}
