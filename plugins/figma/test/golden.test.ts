/**
 * protocol/golden/ against the TypeScript side: the session builds the golden client messages and
 * frames byte for byte, and reads the golden daemon messages with their frames. tests/protocol/
 * test_golden.py holds the Python side to the same files.
 */

import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { decodeFrame, encodeFrame } from "../src/shared/frames";
import {
  type AttachmentRef,
  CLIENT_MESSAGE_TYPES,
  type ClientMessageOf,
  SERVER_MESSAGE_TYPES,
  type ServerMessage,
} from "../src/shared/protocol.gen";
import { ClientSession, type ImageData } from "../src/ui/session";

const golden = resolve(dirname(fileURLToPath(import.meta.url)), "../../../protocol/golden");
const message = <T = ServerMessage>(name: string): T => JSON.parse(readFileSync(join(golden, "messages", `${name}.json`), "utf8"));
const frameBytes = (file: string): Uint8Array => new Uint8Array(readFileSync(join(golden, "frames", file)));

interface GoldenFrame {
  file: string;
  attachment: AttachmentRef;
  payload_hex: string;
}
const frames: GoldenFrame[] = JSON.parse(readFileSync(join(golden, "frames", "frames.json"), "utf8"));
const payload = (frame: GoldenFrame): Uint8Array => Uint8Array.from(Buffer.from(frame.payload_hex, "hex"));
const frameFor = (id: string): GoldenFrame => frames.find((f) => f.attachment.id === id)!;
const imageOf = ({ attachment: a, ...frame }: GoldenFrame): ImageData => ({
  format: a.format,
  width: a.width,
  height: a.height,
  data: payload({ attachment: a, ...frame }),
});

describe("golden frames", () => {
  it.each(frames.map((f) => [f.file, f] as const))("%s decodes and re-encodes byte for byte", (_file, frame) => {
    const bytes = frameBytes(frame.file);
    const { attachment, payload: data } = decodeFrame(bytes);
    expect(attachment).toEqual(frame.attachment);
    expect(Buffer.from(data).toString("hex")).toBe(frame.payload_hex);
    expect(encodeFrame(frame.attachment, payload(frame))).toEqual(bytes);
  });
});

describe("golden messages", () => {
  it("cover every message type", () => {
    const names = readdirSync(join(golden, "messages")).map((f) => f.replace(/\.json$/, ""));
    expect(names.sort()).toEqual([...CLIENT_MESSAGE_TYPES, ...SERVER_MESSAGE_TYPES].sort());
  });

  it("the session builds hello, plan, list_jobs, cancel and fetch as the golden ones", () => {
    const hello = message<ClientMessageOf<"hello">>("hello");
    const text = new ClientSession().hello({
      clientName: hello.client.name,
      clientVersion: hello.client.version,
      host: [hello.host!.name, hello.host!.version!],
      token: hello.token!,
      clientId: hello.client_id!,
      resultFormat: hello.result_format,
      previews: hello.previews,
    });
    expect(JSON.parse(text)).toEqual(hello);
    const plan = message<ClientMessageOf<"plan">>("plan");
    expect(JSON.parse(new ClientSession().plan(plan.job)[1])).toEqual(plan);
    expect(JSON.parse(new ClientSession().listJobs()[1])).toEqual(message("list_jobs"));
    const cancel = message<ClientMessageOf<"cancel">>("cancel");
    expect(JSON.parse(new ClientSession().cancel(cancel.job_id))).toEqual(cancel);
    const fetch = message<ClientMessageOf<"fetch">>("fetch");
    expect(JSON.parse(new ClientSession().fetch(fetch.job_id))).toEqual(fetch);
  });

  it("the session's submit is the golden submit followed by the golden rgba8 and gray8 frames, byte for byte", () => {
    const submit = message<ClientMessageOf<"submit">>("submit");
    const image = frameFor(submit.image!.id);
    const mask = frameFor(submit.mask!.id);
    const [requestId, out] = new ClientSession().submit(submit.job, submit.region, imageOf(image), imageOf(mask));
    expect(requestId).toBe(submit.request_id);
    expect(JSON.parse(out[0] as string)).toEqual(submit);
    expect(out[1]).toEqual(frameBytes(image.file));
    expect(out[2]).toEqual(frameBytes(mask.file));
  });

  it("the session reads every golden daemon message, pairing a result (and a live result) with its png frame", () => {
    for (const type of SERVER_MESSAGE_TYPES) {
      // a fresh session each: one that saw `finished` rightly drops a later `failed` for the same job
      const session = new ClientSession();
      const golden = message(type);
      const events = session.receiveText(JSON.stringify(golden));
      if (golden.type === "result" || golden.type === "live_result") {
        expect(events).toEqual([]);
        const frame = frameFor(golden.layer.image.id);
        const [event] = session.receiveBinary(frameBytes(frame.file));
        expect(event.message).toEqual(golden);
        expect(event.image).toEqual(imageOf(frame));
      } else {
        expect(events.map((e) => e.message)).toEqual([golden]);
      }
    }
  });
});
