import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CredentialStore } from "./credentials";
import { createLogger } from "./logger";

const SECRET = "s3cr3t-p4ss";

function dockerConfig(auths: Record<string, { username: string; password: string }>): string {
  const entries = Object.entries(auths).map(([k, v]) => [
    k,
    { auth: Buffer.from(`${v.username}:${v.password}`).toString("base64") },
  ]);
  return JSON.stringify({ auths: Object.fromEntries(entries) });
}

async function eventually(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise(r => setTimeout(r, 20));
  }
}

describe("CredentialStore", () => {
  let dir: string;
  let lines: string[];
  let reloads: string[];
  let store: CredentialStore | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "kuik-proxy-creds-"));
    lines = [];
    reloads = [];
  });
  afterEach(() => {
    store?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function start(file: string, pollMs = 60_000): CredentialStore {
    const log = createLogger("debug", { write: (s: string) => void lines.push(s) });
    store = new CredentialStore({ file, pollMs, log, onReload: r => void reloads.push(r) });
    store.start();
    return store;
  }

  it("serves the credentials of the file, matched like the kubelet does", () => {
    const file = join(dir, "config.json");
    writeFileSync(
      file,
      dockerConfig({
        "myreg:5000": { username: "u", password: SECRET },
        "https://index.docker.io/v1/": { username: "hub", password: "h" },
      }),
    );
    const s = start(file);
    expect(s.lookup("myreg:5000", "team/app")).toEqual([{ kind: "basic", username: "u", password: SECRET }]);
    expect(s.lookup("docker.io", "library/nginx")).toEqual([
      { kind: "basic", username: "hub", password: "h" },
    ]);
    expect(s.lookup("myreg:5001", "team/app")).toEqual([]);
    expect(reloads).toEqual(["success"]);
  });

  it("follows a Secret volume update (the ..data symlink swap) through the directory watch", async () => {
    // The kubelet's atomic writer: dir/config.json -> ..data/config.json, ..data -> ..<timestamp>/
    const v1 = join(dir, "..v1");
    const v2 = join(dir, "..v2");
    for (const [d, pw] of [
      [v1, "one"],
      [v2, "two"],
    ] as const) {
      mkdirSync(d);
      writeFileSync(
        join(d, "config.json"),
        dockerConfig({ "r.example.com": { username: "u", password: pw } }),
      );
    }
    symlinkSync("..v1", join(dir, "..data"));
    symlinkSync("..data/config.json", join(dir, "config.json"));
    const s = start(join(dir, "config.json"));
    expect(s.lookup("r.example.com", "x")).toEqual([{ kind: "basic", username: "u", password: "one" }]);
    symlinkSync("..v2", join(dir, "..data_tmp"));
    renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
    await eventually(() => JSON.stringify(s.lookup("r.example.com", "x")).includes('"two"'));
  });

  it("keeps the last good credentials when the file breaks, logging the path but never the content", async () => {
    const file = join(dir, "config.json");
    writeFileSync(file, dockerConfig({ "r.example.com": { username: "u", password: SECRET } }));
    const s = start(file, 50);
    writeFileSync(file, `{"auths": {"r.example.com": {"auth": "${SECRET}"}}, oops`);
    await eventually(() => reloads.includes("error"));
    expect(s.lookup("r.example.com", "x")).toEqual([{ kind: "basic", username: "u", password: SECRET }]);
    const errorLine = lines.find(l => l.includes("credentials file invalid")) ?? "";
    expect(errorLine).toContain(file);
    expect(errorLine).toContain("INVALID_SECRET");
    expect(errorLine).toContain("keeping the last good credentials");
    expect(lines.join("\n")).not.toContain(SECRET);
    expect(lines.join("\n")).not.toContain(Buffer.from(`u:${SECRET}`).toString("base64"));
  });

  it("starts anonymous when the file is missing, warns once, and picks it up when it appears (poll)", async () => {
    const file = join(dir, "late", "config.json");
    const s = start(file, 50);
    expect(s.lookup("r.example.com", "x")).toEqual([]);
    await new Promise(r => setTimeout(r, 200));
    expect(lines.filter(l => l.includes("credentials file unreadable"))).toHaveLength(1);
    mkdirSync(join(dir, "late"));
    writeFileSync(file, dockerConfig({ "r.example.com": { username: "late", password: "p" } }));
    await eventually(() => s.lookup("r.example.com", "x").length === 1);
  });
});
