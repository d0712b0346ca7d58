/**
 * The websocket client, a TypeScript mirror of protocol/underpaint_protocol/client.py for the
 * browser: requests return promises, events arrive through ``onEvent``, and a dropped socket
 * reconnects with the protocol's backoff under the same client id, then fetches the results of jobs
 * that finished meanwhile. ``unauthorized`` and ``unsupported_protocol`` stop the retries: they need
 * the user. Every frame goes out through one `send`, synchronously and in call order, so a submit's
 * image frames always follow their message.
 */

import {
  type Accepted,
  DEFAULT_PORT,
  type ErrorCode,
  type HistoryEntry,
  type Interrogated,
  type JobSpec,
  type JobSummary,
  type LoraDescription,
  type LiveSpec,
  type LiveStarted,
  type LiveStopped,
  type Planned,
  RECONNECT_DELAYS,
  type Rect,
  type ServerMessage,
  type ServerMessageOf,
  type ServerMessageType,
  type Style,
  type StyleList,
} from "../shared/protocol.gen";
import { errorText } from "./errors";
import { ClientSession, type Guides, type ImageData, SessionError, type SessionEvent } from "./session";

/** The same states as the Python client's: what the sidebar shows next to the address. */
export type ConnectionState = "disconnected" | "connecting" | "connected" | "reconnecting" | "refused";

/** An `error` from the daemon (or one the client raises in its name, such as `frame_too_large`). */
export class DaemonError extends Error {
  readonly code: string;
  readonly field: string | null;
  constructor(payload: { code: string; message: string; field?: string | null }) {
    super(payload.message);
    this.code = payload.code;
    this.field = payload.field ?? null;
  }
}

export class NotConnected extends Error {}

/** Whether something answers plain HTTP at the address (a web UI such as A1111 or Gradio). */
export type HttpProbe = (httpUrl: string) => Promise<boolean>;

const fetchProbe: HttpProbe = async (httpUrl) => {
  try {
    await fetch(httpUrl, { mode: "no-cors", cache: "no-store" });
    return true;
  } catch {
    return false;
  }
};

export interface ClientOptions {
  url: string;
  token?: string;
  clientId?: string;
  clientName: string;
  clientVersion: string;
  host?: [string, string];
  onEvent: (event: SessionEvent) => void;
  /** state, a sentence for the user, and the daemon's error when it refused us. */
  onState: (state: ConnectionState, detail: string, error?: DaemonError) => void;
  /** Job ids from an earlier run of the plugin whose results were not placed yet. */
  adopt?: string[];
  WebSocketImpl?: typeof WebSocket;
  httpProbe?: HttpProbe;
}

interface Pending {
  expected: ServerMessageType;
  resolve: (message: ServerMessage) => void;
  reject: (error: Error) => void;
}

/** Why an address cannot be a daemon's, in words for the user; null when it looks right. */
export function addressProblem(url: string): string | null {
  if (/^https?:\/\//i.test(url)) {
    return (
      `"${url}" is a web (http) address, but the underpaint daemon speaks websocket: ` +
      `use ws://localhost:${DEFAULT_PORT} (the address \`underpaint serve\` prints).`
    );
  }
  if (!/^wss?:\/\/[^/\s]+/i.test(url)) return `"${url}" is not a websocket address: use ws://localhost:${DEFAULT_PORT}.`;
  return null;
}

export class UnderpaintClient {
  readonly session = new ClientSession();
  welcome: ServerMessageOf<"welcome"> | null = null;
  clientId: string | undefined;
  private socket: WebSocket | null = null;
  private connected = false;
  private closing = false;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private pending = new Map<string, Pending>();

  constructor(private readonly options: ClientOptions) {
    this.clientId = options.clientId;
    for (const jobId of options.adopt ?? []) this.session.adopt(jobId);
  }

  get isConnected(): boolean {
    return this.connected;
  }

  connect(): void {
    this.closing = false;
    const problem = addressProblem(this.options.url);
    if (problem !== null) {
      this.options.onState("refused", problem);
      return;
    }
    this.open();
  }

  close(): void {
    this.closing = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    this.connected = false;
    socket?.close();
    this.failPending(new NotConnected("the connection was closed"));
    this.options.onState("disconnected", "disconnected");
  }

