import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { decodePng, encodePng, pngSize } from "../src/shared/png";

describe("png codec", () => {
  it("encodes PNGs that pngjs reads back exactly", async () => {
    const data = new Uint8Array(7 * 5 * 4).map((_, i) => (i * 37) % 256);
    const png = await encodePng({ width: 7, height: 5, data });
    expect(pngSize(png)).toEqual({ width: 7, height: 5 });
    const read = PNG.sync.read(Buffer.from(png));
    expect(read.width).toBe(7);
    expect(Array.from(read.data)).toEqual(Array.from(data));
  });

  it("decodes filtered PNGs written by another encoder (all filter types, RGB and gray)", async () => {
    for (const colorType of [6, 2, 0] as const) {
      const png = new PNG({ width: 33, height: 17, colorType, inputColorType: 6 });
      for (let i = 0; i < png.data.length; i++) png.data[i] = i % 4 === 3 ? 255 : (i * 13 + (i >> 7)) % 256;
      if (colorType === 0) for (let i = 0; i < png.data.length; i += 4) png.data[i + 1] = png.data[i + 2] = png.data[i];
      const bytes = new Uint8Array(PNG.sync.write(png, { colorType, inputColorType: 6, filterType: -1 }));
      const decoded = await decodePng(bytes);
      expect([decoded.width, decoded.height]).toEqual([33, 17]);
      expect(Array.from(decoded.data)).toEqual(Array.from(png.data));
    }
  });

  it("rejects what is not a PNG", () => {
    expect(pngSize(new Uint8Array([1, 2, 3]))).toBeNull();
  });
});
