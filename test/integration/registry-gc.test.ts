/**
 * Registry garbage collection as deploy/components/garbage-collection ships it (docs/garbage-collection.md), with
 * real components: the init container's script and args, rendered by kubectl's kustomize, run against a real
 * distribution registry on the filesystem; the CronJob's RBAC checked as its ServiceAccount on a real API server.
 *
 * The bug story: kube-image-keeper v1 switched the registry to read-only around its collection, and a failed run
 * left it there, so every push answered 405 and caching failed for good (v1 issues #209, #482, #124). Here a
 * collection that fails must exit 0 and leave a registry that starts and accepts pushes.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyServerSide,
  containerOf,
  gcInvocation,
  objectOf,
  podSpecOf,
  renderOverlay,
  runGc,
  type GcInvocation,
  type RenderedOverlay,
} from "../harness/deploy-render";
import {
  controlPlaneAvailable,
  startControlPlane,
  type ControlPlane,
  type KubeObject,
} from "../harness/control-plane";
import { buildImage, pushImage, type BuiltImage } from "../harness/images";
import { startCache, type StartedRegistry } from "../harness/registries";
import { deleteManifestByDigest, pullByteExact } from "../harness/storage-checks";
import { REPO_ROOT } from "../harness/tools";

const NS = "kuik-system";
const SA = "kube-image-keeper-registry-restart";
const CRONJOB = "kube-image-keeper-registry-garbage-collection";

let cp: ControlPlane;
let rendered: RenderedOverlay;
let gc: GcInvocation;
let cache: StartedRegistry;

/** Blob digests of a built image (layers, config, manifests). */
const blobsOf = (image: BuiltImage): string[] => image.blobs;

