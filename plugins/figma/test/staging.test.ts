import { describe, expect, it } from "vitest";
import type { JobContext, ResultItem } from "../src/shared/messages";
import type { Box } from "../src/shared/geometry";
import { History, historyLabel, reapplied, reuseFields, type TileDrawer } from "../src/ui/history";
import { Staging } from "../src/ui/staging";

const context: JobContext = { placement: { parentId: "1:4", x: 10, y: 20, scale: 1 }, baseId: "2:9", baseName: "Photo", maskIds: [], mode: "inpaint" };
const item = (index: number): ResultItem => ({ index, name: `r${index}`, x: 0, y: 0, width: 4, height: 4, png: new Uint8Array([index]) });

describe("preview, then apply (the controller's Staged rules)", () => {
  it("stages a batch in order, steps with wrap-around, labels image k of n", () => {
    const staging = new Staging();
    const shown = staging.stage("job1", context, "p", [item(2), item(0), item(1)]);
    expect(shown).toEqual([{ type: "show-preview", context, item: item(0), label: "1/3" }]);
    expect(staging.label()).toBe("image 1 of 3");
    expect(staging.step(1)).toEqual([{ type: "show-preview", context, item: item(1), label: "2/3" }]);
    staging.step(1);
    expect(staging.step(1)[0]).toMatchObject({ item: item(0), label: "1/3" });
    expect(staging.step(-1)[0]).toMatchObject({ item: item(2), label: "3/3" });
    expect(staging.label()).toBe("image 3 of 3");
  });

  it("apply keeps the shown result (or the whole batch); the preview is gone afterwards", () => {
    const staging = new Staging();
    staging.stage("job1", context, "p", [item(0), item(1)]);
    staging.step(1);
    expect(staging.apply()).toEqual([{ type: "end-preview", keep: { jobId: "job1", context, prompt: "p", results: [item(1)] } }]);
    expect(staging.staged).toBeNull();
    expect(staging.apply()).toEqual([]);
    staging.stage("job2", context, "q", [item(1), item(0)]);
    expect(staging.apply(true)).toEqual([{ type: "end-preview", keep: { jobId: "job2", context, prompt: "q", results: [item(0), item(1)] } }]);
  });

  it("discard removes the preview only; a newer job's results replace an older preview", () => {
    const staging = new Staging();
    expect(staging.discard()).toEqual([]);
    staging.stage("job1", context, "p", [item(0)]);
    expect(staging.step(1)).toEqual([]); // one result: nothing to step to
    const replaced = staging.stage("job2", context, "q", [item(0)]);
    expect(replaced.map((m) => m.type)).toEqual(["end-preview", "show-preview"]);
    expect(replaced[0]).toEqual({ type: "end-preview" });
    expect(staging.discard()).toEqual([{ type: "end-preview" }]);
    expect(staging.staged).toBeNull();
    expect(staging.stage("job3", context, "r", [])).toEqual([]);
  });
});

/** Records what `History` asks a `TileFill` to draw; "draws" each tile's first byte into its png. */
class FakeFill implements TileDrawer {
  static made: FakeFill[] = [];
  readonly drawn: (Box & { index: number; png: Uint8Array })[] = [];
  constructor(
    readonly layer: Box,
    readonly count: number,
  ) {
    FakeFill.made.push(this);
  }
  async add(index: number, tile: Box & { png: Uint8Array }): Promise<boolean> {
    if (this.drawn.some((d) => d.index === index)) return false;
    await Promise.resolve(); // TileFill decodes asynchronously
    this.drawn.push({ index, ...tile });
    return this.drawn.length === this.count;
  }
  async finish() {
    const png = new Uint8Array([...this.drawn].sort((a, b) => a.index - b.index).map((d) => d.png[0]));
    return { png, width: 4096, height: 2048, scaledFrom: { width: this.layer.width, height: this.layer.height } };
  }
}

