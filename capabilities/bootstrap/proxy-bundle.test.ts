/**
 * The proxy without an image of its own (issue #12) and bound to its node's loopback (issue #13): the loader run by
 * the real node binary, the bundle's ConfigMap and the DaemonSet that names it, as deploy/base and the watcher's
 * bootstrap (`npx pepr deploy`) have them. The kustomize and Helm renderings are checked in
 * scripts/generate-proxy-bundle.test.ts and test/e2e/chart.e2e.test.ts.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildProxyBundle, generatedBundle } from "../../scripts/generate-proxy-bundle";
import { BOOTSTRAP_DATA_PLANE } from "./data-plane";
import { DATA_PLANE } from "./manifests.generated";
import type { Manifest } from "./plan";
import generated from "./proxy-bundle.generated.json";
import {
  describeProxyBundle,
  PROXY_BUNDLE_FILE,
  PROXY_BUNDLE_PLACEHOLDER,
  PROXY_BUNDLE_PLACEHOLDER_SHA256,
  PROXY_COMMAND,
  ProxyBundleError,
  withProxyBundle,
} from "./proxy-bundle";

const tmp = mkdtempSync(join(tmpdir(), "kuik-proxy-loader-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs PROXY_COMMAND with this machine's node, the bundle at `file` and `args` after it. */
function runLoader(file: string, sha256: string | undefined, args: string[] = []) {
  const [, ...nodeArgs] = PROXY_COMMAND.slice(0, -1);
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  if (sha256 !== undefined) env.KUIK_PROXY_BUNDLE_SHA256 = sha256;
  return spawnSync(process.execPath, [...nodeArgs, file, ...args], {
    env,
    encoding: "utf8",
    timeout: 30_000,
  });
}

function writeBundle(name: string, source: string): { file: string; sha256: string } {
  const file = join(tmp, name);
  writeFileSync(file, source);
  return { file, sha256: describeProxyBundle(source).sha256 };
}

