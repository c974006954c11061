/**
 * Pepr 1.1.4 and KFC 3.11.6 with the two runtime fixes issue #5 needs, for benchmarks only and without touching
 * node_modules. A temp dir gets a `node_modules/` of symlinks to the project's packages, except the patched ones,
 * which are copied (package.json + dist/) and edited; a `--require` preload redirects `require("pepr")` and
 * `require("kubernetes-fluent-client")` (and their subpaths) from outside the temp dir to those copies. Packages
 * resolve through the symlinks to the project's real paths, so there is still one instance of each.
 *
 * Patches (each checked against the text of the pinned version, so an upgrade that moves the code fails loudly):
 * - `clone` (pepr-notes §13): the five `ramda.clone` deep copies of Pepr's admission path → `structuredClone`:
 *   `PeprMutateRequest`/`PeprValidateRequest` constructors (`this.Raw = clone(input.object | input.oldObject)`) and
 *   `reencodeData` (`clone(wrapped.Raw)`). The store and config clones stay.
 * - `kfc-agent` (bench/convergence.ts): KFC's `getHTTPSAgent` creates a new undici Agent, so a new TLS connection
 *   kept alive 600 s, for EVERY API call; the patch returns one Agent per (ca, cert, key) instead.
 *
 *   import { patchedPepr } from "./pepr-clone-patch";   const p = patchedPepr(["clone"]);   spawn(node, [bundle], { env: {...p.env} })
 *   npx tsx bench/pepr-clone-patch.ts run [--patch clone,kfc-agent] ./node_modules/.bin/node dist/pepr-kuik.cjs
 *   npx tsx bench/pepr-clone-patch.ts diff     (check that every substitution applies to the installed versions)
 */
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { makeTempDir, REPO_ROOT } from "../test/harness";

const NODE_MODULES = join(REPO_ROOT, "node_modules");
/** Printed once on stderr by the preload, so a bench can check that a process really runs the patched copy. */
export const PATCH_MARKER = "kuik-bench: patched runtime active";

export type PatchName = "clone" | "kfc-agent";

interface Substitution {
  what: string;
  re: RegExp;
  count: number;
  to: string;
}

