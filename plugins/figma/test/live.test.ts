import { describe, expect, it } from "vitest";
import { decodeFrame, encodeFrame } from "../src/shared/frames";
import type { LiveResult, LiveSpec, LiveStarted, LiveStopped } from "../src/shared/protocol.gen";
import { crop, dirtyRect, type LiveClient, LiveRun, type Pixels } from "../src/ui/live";
import { ClientSession, type ImageData } from "../src/ui/session";

const W = 40;
const H = 30;

function canvas(fill = 10): Pixels {
  return { width: W, height: H, data: new Uint8Array(W * H * 4).fill(fill) };
}

function paint(image: Pixels, x: number, y: number, w: number, h: number, value: number): Pixels {
  const data = image.data.slice();
  for (let row = y; row < y + h; row++) data.fill(value, (row * W + x) * 4, (row * W + x + w) * 4);
  return { ...image, data };
}

class FakeClient implements LiveClient {
  frames: { seq: number; x: number; y: number; image: ImageData }[] = [];
  stops = 0;
  specs: LiveSpec[] = [];
  release: (started: LiveStarted) => void = () => undefined;
  liveStart(live: LiveSpec): Promise<LiveStarted> {
    this.specs.push(live);
    return new Promise((resolve) => (this.release = resolve));
  }
  liveFrame(seq: number, x: number, y: number, image: ImageData): void {
    this.frames.push({ seq, x, y, image });
  }
  liveStop(): Promise<LiveStopped> {
    this.stops += 1;
    return Promise.resolve({ type: "live_stopped", session_id: "s1", reason: "stopped", frames: 0, results: 0, dropped: 0 });
  }
}

const started = (region = { x: 8, y: 4, width: 24, height: 20 }): LiveStarted => ({
  type: "live_started",
  request_id: "r1",
  session_id: "s1",
  region,
  work: region,
  model: "tiny-random",
  mode: "img2img",
  model_width: 64,
  model_height: 64,
  seed: 5,
  steps: 2,
  guidance: 0,
  strength: 0.5,
});

const result = (seq: number, session = "s1"): LiveResult => ({
  type: "live_result",
  session_id: session,
  seq,
  layer: { name: "Live: x", x: 8, y: 4, width: 24, height: 20, image: { id: `f${seq}`, format: "png", width: 24, height: 20 } },
  frames: seq,
  dropped: 1,
  latency_ms: 12.5,
});

describe("dirtyRect and crop", () => {
  it("finds exactly the changed rectangle, and nothing when equal", () => {
    const before = canvas();
    expect(dirtyRect(before, before)).toBeNull();
    const after = paint(before, 5, 7, 3, 2, 200);
    expect(dirtyRect(before, after)).toEqual({ x: 5, y: 7, width: 3, height: 2 });
    const two = paint(after, 30, 20, 1, 1, 90);
    expect(dirtyRect(before, two)).toEqual({ x: 5, y: 7, width: 26, height: 14 });
  });

  it("crops rows of a rectangle", () => {
    const image = paint(canvas(), 2, 3, 2, 2, 77);
    const part = crop(image, { x: 2, y: 3, width: 2, height: 2 });
    expect(part).toMatchObject({ format: "rgba8", width: 2, height: 2 });
    expect(Array.from(part.data)).toEqual(new Array(16).fill(77));
  });
});