const newHistory = (): History => new History((layer, count) => new FakeFill(layer, count));

const summary = (jobId: string, created: number, state = "finished", results = 1) =>
  ({ job_id: jobId, state, mode: "txt2img", model: "tiny-random", prompt: `prompt ${jobId}`, created, results }) as any;

describe("history (the controller's list_jobs + fetch rules)", () => {
  it("lists finished jobs with results, newest first, and fetches the ones without pixels once", async () => {
    const history = newHistory();
    const wanted = history.listed([summary("a", 1), summary("b", 3), summary("c", 2, "failed", 0), summary("d", 2, "finished", 0), summary("e", 4, "running")]);
    expect(history.items.map((i) => i.summary.job_id)).toEqual(["b", "a"]);
    expect(wanted).toEqual(["b", "a"]);
    expect(history.fetching("b")).toBe(true);
    expect(history.listed([summary("a", 1), summary("b", 3)])).toEqual([]); // already fetching
    const params = { seed: 3000000061, prompt: "a fox", model: "tiny-random", negative_prompt: "blur", strength: 0.35, steps: 7, canvas: { width: 64, height: 48 } };
    const result = { type: "result", job_id: "b", index: 0, layer: { name: "a fox [seed 3000000061]", x: 0, y: 0, width: 64, height: 48, image: {} }, canvas: {}, params } as any;
    await history.receive({ message: result, jobId: "b", image: { format: "png", width: 64, height: 48, data: new Uint8Array([1, 2]) } });
    await history.receive({ message: result, jobId: "b", image: { format: "png", width: 64, height: 48, data: new Uint8Array([1, 2]) } });
    await history.receive({ message: { type: "finished", job_id: "b", results: 1 }, jobId: "b" });
    expect(history.fetching("b")).toBe(false);
    const b = history.find("b")!;
    expect(b.results).toHaveLength(1);
    expect(historyLabel(b)).toEqual({ prompt: "prompt b", details: "txt2img · tiny-random · seed 3000000061" });
    // a later list keeps the fetched pixels and asks for nothing new
    expect(history.listed([summary("b", 3), summary("a", 1)])).toEqual([]);
    expect(history.find("b")!.results).toHaveLength(1);
    // a job the daemon no longer has is marked gone, not fetched again
    await history.receive({ message: { type: "error", code: "unknown_job", message: "gone", job_id: "a" }, jobId: "a" });
    expect(history.find("a")!.gone).toBe(true);
    expect(history.listed([summary("a", 1)])).toEqual([]);
  });

  it("leaves the jobs the sidebar is still landing to the sidebar", () => {
    const history = newHistory();
    expect(history.listed([summary("a", 1), summary("b", 2)], (id) => id === "a")).toEqual(["b"]);
    expect(history.fetching("a")).toBe(false);
    expect(history.listed([summary("a", 1), summary("b", 2)])).toEqual(["a"]);
  });

  const upscaleTile = (index: number) => {
    const whole = { x: 0, y: 0, width: 16384, height: 8192 };
    const layer = { name: "Upscale x4", x: 0, y: index * 2048, width: 16384, height: 2048, image: {} };
    const params = { mode: "upscale", model: "classical-upscale", seed: 7, canvas: { width: 4096, height: 2048 } };
    const upscale = { factor: 4, source: { x: 0, y: 0, width: 4096, height: 2048 }, canvas: { width: 16384, height: 8192 }, layer: whole, tiles: 4 };
    const message = { type: "result", job_id: "u", index, layer, canvas: { x: 0, y: 0, width: 16384, height: 8192 }, params, upscale } as any;
    return { message, jobId: "u", image: { format: "png" as const, width: 16384, height: 2048, data: new Uint8Array([10 + index]) } };
  };

  it("draws an upscale's tiles into one fill as they come: one result, the whole layer, no tile kept", async () => {
    FakeFill.made = [];
    const history = newHistory();
    expect(history.listed([{ ...summary("u", 1), mode: "upscale", results: 4 }])).toEqual(["u"]);
    for (const index of [2, 0, 2, 3, 1]) await history.receive(upscaleTile(index)); // any order, a repeat
    expect(FakeFill.made).toHaveLength(1);
    const [fill] = FakeFill.made;
    expect([fill.layer, fill.count]).toEqual([{ x: 0, y: 0, width: 16384, height: 8192 }, 4]);
    expect(fill.drawn.map((d) => [d.index, d.y, d.height, d.png[0]])).toEqual([
      [2, 4096, 2048, 12],
      [0, 0, 2048, 10],
      [3, 6144, 2048, 13],
      [1, 2048, 2048, 11],
    ]);
    await history.receive({ message: { type: "finished", job_id: "u", results: 4 }, jobId: "u" });
    const item = history.find("u")!;
    expect(item.fetching).toBe(false);
    expect(item.fill).toBeUndefined();
    expect(item.results).toHaveLength(1);
    const [result] = item.results;
    expect(Array.from(result.png)).toEqual([10, 11, 12, 13]);
    expect([result.width, result.height, result.scaledFrom]).toEqual([4096, 2048, { width: 16384, height: 8192 }]);
    expect(result.message.index).toBe(0);
    expect(result.message.layer).toMatchObject({ name: "Upscale x4", x: 0, y: 0, width: 16384, height: 8192 });
    expect(historyLabel(item).details).toBe("upscale · tiny-random · seed 7");
    expect(reuseFields(result.message.params).model).toBe("classical-upscale");

    // re-applied in the SCALED canvas's pixels (where its layer is), as drawn, saying it was scaled
    const again = reapplied(result, result.png);
    expect(again.canvas).toEqual({ width: 16384, height: 8192 });
    expect(again.item).toMatchObject({ index: 0, x: 0, y: 0, width: 16384, height: 8192, scaledFrom: { width: 16384, height: 8192 } });
    expect(again.item.png).toBe(result.png);
  });

  it("re-applies other results in the canvas they were made for", () => {
    const params = { seed: 1, canvas: { width: 64, height: 48 } };
    const message = { type: "result", job_id: "b", index: 1, layer: { name: "p", x: 4, y: 5, width: 8, height: 9, image: {} }, canvas: { x: -8, y: 0, width: 72, height: 48 }, params } as any;
    const png = new Uint8Array([1]);
    expect(reapplied({ message, png, width: 8, height: 9 }, png)).toEqual({ canvas: { width: 64, height: 48 }, item: { index: 0, name: "p", x: 4, y: 5, width: 8, height: 9, png, scaledFrom: undefined } });
  });

  it("a fetch cut off by a lost connection is dropped and fetched again by the next refresh", async () => {
    const history = newHistory();
    history.listed([{ ...summary("u", 1), mode: "upscale", results: 4 }]);
    await history.receive(upscaleTile(0));
    history.lost();
    const item = history.find("u")!;
    expect([item.fetching, item.fill, item.results]).toEqual([false, undefined, []]);
    expect(history.fetching("u")).toBe(false);
    expect(history.listed([{ ...summary("u", 1), mode: "upscale", results: 4 }])).toEqual(["u"]);
  });

  it("reuse copies a result's parameters, its own seed (over 2^31) included, strength in percent", () => {
    expect(reuseFields({ seed: 3000000061, prompt: "a fox", model: "tiny-random", negative_prompt: "blur", strength: 0.35, steps: 7 })).toEqual({
      model: "tiny-random",
      prompt: "a fox",
      negativePrompt: "blur",
      strength: 35,
      steps: 7,
      seed: 3000000061,
      style: null,
    });
    expect(reuseFields({ seed: null, strength: null, steps: 0 })).toEqual({ model: null, prompt: "", negativePrompt: "", strength: null, steps: null, seed: null, style: null });
  });
});
