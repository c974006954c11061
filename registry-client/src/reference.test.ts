import { describe, expect, it } from "vitest";
import { isRegistryError } from "./errors";
import {
  formatImageReference,
  isRepositoryPath,
  parseImageReference,
  parseRepositoryName,
} from "./reference";

const D64 = "e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";
const F64 = "f".repeat(64);

/** Expect an INVALID_REFERENCE whose message quotes the input and contains `fragment`. */
function expectInvalid(input: string, fragment: string): void {
  let caught: unknown;
  try {
    parseImageReference(input);
  } catch (e) {
    caught = e;
  }
  expect(isRegistryError(caught, "INVALID_REFERENCE"), `${JSON.stringify(input)} should be rejected`).toBe(
    true,
  );
  const message = (caught as Error).message;
  expect(message).toContain(JSON.stringify(input));
  expect(message).toContain(fragment);
}

describe("parseImageReference: Docker normalisation", () => {
  // [input, registry, repository, tag, digest]. Expectations were checked against Go's
  // reference.ParseNormalizedNamed + TagNameOnly (distribution/reference v0.6.0) on every row.
  it.each<[string, string, string, string | undefined, string | undefined]>([
    // Docker Hub official images: library/ and latest are added
    ["nginx", "docker.io", "library/nginx", "latest", undefined],
    ["busybox:latest", "docker.io", "library/busybox", "latest", undefined],
    ["ubuntu-12.04-base", "docker.io", "library/ubuntu-12.04-base", "latest", undefined],
    ["library/busybox", "docker.io", "library/busybox", "latest", undefined],
    ["docker.io/busybox", "docker.io", "library/busybox", "latest", undefined],
    ["docker.io/library/busybox:1.36", "docker.io", "library/busybox", "1.36", undefined],
    ["docker.io/library/foo/bar", "docker.io", "library/foo/bar", "latest", undefined],
    // index.docker.io is Docker Hub's legacy name; registry-1.docker.io is *not* rewritten (as in Go)
    ["index.docker.io/x", "docker.io", "library/x", "latest", undefined],
    ["index.docker.io/library/alpine:3.14", "docker.io", "library/alpine", "3.14", undefined],
    ["index.docker.io/fooo/bar", "docker.io", "fooo/bar", "latest", undefined],
    ["registry-1.docker.io/nginx", "registry-1.docker.io", "nginx", "latest", undefined],
    // a first component without "." or ":" is a Docker Hub namespace, and no library/ is added
    ["dmcgowan/myapp", "docker.io", "dmcgowan/myapp", "latest", undefined],
    ["docker/migrator", "docker.io", "docker/migrator", "latest", undefined],
    ["test_com/foo", "docker.io", "test_com/foo", "latest", undefined],
    ["other/library", "docker.io", "other/library", "latest", undefined],
    ["store/foo/bar", "docker.io", "store/foo/bar", "latest", undefined],
    ["d/docker", "docker.io", "d/docker", "latest", undefined],
    ["dock__er/docker", "docker.io", "dock__er/docker", "latest", undefined],
    ["docker---rules/docker", "docker.io", "docker---rules/docker", "latest", undefined],
    [
      "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
      "docker.io",
      "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
      "latest",
      undefined,
    ],
    // without a slash, "host:port" is a name and a tag (Docker's rule, not a registry)
    ["test.com:5000", "docker.io", "library/test.com", "5000", undefined],
    ["192.168.1.1:5000", "docker.io", "library/192.168.1.1", "5000", undefined],
    ["foo_bar.com:8080", "docker.io", "library/foo_bar.com", "8080", undefined],
    ["docker.io", "docker.io", "library/docker.io", "latest", undefined],
    // registries: a ".", a ":", localhost, or upper case in the first component
    ["localhost/fooo/bar", "localhost", "fooo/bar", "latest", undefined],
    ["localhost:5000/app", "localhost:5000", "app", "latest", undefined],
    ["LOCALDOMAIN/fooo", "LOCALDOMAIN", "fooo", "latest", undefined],
    ["Foo/bar", "Foo", "bar", "latest", undefined],
    ["test:5000/repo", "test:5000", "repo", "latest", undefined],
    ["test-com:8080/foo", "test-com:8080", "foo", "latest", undefined],
    ["example.com/privatebase", "example.com", "privatebase", "latest", undefined],
    ["example.com:8000/private/moonbase", "example.com:8000", "private/moonbase", "latest", undefined],
    ["127.0.0.1:8000/private/moonbase", "127.0.0.1:8000", "private/moonbase", "latest", undefined],
    ["192.168.0.1:8/debian", "192.168.0.1:8", "debian", "latest", undefined],
    [
      "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
      "sub-dom1.foo.com",
      "bar/baz/quux",
      "some-long-tag",
      undefined,
    ],
    [
      "b.gcr.io/test.example.com/my-app:test.example.com",
      "b.gcr.io",
      "test.example.com/my-app",
      "test.example.com",
      undefined,
    ],
    ["xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo", "latest", undefined],
    ["gcr.io/library/busybox", "gcr.io", "library/busybox", "latest", undefined],
    [
      "quay.io/jetstack/cert-manager-controller:v1.13.2",
      "quay.io",
      "jetstack/cert-manager-controller",
      "v1.13.2",
      undefined,
    ],
    [
      "some-gitlab-registry.com:5000/group/another-group/project/backend:v1.0.0",
      "some-gitlab-registry.com:5000",
      "group/another-group/project/backend",
      "v1.0.0",
      undefined,
    ],
    // a 64-hex component is fine once a registry disambiguates it from an image ID
    [
      "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
      "docker.io",
      "library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
      "latest",
      undefined,
    ],
    [
      "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9",
      "docker.io",
      "library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9",
      "latest",
      undefined,
    ],
    // IPv6 registries, in brackets
    ["[::1]:5000/app", "[::1]:5000", "app", "latest", undefined],
    ["[2001:db8::1]/repo", "[2001:db8::1]", "repo", "latest", undefined],
    ["[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]", "repo", "tag", undefined],
    [
      "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
      "[fc00:1:2:3:4:5:6:7]:5000",
      "library/debian",
      "latest",
      undefined,
    ],
    // tags: case is kept, leading "_" allowed, 128 characters at most
    ["lowercase:Uppercase", "docker.io", "library/lowercase", "Uppercase", undefined],
    ["a/b:_t", "docker.io", "a/b", "_t", undefined],
    ["a/b:" + "t".repeat(128), "docker.io", "a/b", "t".repeat(128), undefined],
    // digests: no tag is added; a tag and a digest together are both kept
    [`busybox@sha256:${D64}`, "docker.io", "library/busybox", undefined, `sha256:${D64}`],
    [`busybox:latest@sha256:${D64}`, "docker.io", "library/busybox", "latest", `sha256:${D64}`],
    [`test:5000/repo:tag@sha256:${F64}`, "test:5000", "repo", "tag", `sha256:${F64}`],
    [`[2001:db8::1]:5000/repo@sha256:${F64}`, "[2001:db8::1]:5000", "repo", undefined, `sha256:${F64}`],
    [`a@sha384:${"b".repeat(96)}`, "docker.io", "library/a", undefined, `sha384:${"b".repeat(96)}`],
    [`a@sha512:${"b".repeat(128)}`, "docker.io", "library/a", undefined, `sha512:${"b".repeat(128)}`],
    // lengths: the repository path may be 255 characters; the registry does not count
    ["example.com/" + "a".repeat(255), "example.com", "a".repeat(255), "latest", undefined],
    [
      "a/".repeat(127) + "a:tag-puts-this-over-max",
      "docker.io",
      "a/".repeat(127) + "a",
      "tag-puts-this-over-max",
      undefined,
    ],
  ])("%s", (input, registry, repository, tag, digest) => {
    const ref = parseImageReference(input);
    const name = `${registry}/${repository}`;
    const canonical =
      name + (tag === undefined ? "" : `:${tag}`) + (digest === undefined ? "" : `@${digest}`);
    expect(ref).toEqual({ registry, repository, tag, digest, name, canonical });
    // The canonical form is a fixed point.
    expect(parseImageReference(ref.canonical)).toEqual(ref);
  });

  it("omits tag and digest properties rather than setting them to undefined", () => {
    expect(Object.keys(parseImageReference(`nginx@sha256:${D64}`))).not.toContain("tag");
    expect(Object.keys(parseImageReference("nginx"))).not.toContain("digest");
  });
});

