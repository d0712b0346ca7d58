import { describe, expect, it } from "vitest";
import type { ModelDescription } from "../src/shared/protocol.gen";
import { buildSegmentJob, maskFromPixels, segmentModels, segmentProblem } from "../src/shared/segment";

const model = (id: string, inputs?: ("box" | "points" | "mask" | "text")[]): ModelDescription => ({
  id,
  engine: "segment",
  family: "sam",
  modes: inputs ? ["segment"] : ["inpaint"],
  loaded: true,
  description: "",
  default_steps: 1,
  default_guidance: 0,
  segment_inputs: inputs ?? null,
});

describe("segment jobs", () => {
  it("builds the job the protocol describes", () => {
    const job = buildSegmentJob(
      { width: 400, height: 300 },
      { box: { x: 10, y: 20, width: 50, height: 40 }, points: [[30.4, 40.6]], negativePoints: [[12, 22]], model: "refine" },
    );
    expect(job).toEqual({
      mode: "segment",
      canvas: { width: 400, height: 300 },
      model: "refine",
      segment: {
        box: { x: 10, y: 20, width: 50, height: 40 },
        points: [{ x: 30, y: 41 }],
        negative_points: [{ x: 12, y: 22 }],
      },
    });
    const refine = buildSegmentJob({ width: 400, height: 300 }, { selection: { x: 1, y: 2, width: 3, height: 4 } });
    expect(refine.selection).toEqual({ x: 1, y: 2, width: 3, height: 4 });
  });

  it("refuses before sending, in words", () => {
    expect(segmentProblem({})).toMatch(/Draw a box/);
    expect(segmentProblem({ text: "  " })).toMatch(/Type what to select/);
    expect(segmentProblem({ box: { x: 0, y: 0, width: 0, height: 5 } })).toMatch(/empty/);
    expect(segmentProblem({ text: "a cat" }, model("sam", ["box", "points"]))).toMatch(/by words/);
    expect(segmentProblem({ text: "a cat" }, model("clipseg", ["text"]))).toBeNull();
    expect(segmentProblem({ points: [[1, 1]] }, model("classical"))).toMatch(/cannot select/);
  });

  it("lists the models that select, and reads the mask from the alpha", () => {
    const models = [model("classical"), model("refine", ["box", "points", "mask"]), model("clip", ["text"])];
    expect(segmentModels(models).map((m) => m.id)).toEqual(["refine", "clip"]);
    expect(segmentModels(models, "text").map((m) => m.id)).toEqual(["clip"]);
    expect(Array.from(maskFromPixels(new Uint8Array([255, 255, 255, 0, 255, 255, 255, 128])))).toEqual([0, 128]);
  });
});
