import { Writable } from "node:stream";
import { PeprMutateRequest, type a } from "pepr";
import type { AdmissionRequest } from "pepr/dist/lib/common-types";
import { pino, type Logger } from "pino";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../shared/config";
import { ANNOTATION_REWRITE_IMAGES, LABEL_IMAGE_CACHING_POLICY, LABEL_MANAGED } from "../shared/labels";
import { createImageRewriter } from "./capability";
import { mutatePod } from "./mutate";
import { compilePolicy } from "./policy";

const policy = compilePolicy(loadConfig({}));

type Pod = a.Pod;

function request(
  operation: "CREATE" | "UPDATE",
  pod: Pod,
  extra: Partial<AdmissionRequest<Pod>> = {},
): AdmissionRequest<Pod> {
  return {
    uid: "uid-1",
    kind: { group: "", version: "v1", kind: "Pod" },
    resource: { group: "", version: "v1", resource: "pods" },
    name: pod.metadata?.name ?? "",
    namespace: "team",
    operation,
    userInfo: { username: "alice" },
    object: pod,
    ...extra,
  } as AdmissionRequest<Pod>;
}

function pod(
  containers: { name: string; image: string; imagePullPolicy?: string }[],
  meta: Pod["metadata"] = {},
): Pod {
  return { apiVersion: "v1", kind: "Pod", metadata: { name: "web", ...meta }, spec: { containers } } as Pod;
}

/** A logger whose lines the test reads. */
function capture(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: "debug" }, stream), lines };
}

