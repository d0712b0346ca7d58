import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import {
  addGuides,
  availability,
  CONTROL_KINDS,
  controlRow,
  defaultKind,
  guideFrames,
  guideProblem,
  KIND_LABELS,
  LABELS,
  modelKinds,
  referenceRow,
  TAKE_LABELS,
} from "../src/shared/guides";
import { decodeFrame } from "../src/shared/frames";
import type { JobSpec } from "../src/shared/protocol.gen";
import { ClientSession } from "../src/ui/session";
import type { FakeFigma } from "./fake-figma";
import { at, installFake, pixels, testImage } from "./helpers";

const MODEL = { id: "sd15", control_kinds: ["scribble", "depth", "canny"] as const, reference_modes: ["style", "both"] as const };
const model = { ...MODEL, control_kinds: [...MODEL.control_kinds], reference_modes: [...MODEL.reference_modes] };
const JOB: JobSpec = { mode: "inpaint", prompt: "p", canvas: { width: 64, height: 48 }, selection: { x: 8, y: 8, width: 16, height: 16 } };

describe("rows and refusals (the mirror of guides.py / guides_panel.py)", () => {
  it("reads the same as the Krita docker and the GIMP panel", () => {
    const python = readFileSync(resolve(__dirname, "../../../protocol/underpaint_protocol/guides_panel.py"), "utf8");
    for (const [kind, label] of Object.entries(KIND_LABELS)) expect(python).toContain(`"${kind}": "${label}"`);
    for (const [take, label] of Object.entries(TAKE_LABELS)) expect(python).toContain(`"${take}": "${label}"`);
    for (const [key, label] of Object.entries(LABELS)) expect(python).toContain(`"${key}": "${label}"`);
    expect(python).toContain('PREPROCESSED_KINDS = ("softedge", "canny", "depth")');
    const guides = readFileSync(resolve(__dirname, "../../../protocol/underpaint_protocol/guides.py"), "utf8");
    expect(guides).toContain(`CONTROL_KINDS = (${CONTROL_KINDS.map((k) => `"${k}"`).join(", ")})`);
  });

  it("starts a row with the kind its node's name says, and that kind's preprocess", () => {
    expect(modelKinds(model)).toEqual(["scribble", "canny", "depth"]);
    expect(defaultKind("depth map", modelKinds(model))).toBe("depth");
    expect(defaultKind("Line art", modelKinds(model))).toBe("scribble");
    expect(controlRow("1:2", "photo depth", model)).toEqual({
      nodeId: "1:2",
      name: "photo depth",
      kind: "depth",
      strength: 1,
      start: 0,
      end: 1,
      preprocess: true,
    });
    expect(referenceRow("1:3", "mood", model)).toEqual({ nodeId: "1:3", name: "mood", take: "both", weight: 0.6 });
    expect(availability(model)).toBe("sd15 takes control layers: scribble, canny edges, depth; references.");
    expect(availability({ id: "plain" })).toContain("--control KIND=SOURCE");
  });

  it("refuses what the model cannot take before anything is sent, and adds the items to the job", () => {
    const sketch = controlRow("1:2", "sketch", model);
    const limits = { max_controls: 1, max_references: 1 };
    expect(guideProblem(model, [sketch], [], limits)).toBeNull();
    expect(guideProblem(model, [{ ...sketch, kind: "pose" }], [], limits)).toBe(
      "The sd15 model cannot use a pose control layer (it takes scribble, depth, canny). Pick another kind or model.",
    );
    expect(guideProblem(model, [sketch, sketch], [], limits)).toContain("at most 1");
    expect(guideProblem(model, [{ ...sketch, start: 0.5, end: 0.5 }], [], limits)).toContain("start before it ends");
    expect(guideProblem({ ...model, reference_modes: [] }, [], [referenceRow("1", "r", model)], limits)).toContain("reference images");
    const job = addGuides(JOB, [{ ...sketch, strength: 0.9, end: 0.8 }], [{ ...referenceRow("1:3", "mood", model), take: "style" }]);
    expect(job.controls).toEqual([{ kind: "scribble", strength: 0.9, start: 0, end: 0.8, preprocess: false }]);
    expect(job.references).toEqual([{ take: "style", weight: 0.6 }]);
    expect(addGuides(JOB, [], [])).toEqual(JOB);
  });
});

