/**
 * proxy/Dockerfile cannot be built here (no Docker), so this test reads it and holds it to what it packages:
 * the stages, the bundle path proxy/build.mjs really writes, the entrypoint's Node flags (those the tests and
 * benches run with, proxy/test/process.ts) and proxy flags (proxy/src/flags.ts), the environment, a numeric
 * non-root user, the ports, and a build context (proxy/Dockerfile.dockerignore) that holds every file the build
 * stage copies and every module the bundle imports.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { envName, OPTIONS } from "./src/flags";
import { IMAGE_ENV, IMAGE_NODE_ARGS } from "./test/process";

const PROXY = dirname(fileURLToPath(import.meta.url));
const ROOT = join(PROXY, "..");

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name?: string;
  body: Instruction[];
}

/** Dockerfile → stages of instructions (comments dropped, `\` continuations joined). */
function parseDockerfile(text: string): Stage[] {
  const lines = text
    .split("\n")
    .filter(l => !/^\s*#/.test(l))
    .join("\n")
    .replace(/\\\n/g, " ")
    .split("\n")
    .map(l => l.trim())
    .filter(Boolean);
  const stages: Stage[] = [];
  for (const line of lines) {
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (!m?.[1] || m[2] === undefined) throw new Error(`unparsable line: ${line}`);
    const op = m[1].toUpperCase();
    if (op === "FROM") {
      const [from = "", as, name] = m[2].split(/\s+/);
      stages.push({ from, ...(as?.toUpperCase() === "AS" && name ? { name } : {}), body: [] });
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`${op} before FROM`);
      stage.body.push({ op, args: m[2].replace(/\s+/g, " ") });
    }
  }
  return stages;
}

const all = (s: Stage, op: string): string[] => s.body.filter(i => i.op === op).map(i => i.args);
const one = (s: Stage, op: string): string => {
  const found = all(s, op);
  if (found.length !== 1) throw new Error(`${op}: ${found.length} instructions in stage ${s.name ?? s.from}`);
  return found[0] ?? "";
};

const stages = parseDockerfile(readFileSync(join(PROXY, "Dockerfile"), "utf8"));
const [build, runtime] = stages;
if (!build || !runtime) throw new Error("expected two stages");
const buildRun = all(build, "RUN").join(" && ");
/** The bundle path of `node proxy/build.mjs --outfile PATH`. */
const outfile = /node proxy\/build\.mjs --outfile (\S+)/.exec(buildRun)?.[1] ?? "";
const entrypoint = JSON.parse(one(runtime, "ENTRYPOINT")) as string[];

describe("proxy/Dockerfile", () => {
  it("has a Node 24 build stage and a distroless Node 24 runtime stage", () => {
    expect(stages).toHaveLength(2);
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
      devDependencies: Record<string, string>;
    };
    const major = pkg.devDependencies.node?.split(".")[0];
    expect(build.from).toBe(`node:${major}-slim`);
    expect(build.name).toBe("build");
    expect(runtime.from).toMatch(new RegExp(`^gcr\\.io/distroless/nodejs${major}-debian\\d+:nonroot$`));
  });

  it("installs from the lock file, bundles with build.mjs --outfile and smoke-tests the bundle", () => {
    expect(buildRun).toMatch(/\bnpm ci\b/);
    expect(buildRun).not.toMatch(/--ignore-scripts/); // kuik never installs without its install scripts
    expect(all(build, "COPY")[0]).toBe("package.json package-lock.json ./");
    expect(outfile).toMatch(/^\/\S+\.mjs$/);
    expect(buildRun).toContain(`node ${outfile} --version`);
    // build.mjs takes --outfile and imports esbuild, which the lock file installs at the top level
    const script = readFileSync(join(PROXY, "build.mjs"), "utf8");
    expect(script).toMatch(/outfile: \{ type: "string" \}/);
    expect(script).toMatch(/from "esbuild"/);
    const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
      packages: Record<string, unknown>;
    };
    expect(lock.packages["node_modules/esbuild"]).toBeDefined();
  });

  it("copies only the bundle into the runtime stage and runs it with the tested Node flags", () => {
    const copies = all(runtime, "COPY");
    expect(copies).toEqual([`--from=build ${outfile} ${entrypoint.at(-1)}`]);
    expect(entrypoint[0]).toBe("/nodejs/bin/node");
    expect(entrypoint.slice(1, -1)).toEqual(IMAGE_NODE_ARGS);
    expect(all(runtime, "RUN")).toEqual([]); // distroless: no shell to run anything with
  });

  it("sets only the tested environment and real KUIK_PROXY_* flags", () => {
    const env: Record<string, string> = {};
    for (const args of all(runtime, "ENV")) {
      for (const pair of args.split(" ")) {
        const [k = "", ...v] = pair.split("=");
        env[k] = v.join("=");
      }
    }
    const known = new Set(OPTIONS.map(o => envName(o.flag)));
    for (const [k, v] of Object.entries(env)) {
      if (k in IMAGE_ENV) expect(v, k).toBe(IMAGE_ENV[k]);
      else expect(known.has(k), `${k} is not a proxy flag`).toBe(true);
    }
    for (const [k, v] of Object.entries(IMAGE_ENV)) expect(env[k], k).toBe(v);
    // the exposed ports are the ones it listens on
    const ports = [env.KUIK_PROXY_LISTEN, env.KUIK_PROXY_OPS_LISTEN].map(a => a?.split(":").at(-1));
    expect(one(runtime, "EXPOSE").split(" ")).toEqual(ports);
  });

  it("runs as a numeric non-root user", () => {
    const [uid, gid] = one(runtime, "USER").split(":");
    expect(uid).toMatch(/^[1-9]\d*$/);
    expect(gid).toMatch(/^[1-9]\d*$/);
  });
});

