/**
 * The parameters a PNG carries, for "Reuse parameters": the TypeScript mirror of the reading half of
 * protocol/underpaint_protocol/pnginfo.py (ours: the `underpaint` JSON chunk; A1111's `parameters`
 * text; ComfyUI's `prompt` graph), and of library.job_fields_from_png. Text chunks: tEXt (Latin-1),
 * zTXt and iTXt (UTF-8, optionally deflated, inflated with the platform's DecompressionStream).
 */

import { pngSize } from "./png";
import { loraTag } from "./prompts";

/** What a "reuse parameters" action fills in (null where the PNG does not say). */
export interface PngFields {
  /** Ours with a style: what the user typed; else the prompt that ran. LoRAs of ours as `<lora:…>` tags. */
  prompt: string;
  negativePrompt: string;
  style: string | null;
  seed: number | null;
  steps: number | null;
  guidance: number | null;
  strength: number | null;
  model: string | null;
  source: "underpaint" | "a1111" | "comfyui";
}

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8");

async function inflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Every text chunk of a PNG by keyword (the first of each); {} for bytes that are not a PNG. */
export async function readPngText(bytes: Uint8Array): Promise<Record<string, string>> {
  const texts: Record<string, string> = {};
  if (pngSize(bytes) === null) return texts;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 8;
  while (offset + 8 <= bytes.length) {
    const length = view.getUint32(offset);
    const type = latin1.decode(bytes.subarray(offset + 4, offset + 8));
    const data = bytes.subarray(offset + 8, Math.min(bytes.length, offset + 8 + length));
    offset += 12 + length;
    if (type === "IEND") break;
    if (type !== "tEXt" && type !== "zTXt" && type !== "iTXt") continue;
    const nul = data.indexOf(0);
    if (nul <= 0) continue;
    const keyword = latin1.decode(data.subarray(0, nul));
    if (keyword in texts) continue;
    try {
      if (type === "tEXt") texts[keyword] = latin1.decode(data.subarray(nul + 1));
      else if (type === "zTXt") texts[keyword] = latin1.decode(await inflate(data.subarray(nul + 2)));
      else {
        const compressed = data[nul + 1] === 1;
        const language = data.indexOf(0, nul + 3);
        const translated = language < 0 ? -1 : data.indexOf(0, language + 1);
        if (translated < 0) continue;
        const body = data.subarray(translated + 1);
        texts[keyword] = utf8.decode(compressed ? await inflate(body) : body);
      }
    } catch {
      // a chunk that does not inflate carries nothing we can use
    }
  }
  return texts;
}

const PAIR = /\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)/g;

/** A1111's `parameters` text: prompt lines, `Negative prompt:` lines, then one line of `key: value` pairs. */
export function parseA1111(text: string): { prompt: string; negativePrompt: string; settings: Record<string, string> } {
  const lines = text.trim().split("\n");
  const settings: Record<string, string> = {};
  const last = lines.at(-1) ?? "";
  const pairs = [...last.matchAll(PAIR)].filter((match) => match[0].trim() !== "");
  if (pairs.length >= 3) {
    lines.pop();
    for (const [, key, raw] of pairs) {
      let value = raw;
      if (value.startsWith('"') && value.endsWith('"')) {
        try {
          value = String(JSON.parse(value));
        } catch {
          // kept as written
        }
      }
      settings[key.trim()] = value.trim();
    }
  }
  const prompt: string[] = [];
  const negative: string[] = [];
  for (const line of lines) {
    if (line.startsWith("Negative prompt:")) negative.push(line.slice("Negative prompt:".length).trim());
    else if (negative.length) negative.push(line);
    else prompt.push(line);
  }
  return { prompt: prompt.join("\n").trim(), negativePrompt: negative.join("\n").trim(), settings };
}

