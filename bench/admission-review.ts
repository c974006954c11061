/**
 * The AdmissionReview of the admission benchmarks and of the Pepr clone tests
 * (capabilities/shared/pepr-runtime.test.ts): a Pod CREATE as a ReplicaSet makes it, ≈7.4 kB. Pure data, no I/O.
 */

/**
 * A Pod as a ReplicaSet creates it, after the API server's defaulting and with its managedFields, as the webhook
 * receives it: 3 containers and 1 init container with env vars, probes, resources and the service-account volume.
 */
export function realisticPod(namespace: string): Record<string, unknown> {
  const images = [
    "registry.example.com/team/web:1.4.2",
    "ghcr.io/example/sidecar:v2.3.0",
    "quay.io/prometheus/node-exporter:v1.8.0",
  ];
  const mounts = [
    {
      name: "kube-api-access-x7k2p",
      mountPath: "/var/run/secrets/kubernetes.io/serviceaccount",
      readOnly: true,
    },
  ];
  const container = (name: string, image: string, port: number): Record<string, unknown> => ({
    name,
    image,
    imagePullPolicy: "IfNotPresent",
    ports: [{ name: "http", containerPort: port, protocol: "TCP" }],
    env: [
      ...Array.from({ length: 3 }, (_, k) => ({ name: `APP_SETTING_${k}`, value: `value-${name}-${k}` })),
      { name: "POD_NAME", valueFrom: { fieldRef: { apiVersion: "v1", fieldPath: "metadata.name" } } },
    ],
    resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "256Mi" } },
    readinessProbe: {
      httpGet: { path: "/healthz", port, scheme: "HTTP" },
      periodSeconds: 10,
      timeoutSeconds: 1,
      successThreshold: 1,
      failureThreshold: 3,
    },
    volumeMounts: mounts,
    terminationMessagePath: "/dev/termination-log",
    terminationMessagePolicy: "File",
  });
  const fieldsOf = (name: string): Record<string, unknown> => ({
    [`k:{"name":"${name}"}`]: {
      ".": {},
      "f:env": { ".": {}, 'k:{"name":"APP_SETTING_0"}': { ".": {}, "f:name": {}, "f:value": {} } },
      "f:image": {},
      "f:imagePullPolicy": {},
      "f:name": {},
      "f:ports": { ".": {} },
      "f:resources": { ".": {}, "f:limits": { ".": {}, "f:memory": {} }, "f:requests": { ".": {} } },
      "f:terminationMessagePath": {},
      "f:terminationMessagePolicy": {},
    },
  });
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      generateName: "web-7c9d8f6b5-",
      namespace,
      labels: { app: "web", "pod-template-hash": "7c9d8f6b5", "app.kubernetes.io/part-of": "shop" },
      annotations: { "kubectl.kubernetes.io/restartedAt": "2026-11-20T10:00:00Z" },
      ownerReferences: [
        {
          apiVersion: "apps/v1",
          kind: "ReplicaSet",
          name: "web-7c9d8f6b5",
          uid: "5b0c3f4e-7e51-4c5a-9a4e-0b8a3e1f6d21",
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      managedFields: [
        {
          manager: "kube-controller-manager",
          operation: "Update",
          apiVersion: "v1",
          time: "2026-11-24T12:00:00Z",
          fieldsType: "FieldsV1",
          fieldsV1: {
            "f:metadata": {
              "f:generateName": {},
              "f:labels": { ".": {}, "f:app": {}, "f:pod-template-hash": {} },
              "f:ownerReferences": { ".": {}, 'k:{"uid":"5b0c3f4e-7e51-4c5a-9a4e-0b8a3e1f6d21"}': {} },
            },
            "f:spec": {
              "f:containers": { ...fieldsOf("web"), ...fieldsOf("sidecar"), ...fieldsOf("exporter") },
              "f:initContainers": fieldsOf("init"),
              "f:dnsPolicy": {},
              "f:enableServiceLinks": {},
              "f:restartPolicy": {},
              "f:schedulerName": {},
              "f:securityContext": {},
              "f:terminationGracePeriodSeconds": {},
            },
          },
        },
      ],
    },
    spec: {
      initContainers: [container("init", "busybox:1.36", 9000)],
      containers: [
        container("web", images[0] as string, 8080),
        container("sidecar", images[1] as string, 8081),
        container("exporter", images[2] as string, 9100),
      ],
      volumes: [
        {
          name: "kube-api-access-x7k2p",
          projected: {
            defaultMode: 420,
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: "token" } },
              { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
              {
                downwardAPI: {
                  items: [
                    { path: "namespace", fieldRef: { apiVersion: "v1", fieldPath: "metadata.namespace" } },
                  ],
                },
              },
            ],
          },
        },
      ],
      restartPolicy: "Always",
      terminationGracePeriodSeconds: 30,
      dnsPolicy: "ClusterFirst",
      serviceAccountName: "default",
      serviceAccount: "default",
      securityContext: {},
      schedulerName: "default-scheduler",
      tolerations: [
        {
          key: "node.kubernetes.io/not-ready",
          operator: "Exists",
          effect: "NoExecute",
          tolerationSeconds: 300,
        },
        {
          key: "node.kubernetes.io/unreachable",
          operator: "Exists",
          effect: "NoExecute",
          tolerationSeconds: 300,
        },
      ],
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: "PreemptLowerPriority",
    },
    status: { phase: "Pending", qosClass: "Burstable" },
  };
}

/** The AdmissionReview text, split around the request uid (each request gets its own uid). */
export function reviewTemplate(namespace = "shop"): { before: string; after: string; bytes: number } {
  const UID = "@@UID@@";
  const review = {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: UID,
      kind: { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
      requestKind: { group: "", version: "v1", kind: "Pod" },
      requestResource: { group: "", version: "v1", resource: "pods" },
      name: "",
      namespace,
      operation: "CREATE",
      userInfo: {
        username: "system:serviceaccount:kube-system:replicaset-controller",
        uid: "0e8d1c4a-1f7e-4f8e-9c55-3f2d2f6b7a10",
        groups: ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
      },
      object: realisticPod(namespace),
      oldObject: null,
      dryRun: false,
      options: { kind: "CreateOptions", apiVersion: "meta.k8s.io/v1" },
    },
  };
  const text = JSON.stringify(review);
  const [before, after] = text.split(UID) as [string, string];
  return { before, after, bytes: Buffer.byteLength(text) - UID.length + 36 };
}
