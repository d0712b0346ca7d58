/**
 * Live painting in the UI iframe (PROTOCOL.md section 12), a mirror of
 * protocol/underpaint_protocol/live.py's LiveSession: the session's state, the sequence numbers, the
 * region as last sent (to send only the rectangle that changed), the newest result and the daemon's
 * counts. The main thread sends the watched node's pixels (`pixels`); results go back to it to show.
 */

import type { LiveResult, LiveSpec, LiveStarted, LiveStopped, Rect } from "../shared/protocol.gen";
import type { ImageData } from "./session";

export type LiveState = "off" | "starting" | "live" | "stopping";

/** What the session needs of the websocket client (UnderpaintClient). */
export interface LiveClient {
  liveStart(live: LiveSpec): Promise<LiveStarted>;
  liveFrame(seq: number, x: number, y: number, image: ImageData): void;
  liveStop(): Promise<LiveStopped>;
}

/** RGBA pixels of the watched node (canvas = the node at one pixel per design unit). */
export interface Pixels {
  width: number;
  height: number;
  data: Uint8Array;
}

/** The smallest rectangle outside which `next` equals `old` (same size, RGBA); null when equal. */
export function dirtyRect(old: Pixels, next: Pixels): Rect | null {
  const { width, height } = next;
  const stride = width * 4;
  let top = -1;
  let bottom = -1;
  let left = width;
  let right = 0;
  for (let y = 0; y < height; y++) {
    const row = y * stride;
    let first = -1;
    let last = -1;
    for (let x = 0; x < stride; x++) {
      if (old.data[row + x] !== next.data[row + x]) {
        if (first < 0) first = x;
        last = x;
      }
    }
    if (first < 0) continue;
    if (top < 0) top = y;
    bottom = y;
    left = Math.min(left, Math.floor(first / 4));
    right = Math.max(right, Math.floor(last / 4) + 1);
  }
  return top < 0 ? null : { x: left, y: top, width: right - left, height: bottom + 1 - top };
}

/** `rect` of an RGBA image, as its own rgba8 image. */
export function crop(image: Pixels, rect: Rect): ImageData {
  const out = new Uint8Array(rect.width * rect.height * 4);
  for (let y = 0; y < rect.height; y++) {
    const start = ((rect.y + y) * image.width + rect.x) * 4;
    out.set(image.data.subarray(start, start + rect.width * 4), y * rect.width * 4);
  }
  return { format: "rgba8", width: rect.width, height: rect.height, data: out };
}

export class LiveRun {
  state: LiveState = "off";
  /** Why the last session ended, when the user did not stop it. */
  note = "";
  sessionId: string | null = null;
  started: LiveStarted | null = null;
  region: Rect | null = null;
  seq = 0;
  framesSent = 0;
  bytesSent = 0;
  results = 0;
  dropped = 0;
  latencyMs: number | null = null;
  /** The newest result's frame number. */
  shownSeq = 0;
  /** The session's prompt (an applied result is named after it). */
  prompt = "";
  private kept: Pixels | null = null;
  private waiting: Pixels | null = null;

  constructor(private readonly client: LiveClient) {}

  get active(): boolean {
    return this.state === "starting" || this.state === "live";
  }

  /** Live on: `live_start`; the pixels that arrive meanwhile go as the first frame once it runs. */
  async start(spec: LiveSpec): Promise<void> {
    Object.assign(this, { state: "starting", note: "", sessionId: null, started: null, region: null, seq: 0 });
    Object.assign(this, { framesSent: 0, bytesSent: 0, results: 0, dropped: 0, latencyMs: null, shownSeq: 0 });
    this.kept = null;
    this.prompt = spec.prompt ?? "";
    let started: LiveStarted;
    try {
      started = await this.client.liveStart(spec);
    } catch (error) {
      if (this.state === "starting") this.ended(error instanceof Error ? error.message : String(error));
      return;
    }
    if (this.state !== "starting") {
      this.client.liveStop().catch(() => undefined); // stopped meanwhile: end the daemon's session too
      return;
    }
    this.state = "live";
    this.started = started;
    this.sessionId = started.session_id;
    this.region = started.region;
    const waiting = this.waiting;
    this.waiting = null;
    if (waiting !== null) this.pixels(waiting);
  }

  /** The watched node's pixels now: the whole region first, then only the rectangle that changed. */
  pixels(image: Pixels): void {
    if (this.state === "starting") {
      this.waiting = image;
      return;
    }
    const region = this.region;
    if (this.state !== "live" || region === null) return;
    if (region.x + region.width > image.width || region.y + region.height > image.height) {
      this.ended("The frame changed size; turn Live on again.");
      return;
    }
    const now = crop(image, region);
    const current = { width: now.width, height: now.height, data: now.data };
    let rect: Rect = { x: 0, y: 0, width: region.width, height: region.height };
    if (this.kept !== null) {
      const changed = dirtyRect(this.kept, current);
      if (changed === null) return;
      rect = changed;
    }
    this.kept = current;
    const frame = rect.width === region.width && rect.height === region.height ? now : crop(current, rect);
    this.seq += 1;
    this.framesSent += 1;
    this.bytesSent += frame.data.byteLength;
    this.client.liveFrame(this.seq, region.x + rect.x, region.y + rect.y, frame);
  }

  /** A `live_result`: true when it is this session's newest (show it), false for a stale one. */
  result(message: LiveResult): boolean {
    if (message.session_id !== this.sessionId || (this.state !== "live" && this.state !== "stopping")) return false;
    if (message.seq <= this.shownSeq) return false;
    this.shownSeq = message.seq;
    this.results += 1;
    this.dropped = message.dropped;
    this.latencyMs = message.latency_ms;
    return true;
  }

  /** A `live_stopped` for this session not asked by the user (a failed frame, the daemon going down). */
  stoppedByDaemon(message: LiveStopped): boolean {
    if (message.session_id !== this.sessionId || message.reason === "restarted" || message.reason === "stopped") return false;
    this.ended(message.reason === "failed" ? message.message ?? "A live frame failed." : "The daemon ended live painting.");
    return true;
  }

  /** Live off: the daemon ends the session at once. */
  async stop(): Promise<void> {
    const wasRunning = this.state === "live";
    this.ended("");
    if (wasRunning) {
      try {
        await this.client.liveStop();
      } catch {
        // no session there any more (it ended on its own, or the connection dropped): off either way
      }
    }
  }

  ended(note: string): void {
    this.state = "off";
    this.note = note;
    this.waiting = null;
    this.kept = null;
  }

  /** One line for the sidebar. */
  status(): string {
    if (this.state === "starting") return "Live: starting…";
    if (this.state === "stopping") return "Live: stopping…";
    if (this.state === "off") return this.note ? `Live is off. ${this.note}` : "Live is off.";
    if (this.results === 0) return `Live: waiting for the first picture (${this.framesSent} frame(s) sent).`;
    const latency = this.latencyMs !== null ? `, ${Math.round(this.latencyMs)} ms in the daemon` : "";
    return `Live: frame ${this.shownSeq}${latency}; ${this.dropped} skipped for newer ones.`;
  }
}
