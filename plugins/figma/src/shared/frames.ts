/**
 * Binary attachment frames, a mirror of protocol/underpaint_protocol/frames.py: uint32 big-endian
 * header length, the UTF-8 JSON header {id, format, width, height}, then the payload. The golden
 * frames under protocol/golden/ hold both implementations to the same bytes.
 */

import { type AttachmentRef, IMAGE_FORMATS, type ImageFormat, MAX_FRAME_HEADER_BYTES } from "./protocol.gen";

export class FrameError extends Error {}

/** The frame as one buffer; the header's keys are in the protocol's order, without spaces. */
export function encodeFrame(attachment: AttachmentRef, payload: Uint8Array): Uint8Array {
  const header = new TextEncoder().encode(
    JSON.stringify({ id: attachment.id, format: attachment.format, width: attachment.width, height: attachment.height }),
  );
  const frame = new Uint8Array(4 + header.length + payload.length);
  new DataView(frame.buffer).setUint32(0, header.length);
  frame.set(header, 4);
  frame.set(payload, 4 + header.length);
  return frame;
}

/** Split a frame into its declaration and a view of its payload (no copy). */
export function decodeFrame(frame: ArrayBuffer | Uint8Array): { attachment: AttachmentRef; payload: Uint8Array } {
  const bytes = frame instanceof Uint8Array ? frame : new Uint8Array(frame);
  if (bytes.length < 4) throw new FrameError("binary frame shorter than its 4-byte header length");
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  if (length > MAX_FRAME_HEADER_BYTES || 4 + length > bytes.length) {
    throw new FrameError(`binary frame header length ${length} is invalid`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(4, 4 + length)));
  } catch (error) {
    throw new FrameError(`binary frame header is not JSON: ${error}`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new FrameError("binary frame header is not a JSON object");
  }
  const h = header as Record<string, unknown>;
  const width = Number(h.width);
  const height = Number(h.height);
  if (h.id === undefined || !isImageFormat(h.format) || !Number.isInteger(width) || !Number.isInteger(height)) {
    throw new FrameError("binary frame header lacks a valid id, format, width or height");
  }
  return { attachment: { id: String(h.id), format: h.format, width, height }, payload: bytes.subarray(4 + length) };
}

export const isImageFormat = (value: unknown): value is ImageFormat =>
  typeof value === "string" && (IMAGE_FORMATS as readonly string[]).includes(value);
