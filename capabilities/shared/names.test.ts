import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { isRegistryError } from "../../registry-client/src/errors";
import { parseImageReference } from "../../registry-client/src/reference";
import {
  cachedImageName,
  containerAnnotationKey,
  fromProxyImage,
  MAX_OBJECT_NAME_LENGTH,
  podContainers,
  repositoryLabel,
  repositoryName,
  repositoryOf,
  repositorySelector,
  sanitizeName,
  toProxyImage,
} from "./names";

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const HEX64 = "0123456789abcdef".repeat(4);
const sha1 = (s: string): string => createHash("sha1").update(s).digest("hex");

describe("sanitizeName (kuik v1 SanitizeName)", () => {
  it.each([
    ["docker.io/library/alpine", "docker.io-library-alpine"],
    [
      "some-gitlab-registry.com:5000/group/another-group/project/backend:v1.0.0",
      "some-gitlab-registry.com-5000-group-another-group-project-backend-v1.0.0",
    ],
    ["abc123++@++yx.z", "abc123-yx.z"],
    ["abcEFG-foo#bar", "abcefg-foo-bar"],
    ["a..b", "a-b"],
    ["-a--b-", "a--b"],
    ["@@@", ""],
  ])("%s → %s", (input, expected) => {
    expect(sanitizeName(input)).toBe(expected);
  });
});

describe("cachedImageName", () => {
  it.each([
    ["nginx", "docker.io-library-nginx-latest"],
    ["nginx:latest", "docker.io-library-nginx-latest"],
    ["alpine", "docker.io-library-alpine-latest"],
    ["alpine:latest", "docker.io-library-alpine-latest"],
    ["alpine:3.16.3", "docker.io-library-alpine-3.16.3"],
    ["index.docker.io/library/nginx:1.25", "docker.io-library-nginx-1.25"],
    ["quay.io/jetstack/cert-manager-controller:v1.13.2", "quay.io-jetstack-cert-manager-controller-v1.13.2"],
    // v1 forgot -latest here (the raw string has a ':'); the canonical reference does not.
    ["reg.example:5000/app", "reg.example-5000-app-latest"],
    [`nginx@sha256:${HEX64}`, `docker.io-library-nginx-sha256-${HEX64}`],
    [`nginx:1.25@sha256:${HEX64}`, `docker.io-library-nginx-1.25-sha256-${HEX64}`],
  ])("%s → %s", (image, expected) => {
    expect(cachedImageName(image)).toBe(expected);
    expect(cachedImageName(parseImageReference(image))).toBe(expected);
  });

  it("gives different digests of one repository different names", () => {
    const other = HEX64.replace(/0/g, "f");
    expect(cachedImageName(`nginx@sha256:${HEX64}`)).not.toBe(cachedImageName(`nginx@sha256:${other}`));
  });

  it("keeps names valid, unique and deterministic beyond 253 characters", () => {
    const repo = `registry.example.com/${"a".repeat(200)}/${"b".repeat(40)}`;
    const a = cachedImageName(`${repo}:${"t".repeat(120)}1`);
    const b = cachedImageName(`${repo}:${"t".repeat(120)}2`);
    const digest = cachedImageName(`${repo}:v1@sha512:${"ab".repeat(64)}`);
    for (const name of [a, b, digest]) {
      expect(name.length).toBeLessThanOrEqual(MAX_OBJECT_NAME_LENGTH);
      expect(name).toMatch(DNS_SUBDOMAIN);
      expect(name).toMatch(/-[0-9a-f]{16}$/);
    }
    expect(a).not.toBe(b);
    expect(cachedImageName(`${repo}:${"t".repeat(120)}1`)).toBe(a);
  });

  it.each(["@@@", "alpine:tag:another-tag", "Nginx", ""])("rejects %j with INVALID_REFERENCE", image => {
    expect(() => cachedImageName(image)).toThrow();
    try {
      cachedImageName(image);
    } catch (e) {
      expect(isRegistryError(e, "INVALID_REFERENCE")).toBe(true);
    }
  });
});

