/**
 * The client's side of the underpaint protocol without I/O: a TypeScript mirror of
 * protocol/underpaint_protocol/session.py and frames.py. It builds requests and binary frames, pairs
 * each message that announces an image with the frame that follows, and remembers which jobs this
 * client waits for, so after a dropped socket it knows exactly which finished jobs to fetch.
 */

export const PROTOCOL_VERSION = 1;
const TERMINAL = ["finished", "failed", "cancelled"];
const MAX_HEADER_BYTES = 4096;

export interface Attachment {
  id: string;
  format: string;
  width: number;
  height: number;
}

export interface ImageData {
  format: string;
  width: number;
  height: number;
  data: Uint8Array;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Message = Record<string, any>;

export interface SessionEvent {
  message: Message;
  image?: ImageData;
  type: string;
  jobId?: string;
}

export class SessionError extends Error {}

export function encodeFrame(attachment: Attachment, payload: Uint8Array): Uint8Array {
  const header = new TextEncoder().encode(
    JSON.stringify({ id: attachment.id, format: attachment.format, width: attachment.width, height: attachment.height }),
  );
  const frame = new Uint8Array(4 + header.length + payload.length);
  new DataView(frame.buffer).setUint32(0, header.length);
  frame.set(header, 4);
  frame.set(payload, 4 + header.length);
  return frame;
}

export function decodeFrame(frame: ArrayBuffer | Uint8Array): { attachment: Attachment; payload: Uint8Array } {
  const bytes = frame instanceof Uint8Array ? frame : new Uint8Array(frame);
  if (bytes.length < 4) throw new SessionError("binary frame shorter than its 4-byte header length");
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  if (length > MAX_HEADER_BYTES || 4 + length > bytes.length) {
    throw new SessionError(`binary frame header length ${length} is invalid`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + length)));
  } catch (error) {
    throw new SessionError(`binary frame header is not JSON: ${error}`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new SessionError("binary frame header is not a JSON object");
  }
  const h = header as Record<string, unknown>;
  const width = Number(h.width);
  const height = Number(h.height);
  if (h.id === undefined || h.format === undefined || !Number.isInteger(width) || !Number.isInteger(height)) {
    throw new SessionError("binary frame header lacks a valid id, format, width or height");
  }
  return {
    attachment: { id: String(h.id), format: String(h.format), width, height },
    payload: bytes.subarray(4 + length),
  };
}

interface TrackedJob {
  jobId: string;
  state: string;
  resultsSeen: Set<number>;
  resultsTotal: number | null;
}

function announcedImage(message: Message): Attachment | null {
  if (message.type === "progress" && message.preview && typeof message.preview === "object") return message.preview;
  if (message.type === "result" && message.layer && typeof message.layer.image === "object") return message.layer.image;
  return null;
}

function makeEvent(message: Message, image?: ImageData): SessionEvent {
  return {
    message,
    image,
    type: String(message.type),
    jobId: typeof message.job_id === "string" ? message.job_id : undefined,
  };
}

export interface HelloOptions {
  clientName: string;
  clientVersion?: string;
  host?: [string, string];
  token?: string;
  clientId?: string;
  resultFormat?: "png" | "rgba8" | "bgra8";
  previews?: boolean;
}

export class ClientSession {
  private nextId = 1;
  private awaitingFrame: Message | null = null;
  readonly jobs = new Map<string, TrackedJob>();

  hello(options: HelloOptions): string {
    const message: Message = {
      type: "hello",
      protocol: PROTOCOL_VERSION,
      client: { name: options.clientName, version: options.clientVersion ?? "" },
      result_format: options.resultFormat ?? "rgba8",
      previews: options.previews ?? true,
    };
    if (options.host) message.host = { name: options.host[0], version: options.host[1] };
    if (options.token) message.token = options.token;
    if (options.clientId) message.client_id = options.clientId;
    return JSON.stringify(message);
  }

  nextRequestId(): string {
    return `r${this.nextId++}`;
  }

  /** A new socket starts with no announced frame pending. */
  reset(): void {
    this.awaitingFrame = null;
  }

  plan(job: Message): [string, string] {
    const requestId = this.nextRequestId();
    return [requestId, JSON.stringify({ type: "plan", request_id: requestId, job })];
  }

