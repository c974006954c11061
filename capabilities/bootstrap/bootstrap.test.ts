/**
 * The bootstrap's sequencing and retries over a scripted transport (its requests against a real API server and
 * the RBAC it runs with are proven by test/e2e/bootstrap.e2e.test.ts).
 */
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { KubeRequest, KubeTransport } from "../kube/http";
import { KubeApiError } from "../kube/ports";
import { startBootstrap } from "./bootstrap";
import type { Manifest } from "./plan";

const log = pino({ level: "silent" });
const CRD: Manifest = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: "things.example.com" },
};
const NS: Manifest = { apiVersion: "v1", kind: "Namespace", metadata: { name: "kuik-system" } };
const established = { status: { conditions: [{ type: "Established", status: "True" }] } };

/** A transport answering each request with `answer`; records `METHOD path` of every request. */
function scripted(answer: (req: KubeRequest, n: number) => unknown): KubeTransport & { log: string[] } {
  const seen: string[] = [];
  return {
    log: seen,
    request<T>(req: KubeRequest): Promise<T> {
      seen.push(`${req.method} ${req.path}`);
      try {
        return Promise.resolve(answer(req, seen.length) as T);
      } catch (err) {
        return Promise.reject(err as Error);
      }
    },
  };
}

describe("startBootstrap", () => {
  it("CRDs until Established, then the data plane, then the webhook, in one attempt", async () => {
    let crdApplies = 0;
    const kube = scripted(req => {
      if (req.path.includes("customresourcedefinitions")) return ++crdApplies < 3 ? {} : established;
      if (req.method === "GET") return { webhooks: [{ name: "w", objectSelector: {} }] };
      return {};
    });
    const sleeps: number[] = [];
    const b = startBootstrap({
      kube,
      log,
      crds: [CRD],
      dataPlane: [NS],
      sleep: ms => (sleeps.push(ms), Promise.resolve()),
      pollMs: 7,
    });
    await b.crdsEstablished;
    await b.done;
    expect(b.attempts()).toBe(1);
    expect(sleeps).toEqual([7, 7]);
    expect(kube.log).toEqual([
      "PATCH /apis/apiextensions.k8s.io/v1/customresourcedefinitions/things.example.com",
      "PATCH /apis/apiextensions.k8s.io/v1/customresourcedefinitions/things.example.com",
      "PATCH /apis/apiextensions.k8s.io/v1/customresourcedefinitions/things.example.com",
      "PATCH /api/v1/namespaces/kuik-system",
      "GET /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/pepr-kuik",
      "PATCH /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/pepr-kuik",
    ]);
  });

  it("a webhook already patched is left alone", async () => {
    const done = {
      webhooks: [
        {
          name: "w",
          reinvocationPolicy: "IfNeeded",
          objectSelector: {
            matchExpressions: [
              {
                key: "kube-image-keeper.enix.io/image-caching-policy",
                operator: "NotIn",
                values: ["ignore"],
              },
            ],
          },
        },
      ],
    };
    const kube = scripted(req => (req.method === "GET" ? done : established));
    const b = startBootstrap({ kube, log, crds: [CRD], dataPlane: [], sleep: () => Promise.resolve() });
    await b.done;
    expect(kube.log.filter(l => l.includes("mutatingwebhook"))).toEqual([
      "GET /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/pepr-kuik",
    ]);
  });

  it("retries a failed attempt from the start with exponential backoff, capped", async () => {
    let failures = 4;
    const kube = scripted(req => {
      if (req.path === "/api/v1/namespaces/kuik-system" && failures-- > 0) {
        throw new KubeApiError(403, "namespaces is forbidden");
      }
      return req.method === "GET" ? { webhooks: [] } : established;
    });
    const sleeps: number[] = [];
    const b = startBootstrap({
      kube,
      log,
      crds: [CRD],
      dataPlane: [NS],
      sleep: ms => (sleeps.push(ms), Promise.resolve()),
      baseBackoffMs: 100,
      maxBackoffMs: 500,
    });
    await b.done;
    expect(b.attempts()).toBe(5);
    expect(sleeps).toEqual([100, 200, 400, 500]);
    // the CRDs were Established at the first attempt
    await b.crdsEstablished;
  });

  it("a CRD never Established fails the attempt after establishTimeoutMs; stop() ends the retries", async () => {
    const kube = scripted(() => ({}));
    let stop = (): void => undefined;
    let sleeps = 0;
    const b = startBootstrap({
      kube,
      log,
      crds: [CRD],
      dataPlane: [NS],
      establishTimeoutMs: 0,
      sleep: () => {
        if (++sleeps === 3) stop();
        return Promise.resolve();
      },
    });
    stop = () => b.stop();
    await b.done;
    expect(b.attempts()).toBe(3);
    expect(kube.log.some(l => l.includes("/namespaces/"))).toBe(false);
  });
});
