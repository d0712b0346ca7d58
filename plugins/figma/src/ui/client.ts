/**
 * The websocket client, a TypeScript mirror of protocol/underpaint_protocol/client.py for the
 * browser: requests return promises, events arrive through ``onEvent``, and a dropped socket
 * reconnects with backoff under the same client id, then fetches the results of jobs that finished
 * meanwhile. ``unauthorized`` and ``unsupported_protocol`` stop the retries: they need the user.
 */

import { ClientSession, type ImageData, type Message, SessionError, type SessionEvent } from "./session";

export const RECONNECT_DELAYS = [200, 500, 1000, 2000, 5000];

export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "down" | "refused";

export class DaemonError extends Error {
  readonly code: string;
  readonly field: string | null;
  constructor(readonly payload: Message) {
    super(String(payload.message ?? "daemon error"));
    this.code = String(payload.code ?? "internal_error");
    this.field = typeof payload.field === "string" ? payload.field : null;
  }
}

export class NotConnected extends Error {}

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
}

interface Pending {
  expected: string;
  resolve: (message: Message) => void;
  reject: (error: Error) => void;
}

export class UnderpaintClient {
  readonly session = new ClientSession();
  welcome: Message | null = null;
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
  }

  /** Drop the socket as a network failure would (for tests and the "Reconnect" button). */
  dropForTest(): void {
    this.socket?.close(4000, "dropped");
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
            if (item.type === "welcome") this.welcomed(item.message);
            else {
              refused = new DaemonError(item.message);
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
      if (refused !== null) {
        const fatal = refused.code === "unauthorized" || refused.code === "unsupported_protocol";
        this.options.onState(fatal ? "refused" : "down", `${refused.code}: ${refused.message}`, refused);
        if (fatal) return;
      } else if (wasConnected) {
        this.options.onState("reconnecting", "connection lost; reconnecting…");
      }
      const delay = RECONNECT_DELAYS[Math.min(this.attempt, RECONNECT_DELAYS.length - 1)];
      this.attempt += 1;
      if (!wasConnected && refused === null) {
        const why = opened ? "closed the connection during the handshake" : "is not answering";
        this.options.onState(
          "down",
          `The underpaint daemon at ${this.options.url} ${why}. Start it with \`underpaint serve\` (retrying in ${Math.round(delay / 100) / 10} s).`,
        );
      }
      this.timer = setTimeout(() => {
        this.timer = null;
        if (!this.closing) this.open();
      }, delay);
    };
  }

  private welcomed(message: Message): void {
    this.welcome = message;
    this.clientId = String(message.client_id);
    this.connected = true;
    this.attempt = 0;
    this.options.onState("connected", `connected to ${this.options.url}`);
    this.options.onEvent({ message, type: "welcome" });
    if (this.session.jobs.size > 0) void this.catchUp();
  }

  /** After a reconnect: fetch every job that finished (or produced results) while we were away. */
  private async catchUp(): Promise<void> {
    let summaries: Message[];
    try {
      summaries = await this.listJobs();
    } catch {
      return;
    }
    for (const jobId of this.session.jobsToFetch(summaries)) this.fetch(jobId);
  }

  private dispatch(event: SessionEvent): void {
    const requestId = event.message.request_id;
    if (typeof requestId === "string") {
      const pending = this.pending.get(requestId);
      if (pending !== undefined) {
        if (event.type === "error") {
          this.pending.delete(requestId);
          pending.reject(new DaemonError(event.message));
        } else if (event.type === pending.expected) {
          this.pending.delete(requestId);
          pending.resolve(event.message);
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

  private send(frames: (string | Uint8Array)[]): void {
    const socket = this.socket;
    if (socket === null || !this.connected || socket.readyState !== 1) throw new NotConnected("not connected to the daemon");
    for (const frame of frames) socket.send(frame);
  }

  private request(requestId: string, expected: string, frames: (string | Uint8Array)[]): Promise<Message> {
    return new Promise((resolve, reject) => {
      this.pending.set(requestId, { expected, resolve, reject });
      try {
        this.send(frames);
      } catch (error) {
        this.pending.delete(requestId);
        reject(error);
      }
    });
  }

  plan(job: Message): Promise<Message> {
    const [requestId, text] = this.session.plan(job);
    return this.request(requestId, "planned", [text]);
  }

  submit(job: Message, region?: Message | null, image?: ImageData | null, mask?: ImageData | null): Promise<Message> {
    const limit = Number(this.welcome?.limits?.max_frame_bytes ?? 0);
    for (const [name, data] of [["image", image], ["mask", mask]] as const) {
      if (data && limit && data.data.byteLength > limit) {
        return Promise.reject(
          new DaemonError({ code: "frame_too_large", field: name, message: `${name} is larger than the daemon accepts` }),
        );
      }
    }
    const [requestId, frames] = this.session.submit(job, region, image, mask);
    return this.request(requestId, "accepted", frames);
  }

  cancel(jobId: string): void {
    this.send([this.session.cancel(jobId)]);
  }

  async listJobs(): Promise<Message[]> {
    const [requestId, text] = this.session.listJobs();
    const reply = await this.request(requestId, "jobs", [text]);
    return reply.jobs as Message[];
  }

  fetch(jobId: string): void {
    this.send([this.session.fetch(jobId)]);
  }
}
