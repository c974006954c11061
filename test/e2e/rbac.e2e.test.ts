/**
 * Issue #13 on a real API server: kuik's RBAC as `kubectl apply -k deploy/` installs it (the module built by
 * scripts/build-module.sh, deploy/ rendered by kubectl's kustomize), asked with `kubectl auth can-i --as` and with
 * real server-side applies made as each ServiceAccount. Before the split, the one ServiceAccount both Deployments
 * used could create Secrets in every namespace (enough to mint a token for any ServiceAccount), and admission
 * shared it.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, removeTempDir } from "../harness/cleanup";
import { controlPlaneAvailable, startControlPlane, type ControlPlane } from "../harness/control-plane";
import { installKuik } from "../harness/kuik-install";
import { PEPR_STORE_CRD, buildModule } from "../harness/kuik-module";

const WATCHER = "system:serviceaccount:pepr-system:pepr-kuik";
const ADMISSION = "system:serviceaccount:pepr-system:pepr-kuik-admission";

let cp: ControlPlane;
let work: string;

/** `kubectl auth can-i <args> --as <user>`: "yes" or "no". */
async function can(user: string, ...args: string[]): Promise<string> {
  const r = await cp.kubectl(["auth", "can-i", ...args, "--as", user], { allowFailure: true });
  return r.stdout.trim();
}

/** A server-side apply of a Secret made as `user`; resolves the exit code and stderr. */
async function applySecretAs(user: string, ns: string, name: string, type = "Opaque") {
  const secret = { apiVersion: "v1", kind: "Secret", metadata: { name, namespace: ns }, type, data: {} };
  const args = ["apply", "--server-side", "--field-manager=kuik", "--as", user, "-f", "-"];
  return cp.kubectl(args, { input: JSON.stringify(secret), allowFailure: true });
}

describe.skipIf(!controlPlaneAvailable(false))("kuik's RBAC as installed by deploy/ (#13)", () => {
  beforeAll(async () => {
    const [plane] = await Promise.all([startControlPlane({ controllerManager: false }), buildModule()]);
    cp = plane;
    work = makeTempDir("rbac");
    await installKuik(cp, { dir: join(work, "install") });
    // Pepr's controller.js applies it at start (no module runs here): `can-i` resolves peprstores through it
    await cp.kubectl(["apply", "--server-side", "-f", "-"], { input: JSON.stringify(PEPR_STORE_CRD) });
  }, 300_000);

  afterAll(async () => {
    await cp?.stop();
    if (work) removeTempDir(work);
  });

  it("the watcher cannot create, list or watch Secrets outside its one Secret in kuik's namespace", async () => {
    expect(await can(WATCHER, "create", "secrets", "-n", "default")).toBe("no");
    expect(await can(WATCHER, "create", "secrets", "-n", "kuik-system")).toBe("no");
    expect(await can(WATCHER, "list", "secrets", "-A")).toBe("no");
    expect(await can(WATCHER, "watch", "secrets", "-A")).toBe("no");
    expect(await can(WATCHER, "patch", "secrets/kuik-proxy-credentials", "-n", "default")).toBe("no");
    expect(await can(WATCHER, "get", "secrets/any-pull-secret", "-n", "default")).toBe("yes");
  });

  it("the watcher's server-side apply creates its Secret, and no token Secret anywhere", async () => {
    const ok = await applySecretAs(WATCHER, "kuik-system", "kuik-proxy-credentials");
    expect(ok.code, ok.stderr).toBe(0);
    const mint = await applySecretAs(
      WATCHER,
      "default",
      "kuik-proxy-credentials",
      "kubernetes.io/service-account-token",
    );
    expect(mint.code).not.toBe(0);
    expect(mint.stderr).toMatch(/forbidden/i);
  });

  it("the admission Deployment runs as its own ServiceAccount, with Pepr's store and CRD only", async () => {
    const dep = await cp.kubectlJson<{ spec: { template: { spec: { serviceAccountName?: string } } } }>([
      "get",
      "deployment",
      "pepr-kuik",
      "-n",
      "pepr-system",
    ]);
    expect(dep.spec.template.spec.serviceAccountName).toBe("pepr-kuik-admission");
    expect(await can(ADMISSION, "get", "secrets", "-n", "pepr-system")).toBe("no");
    expect(await can(ADMISSION, "list", "pods", "-A")).toBe("no");
    expect(await can(ADMISSION, "list", "cachedimages.kuik.enix.io")).toBe("no");
    expect(await can(ADMISSION, "watch", "peprstores.pepr.dev", "-n", "pepr-system")).toBe("yes");
    expect(await can(ADMISSION, "watch", "peprstores.pepr.dev", "-n", "default")).toBe("no");
    expect(await can(ADMISSION, "patch", "customresourcedefinitions/peprstores.pepr.dev")).toBe("yes");
    expect(await can(ADMISSION, "patch", "customresourcedefinitions/cachedimages.kuik.enix.io")).toBe("no");
  });
});
