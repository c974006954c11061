/**
 * kuik's RBAC is declared once (api-calls.ts). This test checks, three ways, that it is exactly what the
 * code needs:
 * 1. package.json `pepr.rbac` is generated from the declaration;
 * 2. the ClusterRole Pepr generates in scoped mode (its own `clusterRole()`, fed with our real bindings, as
 *    `pepr build` does) grants every declared call and nothing more;
 * 3. every call the real KubePort and the bootstrap (capabilities/bootstrap) make, recorded at their transport
 *    boundary (method + path, resolved to an RBAC verb and resource the way the API server does), is declared, and
 *    every declared call is made by the KubePort, the bootstrap, a watch binding or Pepr's runtime.
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadAllYaml } from "@kubernetes/client-node";
import { describe, expect, it, vi } from "vitest";
import { findComponent } from "../test/harness/control-plane";
import type { KubeRequest, KubeTransport } from "./kube/http";

// Pepr registers bindings at import time, by mode: build mode registers admission and watch bindings alike.
vi.hoisted(() => {
  process.env.PEPR_MODE = "build";
  process.env.LOG_LEVEL ??= "warn";
});

const { createCachedImages } = await import("./watcher/capability");
const { IGNORE_WATCH_EVENTS } = await import("./watcher/controller");
const { KubeClient } = await import("./kube/client");
const { PATCH_TYPES } = await import("./kube/http");
const { createImageRewriter } = await import("./image-rewriter/capability");
const { compilePolicy } = await import("./image-rewriter/policy");
const { loadConfig } = await import("./shared/config");
const {
  ADMISSION_CALLS,
  BOOTSTRAP_API_CALLS,
  KUIK_API_CALLS,
  PEPR_RUNTIME_CALLS,
  WATCHER_KUIK_NAMESPACE_CALLS,
  grantedVerbs,
  policyRules,
} = await import("./api-calls");
const { kuikRbacObjects } = await import("./rbac-objects");
const { startBootstrap } = await import("./bootstrap/bootstrap");
const { Log } = await import("pepr");

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };
const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  pepr: { rbac: Rule[]; env: Record<string, string> };
};

function capabilities() {
  return [createImageRewriter(compilePolicy(loadConfig({}))), createCachedImages(IGNORE_WATCH_EVENTS)];
}

/** Pepr's own ClusterRole generator (not part of its public API: imported from its shipped sources). */
async function peprClusterRole(): Promise<Rule[]> {
  const path = "pepr/src/lib/assets/rbac";
  const { clusterRole } = (await import(/* @vite-ignore */ path)) as {
    clusterRole: (name: string, caps: unknown[], mode: string, rbac: Rule[]) => { rules: Rule[] };
  };
  const exported = capabilities().map(c => ({
    name: c.name,
    description: c.description,
    namespaces: c.namespaces,
    bindings: c.bindings,
    hasSchedule: c.hasSchedule,
  }));
  return clusterRole("pepr-kuik", exported, "scoped", pkg.pepr.rbac).rules;
}

/** `group/resource[@name]` → verbs of a list of rules. */
function flatten(rules: Rule[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const rule of rules) {
    for (const group of rule.apiGroups) {
      for (const resource of rule.resources) {
        for (const name of rule.resourceNames ?? [""]) {
          const key = `${group}/${resource}${name ? `@${name}` : ""}`;
          out.set(key, new Set([...(out.get(key) ?? []), ...rule.verbs]));
        }
      }
    }
  }
  return out;
}

/** Every call the watcher is granted: Pepr's ClusterRole and its Role in kuik's namespace. */
const declared = [
  ...PEPR_RUNTIME_CALLS,
  ...KUIK_API_CALLS,
  ...BOOTSTRAP_API_CALLS,
  ...WATCHER_KUIK_NAMESPACE_CALLS,
];

