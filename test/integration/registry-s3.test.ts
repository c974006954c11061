/**
 * The cache registry's S3 storage mode (deploy/components/s3) for real: distribution v3 configured ONLY through
 * the environment the component renders (values and secret references resolved as the kubelet would, the endpoint
 * pointed at a real MinIO on loopback), registry-client's copyImage into it, a byte-exact pull with skopeo, objects
 * checked in the bucket, then a manifest deleted and the garbage-collection init container run as rendered against
 * the bucket (docs/garbage-collection.md). The renderings also apply server-side to a real API server.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyImage, RegistryClient } from "../../registry-client/src";
import { buildImage, pushImage, type BuiltImage } from "../harness/images";
import { startCache, stopAll, type StartedRegistry } from "../harness/registries";
import { controlPlaneAvailable, startControlPlane, type ControlPlane } from "../harness/control-plane";
import {
  applyServerSide,
  containerOf,
  gcInvocation,
  podSpecOf,
  registryWorkload,
  renderOverlay,
  runGc,
  type RenderedOverlay,
} from "../harness/deploy-render";
import { minioAvailable, startMinio, type StartedMinio } from "../harness/s3";
import { deleteManifestByDigest, pullByteExact } from "../harness/storage-checks";

let cp: ControlPlane;
let minio: StartedMinio;
let origin: StartedRegistry;
let s3Registry: StartedRegistry;
let plain: RenderedOverlay;
let withGc: RenderedOverlay;
let secrets: Record<string, Record<string, string>>;
/** What the cluster operator sets per install: the endpoint of their S3 server. */
let endpointOverride: Record<string, string>;

