/**
 * A real Kubernetes node on this machine, as kubeadm would make one: containerd (Debian's, CRI) with runc, the
 * kubelet and kube-proxy built from the API server's Kubernetes module, and the containernetworking plugins
 * (bridge + host-local for Pod networking, portmap for `hostPort`, loopback). Pods get their own network
 * namespaces on a bridge; Services and ClusterIPs work from Pods and from the node (kube-proxy, iptables mode).
 *
 * Its address is the node's own: {@link NODE_IP}, which the harness adds to the loopback interface (label
 * {@link NODE_ADDRESS_LABEL}; this kernel has no dummy interfaces), so that everything stays on this machine: the API server (control-plane.ts `bindAddress`), the
 * test origins and the Pods all talk to addresses the harness made. One node at a time per machine (a lock): its
 * bridge, its iptables chains and `127.0.0.1:7439` are the machine's.
 *
 * What this machine needs, and why (docs/local-cluster.md "The node"): the kubelet refuses cgroup v1 since 1.35
 * unless `failCgroupV1: false`; no systemd is PID 1, so the `cgroupfs` driver; containerd restricts
 * `oom_score_adj` (containerd.ts `nodeCriConfig`).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { signLeaf, kubeconfigText, type ControlPlane, findComponent } from "./control-plane";
import { startContainerd, unmountUnder, type StartedContainerd } from "./containerd";
import { freePort, LOOPBACK, NODE_IP, simpleRequest } from "./net";
import { startProcess, type RunningProcess } from "./process";
import { kuikCacheDir, run, runOk, sleep } from "./tools";

export { NODE_IP };
/** The label of {@link NODE_IP} on `lo`: `ip addr show label lo:kuik` finds it. */
export const NODE_ADDRESS_LABEL = "lo:kuik";
/** The Pods' addresses, on {@link POD_BRIDGE}. */
export const POD_CIDR = "10.88.0.0/16";
/** The Pods' bridge (CNI `bridge` plugin, gateway `10.88.0.1`). */
export const POD_BRIDGE = "kuik-cni0";
/** ClusterIP of the cluster DNS Service (`kube-system/kube-dns`), in the kubelet's `clusterDNS`. */
export const CLUSTER_DNS_IP = "10.96.0.10";
/** The Node's name. */
export const NODE_NAME = "kuik-node";
/** The sandbox image (kubeadm 1.36's pause version), served by the mirror (node-images.ts). */
export const PAUSE_IMAGE = "registry.k8s.io/pause:3.10.2";

export interface NodeOptions {
  /** State dir (containerd, kubelet, CNI, logs). */
  dir: string;
  /** containerd's registry hosts dir (mirrors): node-images.ts writes it. */
  hostsDir: string;
  /** klog verbosity; default 1. */
  verbosity?: number;
  /** Node Ready timeout; default 120 s. */
  readyTimeoutMs?: number;
}

export interface KubeNode {
  name: string;
  ip: string;
  containerd: StartedContainerd;
  processes: RunningProcess[];
  /** `crictl`-free access to the node's image store: names containerd knows in the CRI namespace. */
  logsDir: string;
  stop(): Promise<void>;
}

function sysctl(key: string, value: string): void {
  writeFileSync(`/proc/sys/${key.replaceAll(".", "/")}`, value);
}

async function ip(args: string[], allowFailure = false): Promise<void> {
  const r = await run("ip", args, { timeoutMs: 10_000 });
  if (r.code !== 0 && !allowFailure) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
}

/** Take the machine's node lock (one node per machine); throws naming a live holder. */
function lockNode(): () => void {
  mkdirSync(kuikCacheDir(), { recursive: true });
  const lock = join(kuikCacheDir(), "node.lock");
  let holder = 0;
  try {
    holder = Number(readFileSync(lock, "utf8").trim());
  } catch {
    /* no lock */
  }
  if (holder && holder !== process.pid && alive(holder)) {
    throw new Error(
      `a local node already runs (pid ${holder}, ${lock}): \`npm run down\` or stop that test run`,
    );
  }
  writeFileSync(lock, `${process.pid}\n`);
  return () => rmSync(lock, { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Give the machine the node's address (before the control plane starts: the API server binds it) and the kernel
 * settings Pods need: forwarding, and bridged traffic through iptables (Services from Pods of the same bridge).
 * Idempotent. Returns the function that takes the address away again.
 */
export async function setUpNodeNetwork(): Promise<() => Promise<void>> {
  if (process.getuid?.() !== 0) throw new Error("a node needs root (network, containerd, kubelet)");
  const release = lockNode();
  const address = ["addr", "del", `${NODE_IP}/32`, "dev", "lo"];
  await ip(address, true);
  await ip(["addr", "add", `${NODE_IP}/32`, "dev", "lo", "label", NODE_ADDRESS_LABEL]);
  sysctl("net.ipv4.ip_forward", "1");
  if (existsSync("/proc/sys/net/bridge/bridge-nf-call-iptables"))
    sysctl("net.bridge.bridge-nf-call-iptables", "1");
  return async () => {
    await ip(address, true);
    release();
  };
}

/** The CNI network: a bridge with host-local addresses, and portmap for hostPort. */
function cniConfig(dir: string): string {
  const conf = {
    cniVersion: "1.0.0",
    name: "kuik",
    plugins: [
      {
        type: "bridge",
        bridge: POD_BRIDGE,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: POD_CIDR }]],
          routes: [{ dst: "0.0.0.0/0" }],
          dataDir: join(dir, "ipam"),
        },
      },
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  };
  return `${JSON.stringify(conf, null, 2)}\n`;
}