const num = (value: unknown, integer = false): number | null => {
  const parsed = typeof value === "number" ? value : typeof value === "string" && value.trim() ? Number(value) : NaN;
  if (!Number.isFinite(parsed) || (integer && !Number.isInteger(parsed))) return null;
  return parsed;
};
const str = (value: unknown): string | null => (typeof value === "string" && value ? value : null);

type Graph = Record<string, { class_type?: unknown; inputs?: Record<string, unknown> }>;

function textOf(graph: Graph, link: unknown, depth = 0): string | null {
  if (typeof link === "string") return link;
  if (depth > 16 || !Array.isArray(link) || !link.length || !(String(link[0]) in graph)) return null;
  const inputs = graph[String(link[0])]?.inputs ?? {};
  for (const key of ["text", "text_g", "string", "value", "conditioning", "conditioning_1", "conditioning_to", "positive"]) {
    if (key in inputs) return textOf(graph, inputs[key], depth + 1);
  }
  return null;
}

function fromComfyUi(graphText: string): Omit<PngFields, "style" | "source"> | null {
  let graph: Graph;
  try {
    graph = JSON.parse(graphText) as Graph;
  } catch {
    return null;
  }
  if (typeof graph !== "object" || graph === null || Array.isArray(graph)) return null;
  const nodes = Object.values(graph).filter((node) => typeof node?.inputs === "object" && node.inputs !== null);
  const find = (kind: string) => nodes.find((node) => String(node.class_type ?? "").includes(kind));
  const sampler = find("KSampler");
  if (!sampler?.inputs) return null;
  const inputs = sampler.inputs;
  const literal = (value: unknown): unknown => (Array.isArray(value) ? null : value);
  const denoise = num(literal(inputs.denoise));
  return {
    prompt: textOf(graph, inputs.positive) ?? "",
    negativePrompt: textOf(graph, inputs.negative) ?? "",
    seed: num(literal(inputs.seed ?? inputs.noise_seed)),
    steps: num(literal(inputs.steps), true),
    guidance: num(literal(inputs.cfg)),
    strength: denoise !== null && denoise < 1 ? denoise : null,
    model: str(literal(find("CheckpointLoader")?.inputs?.ckpt_name)),
  };
}

/** The fields a PNG of ours, A1111's or ComfyUI's fills; null when it carries none. */
export async function pngFields(bytes: Uint8Array): Promise<PngFields | null> {
  const texts = await readPngText(bytes);
  if ("underpaint" in texts) {
    let ours: Record<string, unknown> | null = null;
    try {
      ours = JSON.parse(texts.underpaint) as Record<string, unknown>;
    } catch {
      ours = null;
    }
    if (ours && typeof ours === "object" && !Array.isArray(ours)) {
      const style = str(ours.style);
      const loras = Array.isArray(ours.loras) ? (ours.loras as { name: string; weight: number }[]) : [];
      const typed = String((style ? ours.user_prompt : ours.prompt) ?? "");
      return {
        prompt: [typed, ...loras.map((lora) => loraTag(lora.name, lora.weight))].filter(Boolean).join(" "),
        negativePrompt: String((style ? ours.user_negative_prompt : ours.negative_prompt) ?? ""),
        style,
        seed: num(ours.seed, true),
        steps: num(ours.steps, true),
        guidance: num(ours.guidance),
        strength: num(ours.strength),
        model: str(ours.model),
        source: "underpaint",
      };
    }
  }
  if ("parameters" in texts) {
    const { prompt, negativePrompt, settings } = parseA1111(texts.parameters);
    return {
      prompt,
      negativePrompt,
      style: null,
      seed: num(settings.Seed, true),
      steps: num(settings.Steps, true),
      guidance: num(settings["CFG scale"]),
      strength: num(settings["Denoising strength"]),
      model: str(settings.Model),
      source: "a1111",
    };
  }
  const comfy = "prompt" in texts ? fromComfyUi(texts.prompt) : null;
  return comfy ? { ...comfy, style: null, source: "comfyui" } : null;
}
