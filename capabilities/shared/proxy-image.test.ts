import { describe, expect, it } from "vitest";
import { parseImageReference } from "../../registry-client/src/reference";
import { fromProxyImage, toProxyImage } from "./proxy-image";

const HEX64 = "0123456789abcdef".repeat(4);

describe("toProxyImage / fromProxyImage", () => {
  it.each([
    ["nginx:1.25", "localhost:7439/nginx:1.25"],
    ["nginx", "localhost:7439/nginx"],
    ["bitnami/redis:7", "localhost:7439/bitnami/redis:7"],
    // Written with its registry: the proxy reads a first component ending in -<digits> as host-port.
    ["user-2/app", "localhost:7439/docker.io/user-2/app"],
    ["docker.io/library/nginx:1.25", "localhost:7439/docker.io/library/nginx:1.25"],
    ["index.docker.io/library/nginx:1.25", "localhost:7439/index.docker.io/library/nginx:1.25"],
    ["185.145.250.247:30042/alpine", "localhost:7439/185.145.250.247-30042/alpine"],
    ["185.145.250.247:30042/alpine:latest", "localhost:7439/185.145.250.247-30042/alpine:latest"],
    ["registry-5000.enix.io:5000/app", "localhost:7439/registry-5000.enix.io-5000/app"],
    ["Reg.Example.com:5000/app:v1", "localhost:7439/reg.example.com-5000/app:v1"],
    [`ghcr.io/org/app:v1@sha256:${HEX64}`, `localhost:7439/ghcr.io/org/app:v1@sha256:${HEX64}`],
  ])("%s ⇄ %s", (image, proxied) => {
    const ref = parseImageReference(image);
    expect(toProxyImage(image, ref, 7439)).toEqual({ image: proxied });
    expect(() => parseImageReference(proxied)).not.toThrow();
    const back = fromProxyImage(proxied, 7439);
    expect(back).toBeDefined();
    expect(parseImageReference(back ?? "").canonical.toLowerCase()).toBe(ref.canonical.toLowerCase());
  });

  it.each([
    ["localhost:5000/app", "loopback-registry"],
    ["localhost/app", "loopback-registry"],
    ["127.0.0.1:5000/app", "loopback-registry"],
    ["[::1]:5000/app", "loopback-registry"],
    ["[2001:db8::1]:5000/app", "unsupported-registry"],
    ["registry:5000/app", "ambiguous-registry"],
    ["MyReg/app", "ambiguous-registry"],
    ["registry.corp-2/app", "ambiguous-registry"],
    [`registry.example.com/${"p".repeat(240)}:1`, "name-too-long"],
  ])("refuses %s: %s", (image, problem) => {
    expect(toProxyImage(image, parseImageReference(image), 7439)).toEqual({ problem });
  });

  it.each(["localhost:7440/nginx", "localhost:7439/", "nginx", "localhost:74390/nginx"])(
    "does not read %s back for port 7439",
    image => {
      expect(fromProxyImage(image, 7439)).toBeUndefined();
    },
  );
});