/**
 * Remove what a node left in this machine's network: the chains and rules of kube-proxy, the kubelet (`KUBE-*`) and
 * portmap (`CNI-*`), in every table, IPv4 and IPv6 (each table re-loaded without them: the machine's own rules
 * stay), and the Pods' bridge.
 */
async function cleanNetwork(): Promise<void> {
  for (const [save, restore] of [
    ["iptables-save", "iptables-restore"],
    ["ip6tables-save", "ip6tables-restore"],
  ] as const) {
    const dump = await run(save, [], { timeoutMs: 10_000 }).catch(() => undefined);
    if (!dump || dump.code !== 0 || !/KUBE-|CNI-/.test(dump.stdout)) continue;
    const kept = dump.stdout
      .split("\n")
      .filter(l => !/KUBE-|CNI-/.test(l))
      .join("\n");
    await runOk(restore, [], { input: kept, timeoutMs: 10_000 });
  }
  await ip(["link", "del", POD_BRIDGE], true);
}

/**
 * Start containerd, the kubelet and kube-proxy; wait until the Node is Ready. Needs {@link setUpNodeNetwork} first
 * and a control plane bound to {@link NODE_IP} with a scheduler.
 */
export async function startNode(cp: ControlPlane, opts: NodeOptions): Promise<KubeNode> {
  const bin = { kubelet: findComponent("kubelet"), kubeProxy: findComponent("kube-proxy") };
  const cniBinDir = join(kuikCacheDir(), "bin", "cni");
  const logsDir = join(opts.dir, "logs");
  const pki = join(opts.dir, "pki");
  for (const d of [logsDir, pki, join(opts.dir, "cni", "net.d")]) mkdirSync(d, { recursive: true });
  const verbosity = String(opts.verbosity ?? 1);
  await cleanNetwork();
  writeFileSync(join(opts.dir, "cni", "net.d", "10-kuik.conflist"), cniConfig(join(opts.dir, "cni")));

  const processes: RunningProcess[] = [];
  let containerd: StartedContainerd | undefined;
  const stop = async (): Promise<void> => {
    // kubelet first (it would restart what containerd stops), then kube-proxy, then containerd and its Pods
    for (const p of [...processes].reverse()) await p.stop();
    await containerd?.stop();
    await unmountUnder(opts.dir); // the kubelet's volume mounts (Secrets, emptyDirs)
    await cleanNetwork();
  };
  try {
    containerd = await startContainerd({
      dir: join(opts.dir, "containerd"),
      hostsDir: opts.hostsDir,
      node: { sandboxImage: PAUSE_IMAGE, cniBinDir, cniConfDir: join(opts.dir, "cni", "net.d") },
    });

    const caDir = { dir: pki, caFile: cp.caFile, caKey: cp.caKeyFile };
    const client = [
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=clientAuth",
    ];
    // The Node authorizer and NodeRestriction know a kubelet by this name and group.
    const kubeletId = await signLeaf(caDir, "kubelet", `/O=system:nodes/CN=system:node:${NODE_NAME}`, client);
    // bound to ClusterRole system:node-proxier by the API server's bootstrap policy
    const proxyId = await signLeaf(caDir, "kube-proxy", "/CN=system:kube-proxy", client);
    const kubeconfig = (name: string, user: string, id: { cert: string; key: string }): string => {
      const file = join(opts.dir, `${name}.kubeconfig`);
      writeFileSync(file, kubeconfigText(cp.server, cp.caFile, user, { certFile: id.cert, keyFile: id.key }));
      return file;
    };

    const resolvConf = join(opts.dir, "resolv.conf");
    // Pods with dnsPolicy Default get this file: the cluster DNS, never the machine's resolver (no network here).
    writeFileSync(resolvConf, `nameserver ${CLUSTER_DNS_IP}\n`);
    const healthzPort = await freePort();
    const kubeletConfig = {
      apiVersion: "kubelet.config.k8s.io/v1beta1",
      kind: "KubeletConfiguration",
      failCgroupV1: false,
      cgroupDriver: "cgroupfs",
      failSwapOn: false,
      containerRuntimeEndpoint: `unix://${containerd.socket}`,
      address: NODE_IP,
      port: await freePort(),
      readOnlyPort: 0,
      healthzBindAddress: LOOPBACK,
      healthzPort,
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: false },
        x509: { clientCAFile: cp.caFile },
      },
      authorization: { mode: "AlwaysAllow" },
      clusterDNS: [CLUSTER_DNS_IP],
      clusterDomain: "cluster.local",
      resolvConf,
      // the Pods' logs stay with the node (default /var/log/pods)
      podLogsDir: join(opts.dir, "pod-logs"),
      serializeImagePulls: false,
      // a busy CI disk must not evict kuik's Pods or garbage-collect the images the tests count on
      evictionHard: { "memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%" },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      // the tests delete and recreate Pods all the time: keep status and mounted Secrets fresh
      syncFrequency: "10s",
      nodeStatusUpdateFrequency: "5s",
      shutdownGracePeriod: "0s",
      podPidsLimit: -1,
      maxPods: 110,
    };
    const kubeletConfigFile = join(opts.dir, "kubelet-config.json");
    writeFileSync(kubeletConfigFile, `${JSON.stringify(kubeletConfig, null, 2)}\n`);
    processes.push(
      await startProcess({
        name: "kubelet",
        cmd: bin.kubelet,
        args: [
          `--config=${kubeletConfigFile}`,
          `--kubeconfig=${kubeconfig("kubelet", `system:node:${NODE_NAME}`, kubeletId)}`,
          `--root-dir=${join(opts.dir, "kubelet")}`,
          `--cert-dir=${join(opts.dir, "kubelet-pki")}`,
          `--hostname-override=${NODE_NAME}`,
          `--node-ip=${NODE_IP}`,
          `--v=${verbosity}`,
        ],
        logFile: join(logsDir, "kubelet.log"),
        ready: async () => (await simpleRequest(`http://${LOOPBACK}:${healthzPort}/healthz`)).status === 200,
        readyTimeoutMs: 60_000,
      }),
    );

    const proxyConfig = {
      apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
      kind: "KubeProxyConfiguration",
      mode: "iptables",
      clusterCIDR: POD_CIDR,
      hostnameOverride: NODE_NAME,
      bindAddress: NODE_IP,
      healthzBindAddress: `${LOOPBACK}:${await freePort()}`,
      metricsBindAddress: `${LOOPBACK}:${await freePort()}`,
      clientConnection: { kubeconfig: kubeconfig("kube-proxy", "system:kube-proxy", proxyId) },
      // leave the machine's conntrack sysctls alone (root here lacks some capabilities)
      conntrack: { maxPerCore: 0 },
      iptables: { syncPeriod: "30s", minSyncPeriod: "0s" },
    };
    const proxyConfigFile = join(opts.dir, "kube-proxy-config.json");
    writeFileSync(proxyConfigFile, `${JSON.stringify(proxyConfig, null, 2)}\n`);
    const proxyHealthz = `http://${proxyConfig.healthzBindAddress}/healthz`;
    processes.push(
      await startProcess({
        name: "kube-proxy",
        cmd: bin.kubeProxy,
        args: [`--config=${proxyConfigFile}`, `--v=${verbosity}`],
        logFile: join(logsDir, "kube-proxy.log"),
        ready: async () => (await simpleRequest(proxyHealthz)).status === 200,
        readyTimeoutMs: 60_000,
      }),
    );

    const deadline = Date.now() + (opts.readyTimeoutMs ?? 120_000);
    for (;;) {
      const r = await cp.kubectl(
        ["get", "node", NODE_NAME, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'],
        { allowFailure: true },
      );
      if (r.stdout.trim() === "True") break;
      const dead = processes.find(p => !p.isRunning());
      if (dead || Date.now() > deadline) {
        const p = dead ?? processes[0];
        throw new Error(
          `node ${NODE_NAME} not Ready (${dead ? `${dead.name} exited` : "timeout"}); ${p?.logFile}:\n${p?.tail(30)}`,
        );
      }
      await sleep(500);
    }
    return { name: NODE_NAME, ip: NODE_IP, containerd, processes, logsDir, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Names of the images in the node's containerd (CRI namespace), as `crictl images` would list them. */
export async function nodeImages(node: KubeNode): Promise<string[]> {
  const r = await runOk("ctr", ["-a", node.containerd.socket, "-n", "k8s.io", "images", "ls", "-q"]);
  return r.stdout.split("\n").filter(Boolean);
}
