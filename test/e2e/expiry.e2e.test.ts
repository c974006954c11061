/**
 * End to end, scenario (c) of issue #3, with a short expiry delay: once the last Pod using an image goes (its
 * Deployment deleted, the garbage collector deleting ReplicaSet and Pods), kuik sets `spec.expiresAt`; at that time
 * the CachedImage and its manifest in the cache registry are removed. A CachedImage with `spec.retain: true`
 * (set with `kubectl patch`) stays, image included.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PushedImage } from "../harness/images";
import {
  isCachedAndReady,
  listPods,
  scenario,
  startStack,
  waitFor,
  waitForCachedImage,
  type Stack,
} from "./stack";

const NS = "e2e-expiry";
/** Expiry delay in seconds (the setting is in days). */
const EXPIRY_SECONDS = 8;

describe("expiry", () => {
  let stack: Stack;
  let expiring: PushedImage;
  let retained: PushedImage;

  beforeAll(async () => {
    stack = await startStack({
      env: {
        KUIK_CACHED_IMAGES_EXPIRY_DELAY: String(EXPIRY_SECONDS / 86_400),
        KUIK_EXPIRY_SWEEP_INTERVAL_SECONDS: "1",
      },
    });
    await stack.namespaceWithPullSecret(NS);
    [expiring, retained] = await Promise.all([
      stack.pushToOrigin({ size: "1M", seed: "e2e-expiring" }, "e2e/expiring", "v1"),
      stack.pushToOrigin({ size: "1M", seed: "e2e-retained" }, "e2e/retained", "v1"),
    ]);
    await stack.cp.apply(
      [
        scenario("deployment", { NAME: "expiring", NAMESPACE: NS, IMAGE: expiring.ref, REPLICAS: 1 }),
        scenario("deployment", { NAME: "retained", NAMESPACE: NS, IMAGE: retained.ref, REPLICAS: 1 }),
      ].join("\n---\n"),
    );
  });

  afterAll(async () => {
    await stack?.stop();
  });

  /** Delete a Deployment and wait until the garbage collector removed its Pods. */
  async function deleteDeployment(name: string): Promise<void> {
    await stack.kubectl(["delete", "deployment", name, "-n", NS, "--wait=true"]);
    await waitFor(
      `Pods of ${name} gone`,
      async () => (await listPods(stack, NS, `app=${name}`)).length === 0,
    );
  }

  describe("(c) expiry of unused images", () => {
    it("caches both images while their Deployments run, without expiresAt", async () => {
      for (const img of [expiring, retained]) {
        const ci = await waitForCachedImage(
          stack,
          stack.cachedImageName(img.ref),
          "cached",
          isCachedAndReady,
        );
        expect(ci.spec?.expiresAt).toBeUndefined();
        expect(await stack.cacheDigest(img.repo, img.tag)).toBe(img.digest);
      }
    });

    it("sets spec.expiresAt when the last Pod goes, then removes the CachedImage and its manifest", async () => {
      // The retained image goes unused first, with spec.retain set: when the expiring one is deleted, a sweep has
      // run past the retained one's delay too (checked by the next test, without waiting on a clock).
      await stack.kubectl([
        "patch",
        "cachedimage",
        stack.cachedImageName(retained.ref),
        "--type=merge",
        "-p",
        JSON.stringify({ spec: { retain: true } }),
      ]);
      await deleteDeployment("retained");
      const name = stack.cachedImageName(expiring.ref);
      const before = Date.now();
      await deleteDeployment("expiring");
      const ci = await waitForCachedImage(
        stack,
        name,
        "spec.expiresAt set",
        c => typeof c.spec?.expiresAt === "string",
      );
      const expiresAt = Date.parse(String(ci.spec?.expiresAt));
      // now + the delay, give or take the sweep interval and clock rounding to the second
      expect(expiresAt).toBeGreaterThanOrEqual(before + EXPIRY_SECONDS * 1000 - 2000);
      expect(expiresAt).toBeLessThanOrEqual(Date.now() + EXPIRY_SECONDS * 1000 + 2000);
      await waitFor(
        `CachedImage ${name} deleted`,
        async () => (await stack.getCachedImage(name)) === undefined,
        { timeoutMs: (EXPIRY_SECONDS + 30) * 1000, diagnostics: () => stack.diagnostics(15) },
      );
      await waitFor(
        "manifest removed from the cache registry",
        async () => (await stack.cacheDigest(expiring.repo, expiring.tag)) === undefined,
        { timeoutMs: 30_000 },
      );
      expect(await stack.cacheDigest(expiring.repo, expiring.digest)).toBeUndefined();
    });

    it("keeps a CachedImage patched with spec.retain: true, and its image", async () => {
      // Unused (and past its delay) since before the expiring image, which the previous test saw deleted.
      const name = stack.cachedImageName(retained.ref);
      const ci = await stack.getCachedImage(name);
      expect(ci, "CachedImage still there").toBeDefined();
      expect(ci?.spec?.retain).toBe(true);
      expect(ci?.spec?.expiresAt).toBeUndefined();
      expect((ci?.status?.usedBy as { count?: number } | undefined)?.count ?? 0).toBe(0);
      expect(await stack.cacheDigest(retained.repo, retained.tag)).toBe(retained.digest);
    });
  });
});
