/**
 * Copy benchmark (issue #2): a 1 GiB, 5-layer image from a TLS + basic-auth origin into a plain-HTTP cache
 * registry, with registry-client's copyImage and with `skopeo copy`, interleaved in the same run (A, B, A, B…),
 * each into a fresh repository, skopeo with an empty blob-info cache (see docs/benchmarking traps).
 *
 *   npx tsx bench/copy.ts          RUNS=3 SIZE=1G LAYERS=5 CONCURRENCY=4
 *
 * Prints each run, both medians and the ratio skopeo time / copyImage time (> 1: we are faster).
 */
import { readFileSync } from "node:fs";
import { RegistryClient, copyImage } from "../registry-client/src";
import { buildAndPush, copyImage as skopeoCopy } from "../test/harness/images";
import { startCache, startOriginBasic, stopAll } from "../test/harness/registries";

const RUNS = Number(process.env.RUNS ?? 3);
const SIZE = process.env.SIZE ?? "1G";
const LAYERS = Number(process.env.LAYERS ?? 5);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 4);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
};

async function main(): Promise<void> {
  const [origin, cache] = await Promise.all([startOriginBasic(), startCache()]);
  try {
    const { pushed, image } = await buildAndPush({ size: SIZE, layers: LAYERS, seed: "bench" }, origin, { repo: "bench/image", tag: "v1" });
    const client = new RegistryClient({
      hosts: { [cache.host]: { plainHttp: true } },
      defaultCa: [readFileSync(origin.caFile ?? "", "utf8")],
      credentials: r => (r === origin.host ? [{ kind: "basic", username: origin.username ?? "", password: origin.password ?? "" }] : []),
    });
    const ours: number[] = [];
    const theirs: number[] = [];
    const mb = image.bytes / 1e6;
    console.log(`image: ${(image.bytes / 2 ** 20).toFixed(0)} MiB in ${LAYERS} layers; ${RUNS} interleaved runs`);
    for (let i = 0; i < RUNS; i++) {
      let t = performance.now();
      const r = await copyImage(client, pushed.ref, `${cache.host}/bench/ours-${i}:v1`, { concurrency: CONCURRENCY });
      ours.push((performance.now() - t) / 1000);
      if (r.digest !== pushed.digest || r.blobsCopied === 0) throw new Error("copyImage did not copy");
      t = performance.now();
      const d = await skopeoCopy(origin, "bench/image:v1", cache, `bench/skopeo-${i}:v1`, { destCreds: null });
      theirs.push((performance.now() - t) / 1000);
      if (d !== pushed.digest) throw new Error(`skopeo changed the digest: ${d}`);
      console.log(`run ${i + 1}: copyImage ${ours.at(-1)?.toFixed(2)} s (${(mb / (ours.at(-1) ?? 1)).toFixed(0)} MB/s)` +
        `  skopeo ${theirs.at(-1)?.toFixed(2)} s (${(mb / (theirs.at(-1) ?? 1)).toFixed(0)} MB/s)`);
    }
    await client.close();
    const a = median(ours);
    const b = median(theirs);
    console.log(`median copyImage ${a.toFixed(2)} s (${(mb / a).toFixed(0)} MB/s), skopeo ${b.toFixed(2)} s (${(mb / b).toFixed(0)} MB/s)`);
    console.log(`ratio skopeo/copyImage = ${(b / a).toFixed(2)} (goal ≥ 1.00)`);
  } finally {
    await stopAll(origin, cache);
  }
}

main().catch(err => {
  console.error(err);
  process.exit(1);
});
