/** The prompt library's TS side: requests and frames, the LoRA tag, recent prompts, PNG parameters. */

import { describe, expect, it } from "vitest";
import { decodeFrame } from "../src/shared/frames";
import { buildJob } from "../src/shared/job";
import { encodePng } from "../src/shared/png";
import { parseA1111, pngFields, readPngText } from "../src/shared/pnginfo";
import { historyLabel, loraLabel, loraTag, withLora } from "../src/shared/prompts";
import { reuseFields } from "../src/ui/history";
import { ClientSession } from "../src/ui/session";

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  const body = new Uint8Array([...new TextEncoder().encode(type), ...data]);
  out.set(body, 4);
  view.setUint32(8 + data.length, crc32(body));
  return out;
}

const latin1 = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0));

async function deflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A 2x2 PNG with text chunks before IEND, as Pillow, A1111, ComfyUI and the daemon write them. */
async function pngWith(chunks: Uint8Array[]): Promise<Uint8Array> {
  const png = await encodePng({ width: 2, height: 2, data: new Uint8Array(16) });
  const end = png.length - 12;
  return new Uint8Array([...png.subarray(0, end), ...chunks.flatMap((c) => [...c]), ...png.subarray(end)]);
}

const tEXt = (key: string, text: string) => chunk("tEXt", latin1(`${key}\0${text}`));
const iTXt = (key: string, text: string) =>
  chunk("iTXt", new Uint8Array([...latin1(`${key}\0\0\0\0\0`), ...new TextEncoder().encode(text)]));

describe("prompt library requests", () => {
  it("styles, history, loras carry a request id; interrogate sends its image and mask as frames", () => {
    const session = new ClientSession();
    const [id, text] = session.styles({ action: "rename", name: "A", new_name: "B" });
    expect(JSON.parse(text)).toEqual({ type: "styles", request_id: id, action: "rename", name: "A", new_name: "B" });
    expect(JSON.parse(session.history(20)[1])).toMatchObject({ type: "history", limit: 20 });
    expect(JSON.parse(session.loras()[1])).toMatchObject({ type: "loras" });
    const image = { format: "png" as const, width: 4, height: 3, data: new Uint8Array([1, 2, 3]) };
    const mask = { format: "gray8" as const, width: 4, height: 3, data: new Uint8Array(12) };
    const [rid, frames] = session.interrogate(image, mask, 2);
    const message = JSON.parse(frames[0] as string);
    expect(message).toEqual({
      type: "interrogate",
      request_id: rid,
      flavours: 2,
      image: { id: `${rid}-image`, format: "png", width: 4, height: 3 },
      mask: { id: `${rid}-mask`, format: "gray8", width: 4, height: 3 },
    });
    expect(decodeFrame(frames[1] as Uint8Array).attachment.id).toBe(`${rid}-image`);
    expect(Array.from(decodeFrame(frames[2] as Uint8Array).payload)).toEqual(Array(12).fill(0));
    expect(session.interrogate(image)[1]).toHaveLength(2);
  });

  it("a job names its style; none when empty", () => {
    const geometry = { mode: "img2img" as const, canvas: { width: 8, height: 8 } };
    const form = { model: "m", prompt: "cup", negativePrompt: "", strength: null, steps: null, seed: null, batch: 1 };
    expect(buildJob(geometry, { ...form, style: "Photograph" }).style).toBe("Photograph");
    expect("style" in buildJob(geometry, { ...form, style: "" })).toBe(false);
  });
});

describe("prompt library rules (as prompt_panel.py)", () => {
  it("adds a LoRA once, with its trigger words, replacing its weight", () => {
    const film = { name: "film", triggers: ["filmic", "grainy"] };
    const once = withLora("a boat", film, 0.8);
    expect(once).toBe("a boat, filmic, grainy <lora:film:0.8>");
    expect(withLora(once, film, 0.5)).toBe("a boat, filmic, grainy <lora:film:0.5>");
    expect(withLora("", { name: "ink", triggers: [] }, 1)).toBe("<lora:ink:1>");
    expect(withLora("Grainy boat", film, 1)).toBe("Grainy boat, filmic <lora:film:1>");
    expect(loraTag("x", 0.30000000000000004)).toBe("<lora:x:0.3>");
  });

  it("labels recent prompts and LoRAs", () => {
    expect(historyLabel({ prompt: "  a   cup ", style: "Photograph" })).toBe("a cup [Photograph]");
    expect(historyLabel({ prompt: "x".repeat(80), style: null })).toHaveLength(60);
    expect(historyLabel({ prompt: "", style: null })).toBe("(no prompt)");
    expect(loraLabel({ name: "film", triggers: ["filmic"], base: "", refused: null })).toBe("film — filmic");
    expect(loraLabel({ name: "old", triggers: [], base: "", refused: "a pickle" })).toMatch(/refused/);
  });

  it("a styled history result gives what the user typed and its style", () => {
    const params = { prompt: "photograph of a cup", user_prompt: "a cup", user_negative_prompt: "", negative_prompt: "x", style: "Photograph", seed: 4 };
    expect(reuseFields(params)).toMatchObject({ prompt: "a cup", negativePrompt: "", style: "Photograph", seed: 4 });
    expect(reuseFields({ prompt: "p", negative_prompt: "n" })).toMatchObject({ prompt: "p", negativePrompt: "n", style: null });
  });
});

