import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isRegistryError } from "../../registry-client/src/errors";
import { Keyring } from "../../registry-client/src/keyring";
import { parseImageReference } from "../../registry-client/src/reference";
import { RegistryAdapter, type RegistryAdapterConfig } from "./registry-adapter";

/** A registry stand-in on the loopback that answers every manifest HEAD, and counts the requests it got. */
let server: Server;
let requests = 0;
let host = "";

beforeAll(async () => {
  server = createServer((req, res) => {
    requests++;
    res.writeHead(200, {
      "content-type": "application/vnd.oci.image.manifest.v1+json",
      "docker-content-digest": `sha256:${"a".repeat(64)}`,
      "content-length": "2",
    });
    res.end(req.method === "HEAD" ? undefined : "{}");
  });
  await new Promise<void>(resolve => server.listen(0, "127.0.0.1", resolve));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>(resolve => server.close(() => resolve())));

function adapter(allowedOrigins: string[]): RegistryAdapter {
  const config: RegistryAdapterConfig = {
    registryEndpoint: "cache.kuik:5000",
    registryUrl: "http://cache.kuik:5000",
    insecureRegistries: [host],
    rootCertificateAuthorities: [],
    architectures: [],
    allowedOrigins,
  };
  return new RegistryAdapter(config);
}

describe("RegistryAdapter: where the watcher connects (#13, SSRF)", () => {
  it("refuses an origin whose address is the loopback, without connecting, unless allow-listed", async () => {
    const ref = parseImageReference(`${host}/team/app:v1`);
    const refused = adapter([]);
    const err = await refused.headUpstream(ref, new Keyring([])).catch((e: unknown) => e);
    expect(isRegistryError(err, "ADDRESS_REFUSED")).toBe(true);
    expect(requests).toBe(0);
    await refused.close();
    const allowed = adapter(["127.0.0.0/8"]);
    await expect(allowed.headUpstream(ref, new Keyring([]))).resolves.toMatchObject({
      digest: `sha256:${"a".repeat(64)}`,
    });
    expect(requests).toBeGreaterThan(0);
    await allowed.close();
  });
});
