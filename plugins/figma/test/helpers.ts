import { encodePng, decodePng, type RawImage } from "../src/shared/png";
import { FakeFigma } from "./fake-figma";

/** A real PNG: a horizontal gradient with a blue square, so pixels are position-dependent. */
export async function testImage(width: number, height: number): Promise<Uint8Array> {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const square = x > width / 4 && x < width / 2 && y > height / 4 && y < height / 2;
      data.set(square ? [20, 40, 220, 255] : [Math.round((255 * x) / width), 180, Math.round((255 * y) / height), 255], i);
    }
  }
  return encodePng({ width, height, data });
}

export async function pixels(png: Uint8Array): Promise<RawImage> {
  return decodePng(png);
}

export function at(image: RawImage, x: number, y: number): number[] {
  const i = (y * image.width + x) * 4;
  return Array.from(image.data.subarray(i, i + 4));
}

export function installFake(): FakeFigma {
  const fake = new FakeFigma();
  fake.install();
  return fake;
}
