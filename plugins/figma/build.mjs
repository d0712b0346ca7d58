// Builds the plugin into dist/: manifest.json, code.js (main thread) and ui.html (UI with its script inlined).
import { build } from "esbuild";
import { mkdir, readFile, writeFile } from "node:fs/promises";

const root = new URL(".", import.meta.url).pathname;
const pkg = JSON.parse(await readFile(`${root}package.json`, "utf8"));
const out = `${root}dist/`;
await mkdir(out, { recursive: true });

const define = { __VERSION__: JSON.stringify(pkg.version) };

await build({
  entryPoints: [`${root}src/main/code.ts`],
  bundle: true,
  format: "iife",
  // Figma's main-thread sandbox: keep the syntax conservative.
  target: "es2017",
  outfile: `${out}code.js`,
  define,
  logLevel: "warning",
});

const ui = await build({
  entryPoints: [`${root}src/ui/main.ts`],
  bundle: true,
  format: "iife",
  target: "es2020",
  write: false,
  define,
  logLevel: "warning",
});
const script = ui.outputFiles[0].text.replace(/<\/script/gi, "<\\/script");
const template = await readFile(`${root}src/ui/ui.html`, "utf8");
if (!template.includes("/*UI_SCRIPT*/")) throw new Error("ui.html lost its /*UI_SCRIPT*/ marker");
await writeFile(`${out}ui.html`, template.replace("/*UI_SCRIPT*/", () => script));

// The manifest is TypeScript too, so that it takes the daemon's port from the generated protocol constants.
const manifestModule = await build({
  entryPoints: [`${root}src/manifest.ts`],
  bundle: true,
  format: "esm",
  write: false,
  logLevel: "warning",
});
const { manifest } = await import(`data:text/javascript,${encodeURIComponent(manifestModule.outputFiles[0].text)}`);
await writeFile(`${out}manifest.json`, JSON.stringify(manifest, null, 2) + "\n");
console.log(`built ${out}manifest.json, code.js, ui.html`);
