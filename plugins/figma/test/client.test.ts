/** The client's connection states and what it says when the address is wrong, with a scripted WebSocket. */

import { describe, expect, it } from "vitest";
import { DEFAULT_PORT } from "../src/shared/protocol.gen";
import { addressProblem, type ConnectionState, UnderpaintClient } from "../src/ui/client";

/** A socket that never opens: closes right away, as a refused TCP connection or a failed upgrade does. */
class FailingSocket {
  static urls: string[] = [];
  binaryType = "blob";
  readyState = 0;
  onopen: (() => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(url: string) {
    FailingSocket.urls.push(url);
    setTimeout(() => this.onclose?.(), 0);
  }
  send(): void {}
  close(): void {}
}

function connect(url: string, answersHttp: boolean): Promise<[ConnectionState, string][]> {
  const states: [ConnectionState, string][] = [];
  let ended = false;
  return new Promise((done) => {
    const client = new UnderpaintClient({
      url,
      clientName: "test",
      clientVersion: "0",
      onEvent: () => {},
      onState: (state, detail) => {
        if (ended) return;
        states.push([state, detail]);
        if (state === "refused" || (state === "disconnected" && states.length > 1)) {
          ended = true;
          client.close();
          done(states);
        }
      },
      WebSocketImpl: FailingSocket as unknown as typeof WebSocket,
      httpProbe: async (httpUrl) => {
        expect(httpUrl).toBe(url.replace(/^ws/, "http"));
        return answersHttp;
      },
    });
    client.connect();
  });
}

describe("UnderpaintClient", () => {
  it("refuses an http:// address before connecting, naming the websocket address to use", async () => {
    expect(addressProblem("ws://localhost:1")).toBeNull();
    expect(addressProblem("localhost:7423")).toMatch(/not a websocket address/);
    FailingSocket.urls = [];
    const states = await connect("http://localhost:7860", true);
    expect(states).toEqual([["refused", expect.stringContaining(`web (http) address`)]]);
    expect(states[0][1]).toContain(`ws://localhost:${DEFAULT_PORT}`);
    expect(FailingSocket.urls).toEqual([]);
  });

  it("says when a plain web server answers instead of the daemon", async () => {
    const states = await connect("ws://localhost:7860", true);
    expect(states[0][0]).toBe("connecting");
    expect(states.at(-1)![1]).toMatch(/plain web server.*7860.*port 7423/s);
  });

  it("says to start the daemon when nothing answers", async () => {
    const states = await connect("ws://localhost:9", false);
    expect(states.at(-1)).toEqual(["disconnected", expect.stringContaining("underpaint serve")]);
  });
});
