import { describe, expect, it } from "vitest";
import type { JobContext, ResultItem } from "../src/shared/messages";
import { History, historyLabel, reuseFields } from "../src/ui/history";
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

const summary = (jobId: string, created: number, state = "finished", results = 1) =>
  ({ job_id: jobId, state, mode: "txt2img", model: "tiny-random", prompt: `prompt ${jobId}`, created, results }) as any;

describe("history (the controller's list_jobs + fetch rules)", () => {
  it("lists finished jobs with results, newest first, and fetches the ones without pixels once", () => {
    const history = new History();
    const wanted = history.listed([summary("a", 1), summary("b", 3), summary("c", 2, "failed", 0), summary("d", 2, "finished", 0), summary("e", 4, "running")]);
    expect(history.items.map((i) => i.summary.job_id)).toEqual(["b", "a"]);
    expect(wanted).toEqual(["b", "a"]);
    expect(history.fetching("b")).toBe(true);
    expect(history.listed([summary("a", 1), summary("b", 3)])).toEqual([]); // already fetching
    const params = { seed: 3000000061, prompt: "a fox", model: "tiny-random", negative_prompt: "blur", strength: 0.35, steps: 7, canvas: { width: 64, height: 48 } };
    const result = { type: "result", job_id: "b", index: 0, layer: { name: "a fox [seed 3000000061]", x: 0, y: 0, width: 64, height: 48, image: {} }, canvas: {}, params } as any;
    history.receive({ message: result, jobId: "b", image: { format: "png", width: 64, height: 48, data: new Uint8Array([1, 2]) } });
    history.receive({ message: result, jobId: "b", image: { format: "png", width: 64, height: 48, data: new Uint8Array([1, 2]) } });
    history.receive({ message: { type: "finished", job_id: "b", results: 1 }, jobId: "b" });
    expect(history.fetching("b")).toBe(false);
    const b = history.find("b")!;
    expect(b.results).toHaveLength(1);
    expect(historyLabel(b)).toEqual({ prompt: "prompt b", details: "txt2img · tiny-random · seed 3000000061" });
    // a later list keeps the fetched pixels and asks for nothing new
    expect(history.listed([summary("b", 3), summary("a", 1)])).toEqual([]);
    expect(history.find("b")!.results).toHaveLength(1);
    // a job the daemon no longer has is marked gone, not fetched again
    history.receive({ message: { type: "error", code: "unknown_job", message: "gone", job_id: "a" }, jobId: "a" });
    expect(history.find("a")!.gone).toBe(true);
    expect(history.listed([summary("a", 1)])).toEqual([]);
  });

  it("leaves the jobs the sidebar is still landing to the sidebar", () => {
    const history = new History();
    expect(history.listed([summary("a", 1), summary("b", 2)], (id) => id === "a")).toEqual(["b"]);
    expect(history.fetching("a")).toBe(false);
    expect(history.listed([summary("a", 1), summary("b", 2)])).toEqual(["a"]);
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