describe("repositoryName, repositoryLabel, repositoryOf", () => {
  it.each([
    ["alpine", "docker.io/library/alpine", "docker.io-library-alpine"],
    [
      "quay.io/jetstack/cert-manager-controller:v1.13.2",
      "quay.io/jetstack/cert-manager-controller",
      "quay.io-jetstack-cert-manager-controller",
    ],
    ["reg.example:5000/team/app@sha256:" + HEX64, "reg.example:5000/team/app", "reg.example-5000-team-app"],
  ])("%s belongs to %s (%s)", (image, name, objectName) => {
    expect(repositoryOf(image)).toEqual({ name, objectName, label: objectName });
    expect(repositoryName(name)).toBe(objectName);
  });

  it("labels with the sanitised name up to 63 characters, then its SHA-224 (v1)", () => {
    const name63 = `ghcr.io/${"a".repeat(55)}`; // sanitised: ghcr.io- (8) + 55 = 63
    const name64 = `ghcr.io/${"a".repeat(56)}`;
    expect(repositoryLabel(name63)).toBe(sanitizeName(name63));
    const sanitized64 = sanitizeName(name64);
    expect(sanitized64).toHaveLength(64);
    expect(repositoryLabel(name64)).toBe(createHash("sha224").update(sanitized64).digest("hex"));
    expect(repositoryLabel(name64)).toHaveLength(56);
  });

  it("selects a repository's CachedImages with the same value they are labelled with, hashed or not", () => {
    const long = `ghcr.io/${"a".repeat(80)}/app`;
    expect(repositorySelector(long)).toEqual({ "kuik.enix.io/repository": repositoryOf(`${long}:1`).label });
    expect(repositoryOf(`${long}:1`).objectName).toBe(sanitizeName(long));
  });

  it("limits Repository names to 253 characters", () => {
    const long = `registry.example.com/${"x".repeat(250)}`;
    expect(repositoryName(long).length).toBeLessThanOrEqual(MAX_OBJECT_NAME_LENGTH);
    expect(repositoryName(long)).toMatch(DNS_SUBDOMAIN);
  });
});

describe("containerAnnotationKey (kuik v1 ContainerAnnotationKey)", () => {
  it.each([
    ["container", "original-image-", 48],
    ["init", "original-init-image-", 43],
    ["ephemeral", "original-ephem-image-", 42],
  ] as const)("%s: keeps names up to 63 characters in all, then SHA-1", (kind, prefix, longest) => {
    const fits = "c".repeat(longest);
    const tooLong = "c".repeat(longest + 1);
    expect(containerAnnotationKey(fits, kind)).toBe(prefix + fits);
    expect(containerAnnotationKey(fits, kind)).toHaveLength(63);
    expect(containerAnnotationKey(tooLong, kind)).toBe(prefix + sha1(tooLong));
    const longest63 = containerAnnotationKey("n".repeat(63), kind);
    expect(longest63.length).toBeLessThanOrEqual(63);
    expect(longest63).toMatch(QUALIFIED_NAME);
  });

  it("uses v1's keys", () => {
    expect(containerAnnotationKey("b", "container")).toBe("original-image-b");
    expect(containerAnnotationKey("a", "init")).toBe("original-init-image-a");
  });
});

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

describe("podContainers", () => {
  it("lists containers, then init, then ephemeral containers, with their index", () => {
    const pod = {
      spec: {
        initContainers: [{ name: "i0", image: "a" }],
        containers: [
          { name: "c0", image: "b" },
          { name: "c1", image: "c" },
        ],
        ephemeralContainers: [{ name: "e0", image: "d" }],
      },
    };
    expect(podContainers(pod).map(c => [c.kind, c.index, c.container.name])).toEqual([
      ["container", 0, "c0"],
      ["container", 1, "c1"],
      ["init", 0, "i0"],
      ["ephemeral", 0, "e0"],
    ]);
    expect(podContainers({})).toEqual([]);
  });
});