describe("mutatePod", () => {
  it("CREATE: fills the namespace from the request, rewrites, labels and records originals", () => {
    const req = new PeprMutateRequest(
      request("CREATE", pod([{ name: "app", image: "nginx:1.25", imagePullPolicy: "IfNotPresent" }])),
    );
    const { log, lines } = capture();
    expect(mutatePod(req, policy, log)).toBe("rewritten");
    expect(req.Raw.metadata?.namespace).toBe("team");
    expect(req.Raw.spec?.containers[0]?.image).toBe("localhost:7439/nginx:1.25");
    expect(req.Raw.metadata?.labels).toEqual({ [LABEL_MANAGED]: "true" });
    expect(req.Raw.metadata?.annotations).toEqual({
      [ANNOTATION_REWRITE_IMAGES]: "true",
      "original-image-app": "nginx:1.25",
    });
    const info = lines.find(l => l.msg === "pod images processed");
    expect(info).toMatchObject({
      pod: "team/web",
      rewritten: 1,
      containers: [{ container: "app", rewritten: "localhost:7439/nginx:1.25" }],
    });
  });

  it("holds a rewrite while the proxy gate is closed: the pod is admitted untouched, and the log says why", () => {
    const asked: (string | undefined)[] = [];
    const closed = {
      verdict: (node?: string) => {
        asked.push(node);
        return {
          rewrite: false as const,
          reason: "not-installed",
          detail: "the proxy DaemonSet does not exist",
        };
      },
    };
    const scheduled = pod([{ name: "app", image: "nginx:1.25", imagePullPolicy: "IfNotPresent" }]);
    scheduled.spec!.nodeName = "n1";
    const req = new PeprMutateRequest(request("CREATE", scheduled));
    const { log, lines } = capture();
    expect(mutatePod(req, policy, log, closed)).toBe("held");
    expect(asked).toEqual(["n1"]);
    expect(req.Raw.spec?.containers[0]?.image).toBe("nginx:1.25");
    expect(req.Raw.metadata?.labels).toBeUndefined();
    expect(req.Raw.metadata?.annotations).toBeUndefined();
    expect(
      lines.find(l => l.msg === "proxy not serving: pod admitted with its original images"),
    ).toMatchObject({
      pod: "team/web",
      reason: "not-installed",
    });
    // nothing to rewrite (opt-out): the gate is not even asked
    const optOut = pod([{ name: "app", image: "nginx:1.25" }], {
      labels: { [LABEL_IMAGE_CACHING_POLICY]: "ignore" },
    });
    expect(mutatePod(new PeprMutateRequest(request("CREATE", optOut)), policy, log, closed)).toBe("skipped");
    expect(asked).toHaveLength(1);
    const open = { verdict: () => ({ rewrite: true as const, reason: "majority-ready" }) };
    const again = new PeprMutateRequest(request("CREATE", pod([{ name: "app", image: "nginx:1.25" }])));
    expect(mutatePod(again, policy, log, open)).toBe("rewritten");
  });

  it("an empty metadata.namespace in an ignored namespace is still recognised (from the request)", () => {
    const req = new PeprMutateRequest(
      request("CREATE", pod([{ name: "app", image: "nginx:1.25" }]), { namespace: "kube-system" }),
    );
    expect(mutatePod(req, policy, capture().log)).toBe("skipped");
    expect(req.Raw.spec?.containers[0]?.image).toBe("nginx:1.25");
  });

  it("UPDATE: passes the old pod, so only the container whose image changed is rewritten", () => {
    const annotations = { [ANNOTATION_REWRITE_IMAGES]: "true", "original-image-a": "nginx:1.25" };
    const old = pod(
      [
        { name: "a", image: "localhost:7439/nginx:1.25" },
        { name: "b", image: "redis:7" },
      ],
      { annotations },
    );
    const updated = pod(
      [
        { name: "a", image: "localhost:7439/nginx:1.25" },
        { name: "b", image: "redis:7.2", imagePullPolicy: "IfNotPresent" },
      ],
      {
        annotations,
      },
    );
    const req = new PeprMutateRequest(request("UPDATE", updated, { oldObject: old }));
    mutatePod(req, policy, capture().log);
    expect(req.Raw.spec?.containers.map(c => c.image)).toEqual([
      "localhost:7439/nginx:1.25",
      "localhost:7439/redis:7.2",
    ]);
  });

  it("pods/ephemeralcontainers: the debug container is rewritten", () => {
    const annotations = { [ANNOTATION_REWRITE_IMAGES]: "true" };
    const old = pod([{ name: "a", image: "localhost:7439/nginx:1.25" }], { annotations });
    const updated = structuredClone(old);
    updated.spec!.ephemeralContainers = [
      { name: "debug", image: "busybox:1.36", imagePullPolicy: "IfNotPresent" },
    ];
    const req = new PeprMutateRequest(
      request("UPDATE", updated, { oldObject: old, subResource: "ephemeralcontainers" }),
    );
    expect(mutatePod(req, policy, capture().log)).toBe("rewritten");
    expect(req.Raw.spec?.ephemeralContainers?.[0]?.image).toBe("localhost:7439/busybox:1.36");
  });

  it("opt-out label: the pod is left alone", () => {
    const req = new PeprMutateRequest(
      request(
        "CREATE",
        pod([{ name: "a", image: "nginx:1.25" }], { labels: { [LABEL_IMAGE_CACHING_POLICY]: "ignore" } }),
      ),
    );
    expect(mutatePod(req, policy, capture().log)).toBe("skipped");
    expect(req.Raw.metadata?.labels).toEqual({ [LABEL_IMAGE_CACHING_POLICY]: "ignore" });
  });

  it("unparsable images are reported as warnings and left as they are", () => {
    const req = new PeprMutateRequest(request("CREATE", pod([{ name: "a", image: "Bad Image" }])));
    const { log, lines } = capture();
    expect(mutatePod(req, policy, log)).toBe("unchanged");
    expect(lines.find(l => l.level === 40)).toMatchObject({
      containers: [{ container: "a", skippedBecause: "invalid-reference" }],
    });
  });

  it("fail-open: an exception admits the pod untouched and is logged", () => {
    const broken = {
      ...policy,
      ignoredImages: [
        {
          test: () => {
            throw new Error("bug");
          },
        } as unknown as RegExp,
      ],
    };
    const input = pod([{ name: "a", image: "nginx:1.25", imagePullPolicy: "IfNotPresent" }]);
    const req = new PeprMutateRequest(request("CREATE", input));
    const before = structuredClone(req.Raw);
    const { log, lines } = capture();
    expect(mutatePod(req, broken, log)).toBe("failed");
    expect({ ...req.Raw, metadata: { ...req.Raw.metadata, namespace: undefined } }).toEqual({
      ...before,
      metadata: { ...before.metadata, namespace: undefined },
    });
    expect(lines.find(l => l.level === 50)?.msg).toContain("pod admitted unchanged");
  });
});

describe("createImageRewriter", () => {
  it("binds one Pod mutation, CREATE and UPDATE, aliased, calling the glue", async () => {
    const bindings = createImageRewriter(policy).bindings.filter(b => b.isMutate);
    expect(bindings).toHaveLength(1);
    const [binding] = bindings;
    expect(binding).toMatchObject({
      kind: { kind: "Pod" },
      event: "CREATEORUPDATE",
      alias: "rewrite-images",
    });
    const req = new PeprMutateRequest(
      request("CREATE", pod([{ name: "a", image: "nginx:1.25", imagePullPolicy: "IfNotPresent" }])),
    );
    await binding?.mutateCallback?.(req as never);
    expect(req.Raw.spec?.containers[0]?.image).toBe("localhost:7439/nginx:1.25");
  });
});