/**
 * The RBAC attributes of an API request, as the API server's request-info resolver derives them:
 * `group/resource[/subresource][@name] verb`. A server-side apply is authorised as `patch`, and as `create` too
 * when it creates the object, with the object's name (k8s.io/apiserver endpoints/handlers/patch.go,
 * `createAuthorizerAttributes`), so it records both.
 */
function requestAttributes(req: KubeRequest): string[] {
  const segments = req.path.split("/").filter(Boolean);
  const core = segments[0] === "api";
  const group = core ? "" : (segments[1] ?? "");
  const rest = segments.slice(core ? 2 : 3);
  if (rest[0] === "namespaces" && rest.length > 2) rest.splice(0, 2);
  const [plural, name, subresource] = rest;
  const resource = `${group}/${plural}${subresource ? `/${subresource}` : ""}`;
  const named = (verb: string): string => `${resource}${name ? `@${name}` : ""} ${verb}`;
  switch (req.method) {
    case "GET":
      return [named(name ? "get" : req.query?.watch === "true" ? "watch" : "list")];
    case "POST":
      return [`${resource} create`];
    case "PATCH":
      return req.contentType === PATCH_TYPES.apply ? [named("patch"), named("create")] : [named("patch")];
    case "DELETE":
      return [named(name ? "delete" : "deletecollection")];
  }
}

/** A recording stand-in of the transport: every request is recorded as {@link requestAttributes}. */
function recordingTransport(calls: string[]): KubeTransport {
  return {
    request<T>(req: KubeRequest): Promise<T> {
      const attributes = requestAttributes(req);
      calls.push(...attributes);
      const isList = attributes[0]?.endsWith(" list") === true;
      // what the bootstrap reads: an Established CRD, a webhook without kuik's settings
      const established = { status: { conditions: [{ type: "Established", status: "True" }] } };
      const response = isList
        ? { items: [], metadata: {} }
        : req.path.includes("/customresourcedefinitions/")
          ? established
          : req.path.includes("/mutatingwebhookconfigurations/")
            ? { webhooks: [{ name: "w", objectSelector: {}, reinvocationPolicy: "Never" }] }
            : {};
      return Promise.resolve(response as T);
    },
  };
}

