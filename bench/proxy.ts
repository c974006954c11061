/**
 * Proxy benchmark (issue #4), loopback only, bounded by BENCH_TIMEOUT. In one run, interleaved (the order rotates
 * every round) and with the same client (curl), it pulls:
 *   (a) straight from the cache registry,  (b) through kuik's proxy from the cache,
 *   (c) through distribution's own pull-through proxy, warm (its storage already holds the blobs);
 *   (d) through a bare Node.js TCP relay to the cache (net.Socket pipes, no HTTP): the ceiling of any proxy that
 *       copies bytes in user space, for reference;
 * - one SIZE blob (1 GiB), ROUNDS times: medians and the per-round ratio b/a (goal ≥ 0.95);
 * - CLIENTS concurrent pulls of one 100 MiB blob: aggregate throughput and per-client p50/p99;
 * - LATENCY_N sequential keep-alive manifest GETs by tag: p50/p99, and the proxy's added p50 (goal ≤ 0.5 ms);
 * and samples the proxy's RSS (VmRSS and its private part RssAnon) during every (b) transfer (goal ≤ 64 MiB).
 * Then, as the kubelet pulls: KUBELET_ROUNDS CRI pulls of the SIZE image through a real containerd (download,
 * digest check, unpack into a snapshot), (a) from the cache registry and (b) through kuik's proxy, interleaved, the
 * image and its content removed between pulls: what a node actually waits for.
 * The proxy runs as it ships: the esbuild bundle, with the image's Node flags and environment.
 *
 *   npx tsx bench/proxy.ts        ROUNDS=5 SIZE=1G CLIENTS=64 LATENCY_N=2000 KUBELET_ROUNDS=3 BENCH_TIMEOUT=900
 */
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { RegistryClient, copyImage } from "../registry-client/src";
import { cacheRepositoryOf } from "../proxy/src/names";
import { buildBundle, node24, spawnProxy, type ProxyProcess } from "../proxy/test/process";
import { buildImage, pushImage } from "../test/harness/images";
import {
  criPull,
  ctrImages,
  ctrRemoveImages,
  startContainerd,
  writeHostsToml,
  type StartedContainerd,
} from "../test/harness/containerd";
import { freePort } from "../test/harness/net";
import { startProcess } from "../test/harness/process";
import { run } from "../test/harness/tools";
import { makeTempDir, removeTempDir } from "../test/harness/cleanup";
import { startCache, startPullThrough, stopAll, type StartedRegistry } from "../test/harness/registries";

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const SIZE = process.env.SIZE ?? "1G";
const CLIENTS = Number(process.env.CLIENTS ?? 64);
const LATENCY_N = Number(process.env.LATENCY_N ?? 2000);
const KUBELET_ROUNDS = Number(process.env.KUBELET_ROUNDS ?? 3);
const TIMEOUT_S = Number(process.env.BENCH_TIMEOUT ?? 900);
const MiB = 2 ** 20;

type Mode = "a-direct" | "b-kuik" | "c-pullthrough" | "d-tcp-relay";
const MODES: Mode[] = ["a-direct", "b-kuik", "c-pullthrough", "d-tcp-relay"];
const RELAY = `const net = require("node:net");
const [port, host, to] = process.argv.slice(1);
net.createServer(c => {
  const u = net.connect(Number(to), host);
  c.pipe(u); u.pipe(c);
  c.on("error", () => u.destroy()); u.on("error", () => c.destroy());
}).listen(Number(port), "127.0.0.1");`;

/** Starts the reference TCP relay (d) in its own process (the harness's runner); returns its port and a stop function. */
async function startRelay(target: StartedRegistry): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const proc = await startProcess({
    name: "tcp-relay",
    cmd: node24(),
    args: ["-e", RELAY, String(port), "127.0.0.1", String(target.port)],
    logFile: join(makeTempDir("bench-relay"), "relay.log"),
    ready: async () =>
      (await run("curl", ["-s", "-o", "/dev/null", `http://127.0.0.1:${port}/v2/`])).code === 0,
    pollMs: 20,
  });
  return { port, stop: proc.stop };
}

const median = (xs: number[]): number => quantile(xs, 0.5);
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((x, y) => x - y);
  if (s.length === 0) return NaN;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  return (s[lo] ?? 0) + ((s[Math.ceil(pos)] ?? 0) - (s[lo] ?? 0)) * (pos - lo);
}

