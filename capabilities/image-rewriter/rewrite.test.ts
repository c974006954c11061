import { describe, expect, it } from "vitest";
import { ConfigError } from "../shared/config";
import { CONTAINER_LIST_FIELD, type ContainerLike, type PodLike } from "../shared/pods";
import { compilePolicy, rewritePod, type RewritePolicyConfig, type RewriteResult } from "./rewrite";

const HEX = "a".repeat(64);
const BASE: RewritePolicyConfig = {
  proxyPort: 4242,
  namespace: "kuik-system",
  ignoredNamespaces: [],
  ignoredImages: [],
  acceptedImages: [],
  ignorePullPolicyAlways: true,
};
const policy = (overrides: Partial<RewritePolicyConfig> = {}) => compilePolicy({ ...BASE, ...overrides });

interface PodSpec {
  containers?: ContainerLike[];
  init?: ContainerLike[];
  ephemeral?: ContainerLike[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  namespace?: string;
}

function pod(p: PodSpec): PodLike {
  return {
    metadata: {
      name: "p",
      namespace: p.namespace ?? "default",
      labels: p.labels,
      annotations: p.annotations,
    },
    spec: { containers: p.containers ?? [], initContainers: p.init, ephemeralContainers: p.ephemeral },
  };
}

/** One container, pull policy IfNotPresent unless given. */
const one = (image: string, imagePullPolicy = "IfNotPresent", name = "c") =>
  pod({ containers: [{ name, image, imagePullPolicy }] });

type MutablePod = { spec: { containers: ContainerLike[]; ephemeralContainers?: ContainerLike[] } };

/** A copy of `p` changed by `change` (what an UPDATE request carries). */
function edit(p: PodLike, change: (m: MutablePod) => void): PodLike {
  const m = structuredClone(p) as unknown as MutablePod;
  change(m);
  return m as unknown as PodLike;
}

/** What the admission glue does with a result. */
function apply(input: PodLike, r: RewriteResult): PodLike {
  const out = structuredClone(input) as {
    metadata: { labels?: Record<string, string>; annotations?: Record<string, string> };
    spec: Record<string, { image?: string }[]>;
  };
  for (const change of r.images) {
    const list = out.spec[CONTAINER_LIST_FIELD[change.kind]];
    if (list?.[change.index]) list[change.index]!.image = change.image;
  }
  out.metadata.labels = { ...out.metadata.labels, ...r.labels };
  out.metadata.annotations = { ...out.metadata.annotations, ...r.annotations };
  for (const key of r.removeAnnotations) delete out.metadata.annotations[key];
  return out as PodLike;
}

describe("kuik v1 webhook test checklist", () => {
  const ifNotPresent = (entries: string[][]) =>
    entries.map(([name, image]) => ({ name: name!, image, imagePullPolicy: "IfNotPresent" }));
  const v1Pod = pod({
    init: ifNotPresent([["a", "original-init"]]),
    containers: ifNotPresent([
      ["b", "original"],
      ["c", "localhost:1313/original-2"],
      ["d", "185.145.250.247:30042/alpine"],
      ["e", "185.145.250.247:30042/alpine:latest"],
      ["f", "localhost:4242/185.145.250.247-30042/alpine:latest"],
      ["g", "invalid:image:8080"],
    ]),
  });
  const images = (r: RewriteResult) => Object.fromEntries(r.report.map(c => [c.container, c.rewritten]));

  it("UPDATE of a pod without rewrite-images: labelled, rewrite-images=false, images untouched", () => {
    const r = rewritePod(v1Pod, "UPDATE", v1Pod, policy());
    expect(r.labels).toEqual({ "kuik.enix.io/managed": "true" });
    expect(r.annotations).toEqual({ "kuik.enix.io/rewrite-images": "false" });
    expect(r.images).toEqual([]);
    expect(r.report.every(c => c.skippedBecause === "not-managed")).toBe(true);
  });

  it("CREATE rewrites, records originals and labels the pod", () => {
    const r = rewritePod(v1Pod, "CREATE", undefined, policy());
    expect(images(r)).toEqual({
      a: "localhost:4242/original-init",
      b: "localhost:4242/original",
      // v1 took localhost:1313 for its own prefix and lost the origin (docs/v1-differences.md, B7): left alone now.
      c: undefined,
      d: "localhost:4242/185.145.250.247-30042/alpine",
      e: "localhost:4242/185.145.250.247-30042/alpine:latest",
      f: "localhost:4242/185.145.250.247-30042/alpine:latest",
      g: undefined,
    });
    expect(r.images.map(i => i.container)).toEqual(["b", "d", "e", "a"]);
    expect(r.labels).toEqual({ "kuik.enix.io/managed": "true" });
    expect(r.annotations).toEqual({
      "kuik.enix.io/rewrite-images": "true",
      "original-init-image-a": "original-init",
      "original-image-b": "original",
      "original-image-d": "185.145.250.247:30042/alpine",
      "original-image-e": "185.145.250.247:30042/alpine:latest",
      // v1 recorded nothing for an already rewritten image; its original is read back so it gets cached.
      "original-image-f": "185.145.250.247:30042/alpine:latest",
    });
    const reasons = Object.fromEntries(r.report.map(c => [c.container, c.skippedBecause]));
    expect(reasons).toMatchObject({ c: "loopback-registry", g: "invalid-reference" });
  });

  it("a later UPDATE keeps rewrite-images=true", () => {
    const created = apply(v1Pod, rewritePod(v1Pod, "CREATE", undefined, policy()));
    const r = rewritePod(created, "UPDATE", created, policy());
    expect(r.annotations).toEqual({ "kuik.enix.io/rewrite-images": "true" });
    expect(r.images).toEqual([]);
  });

  it.each([
    [{ ignoredImages: ["original"] }, ["d", "e", "f"]],
    // `alpine:latest` also matches untagged alpine: normalised, it is alpine:latest.
    [{ ignoredImages: ["alpine:latest"] }, ["b", "f", "a"]],
    [{ acceptedImages: ["185.145.250.247\\:30042"] }, ["d", "e", "f"]],
  ])("regex variant %j rewrites %j", (overrides, rewritten) => {
    const r = rewritePod(v1Pod, "CREATE", undefined, policy(overrides));
    expect(r.report.filter(c => c.rewritten !== undefined).map(c => c.container)).toEqual(rewritten);
  });
});

describe("per-container rules", () => {
  it.each([
    // [image, pullPolicy, config overrides, rewritten image or skip reason]
    [`nginx@sha256:${HEX}`, "IfNotPresent", {}, `localhost:4242/nginx@sha256:${HEX}`],
    [`nginx:1.25@sha256:${HEX}`, "Always", {}, `localhost:4242/nginx:1.25@sha256:${HEX}`],
    ["nginx:1.25", "Never", {}, "pull-policy-never"],
    ["nginx:1.25", "Always", {}, "pull-policy-always"],
    ["nginx:1.25", "Always", { ignorePullPolicyAlways: false }, "localhost:4242/nginx:1.25"],
    ["nginx:latest", "", {}, "pull-policy-always"],
    ["nginx", "", {}, "pull-policy-always"],
    ["reg.example.com:5000/app", "", {}, "pull-policy-always"],
    ["nginx:1.25", "", {}, "localhost:4242/nginx:1.25"],
    ["nginx:latest", "IfNotPresent", {}, "localhost:4242/nginx:latest"],
    ["nginx", "Always", { ignorePullPolicyAlways: false }, "localhost:4242/nginx"],
    ["nginx:1.25", "IfNotPresent", { ignoredImages: ["^docker\\.io/library/"] }, "ignored-image"],
    ["nginx:1.25", "IfNotPresent", { ignoredImages: ["^nginx:"] }, "ignored-image"],
    ["nginx:1.25", "IfNotPresent", { ignoredImages: ["(?i)NGINX"] }, "ignored-image"],
    ["nginx:1.25", "IfNotPresent", { acceptedImages: ["^ghcr\\.io/"] }, "not-accepted"],
    ["ghcr.io/o/a:1", "IfNotPresent", { acceptedImages: ["^ghcr\\.io/"] }, "localhost:4242/ghcr.io/o/a:1"],
    ["nginx:1.25", "IfNotPresent", { proxyPort: 7439 }, "localhost:7439/nginx:1.25"],
    ["Reg.Example.com:5000/app:1", "IfNotPresent", {}, "localhost:4242/reg.example.com-5000/app:1"],
    ["localhost:5000/app:1", "IfNotPresent", {}, "loopback-registry"],
    ["127.0.0.1:5000/app:1", "IfNotPresent", {}, "loopback-registry"],
    [
      "127.0.0.1:5000/app:1",
      "IfNotPresent",
      { rewriteLoopbackRegistries: true },
      "localhost:4242/127.0.0.1-5000/app:1",
    ],
    ["localhost:5000/app:1", "IfNotPresent", { rewriteLoopbackRegistries: true }, "loopback-registry"],
    ["registry:5000/app:1", "IfNotPresent", {}, "ambiguous-registry"],
    ["[2001:db8::1]:5000/app:1", "IfNotPresent", {}, "unsupported-registry"],
    [`ghcr.io/${"x".repeat(250)}:1`, "IfNotPresent", {}, "name-too-long"],
    ["invalid:image:8080", "IfNotPresent", {}, "invalid-reference"],
    ["", "IfNotPresent", {}, "invalid-reference"],
  ] as const)("%s (%s, %j) → %s", (image, pullPolicy, overrides, expected) => {
    const [report] = rewritePod(one(image, pullPolicy), "CREATE", undefined, policy(overrides)).report;
    if (expected.includes("/")) expect(report).toMatchObject({ original: image, rewritten: expected });
    else expect(report).toMatchObject({ original: image, skippedBecause: expected });
  });

  it("lists every invalid regex in one ConfigError", () => {
    const error = (() => {
      try {
        policy({ ignoredImages: ["ok", "(unclosed"], acceptedImages: ["[z-a]"] });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      expect.stringMatching(/^ignoredImages: invalid regex "\(unclosed"/),
      expect.stringMatching(/^acceptedImages: invalid regex "\[z-a\]"/),
    ]);
  });

  it("uses a SHA-1 annotation key for long container names", () => {
    const name = "n".repeat(60);
    const r = rewritePod(one("nginx:1.25", "IfNotPresent", name), "CREATE", undefined, policy());
    const key = Object.keys(r.annotations).find(k => k.startsWith("original-image-"));
    expect(key).toMatch(/^original-image-[0-9a-f]{40}$/);
  });
});

describe("whole-pod rules", () => {
  it.each([
    [{ labels: { "kube-image-keeper.enix.io/image-caching-policy": "ignore" } }, "opt-out-label"],
    [{ namespace: "kube-system" }, "ignored-namespace"],
    [{ namespace: "pepr-system" }, "ignored-namespace"],
    [{ namespace: "kuik-system" }, "ignored-namespace"],
    [{ namespace: "ci" }, "ignored-namespace"],
  ])("%j leaves the pod alone: %s", (extra, reason) => {
    const p = pod({
      containers: [{ name: "c", image: "nginx:1.25", imagePullPolicy: "IfNotPresent" }],
      ...extra,
    });
    const r = rewritePod(p, "CREATE", undefined, policy({ ignoredNamespaces: ["ci"] }));
    const report = [{ container: "c", kind: "container", original: "nginx:1.25", skippedBecause: reason }];
    const nothing = { images: [], labels: {}, annotations: {}, removeAnnotations: [] };
    expect(r).toEqual({ skippedBecause: reason, ...nothing, report });
  });

  it("rewrites a pod whose opt-out label has another value", () => {
    const p = pod({
      containers: [{ name: "c", image: "nginx:1.25", imagePullPolicy: "IfNotPresent" }],
      labels: { "kube-image-keeper.enix.io/image-caching-policy": "cache" },
    });
    expect(rewritePod(p, "CREATE", undefined, policy()).images).toHaveLength(1);
  });
});

describe("re-admission and updates", () => {
  const created = pod({
    containers: [{ name: "web", image: "nginx:1.25", imagePullPolicy: "IfNotPresent" }],
    init: [{ name: "setup", image: "busybox:1.36", imagePullPolicy: "IfNotPresent" }],
  });
  const first = rewritePod(created, "CREATE", undefined, policy());
  const admitted = apply(created, first);

  it("is idempotent: a second admission (reinvocation) changes nothing", () => {
    const again = rewritePod(admitted, "CREATE", undefined, policy());
    expect(again.images).toEqual([]);
    expect(again.removeAnnotations).toEqual([]);
    expect(again.annotations).toEqual({ "kuik.enix.io/rewrite-images": "true" });
    expect(again.report.map(c => [c.original, c.rewritten])).toEqual([
      ["nginx:1.25", "localhost:4242/nginx:1.25"],
      ["busybox:1.36", "localhost:4242/busybox:1.36"],
    ]);
    expect(apply(admitted, again)).toEqual(admitted);
  });

  it("leaves unchanged images alone on UPDATE, even when the config changed (no container restart)", () => {
    const always = pod({
      containers: [{ name: "web", image: "nginx:1.25", imagePullPolicy: "Always" }],
      annotations: { "kuik.enix.io/rewrite-images": "true", "original-image-web": "nginx:1.24" },
    });
    const r = rewritePod(always, "UPDATE", always, policy({ ignorePullPolicyAlways: false }));
    expect(r.images).toEqual([]);
    expect(r.removeAnnotations).toEqual([]);
    expect(r.report[0]).toMatchObject({ skippedBecause: "unchanged-on-update", original: "nginx:1.25" });
    const ours = rewritePod(admitted, "UPDATE", admitted, policy({ ignoredImages: ["nginx"] }));
    expect(ours.report[0]).toMatchObject({ original: "nginx:1.25", rewritten: "localhost:4242/nginx:1.25" });
  });

  it("rewrites an image changed by an UPDATE (kubectl set image) and records the new original", () => {
    const updated = edit(
      admitted,
      m => (m.spec.containers[0] = { ...m.spec.containers[0]!, image: "nginx:1.26" }),
    );
    const r = rewritePod(updated, "UPDATE", admitted, policy());
    expect(r.images).toEqual([
      { kind: "container", index: 0, container: "web", image: "localhost:4242/nginx:1.26" },
    ]);
    expect(r.annotations["original-image-web"]).toBe("nginx:1.26");
  });

  it("leaves a rescued container on its original: the UPDATE that put it back is kuik's rescue", () => {
    const rescued = edit(
      admitted,
      m => (m.spec.containers[0] = { ...m.spec.containers[0]!, image: "nginx:1.25" }),
    );
    const r = rewritePod(rescued, "UPDATE", admitted, policy());
    expect(r.images).toEqual([]);
    expect(r.report[0]).toMatchObject({ skippedBecause: "rescued", original: "nginx:1.25" });
  });

  it("drops the stale original when the new image is not rewritten", () => {
    const updated = edit(admitted, m => {
      m.spec.containers[0] = { name: "web", image: "nginx:1.26", imagePullPolicy: "Always" };
    });
    const r = rewritePod(updated, "UPDATE", admitted, policy());
    expect(r.images).toEqual([]);
    expect(r.removeAnnotations).toEqual(["original-image-web"]);
  });

  it("rewrites an ephemeral container added through the subresource", () => {
    const debug = edit(admitted, m => {
      m.spec.ephemeralContainers = [
        { name: "debugger", image: "busybox:1.36", imagePullPolicy: "IfNotPresent" },
      ];
    });
    const r = rewritePod(debug, "UPDATE", admitted, policy());
    expect(r.images).toEqual([
      { kind: "ephemeral", index: 0, container: "debugger", image: "localhost:4242/busybox:1.36" },
    ]);
    expect(r.annotations["original-ephem-image-debugger"]).toBe("busybox:1.36");
  });

  it("re-records a missing or wrong original of an image already in proxy form", () => {
    const p = pod({
      containers: [{ name: "c", image: "localhost:4242/ghcr.io/o/a:1", imagePullPolicy: "IfNotPresent" }],
      annotations: { "original-image-c": "nginx:1.25" },
    });
    const r = rewritePod(p, "CREATE", undefined, policy());
    expect(r.images).toEqual([]);
    expect(r.annotations["original-image-c"]).toBe("ghcr.io/o/a:1");
  });

  it("without the old pod, re-evaluates every container of a managed pod (v1 behaviour)", () => {
    const r = rewritePod(admitted, "UPDATE", undefined, policy());
    expect([r.images, r.report.map(c => c.skippedBecause)]).toEqual([[], [undefined, undefined]]);
  });
});
