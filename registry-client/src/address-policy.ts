/**
 * Where the registry client may connect, decided on the address a connection is about to use, never on the name
 * it was given. Names come from places an attacker writes (an image name in a Pod, a redirect's Location, a token
 * realm), and a name is only as good as its DNS: `evil.example` may resolve to 127.0.0.1 or 169.254.169.254, and
 * resolve differently the second time (DNS rebinding). So the check sits in the connector: the host is resolved
 * once, every resolved address is checked, and the socket is opened to the checked address itself (the name is
 * kept for TLS: SNI and certificate verification still use it).
 *
 * Refused unless allow-listed: loopback, link-local (the cloud metadata addresses 169.254.169.254 and
 * fd00:ec2::254 included), private (RFC 1918, ULA), CGNAT, unspecified, multicast, broadcast, reserved and
 * documentation ranges, and the IPv6 forms that embed one of those IPv4 addresses (mapped, NAT64, 6to4).
 * The allow-list holds CIDRs (`10.0.0.0/8`, `fd00::/8`, a bare address) and `host[:port]` names (an in-cluster
 * registry `registry.corp:5000`: any address that name resolves to).
 */
import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import type { buildConnector } from "undici";
import { RegistryError } from "./errors";

/** One address a name resolves to. */
export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Resolves a host name to every address it has (`dns.lookup` with `all: true` by default). */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

/** An undici connector (`Agent`'s `connect` option as a function). */
export type Connector = buildConnector.connector;

/** Options of {@link AddressPolicy}. */
export interface AddressPolicyOptions {
  /** CIDRs, bare addresses and `host[:port]` names connected to even when their address is special-purpose. */
  allow?: readonly string[];
  /** How names are resolved (tests count or fake lookups here). */
  resolve?: Resolver;
  /** Called for every decision, allowed or refused (tests, metrics); must not throw. */
  onDecision?: (decision: AddressDecision) => void;
  /** Replaces the real connector once the address is checked (tests: dial a stand-in, never the address). */
  connectVia?: Connector;
}

/** One connection decision of {@link AddressPolicy}. */
export interface AddressDecision {
  hostname: string;
  port: number;
  /** The address connected to, or the first refused one. */
  address: string | undefined;
  allowed: boolean;
  /** Why it was refused (`loopback`, `private`…), or why it was allowed despite that (`allow-listed`). */
  reason: string;
}

/** One parsed allow-list entry. */
export type AllowEntry =
  | { kind: "cidr"; address: string; prefix: number; family: "ipv4" | "ipv6" }
  | { kind: "name"; host: string; port: number | undefined };

/** Special-purpose ranges refused by default, with the reason logged for them. */
const SPECIAL_RANGES: readonly (readonly [string, number, "ipv4" | "ipv6", string])[] = [
  ["0.0.0.0", 8, "ipv4", "unspecified"],
  ["10.0.0.0", 8, "ipv4", "private"],
  ["100.64.0.0", 10, "ipv4", "cgnat"],
  ["127.0.0.0", 8, "ipv4", "loopback"],
  ["169.254.0.0", 16, "ipv4", "link-local"],
  ["172.16.0.0", 12, "ipv4", "private"],
  ["192.0.0.0", 24, "ipv4", "reserved"],
  ["192.0.2.0", 24, "ipv4", "documentation"],
  ["192.168.0.0", 16, "ipv4", "private"],
  ["198.18.0.0", 15, "ipv4", "reserved"],
  ["198.51.100.0", 24, "ipv4", "documentation"],
  ["203.0.113.0", 24, "ipv4", "documentation"],
  ["224.0.0.0", 4, "ipv4", "multicast"],
  ["240.0.0.0", 4, "ipv4", "reserved"],
  ["::", 128, "ipv6", "unspecified"],
  ["::1", 128, "ipv6", "loopback"],
  ["::", 96, "ipv6", "reserved"], // IPv4-compatible (deprecated)
  ["64:ff9b:1::", 48, "ipv6", "private"], // local-use NAT64
  ["100::", 64, "ipv6", "reserved"], // discard
  ["2001:db8::", 32, "ipv6", "documentation"],
  ["fc00::", 7, "ipv6", "private"], // ULA, fd00:ec2::254 (AWS metadata) included
  ["fe80::", 10, "ipv6", "link-local"],
  ["fec0::", 10, "ipv6", "private"], // deprecated site-local
  ["ff00::", 8, "ipv6", "multicast"],
];

