import { describe, expect, it } from "vitest";
import { elapsedText, ignoredFields, ignoredSummary, modelLabel, parseSeed, plan, progressText, SEED_MAX, strengthFraction, strengthPercent } from "../src/ui/fields";

const classical = { id: "classical", engine: "classical", description: "Content-aware fill", modes: ["inpaint", "outpaint"] };
const tiny = { id: "tiny-random", engine: "diffusion", modes: ["txt2img", "img2img", "inpaint", "outpaint"] };

describe("panel fields (the same rules as underpaint_protocol/panel.py)", () => {
  it("seeds cover the daemon's whole 32-bit range; random is empty", () => {
    expect(parseSeed(" 4294967295 ")).toBe(SEED_MAX);
    expect(parseSeed("3000000061")).toBe(3000000061);
    expect(parseSeed("")).toBeNull();
    expect(parseSeed("Random")).toBeNull();
    for (const bad of ["4294967296", "-1", "1.5", "x"]) expect(() => parseSeed(bad)).toThrow(/between 0 and 4294967295/);
  });
  it("strength is a percentage in the panel, a fraction on the wire", () => {
    expect(strengthPercent(0.35)).toBe(35);
    expect(strengthFraction(35)).toBeCloseTo(0.35);
    expect(strengthFraction(150)).toBe(1);
  });
  it("names models without repeating the engine and lists the fields a model ignores", () => {
    expect(modelLabel(classical)).toBe("classical");
    expect(modelLabel(tiny)).toBe("tiny-random (diffusion)");
    expect(Object.keys(ignoredFields(classical))).toEqual(["prompt", "negative_prompt", "strength", "steps", "seed"]);
    expect(ignoredFields(classical).prompt).toBe("classical ignores this: Content-aware fill.");
    expect(ignoredFields(tiny)).toEqual({});
  });
  it("says what Generate will do, or why it would be refused", () => {
    expect(plan("inpaint", 'Inpaint "photo"', classical)).toEqual({ sentence: 'Generate will inpaint the selection: Inpaint "photo".', refusal: null });
    expect(plan("img2img", "img2img", classical).refusal).toMatch(/classical model cannot refine the whole image/);
    expect(plan("txt2img", "new", tiny).refusal).toBeNull();
    expect(plan(null, "Select an image", tiny)).toEqual({ sentence: "Select an image", refusal: "Select an image" });
  });
  it("shows progress with steps, image k of n and elapsed time", () => {
    expect(progressText(3, 20, 1, 4, 65)).toBe("step 3 of 20, image 2 of 4, 1:05");
    expect(progressText(0, 0, 0, 1, 2)).toBe("starting, 2 s");
    expect(progressText(26, 40, 0, 1, 3, "step", "refining tile 3 of 6, step 2 of 4")).toBe("refining tile 3 of 6, step 2 of 4, 3 s");
    expect(elapsedText(3723)).toBe("1:02:03");
  });
  it("says in one line which fields the model does not use, worded as panel.ignored_summary", () => {
    expect(ignoredSummary(classical as any)).toBe("classical does not use prompt, strength, steps or seed: Content-aware fill.");
    expect(ignoredSummary(tiny as any)).toBe("");
    expect(ignoredSummary(undefined)).toBe("");
  });
});
