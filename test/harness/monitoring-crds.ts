/**
 * The Prometheus Operator's ServiceMonitor and PodMonitor CRDs, cut down to the fields kuik's manifests and chart
 * use and typed as upstream (v0.8x) types them. Strict: no `x-kubernetes-preserve-unknown-fields` at the levels kuik
 * writes, so a misspelt field is refused by the server's strict field validation instead of being pruned silently.
 */

const DURATION =
  "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$";

const FREE_FORM_ITEMS = {
  type: "array",
  items: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
};

/** The CRD of `kind`; its endpoint list is `endpoints` (ServiceMonitor) or `podMetricsEndpoints` (PodMonitor). */
export function monitoringCrd(kind: "ServiceMonitor" | "PodMonitor"): object {
  const plural = `${kind.toLowerCase()}s`;
  const endpointsKey = kind === "ServiceMonitor" ? "endpoints" : "podMetricsEndpoints";
  const endpoint = {
    type: "object",
    properties: {
      port: { type: "string" },
      targetPort: { "x-kubernetes-int-or-string": true },
      path: { type: "string" },
      scheme: { type: "string", enum: ["http", "https"] },
      interval: { type: "string", pattern: DURATION },
      scrapeTimeout: { type: "string", pattern: DURATION },
      relabelings: FREE_FORM_ITEMS,
    },
  };
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${plural}.monitoring.coreos.com` },
    spec: {
      group: "monitoring.coreos.com",
      names: { kind, listKind: `${kind}List`, plural, singular: kind.toLowerCase() },
      scope: "Namespaced",
      versions: [
        {
          name: "v1",
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: "object",
              required: ["spec"],
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec: {
                  type: "object",
                  required: ["selector"],
                  properties: {
                    selector: {
                      type: "object",
                      properties: {
                        matchLabels: { type: "object", additionalProperties: { type: "string" } },
                        matchExpressions: FREE_FORM_ITEMS,
                      },
                    },
                    namespaceSelector: {
                      type: "object",
                      properties: {
                        any: { type: "boolean" },
                        matchNames: { type: "array", items: { type: "string" } },
                      },
                    },
                    [endpointsKey]: { type: "array", items: endpoint },
                  },
                },
              },
            },
          },
        },
      ],
    },
  };
}
