import type { kind } from "kubernetes-fluent-client";
import { describe, expect, expectTypeOf, it } from "vitest";
import { desiredCachedImages, podImages } from "../shared/pod-images";
import { admissionRules } from "../testing/admission";
import type { PodLike, ServiceAccountLike } from "../shared/pods";
import { desiredRepositories, usedByStatus } from "./desired";

const HEX = "b".repeat(64);

interface PodInput {
  name: string;
  namespace?: string;
  annotations?: Record<string, string>;
  containers?: { name: string; image: string }[];
  init?: { name: string; image: string }[];
  ephemeral?: { name: string; image: string }[];
  pullSecrets?: string[];
  serviceAccount?: string;
  deleting?: boolean;
}

const withPolicy = (cs: { name: string; image: string }[]) =>
  cs.map(c => ({ ...c, imagePullPolicy: "IfNotPresent" }));

/** kuik's admission rules, with the default configuration. */
const A = { admitted: admissionRules() };

function pod(p: PodInput): PodLike {
  return {
    metadata: {
      name: p.name,
      namespace: p.namespace ?? "default",
      annotations: p.annotations,
      ...(p.deleting ? { deletionTimestamp: "2025-01-01T00:00:00Z" } : {}),
    },
    spec: {
      // the API server's defaulting, which admission and the watcher both see
      containers: withPolicy(p.containers ?? []),
      initContainers: p.init && withPolicy(p.init),
      ephemeralContainers: p.ephemeral && withPolicy(p.ephemeral),
      imagePullSecrets: p.pullSecrets?.map(name => ({ name })),
      serviceAccountName: p.serviceAccount,
    },
  };
}

/** A pod as the webhook leaves it: images rewritten, originals recorded. */
function rewritten(name: string, images: Record<string, string>, extra: Partial<PodInput> = {}): PodLike {
  return pod({
    name,
    containers: Object.entries(images).map(([c, image]) => ({ name: c, image: `localhost:7439/${image}` })),
    annotations: Object.fromEntries(
      Object.entries(images).map(([c, image]) => [`original-image-${c}`, image]),
    ),
    ...extra,
  });
}

describe("types", () => {
  it("accepts the client's Pod and the generated CachedImage", () => {
    expectTypeOf<kind.Pod>().toMatchTypeOf<PodLike>();
    expectTypeOf<kind.ServiceAccount>().toMatchTypeOf<ServiceAccountLike>();
  });
});

describe("podImages", () => {
  it("reads containers, then init containers (kuik v1 order), then ephemeral containers", () => {
    const p = pod({
      name: "p",
      containers: [{ name: "b", image: "localhost:7439/alpine:3.16.3" }],
      init: [{ name: "a", image: "localhost:7439/alpine" }],
      ephemeral: [{ name: "dbg", image: "localhost:7439/185.145.250.247-30042/busybox:1.36" }],
      annotations: { "original-image-b": "alpine:3.16.3", "original-init-image-a": "alpine" },
    });
    expect(podImages(p, A).images.map(i => [i.kind, i.sourceImage, i.name])).toEqual([
      ["container", "alpine:3.16.3", "docker.io-library-alpine-3.16.3"],
      ["init", "alpine", "docker.io-library-alpine-latest"],
      // Always read from the image (no annotation on ephemeral containers: the API server drops it there).
      ["ephemeral", "185.145.250.247:30042/busybox:1.36", "185.145.250.247-30042-busybox-1.36"],
    ]);
  });

  it("ignores containers that do not use kuik, and original-image annotations", () => {
    const p = pod({
      name: "p",
      containers: [
        { name: "plain", image: "nginx:1.25" },
        { name: "other-port", image: "localhost:5000/app:1" },
        { name: "broken", image: "localhost:7439/x" },
      ],
      annotations: { "original-image-broken": "@@@" },
    });
    const { images, problems } = podImages(p, A);
    // the annotation `@@@` is not read: `localhost:7439/x` is `x` (`x:latest` pulled IfNotPresent, rewritten)
    expect(images.map(i => i.sourceImage)).toEqual(["x"]);
    expect(problems).toEqual([]);
  });

  it("reads back with the configured proxy port", () => {
    const p = pod({ name: "p", containers: [{ name: "c", image: "localhost:8082/nginx:1.25" }] });
    expect(podImages(p, A).images).toEqual([]);
    expect(
      podImages(p, { admitted: admissionRules({ proxyPort: 8082 }) }).images.map(i => i.sourceImage),
    ).toEqual(["nginx:1.25"]);
  });
});