describe.skipIf(!controlPlaneAvailable(false))(
  "registry garbage collection (components/garbage-collection)",
  () => {
    beforeAll(async () => {
      [cp, cache] = await Promise.all([
        startControlPlane({ controllerManager: false }),
        startCache({ name: "gc" }),
      ]);
      rendered = await renderOverlay(cp, ["persistence", "garbage-collection"]);
      gc = gcInvocation(rendered.objects);
    });

    afterAll(async () => {
      await Promise.all([cache?.stop(), cp?.stop()]);
    });

    it("renders the init container from the registry container and the script file, and applies server-side", async () => {
      const sts = objectOf(rendered.objects, "StatefulSet", "kube-image-keeper-registry");
      const pod = podSpecOf(sts);
      const registry = containerOf(pod, "registry");
      const init = containerOf(pod, "garbage-collect");
      expect(init.image).toBe(registry.image);
      expect(init.env).toEqual(registry.env);
      expect(init.securityContext).toEqual(registry.securityContext);
      expect(init.args).toEqual(["3600", "/etc/distribution/config.yml", "--delete-untagged=false"]);
      expect(init.volumeMounts?.map(m => m.mountPath)).toEqual(
        expect.arrayContaining(registry.volumeMounts?.map(m => m.mountPath) ?? ["?"]),
      );
      // the ConfigMap holds the repository's script byte for byte
      const file = join(REPO_ROOT, "deploy", "components", "garbage-collection", "garbage-collect.sh");
      expect(gc.script).toBe(readFileSync(file, "utf8"));

      const cron = objectOf<KubeObject & { spec: Record<string, unknown> }>(
        rendered.objects,
        "CronJob",
        CRONJOB,
      );
      expect(cron.spec).toMatchObject({ schedule: "0 0 * * 0", concurrencyPolicy: "Forbid" });
      expect(cron.spec.jobTemplate).toMatchObject({ spec: { backoffLimit: 3, activeDeadlineSeconds: 4200 } });
      const job = podSpecOf(cron);
      expect(job.serviceAccountName).toBe(SA);
      const restart = containerOf(job, "restart");
      const wait = containerOf(job, "wait");
      expect(restart.args).toEqual(["rollout", "restart", "StatefulSet/kube-image-keeper-registry"]);
      expect(wait.args?.slice(0, 3)).toEqual(["rollout", "status", "StatefulSet/kube-image-keeper-registry"]);
      // the kubectl image follows the control plane's minor version
      const minor = /^v(\d+\.\d+)\./.exec(cp.version)?.[1] ?? "?";
      expect(restart.image).toMatch(
        new RegExp(`^registry\\.k8s\\.io/kubectl:v${minor.replace(".", "\\.")}\\.\\d+$`),
      );

      const [real, dry] = await applyServerSide(cp, rendered.file);
      expect(real.code, real.stderr).toBe(0);
      expect(dry.code, dry.stderr).toBe(0);
    });

    it("the CronJob's ServiceAccount may restart and watch the registry StatefulSet, and nothing else", async () => {
      const token = (await cp.kubectl(["create", "token", SA, "-n", NS])).stdout.trim();
      const kubeconfig = cp.writeTokenKubeconfig(join(rendered.dir, "sa.kubeconfig"), SA, token);
      const can = async (...args: string[]): Promise<string> =>
        (await cp.kubectl(["auth", "can-i", ...args], { kubeconfig, allowFailure: true })).stdout.trim();
      for (const verb of ["get", "list", "watch", "patch"]) {
        expect(await can(verb, "statefulsets/kube-image-keeper-registry", "-n", NS), verb).toBe("yes");
      }
      for (const denied of [
        ["delete", "statefulsets/kube-image-keeper-registry", "-n", NS],
        ["patch", "statefulsets/other", "-n", NS],
        ["patch", "daemonsets/kube-image-keeper-proxy", "-n", NS],
        ["patch", "statefulsets/kube-image-keeper-registry", "-n", "default"],
        ["list", "statefulsets", "-n", NS], // without a name: not allowed
        ["get", "pods", "-n", NS],
        ["create", "pods/exec", "-n", NS],
        ["get", "secrets", "-n", NS],
      ]) {
        expect(await can(...denied), denied.join(" ")).toBe("no");
      }
      // The Job's exact commands, as the ServiceAccount (no kubelet here: the status wait can only time out).
      const job = podSpecOf(objectOf(rendered.objects, "CronJob", CRONJOB));
      const restarted = await cp.kubectl([...(containerOf(job, "restart").args ?? []), "-n", NS], {
        kubeconfig,
        allowFailure: true,
      });
      expect(restarted.code, restarted.stderr).toBe(0);
      const sts = await cp.kubectlJson(["get", "statefulset", "kube-image-keeper-registry", "-n", NS]);
      expect(JSON.stringify(sts.spec)).toContain("kubectl.kubernetes.io/restartedAt");
      const waitArgs = (containerOf(job, "wait").args ?? []).map(a =>
        a.startsWith("--timeout=") ? "--timeout=2s" : a,
      );
      const waited = await cp.kubectl([...waitArgs, "-n", NS], { kubeconfig, allowFailure: true });
      expect(waited.code).not.toBe(0);
      expect(waited.stderr).toMatch(/timed out/i);
      expect(waited.stderr).not.toMatch(/forbidden/i);
      const other = await cp.kubectl(["rollout", "restart", "daemonset/kube-image-keeper-proxy", "-n", NS], {
        kubeconfig,
        allowFailure: true,
      });
      expect(other.stderr).toMatch(/forbidden/i);
    });

    it("collects the blobs of a deleted manifest; the kept image pulls byte-exact; pushes work", async () => {
      const [kept, gone, later] = await Promise.all(
        ["gc-kept", "gc-gone", "gc-later"].map(seed => buildImage({ seed, size: "256K", layers: 2 })),
      );
      if (!kept || !gone || !later) throw new Error("images");
      const keptPush = await pushImage(kept, cache, { repo: "kept/app" });
      // the same blobs in a second repository: deleting that one must not free them
      const sharedPush = await pushImage(kept, cache, { repo: "shared/app" });
      const gonePush = await pushImage(gone, cache, { repo: "gone/app" });
      expect(await deleteManifestByDigest(cache, "shared/app", sharedPush.digest)).toBe(202);
      expect(await deleteManifestByDigest(cache, "gone/app", gonePush.digest)).toBe(202);
      for (const d of blobsOf(gone)) expect(existsSync(cache.blobFile(d)), d).toBe(true);

      cache.kill("SIGTERM");
      await cache.exited();
      const r = await runGc(gc, cache.configFile);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain("kuik-gc: done");
      expect(r.stderr).not.toContain("FAILED");
      await cache.restart();

      for (const d of blobsOf(gone)) expect(existsSync(cache.blobFile(d)), `collected ${d}`).toBe(false);
      for (const d of blobsOf(kept)) expect(existsSync(cache.blobFile(d)), `kept ${d}`).toBe(true);
      expect((await pullByteExact(cache, `kept/app@${keptPush.digest}`)).length).toBeGreaterThan(0);
      const after = await pushImage(later, cache, { repo: "later/app" }); // not read-only
      expect(after.digest).toMatch(/^sha256:/);
    });

    it("a failing collection exits 0 with a clear message; the registry starts and accepts pushes", async () => {
      // Corrupt storage: a revision link of kept/app that is not a digest.
      const revisions = join(
        cache.dataDir,
        "docker/registry/v2/repositories/kept/app/_manifests/revisions/sha256",
      );
      const [rev] = readdirSync(revisions);
      cache.kill("SIGTERM");
      await cache.exited();
      writeFileSync(join(revisions, rev ?? "?", "link"), "not-a-digest");
      const corrupt = await runGc(gc, cache.configFile);
      expect(corrupt.code).toBe(0);
      expect(corrupt.stderr).toMatch(
        /^kuik-gc: FAILED \(exit \d+\); the registry starts anyway, read-write: /m,
      );

      // A broken config: the same.
      const badConfig = join(cache.dir, "broken.yml");
      writeFileSync(badConfig, "version: 0.1\nstorage: [not, a, map]\n");
      const broken = await runGc(gc, badConfig);
      expect(broken.code).toBe(0);
      expect(broken.stderr).toContain("kuik-gc: FAILED");

      await cache.restart();
      const image = await buildImage({ seed: "gc-after-failure", size: "128K" });
      const pushed = await pushImage(image, cache, { repo: "after-failure/app" });
      expect((await pullByteExact(cache, `after-failure/app@${pushed.digest}`)).length).toBeGreaterThan(0);
    });
  },
);
