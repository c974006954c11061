/**
 * End to end, on a real local control plane (test/e2e/stack.ts): a Deployment's Pods are rewritten to the proxy,
 * kuik caches the image in the cache registry with the origin's digest, records who uses it and says so in
 * Events; digest-pinned and multi-arch images keep their digests; and a real client pulling through the proxy
 * still gets the image once the origin is gone.
 *
 * Scenarios (issue #3): (a) Deployment, (f) events, (e) pinned + multi-arch, (d) origin down. (d) runs last: it
 * stops the origin.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, removeTempDir } from "../harness/cleanup";
import { criPull, startContainerd, writeHostsToml, type StartedContainerd } from "../harness/containerd";
import { buildImage, pushImage, type PushedImage } from "../harness/images";
import { inspectRaw, skopeo } from "../harness/skopeo";
import { tryFindTool } from "../harness/tools";
import {
  cachedImageEventReasons,
  isCachedAndReady,
  listPods,
  podImages,
  scenario,
  startStack,
  waitFor,
  waitForCachedImage,
  type Stack,
} from "./stack";

const NS = "e2e-caching";

describe("caching", () => {
  let stack: Stack;
  let app: PushedImage;

  beforeAll(async () => {
    stack = await startStack();
    await stack.namespaceWithPullSecret(NS);
    app = await stack.pushToOrigin({ size: "2M", layers: 2, seed: "e2e-caching-app" }, "e2e/app", "v1");
  });

  afterAll(async () => {
    await stack?.stop();
  });

  describe("(a) a 2-replica Deployment of an image on the origin", () => {
    beforeAll(async () => {
      await stack.cp.apply(
        scenario("deployment", { NAME: "app", NAMESPACE: NS, IMAGE: app.ref, REPLICAS: 2 }),
      );
    });

    it("gets both Pods' images rewritten to the proxy", async () => {
      const pods = await waitFor("2 Pods of the Deployment", async () => {
        const p = await listPods(stack, NS, "app=app");
        return p.length === 2 ? p : undefined;
      });
      for (const pod of pods) expect(podImages(pod)).toEqual([stack.proxyImage(app.ref)]);
      expect(stack.proxyImage(app.ref)).toMatch(
        new RegExp(`^localhost:${stack.proxyPort}/127\\.0\\.0\\.1-\\d+/e2e/app:v1$`),
      );
    });

    it("creates a CachedImage under the reference name, used by 2 Pods, cached and Ready", async () => {
      const name = stack.cachedImageName(app.ref);
      expect(name).toBe(`127.0.0.1-${stack.origin.port}-e2e-app-v1`);
      const ci = await waitForCachedImage(
        stack,
        name,
        "Ready and used by 2 pods",
        c => isCachedAndReady(c) && (c.status?.usedBy as { count?: number } | undefined)?.count === 2,
      );
      expect(ci.spec?.sourceImage).toBe(app.ref);
      expect(ci.status?.digest).toBe(app.digest);
    });

    it("holds the image in the cache registry with the origin's digest", async () => {
      expect(await stack.cacheDigest("e2e/app", "v1")).toBe(app.digest);
      expect(await stack.cacheDigest("e2e/app", app.digest)).toBe(app.digest);
    });
  });

  describe("(f) events", () => {
    it("records Caching then Cached on the CachedImage", async () => {
      const name = stack.cachedImageName(app.ref);
      const reasons = await waitFor("Caching and Cached events", async () => {
        const r = await cachedImageEventReasons(stack, name);
        return r.includes("Caching") && r.includes("Cached") ? r : undefined;
      });
      expect(reasons).toEqual(expect.arrayContaining(["Caching", "Cached"]));
    });
  });

  describe("(e) digest-pinned and multi-arch images", () => {
    let pinned: PushedImage;
    let multi: PushedImage;
    let pinnedRef: string;

    beforeAll(async () => {
      pinned = await stack.pushToOrigin({ size: "1M", seed: "e2e-pinned" }, "e2e/pinned", "v1");
      multi = await pushImage(
        await buildImage({ size: "1M", arch: ["amd64", "arm64"], seed: "e2e-multiarch" }),
        stack.origin,
        { repo: "e2e/multiarch", tag: "v1" },
      );
      pinnedRef = `${stack.origin.host}/e2e/pinned@${pinned.digest}`;
      await stack.cp.apply(
        scenario("pinned-and-multiarch", {
          NAMESPACE: NS,
          PINNED_IMAGE: pinnedRef,
          MULTIARCH_IMAGE: multi.ref,
        }),
      );
    });

    it("rewrites both, the digest kept in the proxy image", async () => {
      const pod = await stack.kubectlJson(["get", "pod", "pinned-and-multiarch", "-n", NS]);
      expect(podImages(pod)).toEqual([stack.proxyImage(pinnedRef), stack.proxyImage(multi.ref)]);
      expect(stack.proxyImage(pinnedRef)).toContain(`@${pinned.digest}`);
    });

    it("caches the digest-pinned image under its digest", async () => {
      const ci = await waitForCachedImage(
        stack,
        stack.cachedImageName(pinnedRef),
        "cached",
        isCachedAndReady,
      );
      expect(ci.status?.digest).toBe(pinned.digest);
      expect(await stack.cacheDigest("e2e/pinned", pinned.digest)).toBe(pinned.digest);
    });

    it("caches the multi-arch image as the origin's index", async () => {
      expect(multi.mediaType).toBe("application/vnd.oci.image.index.v1+json");
      const ci = await waitForCachedImage(
        stack,
        stack.cachedImageName(multi.ref),
        "cached",
        isCachedAndReady,
      );
      expect(ci.status?.digest).toBe(multi.digest);
      expect(await stack.cacheDigest("e2e/multiarch", "v1")).toBe(multi.digest);
      // every platform (KUIK_ARCHITECTURES unset: all), each under its own digest
      const index = JSON.parse(multi.manifest.toString("utf8")) as {
        manifests: Array<{ digest: string; platform?: { architecture?: string } }>;
      };
      expect(index.manifests.map(m => m.platform?.architecture).sort()).toEqual(["amd64", "arm64"]);
      for (const m of index.manifests) {
        expect(await stack.cacheDigest("e2e/multiarch", m.digest), m.platform?.architecture).toBe(m.digest);
      }
    });
  });

  describe("(d) pulling through the proxy while the origin is down", () => {
    let ctd: StartedContainerd | undefined;
    const containerdUsable =
      process.getuid?.() === 0 &&
      !!tryFindTool("containerd") &&
      !!tryFindTool("ctr") &&
      !!tryFindTool("python3-grpc");

    beforeAll(async () => {
      // the image must be cached before the origin goes
      await waitForCachedImage(stack, stack.cachedImageName(app.ref), "cached", isCachedAndReady);
      stack.origin.kill("SIGKILL");
      await stack.origin.exited();
    });

    afterAll(async () => {
      await ctd?.stop();
      await stack.origin.restart();
    });

    it("serves skopeo the manifest and blobs with the origin's digest", async () => {
      if (!stack.proxy) throw new Error("the proxy is not running (proxy/src/main.ts missing?)");
      const proxy = { host: `localhost:${stack.proxyPort}`, tls: false };
      const repo = stack.proxyImage(app.ref).slice(`localhost:${stack.proxyPort}/`.length); // 127.0.0.1-PORT/e2e/app:v1
      const raw = await inspectRaw(proxy, repo, null);
      expect(`sha256:${createHash("sha256").update(raw).digest("hex")}`).toBe(app.digest);
      const dir = makeTempDir("e2e-pull");
      try {
        await skopeo([
          "copy",
          "--retry-times",
          "0",
          "--src-tls-verify=false",
          "--src-no-creds",
          `docker://${stack.proxyImage(app.ref)}`,
          `oci:${join(dir, "layout")}:pulled`,
        ]);
      } finally {
        removeTempDir(dir);
      }
    });

    it.skipIf(!containerdUsable)("serves containerd's CRI pull, as the kubelet would", async () => {
      ctd = await startContainerd();
      const host = `localhost:${stack.proxyPort}`;
      writeHostsToml(ctd.hostsDir, host, [{ url: `http://${host}` }], `http://${host}`);
      const r = await criPull(ctd.socket, stack.proxyImage(app.ref), { timeoutMs: 120_000 });
      expect(r.imageRef).toMatch(/^sha256:[0-9a-f]{64}$/);
    });
  });
});