describe("frames", () => {
  it("sends each control after the image and mask, then each reference, with the protocol's ids", () => {
    const image = (w: number, h: number) => ({ format: "rgba8" as const, width: w, height: h, data: new Uint8Array(w * h * 4) });
    const [requestId, frames] = new ClientSession().submit(JOB, { x: 0, y: 0, width: 4, height: 2 }, image(4, 2), null, {
      controls: [image(4, 2), image(4, 2)],
      references: [image(3, 3)],
    });
    const message = JSON.parse(frames[0] as string);
    expect(message.controls.map((c: { id: string }) => c.id)).toEqual([`${requestId}-control-0`, `${requestId}-control-1`]);
    expect(message.references).toEqual([{ id: `${requestId}-reference-0`, format: "rgba8", width: 3, height: 3 }]);
    const ids = frames.slice(1).map((frame) => decodeFrame(frame as Uint8Array).attachment.id);
    expect(ids).toEqual([`${requestId}-image`, `${requestId}-control-0`, `${requestId}-control-1`, `${requestId}-reference-0`]);
  });

  it("cuts each control to the planned control rectangle, sends the whole canvas's PNG as it is", async () => {
    const png = await testImage(64, 48);
    const reference = await testImage(10, 7);
    const cuts: unknown[] = [];
    const crop = async (_png: Uint8Array, box: { width: number; height: number }) => {
      cuts.push(box);
      return new Uint8Array(box.width * box.height * 4);
    };
    const part = await guideFrames({ x: 4, y: 6, width: 20, height: 10 }, { width: 64, height: 48 }, { controls: [png], references: [reference] }, crop);
    expect(part.controls.map((f) => [f.format, f.width, f.height])).toEqual([["rgba8", 20, 10]]);
    expect(cuts).toEqual([{ x: 4, y: 6, width: 20, height: 10 }]);
    expect(part.references.map((f) => [f.format, f.width, f.height])).toEqual([["png", 10, 7]]);
    const whole = await guideFrames({ x: 0, y: 0, width: 64, height: 48 }, { width: 64, height: 48 }, { controls: [png], references: [] }, crop);
    expect(whole.controls[0]).toEqual({ format: "png", width: 64, height: 48, data: png });
    await expect(guideFrames(undefined, { width: 64, height: 48 }, { controls: [png], references: [] }, crop)).rejects.toThrow("no control region");
    await expect(guideFrames({ x: 0, y: 0, width: 64, height: 48 }, { width: 32, height: 48 }, { controls: [png], references: [] }, crop)).rejects.toThrow();
  });
});

describe("main thread: the nodes read with the image", () => {
  let fake: FakeFigma;
  beforeEach(() => {
    fake = installFake();
  });

  it("renders a hidden control node alone over the image's canvas and leaves it out of the image", async () => {
    const { prepareJob } = await import("../src/main/selection");
    const board = fake.frame("Board", 0, 0, 200, 200);
    const photo = fake.imageNode("Photo", await testImage(160, 120), 20, 10, 160, 120, board);
    const mask = fake.shape("ELLIPSE", "Mask", 60, 40, 40, 40, board);
    const sketch = fake.shape("RECTANGLE", "Sketch", 40, 30, 20, 10, board); // image pixels 20..40 x 20..30
    sketch.visible = false;
    const mood = fake.imageNode("Mood", await testImage(30, 20), 300, 0, 30, 20);
    fake.page.selection = [photo, mask] as any;
    const job = await prepareJob(fake.figma.currentPage.selection, { scale: 2, guides: { controls: [sketch.id], references: [mood.id] } });
    const control = await pixels(job.guides!.controls[0]);
    expect([control.width, control.height]).toEqual([320, 240]); // the canvas at 2x
    expect(at(control, 60, 50)[3]).toBe(255); // inside the sketch (image 30,25 at 2x)
    expect(at(control, 10, 10)).toEqual([0, 0, 0, 0]); // transparent where it has nothing
    const reference = await pixels(job.guides!.references[0]);
    expect([reference.width, reference.height]).toEqual([60, 40]);
    expect(sketch.visible).toBe(false);
    expect(fake.page.children.map((n) => n.name)).toEqual(["Board", "Mood"]); // the temporary frame is gone
    const image = await pixels(job.image!);
    expect(at(image, 60, 50)).toEqual(at(await pixels(await testImage(320, 240)), 60, 50)); // the photo, not the sketch
    await expect(
      prepareJob(fake.figma.currentPage.selection, { scale: 1, guides: { controls: ["9:99"], references: [] } }),
    ).rejects.toThrow("deleted");
  });
});