  /** The request id and the frames to send in order: the JSON message, then each image. */
  submit(job: Message, region?: Message | null, image?: ImageData | null, mask?: ImageData | null): [string, (string | Uint8Array)[]] {
    const requestId = this.nextRequestId();
    const message: Message = { type: "submit", request_id: requestId, job };
    const frames: Uint8Array[] = [];
    if (region) message.region = region;
    for (const [name, data] of [["image", image], ["mask", mask]] as const) {
      if (!data) continue;
      const attachment = { id: `${requestId}-${name}`, format: data.format, width: data.width, height: data.height };
      message[name] = attachment;
      frames.push(encodeFrame(attachment, data.data));
    }
    return [requestId, [JSON.stringify(message), ...frames]];
  }

  cancel(jobId: string): string {
    return JSON.stringify({ type: "cancel", job_id: jobId });
  }

  listJobs(): [string, string] {
    const requestId = this.nextRequestId();
    return [requestId, JSON.stringify({ type: "list_jobs", request_id: requestId })];
  }

  fetch(jobId: string): string {
    return JSON.stringify({ type: "fetch", job_id: jobId });
  }

  receiveText(text: string): SessionEvent[] {
    if (this.awaitingFrame !== null) throw new SessionError("a text message arrived where an image frame was announced");
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch (error) {
      throw new SessionError(`daemon sent invalid JSON: ${error}`);
    }
    if (typeof message !== "object" || message === null || Array.isArray(message)) {
      throw new SessionError("daemon sent a JSON value that is not an object");
    }
    if (announcedImage(message as Message) !== null) {
      this.awaitingFrame = message as Message;
      return [];
    }
    return this.track(makeEvent(message as Message));
  }

  receiveBinary(data: ArrayBuffer | Uint8Array): SessionEvent[] {
    const message = this.awaitingFrame;
    if (message === null) throw new SessionError("daemon sent a binary frame that no message announced");
    this.awaitingFrame = null;
    const { attachment, payload } = decodeFrame(data);
    const declared = announcedImage(message);
    if (declared === null || attachment.id !== declared.id) {
      throw new SessionError(`frame ${attachment.id} does not match the announced image ${JSON.stringify(declared)}`);
    }
    return this.track(
      makeEvent(message, { format: attachment.format, width: attachment.width, height: attachment.height, data: payload }),
    );
  }

  /** Update what we know of the job; drop repeats a refetch replays (a result or an outcome seen). */
  private track(event: SessionEvent): SessionEvent[] {
    const { type, jobId } = event;
    if (type === "accepted" && jobId !== undefined && !this.jobs.has(jobId)) {
      this.jobs.set(jobId, { jobId, state: "queued", resultsSeen: new Set(), resultsTotal: null });
    }
    const tracked = jobId !== undefined ? this.jobs.get(jobId) : undefined;
    if (tracked === undefined) return [event];
    if (type === "result") {
      const index = Number(event.message.index);
      if (tracked.resultsSeen.has(index)) return [];
      tracked.resultsSeen.add(index);
    } else if (TERMINAL.includes(tracked.state) && [...TERMINAL, "queued", "started"].includes(type)) {
      return [];
    } else if (type === "queued" || type === "started") {
      tracked.state = type === "queued" ? "queued" : "running";
    } else if (TERMINAL.includes(type)) {
      tracked.state = type;
      if (type === "finished") tracked.resultsTotal = Number(event.message.results ?? 0);
    }
    return [event];
  }

  /** Start tracking a job this client submitted in an earlier plugin run (persisted ids). */
  adopt(jobId: string): void {
    if (!this.jobs.has(jobId)) this.jobs.set(jobId, { jobId, state: "queued", resultsSeen: new Set(), resultsTotal: null });
  }

  /** After a reconnect: the tracked jobs whose outcome or results this client has not seen. */
  jobsToFetch(summaries: Message[]): string[] {
    const states = new Map(summaries.map((s) => [s.job_id, s]));
    const wanted: string[] = [];
    for (const [jobId, tracked] of this.jobs) {
      const summary = states.get(jobId);
      if (
        TERMINAL.includes(tracked.state) &&
        (tracked.resultsTotal === null || tracked.resultsSeen.size >= tracked.resultsTotal)
      ) {
        continue;
      }
      if (
        summary === undefined ||
        (summary.results ?? 0) > tracked.resultsSeen.size ||
        (TERMINAL.includes(summary.state) && !TERMINAL.includes(tracked.state))
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
