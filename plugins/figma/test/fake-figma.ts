/**
 * A fake `figma` global for tests, in Node (vitest) and in the browser (the e2e host page).
 *
 * It models what the plugin uses: a page of frames, groups, rectangles, ellipses and vectors with
 * positions, fills, effects and visibility; clone/remove/append; createImage with Figma's 4096 px
 * limit; clientStorage; figma.ui messaging; commitUndo counting. exportAsync really renders the
 * subtree (solid and image fills, ellipses, clipping, opacity, layer blur) into a real PNG.
 */

import { decodePng, encodePng, pngSize, type RawImage } from "../src/shared/png";

type Matrix = [[number, number, number], [number, number, number]];
/** Figma's node API is wide; the fake takes its arguments untyped. */
type Any = any;

let nextId = 1;
const CONTAINERS = new Set(["PAGE", "FRAME", "GROUP", "COMPONENT", "INSTANCE"]);

export class FakeNode {
  id: string;
  name: string;
  parent: FakeNode | null = null;
  children: FakeNode[] = [];
  x = 0;
  y = 0;
  private _width = 100;
  private _height = 100;
  visible = true;
  locked = false;
  opacity = 1;
  private _fills: Any[] = [];
  strokes: Any[] = [];
  effects: Any[] = [];
  blendMode = "PASS_THROUGH";
  clipsContent = false;
  removed = false;
  rotation = 0;
  /** Only on the page node (defined there as an accessor that fires selectionchange). */
  declare selection: FakeNode[];
  private pluginData = new Map<string, string>();

  constructor(
    readonly fake: FakeFigma,
    readonly type: string,
    name?: string,
  ) {
    this.id = `${nextId++}:${type.length}`;
    this.name = name ?? type.charAt(0) + type.slice(1).toLowerCase();
    fake.nodes.set(this.id, this);
  }

  get fills(): Any[] {
    return this._fills;
  }
  set fills(fills: Any[]) {
    this._fills = fills;
    this.fake.changed(this, "PROPERTY_CHANGE", ["fills"]);
  }

  /** Only on the page node: Figma's PageNode.on("nodechange") (see FakeFigma.changed). */
  on(event: string, handler: (change: Any) => void): void {
    this.fake.pageListeners.push({ event, handler });
  }
  off(event: string, handler: (change: Any) => void): void {
    const at = this.fake.pageListeners.findIndex((l) => l.event === event && l.handler === handler);
    if (at >= 0) this.fake.pageListeners.splice(at, 1);
  }

  get width(): number {
    return this.type === "GROUP" ? this.groupBounds().width : this._width;
  }
  get height(): number {
    return this.type === "GROUP" ? this.groupBounds().height : this._height;
  }

  private groupBounds(): { x: number; y: number; width: number; height: number } {
    if (this.children.length === 0) return { x: this.x, y: this.y, width: 0, height: 0 };
    const xs = this.children.map((c) => [c.x, c.x + c.width]).flat();
    const ys = this.children.map((c) => [c.y, c.y + c.height]).flat();
    const x = Math.min(...xs);
    const y = Math.min(...ys);
    return { x, y, width: Math.max(...xs) - x, height: Math.max(...ys) - y };
  }

  resize(width: number, height: number): void {
    if (!(width >= 0.01 && height >= 0.01)) throw new Error(`resize(${width}, ${height}): sides must be >= 0.01`);
    this._width = width;
    this._height = height;
  }

  /** Origin of this node's coordinate space (its parent's, skipping groups as Figma does), absolute. */
  private containerOrigin(): { x: number; y: number } {
    let p = this.parent;
    while (p !== null && p.type === "GROUP") p = p.parent;
    if (p === null || p.type === "PAGE") return { x: 0, y: 0 };
    const b = p.absoluteBox();
    return { x: b.x, y: b.y };
  }

  absoluteBox(): { x: number; y: number; width: number; height: number } {
    if (this.type === "GROUP") {
      const o = this.containerOrigin();
      const g = this.groupBounds();
      return { x: o.x + g.x, y: o.y + g.y, width: g.width, height: g.height };
    }
    const o = this.containerOrigin();
    return { x: o.x + this.x, y: o.y + this.y, width: this.width, height: this.height };
  }

  get absoluteTransform(): Matrix {
    const b = this.absoluteBox();
    return [
      [1, 0, b.x],
      [0, 1, b.y],
    ];
  }

  get relativeTransform(): Matrix {
    return [
      [1, 0, this.x],
      [0, 1, this.y],
    ];
  }