describe("proxy/Dockerfile.dockerignore", () => {
  const patterns = readFileSync(join(PROXY, "Dockerfile.dockerignore"), "utf8")
    .split("\n")
    .map(l => l.trim())
    .filter(l => l && !l.startsWith("#"));
  /** Whether the context includes a repository path (`*`, then `!` re-inclusions, then exclusions; last wins). */
  const included = (path: string): boolean => {
    let keep = true;
    for (const p of patterns) {
      const negated = p.startsWith("!");
      const body = negated ? p.slice(1) : p;
      const re = new RegExp(
        `^${body
          .replace(/[.+^${}()|[\]\\]/g, "\\$&")
          .replace(/\*\*\//g, "\u0001")
          .replace(/\*\*/g, "\u0002")
          .replace(/\*/g, "[^/]*")
          .replace(/\u0001/g, "(.*/)?")
          .replace(/\u0002/g, ".*")}$`,
      );
      // as in Docker, a pattern that matches a directory applies to everything under it
      const parts = path.split("/");
      if (parts.some((_, i) => re.test(parts.slice(0, i + 1).join("/")))) keep = negated;
    }
    return keep;
  };
  /** Files under a repository dir, relative to the root. */
  const filesUnder = (dir: string): string[] =>
    readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
      .filter(d => d.isFile())
      .map(d => relative(ROOT, join(d.parentPath, d.name)));
  /** Every source path the build stage copies from the context. */
  const sources = all(build, "COPY").flatMap(c => c.split(" ").slice(0, -1));

  it("holds every file the build stage copies, and no tests", () => {
    expect(included("README.md")).toBe(false);
    for (const src of sources) {
      const files = statSync(join(ROOT, src)).isDirectory() ? filesUnder(src) : [src];
      for (const f of files.filter(x => !x.endsWith(".test.ts"))) expect(included(f), f).toBe(true);
    }
    expect(included("proxy/src/config.test.ts")).toBe(false);
  });

  it("holds every module the bundle imports (relative imports stay inside what is copied)", () => {
    const dirs = sources.filter(s => s.endsWith("/src"));
    const seen = new Set<string>();
    for (const dir of dirs) {
      for (const f of filesUnder(dir).filter(x => x.endsWith(".ts") && !x.endsWith(".test.ts"))) {
        for (const [, spec] of readFileSync(join(ROOT, f), "utf8").matchAll(/from "(\.[^"]+)"/g)) {
          const target = normalize(join(dirname(f), spec ?? ""));
          seen.add(target);
          expect(included(`${target}.ts`), `${f} imports ${spec}`).toBe(true);
        }
      }
    }
    expect([...seen].some(p => p.startsWith("registry-client/"))).toBe(true);
  });
});
