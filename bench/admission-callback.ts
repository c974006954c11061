/**
 * Micro-benchmark of kuik's own admission callback (`mutatePod`: rewrite decision, PeprMutateRequest edits and
 * its log lines), without Pepr's request handling around it (bench/admission.ts measures that part). Budget: well
 * under 0.5 ms of CPU per typical pod.
 *
 * Run: `npx tsx bench/admission-callback.ts` (knobs: ITERATIONS, CONTAINERS, ENV_VARS).
 * Requests are built before timing (PeprMutateRequest deep-clones the pod, which is Pepr's cost, not ours).
 */
import { destination, pino } from "pino";
import { PeprMutateRequest, type a } from "pepr";
import type { AdmissionRequest } from "pepr/dist/lib/common-types";
import { compilePolicy } from "../capabilities/image-rewriter/policy";
import { mutatePod } from "../capabilities/image-rewriter/mutate";
import { loadConfig } from "../capabilities/shared/config";

const ITERATIONS = Number(process.env.ITERATIONS ?? 20_000);
const CONTAINERS = Number(process.env.CONTAINERS ?? 3);
const ENV_VARS = Number(process.env.ENV_VARS ?? 10);

/** A typical pod: `CONTAINERS` containers and one init container, each with env vars and a probe. */
function typicalPod(i: number): a.Pod {
  const container = (name: string, image: string) => ({
    name,
    image,
    imagePullPolicy: "IfNotPresent",
    env: Array.from({ length: ENV_VARS }, (_, k) => ({ name: `VAR_${k}`, value: `value-${k}-${i}` })),
    resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "256Mi" } },
    readinessProbe: { httpGet: { path: "/healthz", port: 8080 }, periodSeconds: 10 },
  });
  const images = [
    "nginx:1.25",
    "ghcr.io/org/app:v1.2.3",
    "quay.io/prometheus/node-exporter:v1.8.0",
    "redis:7",
  ];
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { generateName: "web-", labels: { app: "web", "pod-template-hash": "abc" } },
    spec: {
      containers: Array.from({ length: CONTAINERS }, (_, k) =>
        container(`c${k}`, images[k % images.length] as string),
      ),
      initContainers: [container("init", "busybox:1.36")],
    },
  } as a.Pod;
}

function request(pod: a.Pod): PeprMutateRequest<a.Pod> {
  const admission = {
    uid: "bench",
    kind: { group: "", version: "v1", kind: "Pod" },
    resource: { group: "", version: "v1", resource: "pods" },
    name: "",
    namespace: "team",
    operation: "CREATE",
    userInfo: {},
    object: pod,
  } as unknown as AdmissionRequest<a.Pod>;
  return new PeprMutateRequest(admission);
}

const policy = compilePolicy(loadConfig({}));
const log = pino({ level: "info" }, destination({ dest: "/dev/null", sync: true }));
const requests = Array.from({ length: ITERATIONS }, (_, i) => request(typicalPod(i)));

// Warm-up on separate requests, then measure.
for (const req of Array.from({ length: 2000 }, (_, i) => request(typicalPod(i)))) mutatePod(req, policy, log);
const cpuBefore = process.cpuUsage();
const wallBefore = process.hrtime.bigint();
for (const req of requests) mutatePod(req, policy, log);
const cpu = process.cpuUsage(cpuBefore);
const wallNs = Number(process.hrtime.bigint() - wallBefore);
const cpuUs = (cpu.user + cpu.system) / ITERATIONS;
process.stdout.write(
  `${ITERATIONS} pods (${CONTAINERS} containers + 1 init, ${ENV_VARS} env vars each): ` +
    `${cpuUs.toFixed(1)} µs CPU/pod, ${(wallNs / ITERATIONS / 1000).toFixed(1)} µs wall/pod, node ${process.version}\n`,
);
