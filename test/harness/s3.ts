/**
 * A real S3 server on loopback: MinIO, built from its Go module by scripts/build-components.sh
 * (`${KUIK_CACHE:-~/.cache/kuik}/bin/minio`), single drive in a temp dir, one bucket. Plus a minimal AWS
 * Signature V4 client (bucket creation, object HEAD) so tests can look into the bucket without an SDK.
 */
import { createHash, createHmac } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { keepTemp, makeTempDir, removeTempDir } from "./cleanup";
import { freePort, LOOPBACK } from "./net";
import { startProcess } from "./process";
import { kuikCacheDir } from "./tools";

/** Path of the MinIO binary: `$KUIK_MINIO_BIN`, else the component build's. */
export function minioBinary(): string {
  return process.env.KUIK_MINIO_BIN || join(kuikCacheDir(), "bin", "minio");
}

/** Whether MinIO is built (for `describe.skipIf`). */
export function minioAvailable(): boolean {
  return existsSync(minioBinary());
}

export interface MinioOptions {
  bucket?: string;
  region?: string;
  accessKey?: string;
  secretKey?: string;
}

export interface StartedMinio {
  /** `http://127.0.0.1:PORT`: what REGISTRY_STORAGE_S3_REGIONENDPOINT gets. */
  readonly endpoint: string;
  readonly bucket: string;
  readonly region: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly dir: string;
  /** Status of a signed HEAD of `key` in the bucket (200 present, 404 absent). */
  headObject(key: string): Promise<number>;
  /** The server's log so far. */
  readLog(): string;
  stop(): Promise<void>;
}

const sha256 = (data: string): string => createHash("sha256").update(data).digest("hex");
const hmac = (key: Buffer | string, data: string): Buffer => createHmac("sha256", key).update(data).digest();

/** Send an empty-bodied request signed with AWS Signature V4 (path-style: /bucket/key); resolves the status. */
export async function s3Request(
  endpoint: string,
  creds: { accessKey: string; secretKey: string; region: string },
  method: "GET" | "HEAD" | "PUT",
  path: string,
): Promise<number> {
  const url = new URL(path, endpoint);
  const amzDate = new Date()
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
  const day = amzDate.slice(0, 8);
  const payload = sha256("");
  const headers: Record<string, string> = {
    host: url.host,
    "x-amz-content-sha256": payload,
    "x-amz-date": amzDate,
  };
  const names = Object.keys(headers).sort();
  const canonical = [
    method,
    url.pathname,
    "",
    ...names.map(n => `${n}:${headers[n]}`),
    "",
    names.join(";"),
    payload,
  ].join("\n");
  const scope = `${day}/${creds.region}/s3/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonical)].join("\n");
  let key = hmac(`AWS4${creds.secretKey}`, day);
  for (const part of [creds.region, "s3", "aws4_request"]) key = hmac(key, part);
  const signature = createHmac("sha256", key).update(toSign).digest("hex");
  const res = await fetch(url, {
    method,
    headers: {
      ...headers,
      authorization: `AWS4-HMAC-SHA256 Credential=${creds.accessKey}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}`,
    },
  });
  await res.arrayBuffer();
  return res.status;
}

/** Start MinIO on free loopback ports and create the bucket. Always `await stop()` it. */
export async function startMinio(opts: MinioOptions = {}): Promise<StartedMinio> {
  const dir = makeTempDir("minio");
  const logFile = join(dir, "minio.log");
  const [port, consolePort] = [await freePort(), await freePort()];
  const endpoint = `http://${LOOPBACK}:${port}`;
  const m = {
    endpoint,
    bucket: opts.bucket ?? "kuik-registry",
    region: opts.region ?? "us-east-1",
    accessKey: opts.accessKey ?? "kuik-minio",
    secretKey: opts.secretKey ?? "kuik-minio-secret",
    dir,
  };
  const proc = await startProcess({
    name: "minio",
    cmd: minioBinary(),
    args: [
      "server",
      "--quiet",
      "--address",
      `${LOOPBACK}:${port}`,
      "--console-address",
      `${LOOPBACK}:${consolePort}`,
      join(dir, "data"),
    ],
    env: {
      ...process.env,
      MINIO_ROOT_USER: m.accessKey,
      MINIO_ROOT_PASSWORD: m.secretKey,
      MINIO_REGION: m.region,
      MINIO_BROWSER: "off",
      MINIO_UPDATE: "off",
    },
    logFile,
    ready: async () => (await fetch(`${endpoint}/minio/health/ready`)).status === 200,
    readyTimeoutMs: 60_000,
  }).catch((e: unknown) => {
    removeTempDir(dir);
    throw e;
  });
  const readLog = (): string => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await proc.stop();
    if (!keepTemp()) removeTempDir(dir);
  };
  const created = await s3Request(endpoint, m, "PUT", `/${m.bucket}`);
  if (created !== 200) {
    await stop();
    throw new Error(`minio: PUT bucket ${m.bucket} answered ${created}`);
  }
  return {
    ...m,
    headObject: key => s3Request(endpoint, m, "HEAD", `/${m.bucket}/${key}`),
    readLog,
    stop,
  };
}