/** The proxy container of a DaemonSet manifest. */
function proxyPod(ds: Manifest) {
  const spec = (ds as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
  const container = spec.containers.find(c => c.name === "proxy");
  if (!container) throw new Error("no proxy container");
  const env = Object.fromEntries((container.env ?? []).map(e => [e.name, e.value]));
  return { spec, container, env };
}
interface PodSpec {
  hostNetwork?: boolean;
  dnsPolicy?: string;
  containers: Array<{
    name: string;
    image: string;
    command?: string[];
    env?: Array<{ name: string; value?: string }>;
    volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
  }>;
  volumes?: Array<{ name: string; configMap?: { name: string } }>;
}
const daemonSet = (objects: readonly Manifest[]): Manifest => {
  const ds = objects.find(m => m.kind === "DaemonSet" && m.metadata.name === "kube-image-keeper-proxy");
  if (!ds) throw new Error("no proxy DaemonSet");
  return ds;
};

describe("the loader (PROXY_LOADER, run by the real node binary)", () => {
  it("imports the bundle when its sha256 matches, with the flags after it as its argv", () => {
    const { file, sha256 } = writeBundle("ok.mjs", "console.log(JSON.stringify(process.argv.slice(2)));\n");
    const r = runLoader(file, sha256, ["--listen", "127.0.0.1:1", "--version"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(["--listen", "127.0.0.1:1", "--version"]);
  });

  it.each([
    ["a different hash", "0".repeat(64)],
    ["deploy/base's placeholder", PROXY_BUNDLE_PLACEHOLDER_SHA256],
    ["no hash at all", undefined],
  ])("refuses the bundle with exit code 3 and one clear line on %s", (_, sha256) => {
    const { file, sha256: actual } = writeBundle("edited.mjs", 'console.log("must not run");\n');
    const r = runLoader(file, sha256);
    expect(r.status).toBe(3);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      `kuik-proxy: ${file} has sha256 ${actual}, not KUIK_PROXY_BUNDLE_SHA256=${String(sha256)}: refusing to run it\n`,
    );
  });

  it("runs the real proxy bundle: its flags parse as with `node kuik-proxy.mjs`", () => {
    const { file, sha256 } = writeBundle("kuik-proxy.mjs", generated.source);
    const version = runLoader(file, sha256, ["--version"]);
    expect(version.status).toBe(0);
    expect(version.stdout).toMatch(/^kuik-proxy \d+\.\d+\.\d+ \(node /);
    const invalid = runLoader(file, sha256, ["--no-such-flag"]);
    expect(invalid.status).toBe(2); // the proxy's own "invalid configuration"
    expect(invalid.stderr).toContain("no-such-flag");
  });
});

describe("proxy-bundle.generated.json (npm ci's prepare: scripts/generate-proxy-bundle.ts)", () => {
  it("is the bundle `node proxy/build.mjs` builds now (run npx tsx scripts/generate-proxy-bundle.ts)", () => {
    const fresh = buildProxyBundle(join(tmp, "fresh.mjs"));
    expect(generatedBundle(), "stale: run npx tsx scripts/generate-proxy-bundle.ts").toEqual({
      name: fresh.name,
      sha256: fresh.sha256,
    });
    expect(describeProxyBundle(generated.source)).toEqual(generated);
  }, 60_000);
});

describe("withProxyBundle", () => {
  const bundle = describeProxyBundle("export {};\n");

  it("inserts the immutable, content-named ConfigMap before the DaemonSet, which mounts it and expects its hash", () => {
    const out = withProxyBundle(DATA_PLANE, bundle);
    const at = out.findIndex(m => m.kind === "DaemonSet");
    expect(out[at - 1]).toEqual({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: `kube-image-keeper-proxy-${bundle.sha256.slice(0, 10)}`,
        namespace: "kuik-system",
        labels: {
          "app.kubernetes.io/name": "kube-image-keeper",
          "app.kubernetes.io/component": "proxy-bundle",
          "app.kubernetes.io/part-of": "kuik",
        },
      },
      immutable: true,
      data: { "kuik-proxy.mjs": "export {};\n" },
    });
    expect(out).toHaveLength(DATA_PLANE.length + 1);
    const { spec, container, env } = proxyPod(daemonSet(out));
    expect(spec.volumes).toContainEqual({ name: "bundle", configMap: { name: bundle.name } });
    expect(container.volumeMounts).toContainEqual({ name: "bundle", mountPath: "/opt/kuik", readOnly: true });
    expect(env.KUIK_PROXY_BUNDLE_SHA256).toBe(bundle.sha256);
    // the input is left alone
    expect(proxyPod(daemonSet(DATA_PLANE)).env.KUIK_PROXY_BUNDLE_SHA256).toBe(
      PROXY_BUNDLE_PLACEHOLDER_SHA256,
    );
  });

  it("refuses a data plane without the proxy DaemonSet", () => {
    expect(() =>
      withProxyBundle(
        DATA_PLANE.filter(m => m.kind !== "DaemonSet"),
        bundle,
      ),
    ).toThrow(ProxyBundleError);
  });
});

describe("deploy/base and the bootstrap's data plane (`npx pepr deploy`)", () => {
  const pkg = JSON.parse(readFileSync(join(__dirname, "../../package.json"), "utf8")) as {
    dependencies: Record<string, string>;
  };

  it("deploy/base: Pepr's controller image runs PROXY_COMMAND on a placeholder ConfigMap", () => {
    const { spec, container, env } = proxyPod(daemonSet(DATA_PLANE));
    expect(container.image).toBe(`ghcr.io/defenseunicorns/pepr/controller:v${pkg.dependencies.pepr}`);
    expect(container.command).toEqual(PROXY_COMMAND);
    expect(container.command?.at(-1)).toBe(PROXY_BUNDLE_FILE);
    expect(spec.volumes).toContainEqual({ name: "bundle", configMap: { name: PROXY_BUNDLE_PLACEHOLDER } });
    expect(env.KUIK_PROXY_BUNDLE_SHA256).toBe(PROXY_BUNDLE_PLACEHOLDER_SHA256);
  });

  it("the bootstrap applies the generated bundle's ConfigMap and a host-network proxy on loopback that names it", () => {
    const cm = BOOTSTRAP_DATA_PLANE.find(m => m.kind === "ConfigMap" && m.immutable === true);
    expect(cm?.metadata.name).toBe(generated.name);
    expect(cm?.metadata.name).toBe(`kube-image-keeper-proxy-${generated.sha256.slice(0, 10)}`);
    const { spec, container, env } = proxyPod(daemonSet(BOOTSTRAP_DATA_PLANE));
    expect(container.image).toBe(`ghcr.io/defenseunicorns/pepr/controller:v${pkg.dependencies.pepr}`);
    expect(spec.hostNetwork).toBe(true);
    expect(spec.dnsPolicy).toBe("ClusterFirstWithHostNet");
    expect(env.KUIK_PROXY_LISTEN).toBe("127.0.0.1:7439,[::1]:7439");
    expect(env.KUIK_PROXY_OPS_LISTEN).toBe("$(POD_IP):7440");
    expect(env.KUIK_PROXY_BUNDLE_SHA256).toBe(generated.sha256);
    expect(spec.volumes).toContainEqual({ name: "bundle", configMap: { name: generated.name } });
  });
});