  private open(): void {
    const Impl = this.options.WebSocketImpl ?? WebSocket;
    this.options.onState(this.attempt === 0 ? "connecting" : "reconnecting", `connecting to ${this.options.url}`);
    let socket: WebSocket;
    try {
      socket = new Impl(this.options.url);
    } catch (error) {
      this.options.onState("refused", `"${this.options.url}" is not a websocket address: ${error}`);
      return;
    }
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.session.reset();
    let opened = false;
    let refused: DaemonError | null = null;
    socket.onopen = () => {
      opened = true;
      socket.send(
        this.session.hello({
          clientName: this.options.clientName,
          clientVersion: this.options.clientVersion,
          host: this.options.host,
          token: this.options.token,
          clientId: this.clientId,
          resultFormat: "png",
          previews: true,
        }),
      );
    };
    socket.onmessage = (event: MessageEvent) => {
      if (socket !== this.socket) return;
      try {
        const events =
          typeof event.data === "string" ? this.session.receiveText(event.data) : this.session.receiveBinary(event.data);
        for (const item of events) {
          if (!this.connected) {
            if (item.message.type === "welcome") this.welcomed(item.message);
            else {
              const m = item.message;
              refused =
                m.type === "error"
                  ? new DaemonError(m)
                  : new DaemonError({ code: "handshake_required", message: `expected welcome, got ${m.type}` });
              socket.close();
            }
            continue;
          }
          this.dispatch(item);
        }
      } catch (error) {
        if (error instanceof SessionError) socket.close(1002, "protocol error");
        else throw error;
      }
    };
    socket.onclose = () => {
      if (socket !== this.socket) return;
      this.socket = null;
      const wasConnected = this.connected;
      this.connected = false;
      this.failPending(new NotConnected("the connection to the daemon was lost"));
      if (this.closing) return;
      const delay = RECONNECT_DELAYS[Math.min(this.attempt, RECONNECT_DELAYS.length - 1)] * 1000;
      this.attempt += 1;
      const retry = `retrying in ${Math.round(delay / 100) / 10} s`;
      if (refused !== null) {
        const fatal = refused.code === "unauthorized" || refused.code === "unsupported_protocol";
        this.options.onState(
          fatal ? "refused" : "disconnected",
          `${errorText(refused.code)}${fatal ? "" : ` (${retry})`}`,
          refused,
        );
        if (fatal) return;
      } else if (wasConnected) {
        this.options.onState("reconnecting", "Connection lost; reconnecting…");
      } else if (opened) {
        this.options.onState(
          "disconnected",
          `The underpaint daemon at ${this.options.url} closed the connection during the handshake (${retry}).`,
        );
      } else {
        void this.explainUnreachable(retry);
      }
      this.timer = setTimeout(() => {
        this.timer = null;
        if (!this.closing) this.open();
      }, delay);
    };
  }

  /** Nothing accepted a websocket: say whether nothing listens or another kind of server does. */
  private async explainUnreachable(retry: string): Promise<void> {
    const url = this.options.url;
    const httpUrl = url.replace(/^ws/i, "http");
    const answersHttp = await (this.options.httpProbe ?? fetchProbe)(httpUrl);
    if (this.closing || this.connected) return;
    this.options.onState(
      "disconnected",
      answersHttp
        ? `${url} answers as a plain web server, not as the underpaint daemon: it is probably another app ` +
            `(A1111, Forge and Gradio use port 7860, ComfyUI 8188). underpaint listens on port ${DEFAULT_PORT} ` +
            `unless started with --port (${retry}).`
        : `The underpaint daemon at ${url} is not answering. Start it with \`underpaint serve\` (${retry}).`,
    );
  }

  private welcomed(message: ServerMessageOf<"welcome">): void {
    this.welcome = message;
    this.clientId = message.client_id;
    this.connected = true;
    this.attempt = 0;
    this.options.onState("connected", `connected to ${this.options.url}`);
    this.options.onEvent({ message });
    if (this.session.jobs.size > 0) void this.catchUp();
  }

  /** After a reconnect: fetch every job that finished (or produced results) while we were away. */
  private async catchUp(): Promise<void> {
    let summaries: JobSummary[];
    try {
      summaries = await this.listJobs();
    } catch {
      return;
    }
    for (const jobId of this.session.jobsToFetch(summaries)) this.fetch(jobId);
  }

  private dispatch(event: SessionEvent): void {
    const message = event.message;
    const requestId = "request_id" in message ? message.request_id : undefined;
    if (typeof requestId === "string") {
      const pending = this.pending.get(requestId);
      if (pending !== undefined) {
        if (message.type === "error") {
          this.pending.delete(requestId);
          pending.reject(new DaemonError(message));
        } else if (message.type === pending.expected) {
          this.pending.delete(requestId);
          pending.resolve(message);
        }
      }
    }
    this.options.onEvent(event);
  }