/** Tracks the proxy's peak memory while `during` runs. */
async function sampled<T>(
  proxy: ProxyProcess,
  peaks: { rss: number; anon: number },
  during: () => Promise<T>,
): Promise<T> {
  const timer = setInterval(() => {
    peaks.rss = Math.max(peaks.rss, proxy.rss());
    peaks.anon = Math.max(peaks.anon, proxy.rssAnon());
  }, 10);
  try {
    return await during();
  } finally {
    clearInterval(timer);
  }
}

/** One curl transfer to /dev/null: seconds. */
async function curlGet(url: string): Promise<{ seconds: number; bytes: number }> {
  const r = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url], {
    timeoutMs: 300_000,
  });
  const [bytes, seconds] = r.stdout.trim().split(" ").map(Number);
  if (r.code !== 0 || !bytes) throw new Error(`curl ${url}: ${r.stderr}`);
  return { seconds: seconds ?? NaN, bytes };
}

/** CLIENTS curls at once: aggregate MB/s and per-client times. */
async function concurrent(url: string, expected: number): Promise<{ aggregate: number; times: number[] }> {
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: CLIENTS }, () => curlGet(url)));
  const wall = (performance.now() - started) / 1000;
  if (results.some(r => r.bytes !== expected)) throw new Error("short transfer in the concurrent run");
  return { aggregate: (expected * CLIENTS) / 1e6 / wall, times: results.map(r => r.seconds) };
}

/** LATENCY_N sequential GETs on one keep-alive connection (curl -K): per-request milliseconds. */
async function latencies(url: string, accept: string, dir: string): Promise<number[]> {
  const config = join(dir, `curl-${Math.random().toString(36).slice(2)}.conf`);
  writeFileSync(
    config,
    Array.from({ length: LATENCY_N }, () => `url = "${url}"\noutput = "/dev/null"\n`).join(""),
  );
  const r = await run("curl", ["-sS", "-H", `Accept: ${accept}`, "-w", "%{time_total}\\n", "-K", config], {
    timeoutMs: 300_000,
  });
  if (r.code !== 0) throw new Error(`curl latency run: ${r.stderr}`);
  return r.stdout
    .trim()
    .split("\n")
    .map(s => Number(s) * 1000)
    .slice(50); // drop the warm-up
}

/**
 * KUBELET_ROUNDS interleaved CRI pulls of each image (containerd downloads, verifies and unpacks it), removing it
 * (with its content) after every pull so that the next one downloads again: seconds per pull, by image.
 */
async function kubeletPulls(
  ctd: StartedContainerd,
  images: Record<string, string>,
): Promise<Record<string, number[]>> {
  const seconds: Record<string, number[]> = Object.fromEntries(Object.keys(images).map(k => [k, []]));
  const names = Object.keys(images);
  for (let round = 0; round < KUBELET_ROUNDS; round++) {
    const line: string[] = [];
    for (const name of names.map((_, i) => names[(i + round) % names.length] ?? "")) {
      const image = images[name] ?? "";
      const started = performance.now();
      await criPull(ctd.socket, image, { timeoutMs: 300_000 });
      const s = (performance.now() - started) / 1000;
      seconds[name]?.push(s);
      line.push(`${name} ${s.toFixed(2)} s`);
      // The CRI records the image under its tag, its repo digest and its id: drop them all, so content goes.
      await ctrRemoveImages(ctd.socket, await ctrImages(ctd.socket));
    }
    console.log(`kubelet pull round ${round + 1}: ${line.join("  ")}`);
  }
  return seconds;
}

