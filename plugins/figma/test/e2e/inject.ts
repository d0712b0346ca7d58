/**
 * Injected into the sidebar's frame at test time (playwright's addInitScript), never shipped: it
 * wraps WebSocket below the plugin's code to record what goes over the wire in both directions and
 * to play a dropped or closed connection right after a job is accepted. Bundled on its own by the
 * e2e test; runs only in the frame that loads /ui.html.
 */

interface Sent {
  at: number;
  text?: { type: string; [key: string]: unknown };
  header?: { id: string; format: string; width: number; height: number };
  payload?: Uint8Array;
}

interface Received {
  at: number;
  message: { type: string; [key: string]: unknown };
}

export interface WireRecord {
  sent: Sent[];
  received: Received[];
  /** Drop the socket (as a network failure would) right after the next `accepted`. */
  dropAfterAccept: boolean;
  /** After the next `accepted`: hear nothing more, close, and refuse new sockets (a sidebar gone for good). */
  closeAfterAccept: boolean;
  /** Hold the next `submit` (and everything sent after it) this many ms, as a slow upload would. */
  holdSubmitMs: number;
  gone: boolean;
}

if (location.pathname.endsWith("/ui.html")) {
  const record: WireRecord = {
    sent: [],
    received: [],
    dropAfterAccept: false,
    closeAfterAccept: false,
    holdSubmitMs: 0,
    gone: false,
  };
  (window as unknown as { __wire: WireRecord }).__wire = record;
  const Native = WebSocket;

  class RecordingSocket extends Native {
    private held: (string | ArrayBufferLike | Blob | ArrayBufferView)[] | null = null;

    constructor(url: string | URL, protocols?: string | string[]) {
      if (record.gone) throw new Error("this sidebar is gone (test)");
      super(url, protocols);
      // Registered before the plugin sets onmessage, so it runs first for every message.
      this.addEventListener("message", (event: MessageEvent) => {
        if (record.gone) {
          event.stopImmediatePropagation();
          return;
        }
        if (typeof event.data !== "string") return;
        const message = JSON.parse(event.data);
        record.received.push({ at: performance.now(), message });
        if (message.type !== "accepted") return;
        if (record.closeAfterAccept) {
          record.closeAfterAccept = false;
          // the plugin still handles this `accepted` (and saves the pending job), then hears nothing more
          record.gone = true;
          setTimeout(() => this.close(), 0);
        } else if (record.dropAfterAccept) {
          record.dropAfterAccept = false;
          setTimeout(() => this.close(4000, "dropped by the test"), 0);
        }
      });
    }

    send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
      if (typeof data === "string") record.sent.push({ at: performance.now(), text: JSON.parse(data) });
      else if (ArrayBuffer.isView(data) || data instanceof ArrayBuffer) {
        const bytes = ArrayBuffer.isView(data)
          ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
          : new Uint8Array(data);
        const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
        const header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + length)));
        record.sent.push({ at: performance.now(), header, payload: bytes.slice(4 + length) });
      }
      if (this.held !== null) {
        this.held.push(data);
      } else if (typeof data === "string" && record.holdSubmitMs > 0 && JSON.parse(data).type === "submit") {
        this.held = [data];
        const ms = record.holdSubmitMs;
        record.holdSubmitMs = 0;
        setTimeout(() => {
          const held = this.held ?? [];
          this.held = null;
          for (const item of held) super.send(item);
        }, ms);
      } else {
        super.send(data);
      }
    }
  }
  (window as unknown as { WebSocket: typeof WebSocket }).WebSocket = RecordingSocket;
}