const PATCHES: Record<PatchName, { pkg: string; file: string; substitutions: Substitution[] }> = {
  clone: {
    pkg: "pepr",
    file: "dist/lib.js",
    substitutions: [
      {
        what: "PeprMutateRequest/PeprValidateRequest constructor: this.Raw = clone(input.object | input.oldObject)",
        re: /this\.Raw = \(0, import_ramda\d*\.clone\)\((input\.(?:old)?[oO]bject)\);/g,
        count: 4,
        to: "this.Raw = structuredClone($1);",
      },
      {
        what: "reencodeData: clone(wrapped.Raw)",
        re: /const transformed = \(0, import_ramda\d*\.clone\)\(wrapped\.Raw\);/g,
        count: 1,
        to: "const transformed = structuredClone(wrapped.Raw);",
      },
    ],
  },
  "kfc-agent": {
    pkg: "kubernetes-fluent-client",
    file: "dist/fluent/utils.js",
    substitutions: [
      {
        what: "getHTTPSAgent: new undici Agent per API call → one per (ca, cert, key)",
        re: /return new Agent\(\{\n(\s*keepAliveMaxTimeout: 600000,\n\s*keepAliveTimeout: 600000,\n\s*bodyTimeout: 0,\n\s*connect: agentOptions,\n\s*)\}\);/g,
        count: 1,
        to:
          'const key = [agentOptions.ca, agentOptions.cert, agentOptions.key].map(v => (v === undefined ? "" : String(v))).join("\\0");\n' +
          "    let agent = sharedAgents.get(key);\n" +
          "    if (agent === undefined) {\n" +
          "        agent = new Agent({\n$1});\n" +
          "        sharedAgents.set(key, agent);\n" +
          "    }\n" +
          "    return agent;",
      },
      {
        what: "getHTTPSAgent: the agents' map",
        re: /^export function getHTTPSAgent\(opts\) \{$/gm,
        count: 1,
        to: "const sharedAgents = new Map();\nexport function getHTTPSAgent(opts) {",
      },
    ],
  },
};

export interface PatchedPepr {
  /** Temp dir holding `node_modules/` (patched copies and symlinks) and the preload. */
  dir: string;
  /** Environment to add to a Node process (NODE_OPTIONS with the preload). */
  env: Record<string, string>;
  /** What was replaced: one line per substitution with its count. */
  report: string[];
  /** Versions of the patched packages, e.g. "pepr@1.1.4". */
  versions: string[];
}

/** Apply a patch's substitutions to its file's text; throws when a count differs from the pinned version's. */
export function applyPatch(name: PatchName, source: string): { text: string; report: string[] } {
  let text = source;
  const report: string[] = [];
  for (const s of PATCHES[name].substitutions) {
    const found = text.match(s.re)?.length ?? 0;
    if (found !== s.count) {
      throw new Error(
        `${PATCHES[name].pkg}/${PATCHES[name].file}: expected ${s.count} × "${s.what}", found ${found}`,
      );
    }
    text = text.replace(s.re, s.to);
    report.push(`${name}: ${found} × ${s.what}`);
  }
  return { text, report };
}

/** Make the patched runtime (a new temp dir each call, removed at exit unless KUIK_KEEP_TMP=1). */
export function patchedPepr(patches: readonly PatchName[] = ["clone"]): PatchedPepr {
  const dir = makeTempDir("pepr-patched");
  const modules = join(dir, "node_modules");
  mkdirSync(modules, { recursive: true });
  const patchedPkgs = new Set(patches.map(p => PATCHES[p].pkg));
  for (const entry of readdirSync(NODE_MODULES)) {
    if (entry.startsWith(".") || patchedPkgs.has(entry)) continue;
    symlinkSync(join(NODE_MODULES, entry), join(modules, entry));
  }
  const report: string[] = [];
  const versions: string[] = [];
  for (const pkg of patchedPkgs) {
    mkdirSync(join(modules, pkg), { recursive: true });
    cpSync(join(NODE_MODULES, pkg, "package.json"), join(modules, pkg, "package.json"));
    cpSync(join(NODE_MODULES, pkg, "dist"), join(modules, pkg, "dist"), { recursive: true });
    const { version } = JSON.parse(readFileSync(join(NODE_MODULES, pkg, "package.json"), "utf8")) as {
      version: string;
    };
    versions.push(`${pkg}@${version}`);
  }
  for (const name of patches) {
    const file = join(modules, PATCHES[name].pkg, PATCHES[name].file);
    const r = applyPatch(name, readFileSync(file, "utf8"));
    writeFileSync(file, r.text);
    report.push(...r.report);
  }
  const preload = join(dir, "redirect.cjs");
  writeFileSync(
    preload,
    `"use strict";
const Module = require("node:module");
const DIR = ${JSON.stringify(dir)};
const MODULES = ${JSON.stringify(modules)};
const PACKAGES = ${JSON.stringify([...patchedPkgs])};
const resolve = Module._resolveFilename;
let said = false;
Module._resolveFilename = function (request, parent, ...rest) {
  const pkg = PACKAGES.find(p => request === p || request.startsWith(p + "/"));
  if (pkg !== undefined && !((parent && parent.filename) || "").startsWith(DIR)) {
    if (!said) { said = true; process.stderr.write(${JSON.stringify(PATCH_MARKER)} + " (" + DIR + ")\\n"); }
    request = MODULES + "/" + request;
  }
  return resolve.call(this, request, parent, ...rest);
};
`,
  );
  return { dir, env: { NODE_OPTIONS: `--require ${preload}` }, report, versions };
}

async function main(argv: string[]): Promise<void> {
  const command = argv[0];
  let rest = argv.slice(1);
  let patches: PatchName[] = ["clone"];
  if (rest[0] === "--patch" && rest[1]) {
    patches = rest[1].split(",").map(p => p.trim()) as PatchName[];
    rest = rest.slice(2);
  }
  if (command === "diff") {
    for (const name of Object.keys(PATCHES) as PatchName[]) {
      const file = join(NODE_MODULES, PATCHES[name].pkg, PATCHES[name].file);
      for (const line of applyPatch(name, readFileSync(file, "utf8")).report) console.log(line);
    }
    return;
  }
  if (command === "run" && rest.length > 0) {
    const p = patchedPepr(patches);
    console.error(`${p.versions.join(", ")} patched in ${p.dir}:\n  ${p.report.join("\n  ")}`);
    const [cmd, ...args] = rest as [string, ...string[]];
    const child = spawn(cmd, args, { stdio: "inherit", env: { ...process.env, ...p.env } });
    for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => child.kill(sig));
    const code = await new Promise<number>(res => child.on("exit", (c, s) => res(c ?? (s ? 128 : 1))));
    process.exit(code);
  }
  console.error(
    "usage: npx tsx bench/pepr-clone-patch.ts diff | run [--patch clone,kfc-agent] <command> [args…]",
  );
  process.exit(2);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