describe("parameters in PNGs (as pnginfo.py)", () => {
  const a1111 = 'a red boat\nat sea\nNegative prompt: fog\nSteps: 12, Sampler: Euler a, CFG scale: 5, Seed: 77, Size: 512x512, Model: "v1, pruned", Denoising strength: 0.6';

  it("parses A1111's parameters text (a quoted value with a comma)", () => {
    const parsed = parseA1111(a1111);
    expect(parsed.prompt).toBe("a red boat\nat sea");
    expect(parsed.negativePrompt).toBe("fog");
    expect(parsed.settings).toMatchObject({ Steps: "12", Sampler: "Euler a", "CFG scale": "5", Model: "v1, pruned" });
    expect(parseA1111("just a prompt, with: one pair").settings).toEqual({});
  });

  it("reads an A1111 PNG", async () => {
    const fields = await pngFields(await pngWith([tEXt("parameters", a1111)]));
    expect(fields).toEqual({
      prompt: "a red boat\nat sea",
      negativePrompt: "fog",
      style: null,
      seed: 77,
      steps: 12,
      guidance: 5,
      strength: 0.6,
      model: "v1, pruned",
      source: "a1111",
    });
  });

  it("prefers ours (UTF-8 iTXt): what the user typed, its style, its LoRAs as tags", async () => {
    const ours = {
      prompt: "photograph of a café, 50mm",
      user_prompt: "a café",
      negative_prompt: "blurry",
      user_negative_prompt: "",
      style: "Photograph",
      seed: 9,
      steps: null,
      guidance: 7.5,
      strength: 1,
      model: "sd15",
      loras: [{ name: "film", weight: 0.5 }],
    };
    const png = await pngWith([tEXt("parameters", a1111), iTXt("underpaint", JSON.stringify(ours))]);
    expect(await readPngText(png)).toHaveProperty("underpaint");
    expect(await pngFields(png)).toEqual({
      prompt: "a café <lora:film:0.5>",
      negativePrompt: "",
      style: "Photograph",
      seed: 9,
      steps: null,
      guidance: 7.5,
      strength: 1,
      model: "sd15",
      source: "underpaint",
    });
  });

  it("reads ComfyUI's graph (compressed zTXt), following wires to the prompt texts", async () => {
    const graph = {
      "3": { class_type: "KSampler", inputs: { seed: 5, steps: 20, cfg: 7, sampler_name: "euler", denoise: 0.5, positive: ["6", 0], negative: ["7", 0], model: ["4", 0] } },
      "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "sd15.safetensors" } },
      "6": { class_type: "CLIPTextEncode", inputs: { text: "a lighthouse", clip: ["4", 1] } },
      "7": { class_type: "CLIPTextEncode", inputs: { text: "fog", clip: ["4", 1] } },
    };
    const z = chunk("zTXt", new Uint8Array([...latin1("prompt\0\0"), ...(await deflate(new TextEncoder().encode(JSON.stringify(graph))))]));
    expect(await pngFields(await pngWith([z]))).toEqual({
      prompt: "a lighthouse",
      negativePrompt: "fog",
      style: null,
      seed: 5,
      steps: 20,
      guidance: 7,
      strength: 0.5,
      model: "sd15.safetensors",
      source: "comfyui",
    });
  });

  it("a PNG without parameters, or not a PNG, gives nothing", async () => {
    expect(await pngFields(await pngWith([tEXt("Software", "x")]))).toBeNull();
    expect(await pngFields(new Uint8Array([1, 2, 3]))).toBeNull();
    expect(await pngFields(await pngWith([iTXt("underpaint", "{not json")]))).toBeNull();
  });
});