describe("desiredCachedImages", () => {
  it("merges pods using the same image, whatever its spelling, and skips terminating pods", () => {
    const pods = [
      rewritten("b", { web: "docker.io/library/nginx:1.25" }),
      rewritten("a", { web: "nginx:1.25", side: `nginx@sha256:${HEX}` }),
      rewritten("c", { web: "nginx:1.25" }, { namespace: "other" }),
      rewritten("d", { web: "alpine:3" }, { deleting: true }),
      pod({ name: "e", containers: [{ name: "c", image: "nginx:1.25" }] }),
    ];
    const { cachedImages, problems } = desiredCachedImages(pods, A);
    expect(problems).toEqual([]);
    expect([...cachedImages.values()]).toEqual([
      {
        name: "docker.io-library-nginx-1.25",
        sourceImage: "nginx:1.25",
        usedBy: ["default/a", "default/b", "other/c"],
      },
      {
        name: `docker.io-library-nginx-sha256-${HEX}`,
        sourceImage: `nginx@sha256:${HEX}`,
        usedBy: ["default/a"],
      },
    ]);
  });

  it("does not depend on the order pods are listed in", () => {
    const pods = [
      rewritten("x", { c: "docker.io/library/nginx:1.25" }),
      rewritten("y", { c: "index.docker.io/library/nginx:1.25" }),
      rewritten("z", { c: "nginx:1.25" }),
    ];
    const forward = desiredCachedImages(pods, A).cachedImages;
    const backward = desiredCachedImages([...pods].reverse(), A).cachedImages;
    expect([...backward]).toEqual([...forward]);
    expect(forward.get("docker.io-library-nginx-1.25")?.sourceImage).toBe("nginx:1.25");
  });

  it("reports two images whose names collide instead of mixing them", () => {
    const pods = [rewritten("a", { c: "ghcr.io/a/b-c:1" }), rewritten("b", { c: "ghcr.io/a/b:c-1" })];
    const { cachedImages, problems } = desiredCachedImages(pods, A);
    expect([...cachedImages.values()]).toEqual([
      { name: "ghcr.io-a-b-c-1", sourceImage: "ghcr.io/a/b-c:1", usedBy: ["default/a"] },
    ]);
    expect(problems).toMatchObject([{ pod: "default/b", sourceImage: "ghcr.io/a/b:c-1" }]);
  });

  it("counts one pod once per image", () => {
    const p = rewritten("a", { one: "nginx:1.25", two: "nginx:1.25" });
    expect(desiredCachedImages([p], A).cachedImages.get("docker.io-library-nginx-1.25")?.usedBy).toEqual([
      "default/a",
    ]);
  });
});

describe("desiredRepositories", () => {
  const accounts: ServiceAccountLike[] = [
    { metadata: { namespace: "team-a", name: "builder" }, imagePullSecrets: [{ name: "sa-secret" }] },
    { metadata: { namespace: "team-b", name: "builder" }, imagePullSecrets: [{ name: "other" }] },
  ];

  it("merges pull secrets across pods, namespaces and service accounts (never last-writer-wins)", () => {
    const pods = [
      rewritten(
        "a",
        { c: "ghcr.io/org/app:1" },
        { namespace: "team-a", pullSecrets: ["ghcr"], serviceAccount: "builder" },
      ),
      rewritten("b", { c: "ghcr.io/org/app:2" }, { namespace: "team-c", pullSecrets: ["ghcr", "ghcr"] }),
      rewritten("c", { c: "nginx:1.25" }, { namespace: "team-b", pullSecrets: ["hub"] }),
      rewritten("d", { c: "ghcr.io/org/app:3" }, { namespace: "gone", pullSecrets: ["x"], deleting: true }),
    ];
    const repos = desiredRepositories(pods, accounts, A);
    expect([...repos.values()]).toEqual([
      {
        objectName: "ghcr.io-org-app",
        name: "ghcr.io/org/app",
        label: "ghcr.io-org-app",
        pullSecrets: [
          { namespace: "team-a", name: "ghcr" },
          { namespace: "team-a", name: "sa-secret" },
          { namespace: "team-c", name: "ghcr" },
        ],
      },
      {
        objectName: "docker.io-library-nginx",
        name: "docker.io/library/nginx",
        label: "docker.io-library-nginx",
        pullSecrets: [{ namespace: "team-b", name: "hub" }],
      },
    ]);
  });

  it("describes a repository used without secrets, and omits unused ones", () => {
    const repos = desiredRepositories([rewritten("a", { c: "alpine" })], [], A);
    expect([...repos.keys()]).toEqual(["docker.io-library-alpine"]);
    expect(repos.get("docker.io-library-alpine")?.pullSecrets).toEqual([]);
    expect(desiredRepositories([], accounts, A).size).toBe(0);
  });
});

describe("usedByStatus", () => {
  it("sorts, deduplicates and counts", () => {
    expect(usedByStatus(["b/x", "a/y", "b/x"])).toEqual({
      pods: [{ namespacedName: "a/y" }, { namespacedName: "b/x" }],
      count: 2,
    });
  });
});
