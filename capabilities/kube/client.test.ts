/**
 * The requests KubeClient sends are the ones kubernetes-fluent-client 3.11.6 sent for the same calls (its
 * dist/fluent/utils.js `prepareRequestOptions`, dist/fluent/index.js `syncFilters`), so objects written before
 * keep their field ownership. test/e2e/kube-client.e2e.test.ts runs them against the real API server.
 */
import { describe, expect, it } from "vitest";
import { KubeClient, LIST_PAGE_SIZE } from "./client";
import type { KubeRequest, KubeTransport } from "./http";
import { KubeApiError } from "./ports";

/** A transport answering from `answer`, recording the requests. */
function transport(
  answer: (req: KubeRequest) => unknown = () => ({}),
): KubeTransport & { sent: KubeRequest[] } {
  const sent: KubeRequest[] = [];
  return {
    sent,
    request<T>(req: KubeRequest): Promise<T> {
      sent.push(req);
      try {
        return Promise.resolve(answer(req) as T);
      } catch (e) {
        return Promise.reject(e as Error);
      }
    },
  };
}

describe("KubeClient requests", () => {
  it("server-side apply: field manager pepr, strict validation, forced, apiVersion and kind filled in", async () => {
    const t = transport();
    const kube = new KubeClient(t);
    await kube.applyCachedImage("ci", "nginx:1", { "kuik.enix.io/repository": "docker.io-library-nginx" });
    await kube.applySecret({ name: "creds", namespace: "kuik-system", dockerConfigJson: '{"auths":{}}' });
    expect(t.sent).toEqual([
      {
        method: "PATCH",
        path: "/apis/kuik.enix.io/v1alpha1/cachedimages/ci",
        query: { fieldManager: "pepr", fieldValidation: "Strict", force: "true" },
        contentType: "application/apply-patch+yaml",
        body: {
          apiVersion: "kuik.enix.io/v1alpha1",
          kind: "CachedImage",
          metadata: { name: "ci", labels: { "kuik.enix.io/repository": "docker.io-library-nginx" } },
          spec: { sourceImage: "nginx:1" },
        },
      },
      {
        method: "PATCH",
        path: "/api/v1/namespaces/kuik-system/secrets/creds",
        query: { fieldManager: "pepr", fieldValidation: "Strict", force: "true" },
        contentType: "application/apply-patch+yaml",
        body: {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: "creds", namespace: "kuik-system" },
          type: "kubernetes.io/dockerconfigjson",
          data: { ".dockerconfigjson": Buffer.from('{"auths":{}}').toString("base64") },
        },
      },
    ]);
  });

  it("status: merge patch of the status subresource holding only status; JSON Patch; event create", async () => {
    const t = transport();
    const kube = new KubeClient(t);
    await kube.patchRepositoryStatus("r", { phase: "Ready", lastError: null });
    await kube.patchCachedImage("ci", [{ op: "add", path: "/metadata/finalizers/-", value: "f" }]);
    await kube.patchCachedImage("ci", []); // nothing to send
    await kube.createEvent({ metadata: { name: "e.1", namespace: "ns" } } as never);
    expect(t.sent.map(r => [r.method, r.path, r.contentType, r.body])).toEqual([
      [
        "PATCH",
        "/apis/kuik.enix.io/v1alpha1/repositories/r/status",
        "application/merge-patch+json",
        { status: { phase: "Ready", lastError: null } },
      ],
      [
        "PATCH",
        "/apis/kuik.enix.io/v1alpha1/cachedimages/ci",
        "application/json-patch+json",
        [{ op: "add", path: "/metadata/finalizers/-", value: "f" }],
      ],
      [
        "POST",
        "/api/v1/namespaces/ns/events",
        undefined,
        { apiVersion: "v1", kind: "Event", metadata: { name: "e.1", namespace: "ns" } },
      ],
    ]);
    expect(t.sent.every(r => r.read !== true)).toBe(true); // bodies of writes are drained, not parsed
  });

  it("lists page by page with the label selector, and reads only what it returns", async () => {
    const t = transport(req =>
      req.query?.continue === undefined
        ? { items: [{ metadata: { name: "a" } }], metadata: { continue: "next" } }
        : { items: [{ metadata: { name: "b" } }], metadata: { continue: "" } },
    );
    const pods = await new KubeClient(t).listManagedPods();
    expect(pods.map(p => p.metadata?.name)).toEqual(["a", "b"]);
    expect(t.sent.map(r => [r.path, r.query, r.read])).toEqual([
      ["/api/v1/pods", { labelSelector: "kuik.enix.io/managed", limit: String(LIST_PAGE_SIZE) }, true],
      [
        "/api/v1/pods",
        { labelSelector: "kuik.enix.io/managed", limit: String(LIST_PAGE_SIZE), continue: "next" },
        true,
      ],
    ]);
  });

  it("gets resolve undefined on 404 and reject other errors; deletes ignore 404", async () => {
    const notFound = new KubeClient(
      transport(() => {
        throw new KubeApiError(404, "not found");
      }),
    );
    expect(await notFound.getSecret({ namespace: "ns", name: "s" })).toBeUndefined();
    expect(await notFound.getCachedImage("ci")).toBeUndefined();
    await expect(notFound.deleteCachedImage("ci")).resolves.toBeUndefined();
    const forbidden = new KubeClient(
      transport(() => {
        throw new KubeApiError(403, "forbidden");
      }),
    );
    await expect(forbidden.getRepository("r")).rejects.toMatchObject({ status: 403 });
    await expect(forbidden.deleteCachedImage("ci")).rejects.toMatchObject({ status: 403 });
  });
});
