#!/usr/bin/env node
/**
 * Bundles the proxy into one self-contained ES module, proxy/dist/kuik-proxy.mjs: our sources, registry-client,
 * undici, pino and prom-client in a single file that runs with a bare `node` (no node_modules in the image).
 * Usage: node proxy/build.mjs [--outfile PATH] [--no-minify] [--full-undici]
 */
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    outfile: { type: "string" },
    "no-minify": { type: "boolean" },
    "full-undici": { type: "boolean" },
  },
});
const { version } = JSON.parse(readFileSync(join(here, "package.json"), "utf8"));
const outfile = values.outfile ?? join(here, "dist", "kuik-proxy.mjs");

/** Resolves `undici` to the slim entry point (undici-slim.mjs); names it lacks fail the build. */
const slimUndici = {
  name: "slim-undici",
  setup(b) {
    b.onResolve({ filter: /^undici$/ }, args =>
      args.importer.endsWith("undici-slim.mjs") ? undefined : { path: join(here, "undici-slim.mjs") },
    );
  },
};

const result = await build({
  entryPoints: [join(here, "src", "main.ts")],
  outfile,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node22", // the Pepr controller image's Node.js (node:22 at Pepr 1.1.4) as well as ours (24)
  minify: !values["no-minify"],
  keepNames: true,
  sourcemap: false,
  legalComments: "none",
  metafile: true,
  plugins: values["full-undici"] ? [] : [slimUndici],
  logLevel: "warning",
  define: { "process.env.KUIK_PROXY_VERSION": JSON.stringify(version) },
  // CommonJS dependencies (pino, prom-client) call require() for Node built-ins: give the ES module one.
  banner: {
    js: "import { createRequire as __kuikCreateRequire } from 'node:module'; const require = __kuikCreateRequire(import.meta.url);",
  },
});
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
process.stdout.write(`kuik-proxy ${version}: ${outfile} (${(bytes / 1024).toFixed(0)} KiB)\n`);
