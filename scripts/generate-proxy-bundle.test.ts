/**
 * The kustomize install path of the proxy bundle: deploy/kustomization.yaml (and the persistence overlay) rendered
 * with the generated Component, in a copy of deploy/ (the module YAML replaced by an empty file: it is built
 * elsewhere). The DaemonSet must equal the one the watcher's bootstrap applies (one source for both), and run
 * Pepr's controller image in the node's network namespace, bound to loopback, on the content-named ConfigMap.
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { withProxyBundle } from "../capabilities/bootstrap/proxy-bundle";
import { DATA_PLANE } from "../capabilities/bootstrap/manifests.generated";
import type { Manifest } from "../capabilities/bootstrap/plan";
import { findComponent } from "../test/harness/control-plane";
import { documents } from "./generate-bootstrap";
import { buildProxyBundle, KUSTOMIZE_COMPONENT, writeProxyBundle } from "./generate-proxy-bundle";

const ROOT = resolve(__dirname, "..");
const work = mkdtempSync(join(tmpdir(), "kuik-proxy-kustomize-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A copy of deploy/ with freshly generated files, and the bundle they were made from. */
function deployCopy() {
  cpSync(join(ROOT, "deploy"), join(work, "deploy"), {
    recursive: true,
    filter: src => !src.startsWith(join(ROOT, "deploy", "generated")),
  });
  mkdirSync(join(work, "deploy", "generated"), { recursive: true });
  writeFileSync(join(work, "deploy", "generated", "pepr-module-kuik.yaml"), "");
  mkdirSync(join(work, "capabilities", "bootstrap"), { recursive: true });
  const bundle = buildProxyBundle(join(work, "kuik-proxy.mjs"));
  writeProxyBundle(bundle, work);
  return bundle;
}

function kustomize(dir: string): Manifest[] {
  const out = execFileSync(findComponent("kubectl"), ["kustomize", dir], {
    encoding: "utf8",
    maxBuffer: 64 << 20,
    timeout: 60_000,
  });
  return documents(out) as Manifest[];
}

const find = (objects: Manifest[], kind: string, name: string): Manifest => {
  const o = objects.find(m => m.kind === kind && m.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name}`);
  return o;
};
const podSpec = (ds: Manifest) =>
  (ds as unknown as { spec: { template: { spec: Record<string, unknown> & { containers: Container[] } } } })
    .spec.template.spec;
interface Container {
  name: string;
  image: string;
  env?: Array<{ name: string; value?: string }>;
}
/** Env entries by name (order is the strategic merge's business). */
const byName = (c: Container) => ({ ...c, env: Object.fromEntries((c.env ?? []).map(e => [e.name, e])) });

describe(`kustomize: deploy/ with ${KUSTOMIZE_COMPONENT}`, () => {
  const bundle = deployCopy();
  const bootstrap = withProxyBundle(DATA_PLANE, bundle);

  it.each(["deploy", "deploy/overlays/persistence"])(
    "%s: the ConfigMap and DaemonSet the bootstrap applies; the proxy on Pepr's image and the node's loopback",
    dir => {
      const objects = kustomize(join(work, dir));
      const cm = find(objects, "ConfigMap", bundle.name);
      expect(cm).toEqual(find(bootstrap, "ConfigMap", bundle.name));
      expect(cm.immutable).toBe(true);
      const ds = podSpec(find(objects, "DaemonSet", "kube-image-keeper-proxy"));
      const expected = podSpec(find(bootstrap, "DaemonSet", "kube-image-keeper-proxy"));
      const { containers, ...rest } = ds;
      const { containers: expectedContainers, ...expectedRest } = expected;
      expect(rest).toEqual(expectedRest);
      expect(containers.map(byName)).toEqual(expectedContainers.map(byName));
      const proxy = byName(containers[0] as Container);
      expect(proxy.image).toMatch(/^ghcr\.io\/defenseunicorns\/pepr\/controller:v\d/);
      expect(ds.hostNetwork).toBe(true);
      expect(proxy.env.KUIK_PROXY_LISTEN?.value).toBe("127.0.0.1:7439,[::1]:7439");
      expect(proxy.env.KUIK_PROXY_BUNDLE_SHA256?.value).toBe(bundle.sha256);
      expect(ds.volumes).toContainEqual({ name: "bundle", configMap: { name: bundle.name } });
    },
    60_000,
  );
});
