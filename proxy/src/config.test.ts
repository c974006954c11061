import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  normaliseRegistryHost,
  parseCommandLine,
  parseDuration,
  parseListenAddress,
  type ProxyConfig,
} from "./config";
import { envName, OPTIONS, usage } from "./flags";
import { isProxyError } from "./errors";

const CACHE = ["--cache-registry", "kuik-registry.kuik-system.svc:5000"];

function run(argv: string[], env: Record<string, string> = {}): ProxyConfig {
  const parsed = parseCommandLine(argv, env);
  if (parsed.action !== "run") throw new Error(`unexpected ${parsed.action}`);
  return parsed.config;
}

function problems(argv: string[], env: Record<string, string> = {}): string {
  try {
    parseCommandLine(argv, env);
  } catch (e) {
    expect(isProxyError(e, "CONFIG_INVALID")).toBe(true);
    return (e as Error).message;
  }
  throw new Error("expected CONFIG_INVALID");
}

describe("parseCommandLine", () => {
  it("applies the defaults: both loopbacks, short cache timeouts, no credentials", () => {
    const c = run(CACHE);
    expect(c.listen).toEqual([
      { host: "127.0.0.1", port: 7439 },
      { host: "::1", port: 7439 },
    ]);
    expect(c.listenIsDefault).toBe(true);
    expect(c.opsListen).toEqual({ host: "127.0.0.1", port: 8080 });
    expect(c.cacheRegistry.href).toBe("http://kuik-registry.kuik-system.svc:5000/");
    expect(c.cacheTimeouts).toEqual({ connectMs: 1000, headersMs: 2000, bodyMs: 30_000 });
    expect(c.breaker).toEqual({ failureThreshold: 3, cooldownMs: 5000, maxCooldownMs: 60_000 });
    expect(c.originAttempts).toBe(3);
    expect(c.credentialsFile).toBeUndefined();
    expect(c.insecureRegistries).toEqual([]);
    expect(c.logLevel).toBe("info");
  });

  it("reads KUIK_PROXY_* variables, and a flag wins over its variable", () => {
    const env = {
      KUIK_PROXY_CACHE_REGISTRY: "https://cache.example.com",
      KUIK_PROXY_LISTEN: "0.0.0.0:7439, :7440",
      KUIK_PROXY_INSECURE_REGISTRY: "http://a.local:5000/,B.local",
      KUIK_PROXY_CACHE_HEADERS_TIMEOUT: "750ms",
      KUIK_PROXY_LOG_LEVEL: "debug",
    };
    const c = run(["--log-level", "warn"], env);
    expect(c.cacheRegistry.origin).toBe("https://cache.example.com");
    expect(c.listen).toEqual([
      { host: "0.0.0.0", port: 7439 },
      { host: undefined, port: 7440 },
    ]);
    expect(c.listenIsDefault).toBe(false);
    expect(c.insecureRegistries).toEqual(["a.local:5000", "b.local"]);
    expect(c.cacheTimeouts.headersMs).toBe(750);
    expect(c.logLevel).toBe("warn");
  });

  it("takes repeatable flags and per-registry CAs", () => {
    const c = run([
      ...CACHE,
      "--listen=127.0.0.1:0",
      "--insecure-registry",
      "myreg:5000",
      "--insecure-registry",
      "10.0.0.1:30042",
      "--root-ca",
      "/etc/ca/a.pem",
      "--registry-ca",
      "myreg:5000=/etc/ca/m1.pem",
      "--registry-ca",
      "https://myreg:5000=/etc/ca/m2.pem",
      "--credentials-file",
      "/var/run/kuik/credentials/.dockerconfigjson",
    ]);
    expect(c.listen).toEqual([{ host: "127.0.0.1", port: 0 }]);
    expect(c.insecureRegistries).toEqual(["myreg:5000", "10.0.0.1:30042"]);
    expect(c.rootCaFiles).toEqual(["/etc/ca/a.pem"]);
    expect(c.registryCaFiles).toEqual({ "myreg:5000": ["/etc/ca/m1.pem", "/etc/ca/m2.pem"] });
    expect(c.credentialsFile).toBe("/var/run/kuik/credentials/.dockerconfigjson");
  });

  it("reports every problem at once", () => {
    const text = problems([
      "--listen",
      "nowhere",
      "--cache-headers-timeout",
      "2",
      "--breaker-failures",
      "0",
      "--registry-ca",
      "no-equals-sign",
      "--log-level",
      "loud",
      "--insecure-registry",
      "bad host!",
    ]);
    expect(text).toContain("--cache-registry (KUIK_PROXY_CACHE_REGISTRY) is required");
    expect(text).toContain('--listen "nowhere"');
    expect(text).toContain('--cache-headers-timeout "2": expected a duration');
    expect(text).toContain('--breaker-failures "0": expected an integer >= 1');
    expect(text).toContain('--registry-ca "no-equals-sign"');
    expect(text).toContain('--log-level "loud"');
    expect(text).toContain('--insecure-registry "bad host!"');
    expect(text.split("\n  - ")).toHaveLength(8);
  });

  it("rejects unknown flags, positionals and cache URLs with a path or credentials", () => {
    expect(problems([...CACHE, "--bogus"])).toContain("--bogus");
    expect(problems([...CACHE, "extra"])).toMatch(/positional/i);
    expect(problems(["--cache-registry", "http://cache:5000/v2"])).toContain("--cache-registry");
    expect(problems(["--cache-registry", "http://user:pw@cache:5000"])).toContain("--cache-registry");
  });

  it("answers --help and --version without requiring anything else", () => {
    expect(parseCommandLine(["--help"], {})).toEqual({ action: "help" });
    expect(parseCommandLine(["--version"], {})).toEqual({ action: "version" });
  });
});

