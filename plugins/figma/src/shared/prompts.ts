/**
 * The prompt library's rules for the sidebar, mirroring protocol/underpaint_protocol/prompt_panel.py
 * (what the Krita and GIMP panels use): the LoRA tag a picker adds, how a recent prompt is labelled
 * and what it fills. Pure.
 */

import type { HistoryEntry, LoraDescription } from "./protocol.gen";

/** How pickers show "no style" (the empty name). */
export const NO_STYLE = "(no style)";
/** How many recent prompts the picker offers. */
export const RECENT = 20;
/** The weight the LoRA picker starts at. */
export const LORA_WEIGHT = 0.8;
export const NO_PARAMETERS = "That file carries no generation parameters (underpaint, A1111 or ComfyUI).";

/** A1111's prompt syntax for a LoRA, which the daemon reads from any prompt (weights as Python's `:g`). */
export const loraTag = (name: string, weight: number): string => `<lora:${name}:${Number(weight.toPrecision(6))}>`;

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** `prompt` with the LoRA's tag (replacing an earlier tag of it) and those trigger words it lacks. */
export function withLora(prompt: string, lora: Pick<LoraDescription, "name" | "triggers">, weight: number): string {
  const kept = prompt.replace(new RegExp(`\\s*<lora:${escape(lora.name)}:[^>]*>`, "g"), "").trim();
  const missing = (lora.triggers ?? []).filter((word) => !kept.toLowerCase().includes(word.toLowerCase()));
  const words = [kept, ...missing].filter(Boolean).join(", ");
  return `${words} ${loraTag(lora.name, weight)}`.trim();
}

/** One line for a recent prompt: the prompt (shortened), its style when it had one. */
export function historyLabel(entry: Pick<HistoryEntry, "prompt" | "style">, width = 60): string {
  let prompt = (entry.prompt ?? "").split(/\s+/).filter(Boolean).join(" ") || "(no prompt)";
  if (prompt.length > width) prompt = `${prompt.slice(0, width - 1)}…`;
  return entry.style ? `${prompt} [${entry.style}]` : prompt;
}

/** A LoRA picker row: the name, its trigger words, or why it is refused. */
export function loraLabel(lora: LoraDescription): string {
  if (lora.refused) return `${lora.name} (refused: not .safetensors)`;
  const triggers = (lora.triggers ?? []).join(", ");
  return triggers ? `${lora.name} — ${triggers}` : lora.name;
}