/** Prefixes whose IPv6 addresses carry an IPv4 address, checked as that IPv4 address: [prefix, bits, byte offset]. */
const EMBEDDING: readonly (readonly [string, number, number])[] = [
  ["::ffff:0:0", 96, 12], // IPv4-mapped
  ["64:ff9b::", 96, 12], // NAT64 well-known prefix
  ["2002::", 16, 2], // 6to4
];

const NAME_RE = /^(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(?::(\d{1,5}))?$/;

/**
 * Parses one allow-list entry: `10.0.0.0/8`, `::1`, `fd00::/8`, `registry.corp`, `registry.corp:5000`.
 * Undefined when it is none of these.
 */
export function parseAllowEntry(text: string): AllowEntry | undefined {
  const value = text.trim().toLowerCase();
  const slash = value.indexOf("/");
  const address = slash < 0 ? value : value.slice(0, slash);
  const family = isIP(address);
  if (family !== 0) {
    const max = family === 4 ? 32 : 128;
    const prefixText = slash < 0 ? String(max) : value.slice(slash + 1);
    const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
    if (!(prefix >= 0 && prefix <= max)) return undefined;
    return { kind: "cidr", address, prefix, family: family === 4 ? "ipv4" : "ipv6" };
  }
  const match = NAME_RE.exec(value);
  if (!match || slash >= 0) return undefined;
  const port = match[1] === undefined ? undefined : Number(match[1]);
  if (port !== undefined && (port < 1 || port > 65535)) return undefined;
  return { kind: "name", host: port === undefined ? value : value.slice(0, value.lastIndexOf(":")), port };
}

/** The 16 bytes of an IPv6 address (`isIP(address) === 6` assumed), IPv4 tails included. */
function ipv6Bytes(address: string): number[] {
  const [head = "", tail] = address.split("::");
  const groups = (part: string): number[] => {
    const out: number[] = [];
    for (const g of part === "" ? [] : part.split(":")) {
      if (g.includes(".")) {
        const v4 = g.split(".").map(Number);
        out.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
      } else out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  return all.flatMap(g => [g >> 8, g & 0xff]);
}

/** Decides which addresses the registry client may connect to, and enforces it in a connector. */
export class AddressPolicy {
  readonly #special = new Map<string, BlockList>();
  readonly #embedding: { list: BlockList; offset: number }[] = [];
  readonly #allowed = new BlockList();
  readonly #names: { host: string; port: number | undefined }[] = [];
  readonly #resolve: Resolver;
  readonly #onDecision: ((decision: AddressDecision) => void) | undefined;
  readonly #connectVia: Connector | undefined;

  /** @throws {@link RegistryError} `PROTOCOL_ERROR` naming an allow-list entry that does not parse. */
  constructor(options: AddressPolicyOptions = {}) {
    for (const [address, prefix, family, reason] of SPECIAL_RANGES) {
      let list = this.#special.get(reason);
      if (!list) this.#special.set(reason, (list = new BlockList()));
      list.addSubnet(address, prefix, family);
    }
    for (const [prefix, bits, offset] of EMBEDDING) {
      const list = new BlockList();
      list.addSubnet(prefix, bits, "ipv6");
      this.#embedding.push({ list, offset });
    }
    for (const text of options.allow ?? []) {
      const entry = parseAllowEntry(text);
      if (entry === undefined) {
        throw new RegistryError(
          "PROTOCOL_ERROR",
          `allow-list entry ${JSON.stringify(text)} is not a CIDR or host[:port]`,
        );
      }
      if (entry.kind === "cidr") this.#allowed.addSubnet(entry.address, entry.prefix, entry.family);
      else this.#names.push({ host: entry.host, port: entry.port });
    }
    this.#resolve = options.resolve ?? defaultResolve;
    this.#onDecision = options.onDecision;
    this.#connectVia = options.connectVia;
  }

  /**
   * Why `address` is refused (`loopback`, `private`, `link-local`, `cgnat`, `multicast`…), or undefined when it may be
   * connected to: a public address, or one the allow-list holds.
   */
  refusal(address: string): string | undefined {
    const family = isIP(address);
    if (family === 0) return "not-an-address";
    const type = family === 4 ? "ipv4" : "ipv6";
    if (this.#allowed.check(address, type)) return undefined;
    const embedding = type === "ipv6" ? this.#embedding.find(e => e.list.check(address, "ipv6")) : undefined;
    if (embedding !== undefined) {
      // An IPv6 form of an IPv4 address (mapped, NAT64, 6to4) is as good as the IPv4 address inside it.
      const v4 = ipv6Bytes(address)
        .slice(embedding.offset, embedding.offset + 4)
        .join(".");
      const inner = this.refusal(v4);
      if (inner !== undefined) return inner;
    }
    for (const [reason, list] of this.#special) if (list.check(address, type)) return reason;
    return undefined;
  }

  /** Whether `host[:port]` is allow-listed by name (names are compared lower-cased; a name without port: any). */
  nameAllowed(hostname: string, port: number): boolean {
    const host = hostname.toLowerCase();
    return this.#names.some(n => n.host === host && (n.port === undefined || n.port === port));
  }

  /**
   * The address to connect to for `hostname:port`: the first resolved address that may be used. Every resolved
   * address is checked, so a name cannot smuggle a private address in among public ones.
   *
   * @throws {@link RegistryError} `ADDRESS_REFUSED` when no address may be used (the reason is in the message,
   * meant for logs: callers must not echo it to untrusted clients).
   */
  async pick(hostname: string, port: number): Promise<string> {
    const literal = isIP(hostname) !== 0;
    const addresses = literal ? [hostname] : (await this.#resolve(hostname)).map(a => a.address);
    if (this.nameAllowed(hostname, port) && addresses[0] !== undefined) {
      this.#decide({ hostname, port, address: addresses[0], allowed: true, reason: "allow-listed" });
      return addresses[0];
    }
    let refused: { address: string; reason: string } | undefined;
    for (const address of addresses) {
      const reason = this.refusal(address);
      if (reason === undefined) {
        this.#decide({ hostname, port, address, allowed: true, reason: "public" });
        return address;
      }
      refused ??= { address, reason };
    }
    const reason = refused?.reason ?? "unresolved";
    this.#decide({ hostname, port, address: refused?.address, allowed: false, reason });
    throw new RegistryError(
      "ADDRESS_REFUSED",
      `connection to ${hostname}:${port} refused: ${refused ? `${refused.address} is ${reason}` : "no address"} ` +
        "(allow it with the allow-list)",
      { registry: `${hostname}:${port}` },
    );
  }

  /**
   * Wraps a connector so that every connection goes through {@link pick}: the inner connector is called with the
   * checked address as `hostname` (undici keeps deriving the TLS servername from `host`, the original name).
   */
  connector(real: Connector): Connector {
    const inner = this.#connectVia ?? real;
    return (options, callback) => {
      const port = Number(options.port) || (options.protocol === "https:" ? 443 : 80);
      this.pick(options.hostname, port).then(
        address => inner({ ...options, hostname: address }, callback),
        (err: unknown) => callback(err as Error, null),
      );
    };
  }

  #decide(decision: AddressDecision): void {
    try {
      this.#onDecision?.(decision);
    } catch {
      // An observer's failure must not decide a connection.
    }
  }
}

async function defaultResolve(hostname: string): Promise<ResolvedAddress[]> {
  try {
    return await lookup(hostname, { all: true, verbatim: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "ENOTFOUND";
    throw new RegistryError("UPSTREAM_UNREACHABLE", `cannot resolve ${hostname}: ${code}`, { cause: err });
  }
}