describe("LiveRun", () => {
  it("sends the whole region first, then only what changed, numbered; nothing when nothing changed", async () => {
    const client = new FakeClient();
    const run = new LiveRun(client);
    const starting = run.start({ canvas: { width: W, height: H }, prompt: "p" });
    run.pixels(canvas()); // arrives before live_started: waits
    expect(run.state).toBe("starting");
    expect(client.frames).toHaveLength(0);
    client.release(started());
    await starting;
    expect(run.state).toBe("live");
    expect(client.frames.map((f) => [f.seq, f.x, f.y, f.image.width, f.image.height])).toEqual([[1, 8, 4, 24, 20]]);
    run.pixels(canvas()); // the same pixels
    expect(client.frames).toHaveLength(1);
    run.pixels(paint(canvas(), 10, 6, 4, 3, 250)); // a dab inside the region
    const second = client.frames[1];
    expect([second.seq, second.x, second.y, second.image.width, second.image.height]).toEqual([2, 10, 6, 4, 3]);
    expect(Array.from(second.image.data)).toEqual(new Array(4 * 3 * 4).fill(250));
    expect(run.bytesSent).toBe(24 * 20 * 4 + 4 * 3 * 4);
    run.pixels(paint(canvas(), 0, 0, 4, 3, 250)); // outside the region: the region is unchanged but the dab went away
    expect(client.frames[2].image.width * client.frames[2].image.height).toBe(12);
  });

  it("shows only this session's newest results and says so", async () => {
    const client = new FakeClient();
    const run = new LiveRun(client);
    const starting = run.start({ canvas: { width: W, height: H } });
    client.release(started());
    await starting;
    expect(run.status()).toMatch(/waiting for the first picture/);
    expect(run.result(result(2))).toBe(true);
    expect(run.result(result(1))).toBe(false); // older
    expect(run.result(result(3, "other"))).toBe(false); // another session
    expect(run.status()).toBe("Live: frame 2, 13 ms in the daemon; 1 skipped for newer ones.");
  });

  it("stop ends the daemon's session; a failure from the daemon turns Live off with its message", async () => {
    const client = new FakeClient();
    const run = new LiveRun(client);
    const starting = run.start({ canvas: { width: W, height: H } });
    client.release(started());
    await starting;
    const failed: LiveStopped = { type: "live_stopped", session_id: "s1", reason: "failed", frames: 1, results: 0, dropped: 0, code: "out_of_memory", message: "out of memory" };
    expect(run.stoppedByDaemon({ ...failed, reason: "restarted" })).toBe(false);
    expect(run.stoppedByDaemon(failed)).toBe(true);
    expect([run.state, run.status()]).toEqual(["off", "Live is off. out of memory"]);
    const again = new LiveRun(client);
    const second = again.start({ canvas: { width: W, height: H } });
    client.release(started());
    await second;
    await again.stop();
    expect([again.state, client.stops]).toEqual(["off", 1]);
    const early = new LiveRun(client);
    const third = early.start({ canvas: { width: W, height: H } });
    await early.stop(); // off before the daemon answered: its session is ended once it starts
    client.release(started());
    await third;
    expect([early.state, client.stops]).toEqual(["off", 2]);
  });

  it("a frame of another size than the session's canvas turns Live off", async () => {
    const client = new FakeClient();
    const run = new LiveRun(client);
    const starting = run.start({ canvas: { width: W, height: H } });
    client.release(started({ x: 0, y: 0, width: W, height: H }));
    await starting;
    run.pixels({ width: 10, height: 10, data: new Uint8Array(400) });
    expect(run.state).toBe("off");
    expect(run.note).toMatch(/changed size/);
  });
});

describe("ClientSession live messages", () => {
  it("live_start with a mask frame, live_frame with its pixels, live_stop", () => {
    const session = new ClientSession();
    const mask = { format: "gray8" as const, width: 2, height: 1, data: new Uint8Array([0, 255]) };
    const [id, frames] = session.liveStart({ canvas: { width: 4, height: 4 }, selection: { x: 1, y: 1, width: 2, height: 1 } }, mask);
    expect(JSON.parse(frames[0] as string)).toEqual({
      type: "live_start",
      request_id: id,
      live: { canvas: { width: 4, height: 4 }, selection: { x: 1, y: 1, width: 2, height: 1 } },
      mask: { id: `${id}-mask`, format: "gray8", width: 2, height: 1 },
    });
    expect(Array.from(decodeFrame(frames[1] as Uint8Array).payload)).toEqual([0, 255]);
    const image = { format: "rgba8" as const, width: 1, height: 1, data: new Uint8Array([1, 2, 3, 4]) };
    const [text, frame] = session.liveFrame(7, 2, 3, image);
    expect(JSON.parse(text as string)).toEqual({
      type: "live_frame",
      seq: 7,
      rect: { x: 2, y: 3, width: 1, height: 1 },
      image: { id: "live-7", format: "rgba8", width: 1, height: 1 },
    });
    expect(Array.from(decodeFrame(frame as Uint8Array).payload)).toEqual([1, 2, 3, 4]);
    const [stopId, stop] = session.liveStop();
    expect(JSON.parse(stop)).toEqual({ type: "live_stop", request_id: stopId });
  });

  it("pairs a live_result with the image frame it announces", () => {
    const session = new ClientSession();
    expect(session.receiveText(JSON.stringify(result(4)))).toEqual([]);
    const [event] = session.receiveBinary(encodeFrame({ id: "f4", format: "png", width: 24, height: 20 }, new Uint8Array([137, 80])));
    expect(event.message.type).toBe("live_result");
    expect(Array.from(event.image!.data)).toEqual([137, 80]);
  });
});