/** The object key of a blob under distribution's S3 layout (rootdirectory unset). */
const blobKey = (digest: string): string => {
  const hex = digest.slice("sha256:".length);
  return `docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
};

/** The registry container's env as the kubelet would resolve it from the rendered Deployment. */
function renderedRegistryEnv(overlay: RenderedOverlay): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of containerOf(podSpecOf(registryWorkload(overlay.objects)), "registry").env ?? []) {
    const ref = e.valueFrom?.secretKeyRef;
    const value = ref ? secrets[ref.name]?.[ref.key] : e.value;
    if (value === undefined) throw new Error(`env ${e.name} has no value`);
    env[e.name] = value;
  }
  return { ...env, ...endpointOverride };
}

/** Every file under a directory, recursively (to prove the filesystem storage stays empty). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter(d => d.isFile())
    .map(d => join(d.parentPath, d.name));
}

describe.skipIf(!controlPlaneAvailable(false) || !minioAvailable())("registry on S3 (components/s3)", () => {
  beforeAll(async () => {
    [cp, minio, origin] = await Promise.all([
      startControlPlane({ controllerManager: false }),
      startMinio({ bucket: "kube-image-keeper-registry" }),
      startCache({ name: "s3-origin" }),
    ]);
    [plain, withGc] = await Promise.all([
      renderOverlay(cp, ["s3"]),
      renderOverlay(cp, ["s3", "garbage-collection"]),
    ]);
    secrets = {
      "kube-image-keeper-s3-registry-keys": { accessKey: minio.accessKey, secretKey: minio.secretKey },
      "kube-image-keeper-registry-http-secret": { secret: "kuik-test-http-secret-0123456789abcdef" },
    };
    endpointOverride = { REGISTRY_STORAGE_S3_REGIONENDPOINT: minio.endpoint };
  });

  afterAll(async () => {
    await stopAll(s3Registry, origin, minio, cp);
  });

  it("renders a Deployment configured by env and secret references; applies server-side", async () => {
    for (const overlay of [plain, withGc]) {
      expect(overlay.objects.some(o => o.kind === "StatefulSet")).toBe(false);
      const deployment = registryWorkload(overlay.objects);
      expect(deployment.kind).toBe("Deployment");
      expect(deployment.spec).toMatchObject({ replicas: 2 });
      const env = containerOf(podSpecOf(deployment), "registry").env ?? [];
      const byName = Object.fromEntries(env.map(e => [e.name, e]));
      expect(byName.REGISTRY_STORAGE?.value).toBe("s3");
      expect(byName.REGISTRY_STORAGE_REDIRECT_DISABLE?.value).toBe("true");
      expect(byName.REGISTRY_STORAGE_S3_ACCESSKEY?.valueFrom?.secretKeyRef).toEqual({
        name: "kube-image-keeper-s3-registry-keys",
        key: "accessKey",
      });
      expect(byName.REGISTRY_STORAGE_S3_SECRETKEY?.valueFrom?.secretKeyRef?.key).toBe("secretKey");
      expect(byName.REGISTRY_HTTP_SECRET?.valueFrom?.secretKeyRef?.name).toBe(
        "kube-image-keeper-registry-http-secret",
      );
      const [real, dry] = await applyServerSide(cp, overlay.file);
      expect(real.code, real.stderr).toBe(0);
      expect(dry.code, dry.stderr).toBe(0);
    }
    // Recreate only with garbage collection: no old pod may accept pushes while a new one collects. Applied above
    // over the RollingUpdate rendering, as a user enabling the component does.
    expect(registryWorkload(plain.objects).spec?.strategy).toEqual({
      type: "RollingUpdate",
      rollingUpdate: { maxSurge: 1, maxUnavailable: 0 },
    });
    expect(registryWorkload(withGc.objects).spec?.strategy).toEqual({ type: "Recreate" });
    const gcPod = podSpecOf(registryWorkload(withGc.objects));
    expect(containerOf(gcPod, "garbage-collect").env).toEqual(containerOf(gcPod, "registry").env);
    const cron = withGc.objects.find(o => o.kind === "CronJob");
    expect(JSON.stringify(cron)).toContain('"Deployment/kube-image-keeper-registry"');
    // The Job's commands against the Deployment, as its ServiceAccount (no controller manager: status times out).
    const sa = "kube-image-keeper-registry-restart";
    const token = (await cp.kubectl(["create", "token", sa, "-n", "kuik-system"])).stdout.trim();
    const kubeconfig = cp.writeTokenKubeconfig(join(withGc.dir, "sa.kubeconfig"), sa, token);
    const job = podSpecOf(cron ?? {});
    const asSa = (args: string[]): ReturnType<ControlPlane["kubectl"]> =>
      cp.kubectl([...args, "-n", "kuik-system"], { kubeconfig, allowFailure: true });
    const restarted = await asSa(containerOf(job, "restart").args ?? []);
    expect(restarted.code, restarted.stderr).toBe(0);
    const wait = (containerOf(job, "wait").args ?? []).map(a =>
      a.startsWith("--timeout=") ? "--timeout=2s" : a,
    );
    const waited = await asSa(wait);
    expect(waited.stderr).toMatch(/timed out/i);
    expect(waited.stderr).not.toMatch(/forbidden/i);
  });

  it("copyImage into the S3-backed registry; skopeo pulls it byte-exact; blobs are in the bucket", async () => {
    s3Registry = await startCache({ name: "s3", env: renderedRegistryEnv(withGc) });
    const image = await buildImage({ seed: "s3-kept", size: "512K", layers: 2 });
    const pushed = await pushImage(image, origin, { repo: "team/app", tag: "v1" });
    const client = new RegistryClient({
      hosts: { [origin.host]: { plainHttp: true }, [s3Registry.host]: { plainHttp: true } },
    });
    try {
      const result = await copyImage(client, pushed.ref, `${s3Registry.host}/origin/team/app:v1`);
      expect(result.digest).toBe(pushed.digest);
    } finally {
      await client.close();
    }
    const manifest = await pullByteExact(s3Registry, `origin/team/app@${pushed.digest}`);
    expect(manifest.equals(pushed.manifest)).toBe(true);
    for (const d of image.blobs) expect(await minio.headObject(blobKey(d)), d).toBe(200);
    // nothing went to the ConfigMap's filesystem storage
    expect(filesUnder(s3Registry.dataDir)).toEqual([]);
  });

  it("a deleted manifest's blobs are collected from the bucket by the rendered init container", async () => {
    const [kept, gone, later]: BuiltImage[] = await Promise.all(
      ["s3-gc-kept", "s3-gc-gone", "s3-gc-later"].map(seed => buildImage({ seed, size: "256K", layers: 2 })),
    );
    if (!kept || !gone || !later) throw new Error("images");
    const keptPush = await pushImage(kept, s3Registry, { repo: "kept/app" });
    const gonePush = await pushImage(gone, s3Registry, { repo: "gone/app" });
    expect(await deleteManifestByDigest(s3Registry, "gone/app", gonePush.digest)).toBe(202);
    for (const d of gone.blobs) expect(await minio.headObject(blobKey(d)), d).toBe(200);

    s3Registry.kill("SIGTERM");
    await s3Registry.exited();
    const r = await runGc(gcInvocation(withGc.objects, secrets), s3Registry.configFile, endpointOverride);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("kuik-gc: done");
    expect(r.stderr).not.toContain("FAILED");
    await s3Registry.restart();

    for (const d of gone.blobs) expect(await minio.headObject(blobKey(d)), `collected ${d}`).toBe(404);
    for (const d of kept.blobs) expect(await minio.headObject(blobKey(d)), `kept ${d}`).toBe(200);
    expect((await pullByteExact(s3Registry, `kept/app@${keptPush.digest}`)).equals(keptPush.manifest)).toBe(
      true,
    );
    const after = await pushImage(later, s3Registry, { repo: "later/app" });
    for (const d of later.blobs) expect(await minio.headObject(blobKey(d)), d).toBe(200);
    expect(after.digest).toMatch(/^sha256:/);
  });
});
