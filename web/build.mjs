// Bundles the page into dist/: app.js (minified, with its source map) and app.css from src/,
// index.html as is; prints each file's size and gzipped size: the page's weight.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { gzipSync } from "node:zlib";

rmSync("dist", { recursive: true, force: true });
mkdirSync("dist");
await build({
  entryPoints: { app: "src/main.ts" },
  bundle: true,
  minify: true,
  sourcemap: "linked",
  format: "esm",
  target: ["chrome120", "firefox120", "safari17"],
  outdir: "dist",
  legalComments: "linked",
  logLevel: "warning",
});
await build({ entryPoints: { app: "src/style.css" }, bundle: true, minify: true, outdir: "dist", logLevel: "warning" });
copyFileSync("index.html", "dist/index.html");

let raw = 0;
let gzipped = 0;
for (const name of readdirSync("dist").filter((n) => !n.endsWith(".map") && !n.endsWith(".LEGAL.txt")).sort()) {
  const bytes = readFileSync(`dist/${name}`);
  const packed = gzipSync(bytes, { level: 9 }).length;
  raw += statSync(`dist/${name}`).size;
  gzipped += packed;
  console.log(`  ${name.padEnd(12)} ${String(bytes.length).padStart(7)} B  ${String(packed).padStart(6)} B gzipped`);
}
console.log(`  page weight  ${String(raw).padStart(7)} B  ${String(gzipped).padStart(6)} B gzipped`);
