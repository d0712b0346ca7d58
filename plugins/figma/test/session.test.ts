import { describe, expect, it } from "vitest";
import { decodeFrame, encodeFrame, FrameError } from "../src/shared/frames";
import type { JobSpec, JobSummary } from "../src/shared/protocol.gen";
import { ClientSession } from "../src/ui/session";

const summary = (job_id: string, state: JobSummary["state"], results: number): JobSummary => ({
  job_id,
  state,
  results,
  mode: "inpaint",
  model: "classical",
  prompt: "",
  created: 0,
});

describe("frames", () => {
  it("round-trips: uint32 BE header length, JSON header, payload", () => {
    const frame = encodeFrame({ id: "r1-image", format: "png", width: 3, height: 2 }, new Uint8Array([9, 8, 7]));
    const length = new DataView(frame.buffer).getUint32(0);
    expect(JSON.parse(new TextDecoder().decode(frame.subarray(4, 4 + length)))).toEqual({ id: "r1-image", format: "png", width: 3, height: 2 });
    const { attachment, payload } = decodeFrame(frame.buffer as ArrayBuffer);
    expect(attachment).toEqual({ id: "r1-image", format: "png", width: 3, height: 2 });
    expect(Array.from(payload)).toEqual([9, 8, 7]);
    expect(() => decodeFrame(new Uint8Array([0, 0]))).toThrow(FrameError);
    expect(() => decodeFrame(new Uint8Array([0, 0, 0, 50, 1]))).toThrow(/invalid/);
    const unknownFormat = encodeFrame({ id: "x", format: "jpeg" as "png", width: 1, height: 1 }, new Uint8Array());
    expect(() => decodeFrame(unknownFormat)).toThrow(/valid id, format/);
  });
});

describe("ClientSession", () => {
  const job: JobSpec = { mode: "inpaint", canvas: { width: 2, height: 2 } };

  it("builds hello and submit with attachments declared in order", () => {
    const session = new ClientSession();
    const hello = JSON.parse(session.hello({ clientName: "underpaint-figma", host: ["figma", "1"], token: "t", clientId: "x".repeat(20), resultFormat: "png" }));
    expect(hello).toMatchObject({ type: "hello", protocol: 1, token: "t", result_format: "png", host: { name: "figma" } });
    const image = { format: "png" as const, width: 2, height: 2, data: new Uint8Array([1]) };
    const [requestId, frames] = session.submit(job, { x: 0, y: 0, width: 2, height: 2 }, image, image);
    const message = JSON.parse(frames[0] as string);
    expect(message.image.id).toBe(`${requestId}-image`);
    expect(message.mask.id).toBe(`${requestId}-mask`);
    expect(frames).toHaveLength(3);
    expect(decodeFrame(frames[2] as Uint8Array).attachment.id).toBe(`${requestId}-mask`);
  });

  it("pairs announced images with their frame, drops replays, and knows what to fetch after a drop", () => {
    const session = new ClientSession();
    session.receiveText(JSON.stringify({ type: "accepted", request_id: "r1", job_id: "j1", seed: 1 }));
    const announced = { type: "result", job_id: "j1", index: 0, layer: { name: "n", x: 0, y: 0, width: 1, height: 1, image: { id: "f1", format: "png", width: 1, height: 1 } } };
    expect(session.receiveText(JSON.stringify(announced))).toEqual([]);
    expect(() => session.receiveText("{}")).toThrow(/image frame was announced/);
    const events = session.receiveBinary(encodeFrame({ id: "f1", format: "png", width: 1, height: 1 }, new Uint8Array([5])));
    expect(events[0].message.type).toBe("result");
    expect(Array.from(events[0].image!.data)).toEqual([5]);
    // a replay of the same result (after fetch) is dropped
    session.receiveText(JSON.stringify(announced));
    expect(session.receiveBinary(encodeFrame({ id: "f1", format: "png", width: 1, height: 1 }, new Uint8Array([5])))).toEqual([]);
    expect(() => session.receiveBinary(new Uint8Array(8))).toThrow(/no message announced/);
    expect(() => session.receiveText(JSON.stringify({ job_id: "j1" }))).toThrow(/without a type/);
    // the socket dropped before `finished`: the daemon says the job finished with 2 results
    expect(session.jobsToFetch([summary("j1", "finished", 2)])).toEqual(["j1"]);
    expect(session.jobsToFetch([summary("j1", "running", 1)])).toEqual([]);
    session.receiveText(JSON.stringify({ type: "finished", job_id: "j1", results: 1 }));
    expect(session.jobsToFetch([summary("j1", "finished", 1)])).toEqual([]);
    expect(session.receiveText(JSON.stringify({ type: "finished", job_id: "j1", results: 1 }))).toEqual([]);
  });

  it("adopted jobs from an earlier run are fetched when the daemon has them finished", () => {
    const session = new ClientSession();
    session.adopt("old");
    expect(session.jobsToFetch([summary("old", "finished", 1)])).toEqual(["old"]);
    expect(session.jobsToFetch([])).toEqual(["old"]);
  });
});
