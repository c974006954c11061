/**
 * Checks on a cache registry's storage shared by the storage-mode tests (registry-gc, registry-s3): delete a
 * manifest the way kuik's finalizer does, and pull an image byte-exact with skopeo.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { makeTempDir, removeTempDir } from "./cleanup";
import type { StartedRegistry } from "./registries";
import { skopeo } from "./skopeo";

/** `DELETE /v2/<repo>/manifests/<digest>` on a plain-HTTP registry, as kuik's CachedImage finalizer does. */
export async function deleteManifestByDigest(
  registry: StartedRegistry,
  repo: string,
  digest: string,
): Promise<number> {
  const res = await fetch(`${registry.url}/v2/${repo}/manifests/${digest}`, { method: "DELETE" });
  await res.arrayBuffer();
  return res.status;
}

/**
 * `skopeo copy` of a single-platform image from a plain-HTTP registry into a `dir:` layout, checking that every
 * blob file hashes to its digest. Returns the manifest bytes as served; throws on any mismatch.
 */
export async function pullByteExact(registry: StartedRegistry, ref: string): Promise<Buffer> {
  const tmp = makeTempDir("pull");
  try {
    const dir = join(tmp, "image");
    await skopeo([
      "copy",
      "--src-tls-verify=false",
      "--src-no-creds",
      `docker://${registry.host}/${ref}`,
      `dir:${dir}`,
    ]);
    const manifest = readFileSync(join(dir, "manifest.json"));
    const { config, layers } = JSON.parse(manifest.toString("utf8")) as {
      config: { digest: string };
      layers: Array<{ digest: string }>;
    };
    for (const { digest } of [config, ...layers]) {
      const hex = digest.slice("sha256:".length);
      const got = createHash("sha256")
        .update(readFileSync(join(dir, hex)))
        .digest("hex");
      if (got !== hex) throw new Error(`pullByteExact ${ref}: blob ${digest} hashes to sha256:${got}`);
    }
    return manifest;
  } finally {
    removeTempDir(tmp);
  }
}
