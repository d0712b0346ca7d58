/**
 * The client's side of the underpaint protocol without I/O: a TypeScript mirror of
 * protocol/underpaint_protocol/session.py. It builds requests and binary frames, pairs each message
 * that announces an image with the frame that follows, and remembers which jobs this client waits
 * for, so after a dropped socket it knows exactly which finished jobs to fetch.
 */

import { decodeFrame, encodeFrame, FrameError } from "../shared/frames";
import {
  type AttachmentRef,
  type ClientMessage,
  type Hello,
  type ImageFormat,
  type InterrogateRequest,
  type JobSpec,
  type JobState,
  type JobSummary,
  type LiveFrame,
  type LiveSpec,
  type LiveStart,
  PROTOCOL_VERSION,
  type Rect,
  type ResultFormat,
  type ServerMessage,
  type StylesRequest,
  type Submit,
  TERMINAL_STATES,
} from "../shared/protocol.gen";

export interface ImageData {
  format: ImageFormat;
  width: number;
  height: number;
  data: Uint8Array;
}

/** A job's control-layer and reference images, in the order of its `controls` / `references` items. */
export interface Guides {
  controls: ImageData[];
  references: ImageData[];
}

/** One message from the daemon, with the image frame it announced, if any. */
export interface SessionEvent<M extends ServerMessage = ServerMessage> {
  message: M;
  image?: ImageData;
  jobId?: string;
}

export class SessionError extends Error {}

const isTerminal = (state: string): boolean => (TERMINAL_STATES as readonly string[]).includes(state);

interface TrackedJob {
  jobId: string;
  state: JobState;
  resultsSeen: Set<number>;
  resultsTotal: number | null;
}

function announcedImage(message: ServerMessage): AttachmentRef | null {
  if (message.type === "progress") return message.preview ?? null;
  if (message.type === "result" || message.type === "live_result") return message.layer.image;
  return null;
}

const jobIdOf = (message: ServerMessage): string | undefined =>
  "job_id" in message && typeof message.job_id === "string" ? message.job_id : undefined;

export interface HelloOptions {
  clientName: string;
  clientVersion?: string;
  host?: [string, string];
  token?: string;
  clientId?: string;
  resultFormat?: ResultFormat;
  previews?: boolean;
}

const text = (message: ClientMessage): string => JSON.stringify(message);

export class ClientSession {
  private nextId = 1;
  private awaitingFrame: ServerMessage | null = null;
  readonly jobs = new Map<string, TrackedJob>();

  hello(options: HelloOptions): string {
    const message: Hello = {
      type: "hello",
      protocol: PROTOCOL_VERSION,
      client: { name: options.clientName, version: options.clientVersion ?? "" },
      result_format: options.resultFormat ?? "rgba8",
      previews: options.previews ?? true,
    };
    if (options.host) message.host = { name: options.host[0], version: options.host[1] };
    if (options.token) message.token = options.token;
    if (options.clientId) message.client_id = options.clientId;
    return text(message);
  }

  nextRequestId(): string {
    return `r${this.nextId++}`;
  }

  /** A new socket starts with no announced frame pending. */
  reset(): void {
    this.awaitingFrame = null;
  }

  plan(job: JobSpec): [string, string] {
    const requestId = this.nextRequestId();
    return [requestId, text({ type: "plan", request_id: requestId, job })];
  }

  /**
   * The request id and the frames to send in order: the JSON message, then the image, the mask, each
   * control layer and each reference (in the order of `job.controls` / `job.references`).
   */
  submit(
    job: JobSpec,
    region?: Rect | null,
    image?: ImageData | null,
    mask?: ImageData | null,
    guides?: Guides,
  ): [string, (string | Uint8Array)[]] {
    const requestId = this.nextRequestId();
    const message: Submit = { type: "submit", request_id: requestId, job };
    const frames: Uint8Array[] = [];
    if (region) message.region = region;
    const ref = (id: string, data: ImageData) => ({ id, format: data.format, width: data.width, height: data.height });
    for (const [name, data] of [["image", image], ["mask", mask]] as const) {
      if (!data) continue;
      const attachment = ref(`${requestId}-${name}`, data);
      message[name] = attachment;
      frames.push(encodeFrame(attachment, data.data));
    }
    for (const [name, list] of [["control", guides?.controls ?? []], ["reference", guides?.references ?? []]] as const) {
      if (list.length === 0) continue;
      const attachments = list.map((data, index) => ref(`${requestId}-${name}-${index}`, data));
      message[name === "control" ? "controls" : "references"] = attachments;
      list.forEach((data, index) => frames.push(encodeFrame(attachments[index], data.data)));
    }
    return [requestId, [text(message), ...frames]];
  }

  /** A `styles` request (list, save, rename or delete; see PROTOCOL.md "Prompt library"). */
  styles(request: Omit<StylesRequest, "type" | "request_id"> = {}): [string, string] {
    const requestId = this.nextRequestId();
    return [requestId, text({ type: "styles", request_id: requestId, ...request })];
  }

  history(limit: number): [string, string] {
    const requestId = this.nextRequestId();
    return [requestId, text({ type: "history", request_id: requestId, limit })];
  }

  loras(): [string, string] {
    const requestId = this.nextRequestId();
    return [requestId, text({ type: "loras", request_id: requestId })];
  }

  /** An `interrogate` request and its frames: the image, then the selection's mask if any. */
  interrogate(image: ImageData, mask?: ImageData | null, flavours?: number): [string, (string | Uint8Array)[]] {
    const requestId = this.nextRequestId();
    const ref = (name: string, data: ImageData): AttachmentRef => ({
      id: `${requestId}-${name}`,
      format: data.format,
      width: data.width,
      height: data.height,
    });
    const message: InterrogateRequest = { type: "interrogate", request_id: requestId, image: ref("image", image) };
    const frames = [encodeFrame(message.image, image.data)];
    if (mask) {
      message.mask = ref("mask", mask);
      frames.push(encodeFrame(message.mask, mask.data));
    }
    if (flavours !== undefined) message.flavours = flavours;
    return [requestId, [text(message), ...frames]];
  }