describe("value parsers", () => {
  it.each<[string, number | undefined]>([
    ["500ms", 500],
    ["2s", 2000],
    ["1.5s", 1500],
    ["1m", 60_000],
    ["2h", 7_200_000],
    ["2", undefined],
    ["-1s", undefined],
    ["1d", undefined],
  ])("parseDuration(%j) = %s", (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each<[string, ReturnType<typeof parseListenAddress>]>([
    ["127.0.0.1:7439", { host: "127.0.0.1", port: 7439 }],
    ["[::1]:7439", { host: "::1", port: 7439 }],
    [":8080", { host: undefined, port: 8080 }],
    ["localhost:1", { host: "localhost", port: 1 }],
    ["127.0.0.1", undefined],
    ["127.0.0.1:70000", undefined],
    ["::1:7439", undefined],
  ])("parseListenAddress(%j)", (text, expected) => expect(parseListenAddress(text)).toEqual(expected));

  it.each<[string, string | undefined]>([
    ["myreg:5000", "myreg:5000"],
    ["https://MyReg.example.com/", "myreg.example.com"],
    ["http://10.0.0.1:30042", "10.0.0.1:30042"],
    ["[::1]:5000", "[::1]:5000"],
    ["my reg", undefined],
    ["-bad.example.com", undefined],
  ])("normaliseRegistryHost(%j)", (text, expected) => expect(normaliseRegistryHost(text)).toBe(expected));
});

describe("documentation", () => {
  it("names the environment twin of every flag in --help", () => {
    const text = usage();
    for (const o of OPTIONS) {
      expect(text).toContain(`--${o.flag}`);
      expect(text).toContain(envName(o.flag));
    }
    expect(envName("cache-registry")).toBe("KUIK_PROXY_CACHE_REGISTRY");
  });
});

describe("proxy/README.md", () => {
  it("documents every flag, its variable and its default", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    for (const o of OPTIONS) {
      const row = readme.split("\n").find(l => l.startsWith(`| \`--${o.flag}\``));
      expect(row, `README row of --${o.flag}`).toBeDefined();
      expect(row).toContain(`\`${envName(o.flag)}\``);
      if (o.default !== undefined) {
        for (const part of o.default.split(","))
          expect(row, `default of --${o.flag}`).toContain(`\`${part}\``);
      }
    }
  });
});