  private failPending(error: Error): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(error);
  }

  /** The one way out: every frame of a message, in order, before anything else is sent. */
  private send(frames: (string | Uint8Array)[]): void {
    const socket = this.socket;
    if (socket === null || !this.connected || socket.readyState !== 1) throw new NotConnected("not connected to the daemon");
    for (const frame of frames) socket.send(frame);
  }

  private request<T extends ServerMessageType>(
    requestId: string,
    expected: T,
    frames: (string | Uint8Array)[],
  ): Promise<ServerMessageOf<T>> {
    return new Promise((resolve, reject) => {
      this.pending.set(requestId, { expected, resolve: resolve as (message: ServerMessage) => void, reject });
      try {
        this.send(frames);
      } catch (error) {
        this.pending.delete(requestId);
        reject(error);
      }
    });
  }

  plan(job: JobSpec): Promise<Planned> {
    const [requestId, text] = this.session.plan(job);
    return this.request(requestId, "planned", [text]);
  }

  submit(job: JobSpec, region?: Rect | null, image?: ImageData | null, mask?: ImageData | null, guides?: Guides): Promise<Accepted> {
    const limit = this.welcome?.limits.max_frame_bytes ?? 0;
    const named: [string, ImageData | null | undefined][] = [
      ["image", image],
      ["mask", mask],
      ...(guides?.controls ?? []).map((data, index): [string, ImageData] => [`controls.${index}`, data]),
      ...(guides?.references ?? []).map((data, index): [string, ImageData] => [`references.${index}`, data]),
    ];
    for (const [name, data] of named) {
      if (data && limit && data.data.byteLength > limit) {
        const code: ErrorCode = "frame_too_large";
        return Promise.reject(new DaemonError({ code, field: name, message: `${name} is larger than the daemon accepts` }));
      }
    }
    const [requestId, frames] = this.session.submit(job, region, image, mask, guides);
    return this.request(requestId, "accepted", frames);
  }

  cancel(jobId: string): void {
    this.send([this.session.cancel(jobId)]);
  }

  async listJobs(): Promise<JobSummary[]> {
    const [requestId, text] = this.session.listJobs();
    return (await this.request(requestId, "jobs", [text])).jobs;
  }

  fetch(jobId: string): void {
    this.send([this.session.fetch(jobId)]);
  }

  // ------------------------------------------------------------ prompt library (PROTOCOL.md §10)

  /** Every style (shipped, then the user's own); `notice` when the user's file was set aside. */
  styles(): Promise<StyleList> {
    const [requestId, text] = this.session.styles();
    return this.request(requestId, "style_list", [text]);
  }

  /** Save (or replace) the user's style; resolves to the whole list. */
  saveStyle(style: Style): Promise<StyleList> {
    const [requestId, text] = this.session.styles({ action: "save", style });
    return this.request(requestId, "style_list", [text]);
  }

  renameStyle(name: string, newName: string): Promise<StyleList> {
    const [requestId, text] = this.session.styles({ action: "rename", name, new_name: newName });
    return this.request(requestId, "style_list", [text]);
  }

  deleteStyle(name: string): Promise<StyleList> {
    const [requestId, text] = this.session.styles({ action: "delete", name });
    return this.request(requestId, "style_list", [text]);
  }

  /** The user's recent prompts and settings, newest first. */
  async history(limit = 50): Promise<HistoryEntry[]> {
    const [requestId, text] = this.session.history(limit);
    return (await this.request(requestId, "history_list", [text])).entries;
  }

  /** The LoRAs jobs may name, with their trigger words (`refused` set for pickles). */
  async loras(): Promise<LoraDescription[]> {
    const [requestId, text] = this.session.loras();
    return (await this.request(requestId, "lora_list", [text])).loras;
  }

  /** A prompt for `image` (the bounding box of `mask` when given). */
  interrogate(image: ImageData, mask?: ImageData | null, flavours?: number): Promise<Interrogated> {
    const [requestId, frames] = this.session.interrogate(image, mask, flavours);
    return this.request(requestId, "interrogated", frames);
  }

  /** Start this connection's live session (resolves to `live_started`); see ui/live.ts. */
  liveStart(live: LiveSpec, mask?: ImageData | null): Promise<LiveStarted> {
    const [requestId, frames] = this.session.liveStart(live, mask);
    return this.request(requestId, "live_started", frames);
  }

  /** Send one live frame (no answer: results come as `live_result` events). */
  liveFrame(seq: number, x: number, y: number, image: ImageData): void {
    this.send(this.session.liveFrame(seq, x, y, image));
  }

  /** End the live session (resolves to `live_stopped`, or fails with `no_live_session`). */
  liveStop(): Promise<LiveStopped> {
    const [requestId, text] = this.session.liveStop();
    return this.request(requestId, "live_stopped", [text]);
  }
}