describe("parseImageReference: rejections", () => {
  it.each<[string, string]>([
    ["", "must not be empty"],
    [" nginx", "whitespace"],
    ["nginx ", "whitespace"],
    ["ngi\tnx", "whitespace"],
    ["https://github.com/docker/docker", "URL scheme"],
    ["http://localhost:5000/app", "URL scheme"],
    // upper case in the repository, with Docker's wording
    ["Nginx", "repository name must be lowercase"],
    ["Uppercase:tag", "repository name must be lowercase"],
    ["docker/Docker", "repository name must be lowercase"],
    ["docker.io/docker/Docker", "repository name must be lowercase"],
    ["test:5000/Uppercase/lowercase:tag", "repository name must be lowercase"],
    // an image ID is not a name
    ["1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "image ID"],
    // tags
    ["invalid:image:8080", 'invalid tag "image:8080"'],
    ["alpine:tag:another-tag", 'invalid tag "tag:another-tag"'],
    ["nginx:", 'invalid tag ""'],
    ["a/b:.t", 'invalid tag ".t"'],
    ["a/b:-t", 'invalid tag "-t"'],
    ["a/b:" + "t".repeat(129), "invalid tag"],
    // nothing before the tag or digest
    ["@@@", "missing repository name"],
    [":justtag", "missing repository name"],
    [`@sha256:${F64}`, "missing repository name"],
    ["localhost/", "missing repository name"],
    // path component grammar
    ["-docker", "invalid repository name"],
    ["-docker/docker", "invalid repository name"],
    ["docker-/docker", "invalid repository name"],
    ["docker///docker", "invalid repository name"],
    ["docker.io/docker///docker", "invalid repository name"],
    ["docker/", "invalid repository name"],
    ["____/____", "invalid repository name"],
    ["_docker/_docker", "invalid repository name"],
    ["dock___er/docker", "invalid repository name"],
    ["library/dock-.er", "invalid repository name"],
    ["aa/asdf$$^/aa", "invalid repository name"],
    ["[fc00::1]", "invalid repository name"],
    ["[2001:db8::1]:5000", "invalid repository name"],
    // registry hosts
    ["-docker.io/docker/docker", 'invalid registry host "-docker.io"'],
    // a "." makes the first component a registry, so these fail as hosts
    ["dock..er/docker", 'invalid registry host "dock..er"'],
    ["dock_.er/docker", 'invalid registry host "dock_.er"'],
    ["dock-.er/docker", 'invalid registry host "dock-.er"'],
    ["fc00::1:5000/debian", "invalid registry host"],
    ["[fe80::1%eth0]:5000/debian", "invalid registry host"],
    ["[2001:db8:3:4::192.0.2.33]:5000/debian", "invalid registry host"],
    ["a:b/c", 'invalid registry host "a:b"'],
    // Go accepts this one with an empty domain; we do not (see reference.ts)
    ["foo_bar.com/x", 'invalid registry host "foo_bar.com"'],
    // digests
    ["nginx@", "invalid digest"],
    ["repo@sha256:ffffffffffffffffffffffffffffffffff", "sha256 needs 64 hex characters, got 34"],
    [`validname@invaliddigest:${F64}`, 'unsupported digest algorithm "invaliddigest"'],
    [`a@md5:${"b".repeat(32)}`, "unsupported digest algorithm"],
    [`a@constructor:${F64}`, 'unsupported digest algorithm "constructor"'],
    [`a@sha512:${F64}`, "sha512 needs 128 hex characters"],
    [`a@sha256:${"B".repeat(64)}`, "lower-case"],
    [`a@sha256:${F64}@sha256:${F64}`, "invalid digest"],
    // lengths
    ["domain/" + "a".repeat(256) + ":tag", "must not be more than 255 characters"],
    ["namespace_" + "a".repeat(250) + "/docker", "must not be more than 255 characters"],
    ["a".repeat(1025), "longer than 1024 characters"],
  ])("%j", (input, fragment) => expectInvalid(input, fragment));
});

describe("parseImageReference: hostile input", () => {
  it("stays fast on inputs built to make the regexes backtrack", () => {
    const inputs = [
      "a.".repeat(500) + "-/x",
      "a" + "-".repeat(1000) + "!",
      "x/" + "a_".repeat(500) + "!",
      "[" + ":".repeat(1000) + "/x",
      "a".repeat(1000) + "@sha256:" + "f".repeat(10),
    ];
    const started = performance.now();
    for (const input of inputs) expect(() => parseImageReference(input)).toThrow(/invalid image reference/);
    expect(performance.now() - started).toBeLessThan(500);
  });
});

describe("parseRepositoryName", () => {
  it.each([
    ["nginx", "docker.io", "library/nginx"],
    ["index.docker.io/bitnami/redis", "docker.io", "bitnami/redis"],
    ["localhost:5000/team/app", "localhost:5000", "team/app"],
  ])("%s", (input, registry, repository) => {
    expect(parseRepositoryName(input)).toEqual({ registry, repository, name: `${registry}/${repository}` });
  });

  it.each(["nginx:latest", `nginx@sha256:${D64}`, "Nginx", ""])("rejects %j", input => {
    expect(() => parseRepositoryName(input)).toThrow(/invalid image reference/);
  });
});

describe("formatImageReference", () => {
  it.each([
    [{ registry: "docker.io", repository: "library/nginx" }, "docker.io/library/nginx"],
    [{ registry: "r:5000", repository: "a", tag: "1" }, "r:5000/a:1"],
    [{ name: "r/a", digest: `sha256:${D64}` }, `r/a@sha256:${D64}`],
    [{ name: "r/a", tag: "1", digest: `sha256:${D64}` }, `r/a:1@sha256:${D64}`],
  ])("%j → %s", (ref, expected) => {
    expect(formatImageReference(ref)).toBe(expected);
  });
});

describe("isRepositoryPath", () => {
  it.each([
    ["library/nginx", true],
    ["a", true],
    ["a__b/c---d/e.f_g", true],
    ["a".repeat(255), true],
    ["a".repeat(256), false],
    ["", false],
    ["Library/nginx", false],
    ["docker.io/library/nginx:1", false],
    ["a//b", false],
    ["a/", false],
  ])("%j → %s", (path, expected) => {
    expect(isRepositoryPath(path)).toBe(expected);
  });
});
