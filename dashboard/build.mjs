// Bundles the dashboard into a static folder (default: dist/): index.html, style.css, app.js.
// Everything the page needs at run time is in that folder; the JSON extracts are written next to it
// (data/) by the analytics DAG or `python -m local.analytics.dashboard`.
//   node build.mjs [--outdir DIR]
import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const flag = process.argv.indexOf("--outdir");
const outdir = path.resolve(flag > -1 ? process.argv[flag + 1] : path.join(here, "dist"));

await mkdir(outdir, { recursive: true });
const result = await build({
  entryPoints: [path.join(here, "src", "main.js")],
  outfile: path.join(outdir, "app.js"),
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  legalComments: "linked",
  metafile: true,
  logLevel: "warning",
});
for (const name of ["index.html", "style.css"]) {
  await copyFile(path.join(here, "src", name), path.join(outdir, name));
}
const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
console.log(`dashboard built in ${outdir} (${(bytes / 1024).toFixed(0)} KiB of JavaScript)`);