  set relativeTransform(m: Matrix) {
    this.x = m[0][2];
    this.y = m[1][2];
    this.rotation = (Math.atan2(-m[1][0], m[0][0]) * 180) / Math.PI;
  }

  get absoluteBoundingBox(): { x: number; y: number; width: number; height: number } {
    return this.absoluteBox();
  }

  get absoluteRenderBounds(): { x: number; y: number; width: number; height: number } | null {
    if (!this.visible) return null;
    const b = this.absoluteBox();
    const blur = this.effects.filter((e) => e.type === "LAYER_BLUR" && e.visible !== false);
    const r = blur.reduce((m, e) => Math.max(m, e.radius), 0);
    return { x: b.x - r, y: b.y - r, width: b.width + 2 * r, height: b.height + 2 * r };
  }

  appendChild(child: FakeNode): void {
    this.insertChild(this.children.length, child);
  }

  insertChild(index: number, child: FakeNode): void {
    if (!CONTAINERS.has(this.type)) throw new Error(`${this.type} cannot have children`);
    if (child.parent) {
      const at = child.parent.children.indexOf(child);
      child.parent.children.splice(at, 1);
      if (child.parent === this && at < index) index -= 1;
    }
    const moved = child.parent !== null;
    this.children.splice(Math.max(0, Math.min(index, this.children.length)), 0, child);
    child.parent = this;
    if (moved) this.fake.changed(child, "PROPERTY_CHANGE", ["parent"]);
    else this.fake.changed(child, "CREATE");
  }

  remove(): void {
    if (this.parent) this.parent.children.splice(this.parent.children.indexOf(this), 1);
    this.parent = null;
    this.removed = true;
    this.fake.nodes.delete(this.id);
    this.fake.changed(this, "DELETE");
  }

  clone(): FakeNode {
    const copy = this.copyTree();
    if (this.parent) this.parent.insertChild(this.parent.children.indexOf(this) + 1, copy);
    return copy;
  }

  private copyTree(): FakeNode {
    const copy = new FakeNode(this.fake, this.type, this.name);
    Object.assign(copy, {
      x: this.x,
      y: this.y,
      _width: this._width,
      _height: this._height,
      visible: this.visible,
      opacity: this.opacity,
      fills: structuredClone(this.fills),
      strokes: structuredClone(this.strokes),
      effects: structuredClone(this.effects),
      blendMode: this.blendMode,
      clipsContent: this.clipsContent,
      rotation: this.rotation,
    });
    for (const child of this.children) {
      const c = child.copyTree();
      copy.children.push(c);
      c.parent = copy;
    }
    return copy;
  }

  setPluginData(key: string, value: string): void {
    this.pluginData.set(key, value);
  }
  getPluginData(key: string): string {
    return this.pluginData.get(key) ?? "";
  }

  async exportAsync(settings: Any = {}): Promise<Uint8Array> {
    if (this.removed) throw new Error("the node was removed");
    if ((settings.format ?? "PNG") !== "PNG") throw new Error("the fake only exports PNG");
    const c = settings.constraint ?? { type: "SCALE", value: 1 };
    const box = this.absoluteBox();
    const scale = c.type === "WIDTH" ? c.value / box.width : c.type === "HEIGHT" ? c.value / box.height : c.value;
    const image = await render(this, scale);
    this.fake.exports.push({ nodeId: this.id, name: this.name, scale, width: image.width, height: image.height });
    return encodePng(image);
  }
}

interface FakeImage {
  hash: string;
  bytes: Uint8Array;
  getBytesAsync(): Promise<Uint8Array>;
  getSizeAsync(): Promise<{ width: number; height: number }>;
}

export class FakeFigma {
  readonly nodes = new Map<string, FakeNode>();
  readonly images = new Map<string, FakeImage>();
  readonly storage = new Map<string, unknown>();
  readonly notifications: { message: string; options?: Any }[] = [];
  readonly exports: { nodeId: string; name: string; scale: number; width: number; height: number }[] = [];
  readonly toUi: unknown[] = [];
  undoCommits = 0;
  uiHandler: ((message: Any) => void) | null = null;
  /** Where figma.ui.postMessage goes (the e2e host page forwards it into the iframe). */
  onUiMessage: (message: unknown) => void = () => {};
  private listeners = new Map<string, ((...args: Any[]) => void)[]>();
  readonly pageListeners: { event: string; handler: (change: Any) => void }[] = [];
  private pendingChanges: Any[] = [];
  readonly page: FakeNode;
  readonly figma: Any;

