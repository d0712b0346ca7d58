/**
 * The sidebar's "Control layers and references" section: the selected nodes become control rows
 * (kind, strength, from/to, preprocess) or reference rows (take, weight). Widgets only: rows, defaults
 * and labels are src/shared/guides.ts's; the main thread reads the nodes with the job's image.
 */

import {
  availability,
  type ControlKind,
  type ControlRow,
  controlRow,
  fraction,
  KIND_LABELS,
  LABELS,
  modelKinds,
  modelTakes,
  percent,
  PREPROCESSED_KINDS,
  type ReferenceRow,
  referenceRow,
  type ReferenceTake,
  STRENGTH_MAX_PERCENT,
  TAKE_LABELS,
  WEIGHT_MAX_PERCENT,
} from "../shared/guides";
import type { ModelInfo } from "./fields";

type Model = ModelInfo | undefined;

export interface GuidesSection {
  controls(): ControlRow[];
  references(): ReferenceRow[];
  /** The chosen model changed (its kinds and takes), or the selection (what Add would pick). */
  refresh(): void;
}

function numberInput(id: string, max: number, value: number, title: string): HTMLInputElement {
  return Object.assign(document.createElement("input"), { id, type: "number", min: "0", max: String(max), step: "5", value: String(value), title });
}

function labelled(text: string, input: HTMLElement): HTMLLabelElement {
  const label = document.createElement("label");
  label.className = "inline";
  label.append(`${text} `, input);
  return label;
}

/**
 * Mount the section before `before`. `selected`: the selected nodes now; `model`: the chosen model;
 * `changed`: rows changed (the plan line says whether Generate can take them).
 */
export function mountGuides(
  before: Element,
  selected: () => { id: string; name: string }[],
  model: () => Model,
  changed: () => void,
): GuidesSection {
  const controls: ControlRow[] = [];
  const references: ReferenceRow[] = [];
  const section = Object.assign(document.createElement("details"), { id: "guides-section" });
  const summary = Object.assign(document.createElement("summary"), { textContent: LABELS.section });
  const addControl = Object.assign(document.createElement("button"), {
    id: "guides-add-control",
    textContent: LABELS.add_control,
    title: "Use the selected node(s) to guide the picture: their pixels over the generated area",
  });
  const addReference = Object.assign(document.createElement("button"), {
    id: "guides-add-reference",
    textContent: LABELS.add_reference,
    title: "Use the selected node(s) as reference images (style, composition or both)",
  });
  const hint = Object.assign(document.createElement("div"), { id: "guides-hint", className: "hint" });
  const rows = Object.assign(document.createElement("div"), { id: "guides-rows" });
  const buttons = Object.assign(document.createElement("div"), { className: "row" });
  buttons.append(addControl, addReference);
  section.append(summary, buttons, hint, rows);
  before.before(section);

  const select = (id: string, options: [string, string][], value: string): HTMLSelectElement => {
    const element = Object.assign(document.createElement("select"), { id });
    for (const [key, text] of options) element.append(Object.assign(document.createElement("option"), { value: key, textContent: text }));
    if (!options.some(([key]) => key === value)) element.append(Object.assign(document.createElement("option"), { value, textContent: value }));
    element.value = value;
    return element;
  };

  const remove = (list: unknown[], index: number, id: string): HTMLButtonElement => {
    const button = Object.assign(document.createElement("button"), { id, textContent: "×", title: LABELS.remove });
    button.addEventListener("click", () => {
      list.splice(index, 1);
      draw();
      changed();
    });
    return button;
  };

  function draw(): void {
    const chosen = model();
    const kinds = modelKinds(chosen);
    const takes = modelTakes(chosen);
    hint.textContent = availability(chosen);
    rows.innerHTML = "";
    controls.forEach((row, index) => {
      const box = Object.assign(document.createElement("div"), { className: "guide-row" });
      const kind = select(`guide-kind-${index}`, kinds.map((k) => [k, KIND_LABELS[k]]), row.kind);
      const strength = numberInput(`guide-strength-${index}`, STRENGTH_MAX_PERCENT, percent(row.strength), "How strongly it steers (%)");
      const start = numberInput(`guide-start-${index}`, 100, percent(row.start), "The share of the steps after which it starts (%)");
      const end = numberInput(`guide-end-${index}`, 100, percent(row.end), "The share of the steps after which it stops (%)");
      const preprocess = Object.assign(document.createElement("input"), { id: `guide-preprocess-${index}`, type: "checkbox", checked: row.preprocess });
      kind.addEventListener("change", () => {
        row.kind = kind.value as ControlKind;
        row.preprocess = PREPROCESSED_KINDS.includes(row.kind);
        preprocess.checked = row.preprocess;
        changed();
      });
      strength.addEventListener("input", () => {
        row.strength = fraction(Number(strength.value), STRENGTH_MAX_PERCENT);
        changed();
      });
      start.addEventListener("input", () => {
        row.start = fraction(Number(start.value));
        changed();
      });
      end.addEventListener("input", () => {
        row.end = fraction(Number(end.value));
        changed();
      });
      preprocess.addEventListener("change", () => {
        row.preprocess = preprocess.checked;
        changed();
      });
      const name = Object.assign(document.createElement("b"), { textContent: row.name });
      const head = Object.assign(document.createElement("div"), { className: "row" });
      head.append(name, kind, remove(controls, index, `guide-remove-${index}`));
      const values = Object.assign(document.createElement("div"), { className: "row" });
      values.append(labelled(`${LABELS.strength} %`, strength), labelled(LABELS.start, start), labelled(LABELS.end, end));
      box.append(head, values, labelled(LABELS.preprocess, preprocess));
      rows.append(box);
    });
    references.forEach((row, index) => {
      const box = Object.assign(document.createElement("div"), { className: "guide-row" });
      const take = select(`reference-take-${index}`, takes.map((t) => [t, TAKE_LABELS[t]]), row.take);
      const weight = numberInput(`reference-weight-${index}`, WEIGHT_MAX_PERCENT, percent(row.weight), "How much the reference counts (%)");
      take.addEventListener("change", () => {
        row.take = take.value as ReferenceTake;
        changed();
      });
      weight.addEventListener("input", () => {
        row.weight = fraction(Number(weight.value), WEIGHT_MAX_PERCENT);
        changed();
      });
      const head = Object.assign(document.createElement("div"), { className: "row" });
      head.append(Object.assign(document.createElement("b"), { textContent: `${LABELS.reference}: ${row.name}` }), remove(references, index, `reference-remove-${index}`));
      const values = Object.assign(document.createElement("div"), { className: "row" });
      values.append(labelled(LABELS.take, take), labelled(`${LABELS.weight} %`, weight));
      box.append(head, values);
      rows.append(box);
    });
  }

  addControl.addEventListener("click", () => {
    for (const node of selected()) controls.push(controlRow(node.id, node.name, model()));
    draw();
    changed();
  });
  addReference.addEventListener("click", () => {
    for (const node of selected()) references.push(referenceRow(node.id, node.name, model()));
    draw();
    changed();
  });
  draw();
  return {
    controls: () => [...controls],
    references: () => [...references],
    refresh: () => {
      const names = selected().map((node) => `"${node.name}"`).join(", ");
      addControl.disabled = names === "";
      addReference.disabled = names === "";
      addControl.title = names ? `Use ${names} to guide the picture: its pixels over the generated area` : "Select the node(s) to use first";
      addReference.title = names ? `Use ${names} as reference images (style, composition or both)` : "Select the node(s) to use first";
      draw();
    },
  };
}
