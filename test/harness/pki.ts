/**
 * Test PKI made with the openssl CLI: one harness CA per machine (kept in `${KUIK_CACHE:-~/.cache/kuik}/pki/`, so
 * nothing leaks into /tmp and clients can trust it once), one loopback server certificate signed by it (SAN
 * 127.0.0.1, ::1, localhost; shared by every TLS registry, token issuer and fault proxy), and self-signed
 * token-signing certificates for token issuers. EC P-256 keys: fast to make, accepted by Go and Node.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { findTool, kuikCacheDir, runOk } from "./tools";
import { NODE_IP } from "./net";

export interface HarnessPki {
  dir: string;
  /** PEM of the CA every harness TLS endpoint chains to. Trust this (curl --cacert, NODE_EXTRA_CA_CERTS, …). */
  caFile: string;
  caKey: string;
  /** Server certificate (SAN IP:127.0.0.1, IP:::1, DNS:localhost) and its key, for every loopback TLS server. */
  serverCert: string;
  serverKey: string;
}

let pki: Promise<HarnessPki> | undefined;

/** Bump to regenerate every machine's harness PKI. */
const PKI_VERSION = "v2"; // v2: the local node's address in the server certificate

function files(dir: string): HarnessPki {
  return {
    dir,
    caFile: join(dir, "ca.crt"),
    caKey: join(dir, "ca.key"),
    serverCert: join(dir, "server.crt"),
    serverKey: join(dir, "server.key"),
  };
}

/** The harness CA and loopback server certificate (created on first use, then reused across runs). */
export function harnessPki(): Promise<HarnessPki> {
  pki ??= loadOrCreatePki();
  return pki;
}

async function loadOrCreatePki(): Promise<HarnessPki> {
  const final = join(kuikCacheDir(), "pki", PKI_VERSION);
  const complete = (d: string): boolean => Object.values(files(d)).every(f => existsSync(f));
  if (complete(final)) return files(final);
  mkdirSync(join(kuikCacheDir(), "pki"), { recursive: true });
  const tmp = `${final}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    await createPki(tmp);
    if (complete(final)) return files(final); // a concurrent creator finished first
    rmSync(final, { recursive: true, force: true }); // an incomplete leftover
    try {
      renameSync(tmp, final);
    } catch (e) {
      if (!complete(final)) throw e; // a concurrent creator won: use theirs
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return files(final);
}

async function createPki(dir: string): Promise<void> {
  const openssl = findTool("openssl");
  mkdirSync(dir, { recursive: true });
  const caFile = join(dir, "ca.crt");
  const caKey = join(dir, "ca.key");
  const serverCert = join(dir, "server.crt");
  const serverKey = join(dir, "server.key");
  await runOk(openssl, [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-sha256",
    "-days", "3650", "-subj", "/CN=kuik-harness-ca",
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    "-keyout", caKey, "-out", caFile,
  ]); // prettier-ignore
  await runOk(openssl, [
    "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-sha256",
    "-subj", "/CN=127.0.0.1", "-keyout", serverKey, "-out", join(dir, "server.csr"),
  ]); // prettier-ignore
  const ext = join(dir, "server.ext");
  writeFileSync(
    ext,
    [
      `subjectAltName=IP:127.0.0.1,IP:::1,IP:${NODE_IP},DNS:localhost`,
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth",
      "",
    ].join("\n"),
  );
  await runOk(openssl, [
    "x509", "-req", "-in", join(dir, "server.csr"), "-CA", caFile, "-CAkey", caKey, "-CAcreateserial",
    "-days", "3650", "-sha256", "-extfile", ext, "-out", serverCert,
  ]); // prettier-ignore
}

export type SigningAlg = "ES256" | "RS256";

export interface SigningCert {
  alg: SigningAlg;
  keyFile: string;
  /** Self-signed certificate of the signing key: the registry's `auth.token.rootcertbundle`. */
  certFile: string;
}

/** A self-signed token-signing key + certificate in `dir`. */
export async function createSigningCert(
  dir: string,
  alg: SigningAlg = "ES256",
  cn = "kuik-harness-token-issuer",
): Promise<SigningCert> {
  mkdirSync(dir, { recursive: true });
  const keyFile = join(dir, "signing.key");
  const certFile = join(dir, "signing.crt");
  const keyArgs =
    alg === "ES256" ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] : ["-newkey", "rsa:2048"];
  await runOk(findTool("openssl"), [
    "req", "-x509", ...keyArgs, "-nodes", "-sha256", "-days", "3650", "-subj", `/CN=${cn}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
    "-keyout", keyFile, "-out", certFile,
  ]); // prettier-ignore
  return { alg, keyFile, certFile };
}

/**
 * A cert dir for `host` ("127.0.0.1:PORT") holding ca.crt, in the layout skopeo's --cert-dir and
 * docker/containerd's certs.d/<host>/ expect. Returns the directory.
 */
export function writeCertDir(parent: string, host: string, caPem: string | Buffer): string {
  const d = join(parent, "certs.d", host);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, "ca.crt"), caPem);
  return d;
}
