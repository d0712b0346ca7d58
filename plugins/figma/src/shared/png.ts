/**
 * A small PNG codec (8-bit gray, gray+alpha, RGB, RGBA; no interlace) on top of the platform's
 * CompressionStream, so one implementation runs in Node 18+, browsers and the tests' fake figma.
 * The plugin itself only reads PNG headers (pngSize); the fake figma renders and encodes with it.
 */

export interface RawImage {
  width: number;
  height: number;
  /** RGBA, straight alpha, rows top to bottom. */
  data: Uint8Array;
}

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

/** Width and height from a PNG's IHDR, or null when the bytes are not a PNG. */
export function pngSize(bytes: Uint8Array): { width: number; height: number } | null {
  if (bytes.length < 24) return null;
  for (let i = 0; i < 8; i++) if (bytes[i] !== SIGNATURE[i]) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (String.fromCharCode(bytes[12], bytes[13], bytes[14], bytes[15]) !== "IHDR") return null;
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

let crcTable: Uint32Array | null = null;

function crc32(bytes: Uint8Array): number {
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

async function transform(data: Uint8Array, stream: CompressionStream | DecompressionStream): Promise<Uint8Array> {
  const output = new Blob([data as BlobPart]).stream().pipeThrough(stream as unknown as TransformStream);
  return new Uint8Array(await new Response(output).arrayBuffer());
}

function chunk(type: string, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(payload, 8);
  view.setUint32(8 + payload.length, crc32(out.subarray(4, 8 + payload.length)));
  return out;
}

/** Encode straight-alpha RGBA as an 8-bit RGBA PNG. */
export async function encodePng(image: RawImage): Promise<Uint8Array> {
  const { width, height, data } = image;
  if (data.length !== width * height * 4) throw new Error(`RGBA data is ${data.length} bytes, not ${width}x${height}x4`);
  const stride = width * 4;
  const raw = new Uint8Array((stride + 1) * height);
  for (let y = 0; y < height; y++) raw.set(data.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, 6, 0, 0, 0], 8);
  const parts = [
    new Uint8Array(SIGNATURE),
    chunk("IHDR", header),
    chunk("IDAT", await transform(raw, new CompressionStream("deflate"))),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Decode an 8-bit, non-interlaced PNG to straight-alpha RGBA. */
export async function decodePng(bytes: Uint8Array): Promise<RawImage> {
  const size = pngSize(bytes);
  if (size === null) throw new Error("not a PNG");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 8;
  let depth = 0;
  let colour = 0;
  let interlace = 0;
  const idat: Uint8Array[] = [];
  let palette: Uint8Array | null = null;
  let transparency: Uint8Array | null = null;
  while (offset + 8 <= bytes.length) {
    const length = view.getUint32(offset);
    const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
    const payload = bytes.subarray(offset + 8, offset + 8 + length);
    if (type === "IHDR") {
      depth = payload[8];
      colour = payload[9];
      interlace = payload[12];
    } else if (type === "PLTE") palette = payload;
    else if (type === "tRNS") transparency = payload;
    else if (type === "IDAT") idat.push(payload);
    else if (type === "IEND") break;
    offset += 12 + length;
  }
  if (depth !== 8 || interlace !== 0) throw new Error(`unsupported PNG: depth ${depth}, interlace ${interlace}`);
  const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[colour];
  if (channels === undefined) throw new Error(`unsupported PNG colour type ${colour}`);
  const joined = new Uint8Array(idat.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of idat) {
    joined.set(part, at);
    at += part.length;
  }
  const raw = await transform(joined, new DecompressionStream("deflate"));
  const { width, height } = size;
  const stride = width * channels;
  const pixels = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = pixels.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? out[x - channels] : 0;
      const b = prev[x];
      const c = x >= channels ? prev[x - channels] : 0;
      let value = line[x];
      if (filter === 1) value += a;
      else if (filter === 2) value += b;
      else if (filter === 3) value += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        value += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (filter !== 0) throw new Error(`bad PNG filter ${filter}`);
      out[x] = value & 0xff;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const s = i * channels;
    let r: number, g: number, b: number, alpha: number;
    if (colour === 0) [r, g, b, alpha] = [pixels[s], pixels[s], pixels[s], 255];
    else if (colour === 2) [r, g, b, alpha] = [pixels[s], pixels[s + 1], pixels[s + 2], 255];
    else if (colour === 3) {
      const index = pixels[s];
      [r, g, b] = palette ? [palette[index * 3], palette[index * 3 + 1], palette[index * 3 + 2]] : [0, 0, 0];
      alpha = transparency && index < transparency.length ? transparency[index] : 255;
    } else if (colour === 4) [r, g, b, alpha] = [pixels[s], pixels[s], pixels[s], pixels[s + 1]];
    else [r, g, b, alpha] = [pixels[s], pixels[s + 1], pixels[s + 2], pixels[s + 3]];
    rgba.set([r, g, b, alpha], i * 4);
  }
  return { width, height, data: rgba };
}