  /** Start a live session (PROTOCOL.md section 12): the message, then the soft mask's frame if any. */
  liveStart(live: LiveSpec, mask?: ImageData | null): [string, (string | Uint8Array)[]] {
    const requestId = this.nextRequestId();
    const message: LiveStart = { type: "live_start", request_id: requestId, live };
    const frames: Uint8Array[] = [];
    if (mask) {
      message.mask = { id: `${requestId}-mask`, format: mask.format, width: mask.width, height: mask.height };
      frames.push(encodeFrame(message.mask, mask.data));
    }
    return [requestId, [text(message), ...frames]];
  }

  /** One live frame: the dirty rectangle at (x, y) and its pixels as the frame that follows. */
  liveFrame(seq: number, x: number, y: number, image: ImageData): (string | Uint8Array)[] {
    const attachment = { id: `live-${seq}`, format: image.format, width: image.width, height: image.height };
    const message: LiveFrame = {
      type: "live_frame",
      seq,
      rect: { x, y, width: image.width, height: image.height },
      image: attachment,
    };
    return [text(message), encodeFrame(attachment, image.data)];
  }

  liveStop(): [string, string] {
    const requestId = this.nextRequestId();
    return [requestId, text({ type: "live_stop", request_id: requestId })];
  }

  cancel(jobId: string): string {
    return text({ type: "cancel", job_id: jobId });
  }

  listJobs(): [string, string] {
    const requestId = this.nextRequestId();
    return [requestId, text({ type: "list_jobs", request_id: requestId })];
  }

  fetch(jobId: string): string {
    return text({ type: "fetch", job_id: jobId });
  }

  receiveText(data: string): SessionEvent[] {
    if (this.awaitingFrame !== null) throw new SessionError("a text message arrived where an image frame was announced");
    let message: unknown;
    try {
      message = JSON.parse(data);
    } catch (error) {
      throw new SessionError(`daemon sent invalid JSON: ${error}`);
    }
    if (typeof message !== "object" || message === null || Array.isArray(message)) {
      throw new SessionError("daemon sent a JSON value that is not an object");
    }
    if (typeof (message as { type?: unknown }).type !== "string") throw new SessionError("daemon sent a message without a type");
    const server = message as ServerMessage;
    if (announcedImage(server) !== null) {
      this.awaitingFrame = server;
      return [];
    }
    return this.track({ message: server, jobId: jobIdOf(server) });
  }

  receiveBinary(data: ArrayBuffer | Uint8Array): SessionEvent[] {
    const message = this.awaitingFrame;
    if (message === null) throw new SessionError("daemon sent a binary frame that no message announced");
    this.awaitingFrame = null;
    let frame: ReturnType<typeof decodeFrame>;
    try {
      frame = decodeFrame(data);
    } catch (error) {
      if (error instanceof FrameError) throw new SessionError(error.message);
      throw error;
    }
    const { attachment, payload } = frame;
    const declared = announcedImage(message);
    if (declared === null || attachment.id !== declared.id) {
      throw new SessionError(`frame ${attachment.id} does not match the announced image ${JSON.stringify(declared)}`);
    }
    const image = { format: attachment.format, width: attachment.width, height: attachment.height, data: payload };
    return this.track({ message, image, jobId: jobIdOf(message) });
  }

  /** Update what we know of the job; drop repeats a refetch replays (a result or an outcome seen). */
  private track(event: SessionEvent): SessionEvent[] {
    const { message, jobId } = event;
    const type = message.type;
    if (type === "accepted" && jobId !== undefined && !this.jobs.has(jobId)) this.adopt(jobId);
    const tracked = jobId !== undefined ? this.jobs.get(jobId) : undefined;
    if (tracked === undefined) return [event];
    if (message.type === "result") {
      if (tracked.resultsSeen.has(message.index)) return [];
      tracked.resultsSeen.add(message.index);
    } else if (isTerminal(tracked.state) && (isTerminal(type) || type === "queued" || type === "started")) {
      return [];
    } else if (type === "queued" || type === "started") {
      tracked.state = type === "queued" ? "queued" : "running";
    } else if (message.type === "finished" || message.type === "failed" || message.type === "cancelled") {
      tracked.state = message.type;
      if (message.type === "finished") tracked.resultsTotal = message.results;
    }
    return [event];
  }

  /** Start tracking a job this client submitted in an earlier plugin run (persisted ids). */
  adopt(jobId: string): void {
    if (!this.jobs.has(jobId)) this.jobs.set(jobId, { jobId, state: "queued", resultsSeen: new Set(), resultsTotal: null });
  }

  /** After a reconnect: the tracked jobs whose outcome or results this client has not seen. */
  jobsToFetch(summaries: JobSummary[]): string[] {
    const states = new Map(summaries.map((s) => [s.job_id, s]));
    const wanted: string[] = [];
    for (const [jobId, tracked] of this.jobs) {
      const summary = states.get(jobId);
      if (isTerminal(tracked.state) && (tracked.resultsTotal === null || tracked.resultsSeen.size >= tracked.resultsTotal)) {
        continue;
      }
      if (
        summary === undefined ||
        summary.results > tracked.resultsSeen.size ||
        (isTerminal(summary.state) && !isTerminal(tracked.state))
      ) {
        wanted.push(jobId);
      }
    }
    return wanted;
  }

  forget(jobId: string): void {
    this.jobs.delete(jobId);
  }
}