async function main(): Promise<void> {
  const dir = makeTempDir("bench-proxy");
  const regs: StartedRegistry[] = [];
  let proxy: ProxyProcess | undefined;
  let relay: { port: number; stop: () => void } | undefined;
  let containerd: StartedContainerd | undefined;
  let bundle = "";
  try {
    const [cache, origin] = await Promise.all([
      startCache({ name: "bench-cache" }),
      startCache({ name: "bench-origin" }),
    ]);
    regs.push(cache, origin);
    const pull = await startPullThrough({ upstream: origin, name: "bench-pullthrough" });
    regs.push(pull);
    const [bigImage, midImage] = await Promise.all([
      buildImage({ size: SIZE, seed: "bench-proxy-big" }),
      buildImage({ size: "100M", seed: "bench-proxy-mid" }),
    ]);
    const big = await pushImage(bigImage, origin, { repo: "bench/big", tag: "1" });
    const mid = await pushImage(midImage, origin, { repo: "bench/mid", tag: "1" });
    const client = new RegistryClient({
      hosts: { [cache.host]: { plainHttp: true }, [origin.host]: { plainHttp: true } },
    });
    for (const repo of ["bench/big", "bench/mid"])
      await copyImage(
        client,
        `${origin.host}/${repo}:1`,
        `${cache.host}/${cacheRepositoryOf(origin.host, repo)}:1`,
      );
    await client.close();
    bundle = await buildBundle();
    proxy = await spawnProxy(bundle, ["--cache-registry", cache.url]);
    relay = await startRelay(cache);
    const idle = { rss: proxy.rss(), anon: proxy.rssAnon() };
    const layer = (p: typeof big): { digest: string; size: number } =>
      (JSON.parse(p.manifest.toString()) as { layers: { digest: string; size: number }[] }).layers[0] ?? {
        digest: "",
        size: 0,
      };
    const bases: Record<Mode, (repo: string) => string> = {
      "a-direct": repo => `${cache.url}/v2/${cacheRepositoryOf(origin.host, repo)}`,
      "b-kuik": repo => `http://${proxy?.host}/v2/${origin.host.replace(":", "-")}/${repo}`,
      "c-pullthrough": repo => `${pull.url}/v2/${repo}`,
      "d-tcp-relay": repo => `http://127.0.0.1:${relay?.port}/v2/${cacheRepositoryOf(origin.host, repo)}`,
    };
    const blob = (mode: Mode, p: typeof big): string => `${bases[mode](p.repo)}/blobs/${layer(p).digest}`;
    for (const mode of MODES) for (const p of [big, mid, big]) await curlGet(blob(mode, p)); // warm every path (c: fill its storage)
    console.log(
      `blob ${(layer(big).size / MiB).toFixed(0)} MiB, ${ROUNDS} interleaved rounds; proxy idle RSS ${(idle.rss / MiB).toFixed(1)} MiB (anon ${(idle.anon / MiB).toFixed(1)})`,
    );

    const peaks = { rss: 0, anon: 0 };
    const single: Record<Mode, number[]> = {
      "a-direct": [],
      "b-kuik": [],
      "c-pullthrough": [],
      "d-tcp-relay": [],
    };
    const ratios: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const order = MODES.map((_, i) => MODES[(i + round) % MODES.length] as Mode);
      const line: string[] = [];
      for (const mode of order) {
        const go = (): Promise<{ seconds: number; bytes: number }> => curlGet(blob(mode, big));
        const r = mode === "b-kuik" ? await sampled(proxy, peaks, go) : await go();
        single[mode].push(r.bytes / 1e6 / r.seconds);
        line.push(`${mode} ${(r.bytes / 1e6 / r.seconds).toFixed(0)} MB/s`);
      }
      ratios.push((single["b-kuik"].at(-1) ?? 0) / (single["a-direct"].at(-1) ?? 1));
      console.log(`round ${round + 1}: ${line.join("  ")}  b/a ${ratios.at(-1)?.toFixed(3)}`);
    }

    const conc: Record<Mode, { aggregate: number[]; p50: number[]; p99: number[] }> = {
      "a-direct": { aggregate: [], p50: [], p99: [] },
      "b-kuik": { aggregate: [], p50: [], p99: [] },
      "c-pullthrough": { aggregate: [], p50: [], p99: [] },
      "d-tcp-relay": { aggregate: [], p50: [], p99: [] },
    };
    const concPeaks = { rss: 0, anon: 0 };
    for (let round = 0; round < Math.min(3, ROUNDS); round++) {
      for (const mode of MODES.map((_, i) => MODES[(i + round) % MODES.length] as Mode)) {
        const go = (): ReturnType<typeof concurrent> => concurrent(blob(mode, mid), layer(mid).size);
        const r = mode === "b-kuik" ? await sampled(proxy, concPeaks, go) : await go();
        conc[mode].aggregate.push(r.aggregate);
        conc[mode].p50.push(median(r.times));
        conc[mode].p99.push(quantile(r.times, 0.99));
      }
    }

    const lat: Record<Mode, number[]> = {
      "a-direct": [],
      "b-kuik": [],
      "c-pullthrough": [],
      "d-tcp-relay": [],
    };
    const accept = mid.mediaType;
    for (let round = 0; round < 2; round++) {
      for (const mode of MODES.map((_, i) => MODES[(i + round) % MODES.length] as Mode)) {
        lat[mode].push(...(await latencies(`${bases[mode](mid.repo)}/manifests/1`, accept, dir)));
      }
    }

    console.log(`\n== single ${SIZE} blob, median of ${ROUNDS} ==`);
    for (const mode of MODES) console.log(`${mode.padEnd(14)} ${median(single[mode]).toFixed(0)} MB/s`);
    console.log(
      `ratio d/a (user-space copy ceiling) ${(median(single["d-tcp-relay"]) / median(single["a-direct"])).toFixed(3)}, b/d ${(median(single["b-kuik"]) / median(single["d-tcp-relay"])).toFixed(3)}`,
    );
    console.log(
      `ratio b/a: median of per-round ratios ${median(ratios).toFixed(3)} (goal ≥ 0.95); c/a ${(median(single["c-pullthrough"]) / median(single["a-direct"])).toFixed(3)}`,
    );
    console.log(
      `proxy peak while streaming: RSS ${(peaks.rss / MiB).toFixed(1)} MiB, private (RssAnon) ${(peaks.anon / MiB).toFixed(1)} MiB (goal ≤ 64 MiB)`,
    );
    console.log(
      `\n== ${CLIENTS} concurrent clients × 100 MiB, median of ${conc["a-direct"].aggregate.length} ==`,
    );
    for (const mode of MODES) {
      const c = conc[mode];
      console.log(
        `${mode.padEnd(14)} ${median(c.aggregate).toFixed(0)} MB/s aggregate, per-client p50 ${median(c.p50).toFixed(2)} s, p99 ${median(c.p99).toFixed(2)} s`,
      );
    }
    console.log(
      `ratio b/a aggregate ${(median(conc["b-kuik"].aggregate) / median(conc["a-direct"].aggregate)).toFixed(3)}; proxy peak RSS ${(concPeaks.rss / MiB).toFixed(1)} MiB (anon ${(concPeaks.anon / MiB).toFixed(1)})`,
    );
    console.log(`\n== manifest GET by tag, keep-alive, ${lat["a-direct"].length} samples each ==`);
    for (const mode of MODES)
      console.log(
        `${mode.padEnd(14)} p50 ${median(lat[mode]).toFixed(3)} ms  p99 ${quantile(lat[mode], 0.99).toFixed(3)} ms`,
      );
    console.log(
      `added by kuik at p50: ${(median(lat["b-kuik"]) - median(lat["a-direct"])).toFixed(3)} ms (goal ≤ 0.5 ms)`,
    );

    if (KUBELET_ROUNDS > 0) {
      containerd = await startContainerd({ logLevel: "warn" });
      writeHostsToml(containerd.hostsDir, cache.host, [], cache.url);
      writeHostsToml(containerd.hostsDir, proxy.host, [], `http://${proxy.host}`);
      const kubeletPeaks = { rss: 0, anon: 0 };
      const pulls = await sampled(proxy, kubeletPeaks, () =>
        kubeletPulls(containerd as StartedContainerd, {
          "a-direct": `${cache.host}/${cacheRepositoryOf(origin.host, big.repo)}:1`,
          "b-kuik": `${proxy?.host}/${origin.host.replace(":", "-")}/${big.repo}:1`,
        }),
      );
      const a = median(pulls["a-direct"] ?? []);
      const b = median(pulls["b-kuik"] ?? []);
      console.log(
        `\n== kubelet-style CRI pull of the ${SIZE} image (download + verify + unpack), median of ${KUBELET_ROUNDS} ==`,
      );
      console.log(`a-direct       ${a.toFixed(2)} s`);
      console.log(`b-kuik         ${b.toFixed(2)} s`);
      console.log(
        `ratio b/a (speed, a/b time) ${(a / b).toFixed(3)}; proxy peak RSS ${(kubeletPeaks.rss / MiB).toFixed(1)} MiB (anon ${(kubeletPeaks.anon / MiB).toFixed(1)})`,
      );
    }
  } finally {
    await containerd?.stop();
    await relay?.stop();
    await proxy?.stop();
    removeTempDir(dir);
    if (bundle) removeTempDir(dirname(bundle));
    await stopAll(...regs);
  }
}

const guard = setTimeout(() => {
  console.error(`bench/proxy.ts: BENCH_TIMEOUT (${TIMEOUT_S} s) exceeded`);
  process.exit(2);
}, TIMEOUT_S * 1000);
guard.unref();
main().then(
  () => process.exit(0),
  err => {
    console.error(err);
    process.exit(1);
  },
);
