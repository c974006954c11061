/**
 * Issue #13, "Pods steer the watcher": any pod labelled `kuik.enix.io/managed` was tracked, and its
 * `original-image-<container>` annotation was trusted over the container's image. A pod could so make kuik cache
 * any image (bypassing ignored/accepted images, pull-policy rules, the opt-out label and ignored namespaces) or keep
 * an image from expiring. The watcher now re-applies the admission rules (image-rewriter/recheck.ts) and reads the
 * original from the container's proxy image only. These tests failed before that change.
 */
import { describe, expect, it } from "vitest";
import { IMAGE_CACHING_POLICY_IGNORE, LABEL_IMAGE_CACHING_POLICY, LABEL_MANAGED } from "../shared/labels";
import { desiredCachedImages, podImages, type AdmittedImages } from "../shared/pod-images";
import type { PodLike } from "../shared/pods";
import { admissionRules } from "../testing/admission";
import { FakeTime } from "../testing/fake-registry";
import { FakeKube } from "../testing/fakes";
import { LivePods } from "../expiry/sweep";
import { desiredRepositories } from "./desired";

interface Container {
  name?: string;
  image: string;
  imagePullPolicy?: string;
}

/** A pod as an attacker writes it: labels, annotations and images of their choice. */
function pod(
  namespace: string,
  containers: Container[],
  meta: { labels?: Record<string, string>; annotations?: Record<string, string> } = {},
): PodLike {
  return {
    metadata: {
      name: "p",
      namespace,
      labels: { [LABEL_MANAGED]: "true", ...meta.labels },
      annotations: meta.annotations ?? {},
    },
    spec: {
      containers: containers.map((c, i) => ({ imagePullPolicy: "IfNotPresent", name: `c${i}`, ...c })),
      imagePullSecrets: [{ name: "s" }],
    },
  };
}

const sources = (p: PodLike, admitted: AdmittedImages = admissionRules()): string[] =>
  podImages(p, { admitted }).images.map(i => i.sourceImage);

describe("the watcher trusts no pod label or annotation", () => {
  it("a pod labelled managed with original-image annotations but no rewritten image is not tracked", () => {
    const p = pod("default", [{ image: "nginx:1.25" }], {
      annotations: { "original-image-c0": "attacker.example.com/huge:1" },
    });
    expect(sources(p)).toEqual([]);
    const admitted = admissionRules();
    expect(desiredCachedImages([p], { admitted }).cachedImages.size).toBe(0);
    expect(desiredRepositories([p], [], { admitted }).size).toBe(0);
  });

  it("the original is read from the container's proxy image, never from the annotation", () => {
    const p = pod("default", [{ image: "localhost:7439/nginx:1.25" }], {
      annotations: { "original-image-c0": "attacker.example.com/huge:1" },
    });
    expect(sources(p)).toEqual(["nginx:1.25"]);
  });

  it.each([
    ["kube-system", {}],
    ["pepr-system", {}],
    ["kuik-system", {}],
    ["default", { [LABEL_IMAGE_CACHING_POLICY]: IMAGE_CACHING_POLICY_IGNORE }],
  ])(
    "a rewritten, managed-labelled pod in %s with labels %j (admission skips it) is not tracked",
    (ns, labels) => {
      const p = pod(ns, [{ image: "localhost:7439/nginx:1.25" }], {
        labels,
        annotations: { "original-image-c0": "nginx:1.25" },
      });
      expect(sources(p)).toEqual([]);
    },
  );

  it("a configured ignored namespace is re-applied too", () => {
    const p = pod("team-a", [{ image: "localhost:7439/nginx:1.25" }]);
    expect(sources(p, admissionRules({ ignoredNamespaces: ["team-a"] }))).toEqual([]);
    expect(sources(p, admissionRules({ ignoredNamespaces: ["team-b"] }))).toEqual(["nginx:1.25"]);
  });

  it.each([
    ["ignored image", { ignoredImages: ["^docker\\.io/library/nginx"] }, "IfNotPresent"],
    ["image not accepted", { acceptedImages: ["^registry\\.example\\.com/"] }, "IfNotPresent"],
    ["pull policy Always", {}, "Always"],
    ["pull policy Never", {}, "Never"],
  ] as const)("an image admission refuses (%s) is not tracked", (_what, config, imagePullPolicy) => {
    const p = pod("default", [{ image: "localhost:7439/nginx:1.25", imagePullPolicy }]);
    expect(sources(p, admissionRules(config))).toEqual([]);
  });

  it("each container is judged on its own", () => {
    const p = pod("default", [
      { image: "localhost:7439/nginx:1.25" },
      { image: "localhost:7439/redis:7", imagePullPolicy: "Always" },
      { image: "alpine:3" },
    ]);
    expect(sources(p)).toEqual(["nginx:1.25"]);
  });
});

describe("the expiry recount with the admission rules", () => {
  it("a pod cannot keep an image from expiring with kuik's label and an annotation", async () => {
    const kube = new FakeKube();
    kube.addPod(
      pod("default", [{ image: "busybox:1" }], { annotations: { "original-image-c0": "nginx:1.25" } }),
    );
    kube.addPod(pod("kube-system", [{ image: "localhost:7439/nginx:1.25" }]));
    const live = new LivePods(kube, new FakeTime(), admissionRules());
    expect(await live.usersOf("docker.io-library-nginx-1.25", true)).toBe(0);
  });
});