  constructor() {
    this.page = new FakeNode(this, "PAGE", "Page 1");
    let selection: FakeNode[] = [];
    const fake = this;
    Object.defineProperty(this.page, "selection", {
      get: () => selection.filter((n) => !n.removed),
      set: (nodes: FakeNode[]) => {
        selection = [...nodes];
        fake.emit("selectionchange");
      },
    });
    this.figma = {
      get currentPage() {
        return fake.page;
      },
      root: { type: "DOCUMENT", children: [this.page] },
      mixed: Symbol("mixed"),
      showUI: (html: string, options?: Any) => {
        this.uiOptions = { html, options };
      },
      ui: {
        postMessage: (message: unknown) => {
          this.toUi.push(message);
          this.onUiMessage(message);
        },
        set onmessage(handler: ((message: Any) => void) | null) {
          fake.uiHandler = handler;
        },
        get onmessage() {
          return fake.uiHandler;
        },
        on: (event: string, handler: (message: Any) => void) => {
          if (event === "message") fake.uiHandler = handler;
        },
        resize: () => {},
        close: () => {},
      },
      on: (event: string, handler: (...args: Any[]) => void) => {
        this.listeners.set(event, [...(this.listeners.get(event) ?? []), handler]);
      },
      off: () => {},
      clientStorage: {
        getAsync: async (key: string) => structuredClone(this.storage.get(key)),
        setAsync: async (key: string, value: unknown) => {
          this.storage.set(key, structuredClone(value));
        },
        deleteAsync: async (key: string) => {
          this.storage.delete(key);
        },
        keysAsync: async () => [...this.storage.keys()],
      },
      createRectangle: () => this.add(new FakeNode(this, "RECTANGLE"), [{ type: "SOLID", color: { r: 0.85, g: 0.85, b: 0.85 } }]),
      createEllipse: () => this.add(new FakeNode(this, "ELLIPSE"), [{ type: "SOLID", color: { r: 0.85, g: 0.85, b: 0.85 } }]),
      createVector: () => this.add(new FakeNode(this, "VECTOR"), []),
      createFrame: () => {
        const frame = this.add(new FakeNode(this, "FRAME"), [{ type: "SOLID", color: { r: 1, g: 1, b: 1 } }]);
        frame.clipsContent = true;
        return frame;
      },
      group: (nodes: FakeNode[], parent: FakeNode, index?: number) => {
        if (nodes.length === 0) throw new Error("group() needs nodes");
        const group = new FakeNode(this, "GROUP");
        parent.insertChild(index ?? parent.children.length, group);
        for (const node of nodes) group.appendChild(node);
        return group;
      },
      createImage: (bytes: Uint8Array) => {
        const size = pngSize(bytes);
        if (size === null) throw new Error("Image type is unsupported");
        if (size.width > 4096 || size.height > 4096) {
          throw new Error(`Image is too large: ${size.width}x${size.height} (max 4096x4096)`);
        }
        const hash = `img${this.images.size + 1}`;
        const image: FakeImage = {
          hash,
          bytes: bytes.slice(),
          getBytesAsync: async () => image.bytes,
          getSizeAsync: async () => size,
        };
        this.images.set(hash, image);
        return image;
      },
      getImageByHash: (hash: string) => this.images.get(hash) ?? null,
      getNodeByIdAsync: async (id: string) => (id === this.page.id ? this.page : this.nodes.get(id) ?? null),
      getNodeById: () => {
        throw new Error('getNodeById is not allowed with documentAccess "dynamic-page"; use getNodeByIdAsync');
      },
      commitUndo: () => {
        this.undoCommits += 1;
      },
      notify: (message: string, options?: Any) => {
        this.notifications.push({ message, options });
        return { cancel: () => {} };
      },
      closePlugin: () => {},
      viewport: { center: { x: 0, y: 0 }, scrollAndZoomIntoView: () => {} },
    };
  }

  uiOptions: Any = null;

  private add(node: FakeNode, fills: Any[]): FakeNode {
    node.fills = fills;
    this.page.appendChild(node);
    return node;
  }

  /** A node was created, removed or changed: Figma tells the page's "nodechange" listeners, batched
   *  after the change (a microtask here), as NodeChangeEvent { nodeChanges }. */
  changed(node: FakeNode, type: "CREATE" | "DELETE" | "PROPERTY_CHANGE", properties: string[] = []): void {
    if (this.pageListeners.length === 0) return;
    const change = type === "DELETE" ? { id: node.id, type, node: { id: node.id, removed: true, type: node.type } } : { id: node.id, type, node, properties };
    if (this.pendingChanges.length === 0) {
      queueMicrotask(() => {
        const nodeChanges = this.pendingChanges.splice(0);
        for (const { event, handler } of [...this.pageListeners]) if (event === "nodechange") handler({ nodeChanges });
      });
    }
    this.pendingChanges.push(change);
  }

