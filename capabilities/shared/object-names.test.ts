import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { isRegistryError } from "../../registry-client/src/errors";
import { parseImageReference } from "../../registry-client/src/reference";
import {
  cachedImageName,
  MAX_OBJECT_NAME_LENGTH,
  repositoryLabel,
  repositoryName,
  repositoryOf,
  repositorySelector,
  sanitizeName,
} from "./object-names";

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const HEX64 = "0123456789abcdef".repeat(4);

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