/** Runs every KubePort method once; resolves the names of the methods called. */
async function exerciseKubeClient(calls: string[]): Promise<Set<string>> {
  const called = new Set<string>();
  const kube = new Proxy(new KubeClient(recordingTransport(calls)), {
    get(target, property) {
      if (typeof property === "string") called.add(property);
      const value = Reflect.get(target, property) as unknown;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const ref = { namespace: "ns", name: "n" };
  await kube.listManagedPods();
  await kube.listPods("kuik-system", "app=proxy");
  await kube.patchPod("ns", "p", [{ op: "replace", path: "/spec/containers/0/image", value: "nginx" }]);
  await kube.listServiceAccounts();
  await kube.getServiceAccount("ns", "sa");
  await kube.getSecret(ref);
  await kube.applySecret({
    name: "kuik-proxy-credentials",
    namespace: "kuik-system",
    dockerConfigJson: "{}",
  });
  await kube.createEvent({ metadata: { name: "e", namespace: "ns" } } as never);
  await kube.listCachedImages();
  await kube.getCachedImage("ci");
  await kube.applyCachedImage("ci", "nginx", {});
  await kube.patchCachedImage("ci", [{ op: "remove", path: "/spec/expiresAt" }]);
  await kube.patchCachedImageStatus("ci", {});
  await kube.deleteCachedImage("ci");
  await kube.listRepositories();
  await kube.getRepository("r");
  await kube.applyRepository("r", "docker.io/r", []);
  await kube.ensureRepository("r", "docker.io/r");
  await kube.patchRepositoryStatus("r", {});
  await kube.patchRepository("r", [{ op: "remove", path: "/metadata/finalizers/0" }]);
  return called;
}

/** Runs the bootstrap once through the recording transport; resolves the number of attempts it took. */
async function exerciseBootstrap(calls: string[]): Promise<number> {
  const bootstrap = startBootstrap({
    kube: recordingTransport(calls),
    log: Log.child({ component: "bootstrap" }),
    sleep: () => Promise.resolve(),
  });
  await bootstrap.done;
  return bootstrap.attempts();
}

/** Whether `call` (`group/resource[@name] verb`) is allowed by the flattened `granted` rules. */
function allowed(granted: Map<string, Set<string>>, call: string): boolean {
  const [target, verb] = call.split(" ") as [string, string];
  const unnamed = target.split("@")[0] as string;
  return granted.get(unnamed)?.has(verb) === true || granted.get(target)?.has(verb) === true;
}

describe("RBAC", () => {
  it("package.json pepr.rbac is generated from api-calls.ts", () => {
    expect(pkg.pepr.rbac).toEqual(policyRules());
  });

  it("the scoped ClusterRole Pepr generates grants exactly the declared calls", async () => {
    const generated = flatten(await peprClusterRole());
    expect(generated).toEqual(flatten(policyRules()));
    // Declared calls restricted by name stay restricted (Pepr merges rules by apiGroups/resources).
    expect(generated.get("/secrets")).toEqual(new Set(["get"]));
    expect(generated.get("/secrets@kuik-proxy-credentials")).toBeUndefined();
    // The bootstrap's rules too: it may create and patch kuik-system's objects, by name, and nothing else.
    expect(generated.get("/serviceaccounts")).toEqual(new Set(["list", "get"]));
    expect(generated.get("/serviceaccounts@kube-image-keeper-proxy")).toEqual(new Set(["create", "patch"]));
    expect(generated.get("/namespaces")).toBeUndefined();
    expect(generated.get("/namespaces@kuik-system")).toEqual(new Set(["create", "patch"]));
    expect(generated.get("apps/daemonsets")).toBeUndefined();
    expect(generated.get("admissionregistration.k8s.io/mutatingwebhookconfigurations@pepr-kuik")).toEqual(
      new Set(["get", "patch"]),
    );
  });

  it.each([
    [{ method: "GET", path: "/api/v1/pods", query: { labelSelector: "a" } }, ["/pods list"]],
    [{ method: "GET", path: "/api/v1/namespaces/ns/secrets/s" }, ["/secrets@s get"]],
    [{ method: "POST", path: "/api/v1/namespaces/ns/events" }, ["/events create"]],
    [
      { method: "PATCH", path: "/api/v1/namespaces/ns/secrets/s", contentType: PATCH_TYPES.apply },
      ["/secrets@s patch", "/secrets@s create"],
    ],
    [
      {
        method: "PATCH",
        path: "/apis/kuik.enix.io/v1alpha1/cachedimages/c/status",
        contentType: PATCH_TYPES.merge,
      },
      ["kuik.enix.io/cachedimages/status@c patch"],
    ],
    [
      { method: "DELETE", path: "/apis/kuik.enix.io/v1alpha1/cachedimages/c" },
      ["kuik.enix.io/cachedimages@c delete"],
    ],
    [
      { method: "GET", path: "/apis/kuik.enix.io/v1alpha1/repositories", query: { watch: "true" } },
      ["kuik.enix.io/repositories watch"],
    ],
  ] as [KubeRequest, string[]][])("the request resolver reads %j as the API server does", (req, expected) => {
    expect(requestAttributes(req)).toEqual(expected);
  });

  it("every call of the KubePort is granted, and every grant is used by the code or by Pepr", async () => {
    const calls: string[] = [];
    const called = await exerciseKubeClient(calls);
    expect(await exerciseBootstrap(calls)).toBe(1);
    // Every KubePort method is exercised (a new method must be added above).
    const methods = Object.getOwnPropertyNames(KubeClient.prototype).filter(m => m !== "constructor");
    expect(methods.filter(m => !called.has(m))).toEqual([]);
    const granted = flatten(policyRules(declared));
    expect(calls.filter(call => !allowed(granted, call))).toEqual([]);
    // Watch bindings list and watch their kind.
    const watched = capabilities()
      .flatMap(c => c.bindings)
      .filter(b => b.isWatch)
      .flatMap(b =>
        ["list", "watch"].map(
          v => `${b.kind.group}/${b.kind.plural ?? `${b.kind.kind.toLowerCase()}s`} ${v}`,
        ),
      );
    const runtime = PEPR_RUNTIME_CALLS.flatMap(c => c.verbs.map(v => `${c.group}/${c.resource} ${v}`));
    const used = new Set([...calls.map(c => c.replace(/@\S+/, "")), ...watched, ...runtime]);
    const unused: string[] = [];
    for (const [key, { any, named }] of grantedVerbs(declared)) {
      for (const verb of any) if (!used.has(`${key} ${verb}`)) unused.push(`${key} ${verb}`);
      for (const [name, verbs] of named) {
        for (const verb of verbs)
          if (!calls.includes(`${key}@${name} ${verb}`)) unused.push(`${key}@${name} ${verb}`);
      }
    }
    expect(unused).toEqual([]);
  });

  it("deploy/kustomization.yaml removes the bootstrap's rules and turns KUIK_BOOTSTRAP off", async () => {
    // deploy/ with a stand-in of the built module: Pepr's own ClusterRole (as in the test above) and Deployments
    // carrying package.json's env the way `pepr build` writes it.
    const dir = mkdtempSync(join(tmpdir(), "kuik-rbac-"));
    try {
      cpSync(new URL("../deploy", import.meta.url), dir, { recursive: true });
      const env = [
        { name: "PEPR_WATCH_MODE", value: "true" },
        ...Object.entries(pkg.pepr.env).map(([name, value]) => ({ name, value })),
      ];
      const deployment = (name: string, role: string, container: string): object => ({
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name, namespace: "pepr-system", labels: { "pepr.dev/controller": role } },
        spec: { template: { spec: { containers: [{ name: container, image: "pepr", env }] } } },
      });
      const module = [
        {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "ClusterRole",
          metadata: { name: "pepr-kuik" },
          rules: await peprClusterRole(),
        },
        deployment("pepr-kuik-watcher", "watcher", "watcher"),
        deployment("pepr-kuik", "admission", "server"),
      ];
      writeFileSync(
        join(dir, "generated", "pepr-module-kuik.yaml"),
        module.map(o => JSON.stringify(o)).join("\n---\n"),
      );
      const rendered = loadAllYaml(
        execFileSync(findComponent("kubectl"), ["kustomize", dir], { encoding: "utf8" }),
      ) as Array<{
        kind: string;
        metadata: { name: string };
        rules?: Rule[];
        spec?: { template: { spec: { containers: Array<{ env: Array<{ name: string; value: string }> }> } } };
      }>;
      const role = rendered.find(o => o.kind === "ClusterRole" && o.metadata.name === "pepr-kuik");
      expect(flatten(role?.rules ?? [])).toEqual(
        flatten(policyRules([...PEPR_RUNTIME_CALLS, ...KUIK_API_CALLS])),
      );
      const envOf = (name: string): Record<string, string> =>
        Object.fromEntries(
          (rendered.find(o => o.metadata.name === name)?.spec?.template.spec.containers[0]?.env ?? []).map(
            e => [e.name, e.value],
          ),
        );
      expect(envOf("pepr-kuik-watcher").KUIK_BOOTSTRAP).toBe("false");
      expect(pkg.pepr.env.KUIK_BOOTSTRAP).toBe("true");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  // Issue #13: the module's one ServiceAccount could create Secrets anywhere (enough to mint a token for any
  // ServiceAccount) and read them, and admission shared it. These failed before the split.
  describe("least privilege (#13)", () => {
    const objects = kuikRbacObjects({ kuikNamespace: "kuik-system" });
    const rolesOf = (kind: string) =>
      objects.filter(o => o.kind === kind) as unknown as Array<{
        metadata: { name: string; namespace?: string };
        rules: Rule[];
      }>;

    it("no cluster-wide rule writes, lists or watches Secrets; the watcher reads them by name only", async () => {
      const cluster = [...(await peprClusterRole()), ...rolesOf("ClusterRole").flatMap(r => r.rules)];
      const secrets = [...flatten(cluster)].filter(([k]) => k.startsWith("/secrets"));
      expect(secrets).toEqual([["/secrets", new Set(["get"])]]);
    });

    it("the watcher writes only its proxy credentials Secret, by name, in kuik's namespace", () => {
      const roles = rolesOf("Role").filter(r => r.metadata.namespace === "kuik-system");
      const watcher = roles.filter(r => r.metadata.name === "pepr-kuik");
      expect(flatten(watcher.flatMap(r => r.rules))).toEqual(
        new Map([["/secrets@kuik-proxy-credentials", new Set(["create", "patch"])]]),
      );
      // the only other Role there: the admission's proxy gate, which reads Pods and writes nothing
      const others = roles.filter(r => r.metadata.name !== "pepr-kuik");
      expect(flatten(others.flatMap(r => r.rules))).toEqual(new Map([["/pods", new Set(["list"])]]));
    });

    it("admission has its own ServiceAccount, with Pepr's runtime and the proxy gate's Pod list only", () => {
      const bindings = objects.filter(o => o.kind.endsWith("Binding")) as unknown as Array<{
        metadata: { name: string };
        subjects: { name: string }[];
      }>;
      expect(bindings.map(b => [b.metadata.name, b.subjects.map(x => x.name)])).toEqual([
        ["pepr-kuik-admission", ["pepr-kuik-admission"]],
        ["pepr-kuik-admission", ["pepr-kuik-admission"]],
        ["pepr-kuik-admission", ["pepr-kuik-admission"]],
        ["pepr-kuik", ["pepr-kuik"]],
      ]);
      const admission = objects.filter(o => o.metadata.name === "pepr-kuik-admission" && "rules" in o);
      expect(flatten(admission.flatMap(o => o.rules as Rule[]))).toEqual(
        new Map([
          [
            "apiextensions.k8s.io/customresourcedefinitions@peprstores.pepr.dev",
            new Set(["create", "patch"]),
          ],
          ["pepr.dev/peprstores", new Set(["create", "get", "list", "patch", "watch"])],
          ["/pods", new Set(["list"])],
        ]),
      );
    });

    it("every rule is justified in docs/security.md (a rule without its row fails)", () => {
      const doc = readFileSync(new URL("../docs/security.md", import.meta.url), "utf8");
      const rows = [
        ...[...PEPR_RUNTIME_CALLS, ...KUIK_API_CALLS].map(c => securityRow("watcher", c)),
        ...WATCHER_KUIK_NAMESPACE_CALLS.map(c => securityRow("watcher", c)),
        ...BOOTSTRAP_API_CALLS.map(c => securityRow("watcher (`npx pepr deploy` only)", c)),
        ...ADMISSION_CALLS.map(c => securityRow("admission", c)),
      ];
      // table cells compared without their padding (prettier aligns the columns)
      const cells = (line: string): string => line.trim().replace(/ *\| */g, "|");
      const lines = new Set(doc.split("\n").map(cells));
      expect(rows.filter(row => !lines.has(cells(row)))).toEqual([]);
    });
  });
});

/** The docs/security.md table row of a call: who, where, resource, verbs, names, why. */
function securityRow(who: string, call: (typeof KUIK_API_CALLS)[number]): string {
  const where =
    call.namespace === "kuik" ? "kuik's namespace" : call.namespace === "pepr" ? "pepr-system" : "cluster";
  const resource = call.resource
    .split(",")
    .map(r => `\`${call.group ? `${call.group}/` : ""}${r}\``)
    .join(", ");
  const names = call.resourceNames ? call.resourceNames.map(n => `\`${n}\``).join(", ") : "any";
  return `| ${who} | ${where} | ${resource} | ${call.verbs.join(", ")} | ${names} | ${call.why} |`;
}