  /** Fire a figma.on() event ("selectionchange", "close"). */
  emit(event: string): void {
    for (const handler of this.listeners.get(event) ?? []) handler();
  }

  /** A message from the UI iframe, as Figma delivers it to figma.ui.onmessage. */
  fromUi(message: unknown): void {
    this.uiHandler?.(message);
  }

  /** Test helper: a rectangle with an image fill made from real PNG bytes. */
  imageNode(name: string, png: Uint8Array, x: number, y: number, width: number, height: number, parent?: FakeNode): FakeNode {
    const image = this.figma.createImage(png);
    const node: FakeNode = this.figma.createRectangle();
    node.name = name;
    (parent ?? this.page).appendChild(node);
    node.resize(width, height);
    node.x = x;
    node.y = y;
    node.fills = [{ type: "IMAGE", imageHash: image.hash, scaleMode: "FILL", visible: true }];
    return node;
  }

  shape(type: "ELLIPSE" | "RECTANGLE", name: string, x: number, y: number, width: number, height: number, parent?: FakeNode): FakeNode {
    const node: FakeNode = type === "ELLIPSE" ? this.figma.createEllipse() : this.figma.createRectangle();
    node.name = name;
    (parent ?? this.page).appendChild(node);
    node.resize(width, height);
    node.x = x;
    node.y = y;
    node.fills = [{ type: "SOLID", color: { r: 1, g: 0.2, b: 0.2 } }];
    return node;
  }

  frame(name: string, x: number, y: number, width: number, height: number, parent?: FakeNode): FakeNode {
    const node: FakeNode = this.figma.createFrame();
    node.name = name;
    (parent ?? this.page).appendChild(node);
    node.resize(width, height);
    node.x = x;
    node.y = y;
    return node;
  }

  /** Install as the global `figma` (and `__html__`) the way Figma's sandbox provides them. */
  install(target: Any = globalThis): void {
    target.figma = this.figma;
    target.__html__ = "<html></html>";
  }
}

// ---------------------------------------------------------------- rendering

function collectImages(node: FakeNode, out: Set<string>): void {
  for (const fill of node.fills) if (fill.type === "IMAGE" && fill.imageHash) out.add(fill.imageHash);
  for (const child of node.children) collectImages(child, out);
}

interface Target {
  width: number;
  height: number;
  /** premultiplied RGBA floats 0..1 */
  data: Float32Array;
  /** absolute design coordinates of pixel (0, 0)'s corner, and pixels per design unit */
  ox: number;
  oy: number;
  scale: number;
}

async function render(root: FakeNode, scale: number): Promise<RawImage> {
  const box = root.absoluteBox();
  const width = Math.max(1, Math.round(box.width * scale));
  const height = Math.max(1, Math.round(box.height * scale));
  const hashes = new Set<string>();
  collectImages(root, hashes);
  const decoded = new Map<string, RawImage>();
  for (const hash of hashes) {
    const image = root.fake.images.get(hash);
    if (image) decoded.set(hash, await decodePng(image.bytes));
  }
  const target: Target = { width, height, data: new Float32Array(width * height * 4), ox: box.x, oy: box.y, scale };
  drawNode(root, target, decoded, true);
  const out = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const a = target.data[i * 4 + 3];
    for (let c = 0; c < 3; c++) out[i * 4 + c] = a > 0 ? Math.round(Math.min(1, target.data[i * 4 + c] / a) * 255) : 0;
    out[i * 4 + 3] = Math.round(Math.min(1, a) * 255);
  }
  return { width, height, data: out };
}

function drawNode(node: FakeNode, target: Target, images: Map<string, RawImage>, isRoot = false): void {
  if (!node.visible && !isRoot) return;
  const layer: Target = { ...target, data: new Float32Array(target.data.length) };
  const box = node.absoluteBox();
  const ellipse = node.type === "ELLIPSE";
  if (node.type !== "GROUP") {
    for (const fill of node.fills) {
      if (fill.visible === false) continue;
      const opacity = fill.opacity ?? 1;
      const image = fill.type === "IMAGE" ? images.get(fill.imageHash) : undefined;
      forEachPixel(layer, box, ellipse, (i, u, v) => {
        let r: number, g: number, b: number, a: number;
        if (fill.type === "SOLID") [r, g, b, a] = [fill.color.r, fill.color.g, fill.color.b, fill.color.a ?? 1];
        else if (image) {
          const sx = Math.min(image.width - 1, Math.floor(u * image.width));
          const sy = Math.min(image.height - 1, Math.floor(v * image.height));
          const s = (sy * image.width + sx) * 4;
          [r, g, b, a] = [image.data[s] / 255, image.data[s + 1] / 255, image.data[s + 2] / 255, image.data[s + 3] / 255];
        } else return;
        a *= opacity;
        over(layer.data, i, r * a, g * a, b * a, a);
      });
    }
  }
  for (const child of node.children) drawNode(child, layer, images);
  if (node.clipsContent && node.type !== "GROUP") clip(layer, box);
  for (const effect of node.effects) {
    if (effect.type === "LAYER_BLUR" && effect.visible !== false && effect.radius > 0) blur(layer, (effect.radius * target.scale) / 2);
  }
  const opacity = node.opacity;
  for (let i = 0; i < layer.width * layer.height; i++) {
    const a = layer.data[i * 4 + 3] * opacity;
    if (a <= 0) continue;
    over(target.data, i, layer.data[i * 4] * opacity, layer.data[i * 4 + 1] * opacity, layer.data[i * 4 + 2] * opacity, a);
  }
}

function over(data: Float32Array, i: number, r: number, g: number, b: number, a: number): void {
  const k = 1 - a;
  data[i * 4] = r + data[i * 4] * k;
  data[i * 4 + 1] = g + data[i * 4 + 1] * k;
  data[i * 4 + 2] = b + data[i * 4 + 2] * k;
  data[i * 4 + 3] = a + data[i * 4 + 3] * k;
}

/** Calls fn(pixelIndex, u, v) for every pixel whose centre lies inside the node's shape. */
function forEachPixel(
  t: Target,
  box: { x: number; y: number; width: number; height: number },
  ellipse: boolean,
  fn: (i: number, u: number, v: number) => void,
): void {
  const x0 = Math.max(0, Math.floor((box.x - t.ox) * t.scale));
  const y0 = Math.max(0, Math.floor((box.y - t.oy) * t.scale));
  const x1 = Math.min(t.width, Math.ceil((box.x + box.width - t.ox) * t.scale));
  const y1 = Math.min(t.height, Math.ceil((box.y + box.height - t.oy) * t.scale));
  for (let py = y0; py < y1; py++) {
    const v = ((py + 0.5) / t.scale + t.oy - box.y) / box.height;
    if (v < 0 || v >= 1) continue;
    for (let px = x0; px < x1; px++) {
      const u = ((px + 0.5) / t.scale + t.ox - box.x) / box.width;
      if (u < 0 || u >= 1) continue;
      if (ellipse && (u - 0.5) ** 2 + (v - 0.5) ** 2 > 0.25) continue;
      fn(py * t.width + px, u, v);
    }
  }
}

function clip(t: Target, box: { x: number; y: number; width: number; height: number }): void {
  const inside = new Uint8Array(t.width * t.height);
  forEachPixel(t, box, false, (i) => {
    inside[i] = 1;
  });
  for (let i = 0; i < inside.length; i++) if (!inside[i]) t.data.fill(0, i * 4, i * 4 + 4);
}

/** Three box-blur passes per axis approximate a gaussian of ``sigma`` pixels. */
function blur(t: Target, sigma: number): void {
  const radius = Math.max(1, Math.round(Math.sqrt((12 * sigma * sigma) / 3 + 1) / 2));
  const tmp = new Float32Array(t.data.length);
  for (let pass = 0; pass < 3; pass++) {
    boxPass(t.data, tmp, t.width, t.height, radius, true);
    boxPass(tmp, t.data, t.width, t.height, radius, false);
  }
}

function boxPass(src: Float32Array, dst: Float32Array, w: number, h: number, r: number, horizontal: boolean): void {
  const lines = horizontal ? h : w;
  const length = horizontal ? w : h;
  const index = (line: number, k: number): number => (horizontal ? line * w + k : k * w + line) * 4;
  const n = 2 * r + 1;
  for (let line = 0; line < lines; line++) {
    for (let c = 0; c < 4; c++) {
      let sum = 0;
      for (let k = -r; k <= r; k++) if (k >= 0 && k < length) sum += src[index(line, k) + c];
      for (let k = 0; k < length; k++) {
        dst[index(line, k) + c] = sum / n;
        const add = k + r + 1;
        const drop = k - r;
        if (add < length) sum += src[index(line, add) + c];
        if (drop >= 0) sum -= src[index(line, drop) + c];
      }
    }
  }
}
