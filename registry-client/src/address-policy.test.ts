import { describe, expect, it } from "vitest";
import { AddressPolicy, parseAllowEntry, type AddressDecision, type Connector } from "./address-policy";
import { isRegistryError } from "./errors";

describe("AddressPolicy.refusal", () => {
  const policy = new AddressPolicy();
  it.each<[string, string | undefined]>([
    ["127.0.0.1", "loopback"],
    ["127.255.0.9", "loopback"],
    ["::1", "loopback"],
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["fd12:3456::1", "private"],
    ["100.64.0.1", "cgnat"],
    ["169.254.169.254", "link-local"], // cloud metadata
    ["fd00:ec2::254", "private"], // AWS metadata over IPv6
    ["fe80::1", "link-local"],
    ["0.0.0.0", "unspecified"],
    ["::", "unspecified"],
    ["224.0.0.1", "multicast"],
    ["ff02::1", "multicast"],
    ["255.255.255.255", "reserved"],
    ["::ffff:127.0.0.1", "loopback"], // IPv4-mapped
    ["::ffff:a9fe:a9fe", "link-local"], // 169.254.169.254, mapped, in hex
    ["64:ff9b::a00:1", "private"], // NAT64 of 10.0.0.1
    ["2002:7f00:1::", "loopback"], // 6to4 of 127.0.0.1
    ["8.8.8.8", undefined],
    ["172.32.0.1", undefined],
    ["2606:4700::1111", undefined],
    ["64:ff9b::808:808", undefined], // NAT64 of 8.8.8.8: a public address
    ["not-an-ip", "not-an-address"],
  ])("%s → %s", (address, reason) => expect(policy.refusal(address)).toBe(reason));

  it("lets allow-listed CIDRs through, and only those", () => {
    const allowing = new AddressPolicy({ allow: ["10.96.0.0/12", "::1", "127.0.0.1"] });
    expect(allowing.refusal("10.96.4.2")).toBeUndefined();
    expect(allowing.refusal("10.200.0.1")).toBe("private");
    expect(allowing.refusal("::1")).toBeUndefined();
    expect(allowing.refusal("127.0.0.2")).toBe("loopback");
  });
});

describe("parseAllowEntry", () => {
  it.each<[string, unknown]>([
    ["10.0.0.0/8", { kind: "cidr", address: "10.0.0.0", prefix: 8, family: "ipv4" }],
    ["fd00::/8", { kind: "cidr", address: "fd00::", prefix: 8, family: "ipv6" }],
    ["127.0.0.1", { kind: "cidr", address: "127.0.0.1", prefix: 32, family: "ipv4" }],
    ["Registry.Corp:5000", { kind: "name", host: "registry.corp", port: 5000 }],
    ["registry.corp", { kind: "name", host: "registry.corp", port: undefined }],
    ["10.0.0.0/33", undefined],
    ["registry.corp/8", undefined],
    ["http://registry.corp", undefined],
    ["registry.corp:0", undefined],
  ])("%j", (text, entry) => expect(parseAllowEntry(text)).toEqual(entry));

  it("refuses a policy with an entry that does not parse", () => {
    expect(() => new AddressPolicy({ allow: ["not a cidr"] })).toThrow(/not a CIDR/);
  });
});

describe("AddressPolicy.connector", () => {
  /** A connector that records what it was asked to connect to, and fails (nothing is dialled). */
  function recording(): { inner: Connector; dialled: string[] } {
    const dialled: string[] = [];
    const inner: Connector = (options, callback) => {
      dialled.push(`${options.hostname}:${options.port}`);
      callback(new Error("not dialled in unit tests"), null);
    };
    return { inner, dialled };
  }

  function connect(connector: Connector, hostname: string, port = "443"): Promise<Error | null> {
    return new Promise(resolve => {
      connector({ hostname, host: `${hostname}:${port}`, protocol: "https:", port }, (...args) =>
        resolve(args[0]),
      );
    });
  }

  it("checks every connection on the address the name resolves to at that moment (DNS rebinding)", async () => {
    const answers = ["93.184.216.34", "127.0.0.1"]; // public on the first lookup, loopback on the second
    const decisions: AddressDecision[] = [];
    const policy = new AddressPolicy({
      resolve: async () => [{ address: answers.shift() ?? "127.0.0.1", family: 4 }],
      onDecision: d => decisions.push(d),
    });
    const { inner, dialled } = recording();
    const connector = policy.connector(inner);
    await connect(connector, "rebind.example");
    const second = await connect(connector, "rebind.example");
    expect(dialled).toEqual(["93.184.216.34:443"]); // the checked address itself, not the name
    expect(isRegistryError(second, "ADDRESS_REFUSED")).toBe(true);
    expect(decisions.map(d => [d.allowed, d.reason])).toEqual([
      [true, "public"],
      [false, "loopback"],
    ]);
  });

  it("skips refused addresses among the resolved ones, and refuses IP literals without resolving", async () => {
    let lookups = 0;
    const policy = new AddressPolicy({
      resolve: async () => {
        lookups++;
        return [
          { address: "10.0.0.1", family: 4 },
          { address: "93.184.216.34", family: 4 },
        ];
      },
    });
    const { inner, dialled } = recording();
    const connector = policy.connector(inner);
    await connect(connector, "mixed.example");
    expect(isRegistryError(await connect(connector, "169.254.169.254", "80"), "ADDRESS_REFUSED")).toBe(true);
    expect(isRegistryError(await connect(connector, "fd00:ec2::254", "80"), "ADDRESS_REFUSED")).toBe(true);
    expect(dialled).toEqual(["93.184.216.34:443"]);
    expect(lookups).toBe(1);
  });

  it("lets an allow-listed name through whatever it resolves to, on its port only", async () => {
    const policy = new AddressPolicy({
      allow: ["registry.corp:5000"],
      resolve: async () => [{ address: "10.0.0.7", family: 4 }],
    });
    const { inner, dialled } = recording();
    const connector = policy.connector(inner);
    await connect(connector, "registry.corp", "5000");
    expect(isRegistryError(await connect(connector, "registry.corp", "22"), "ADDRESS_REFUSED")).toBe(true);
    expect(dialled).toEqual(["10.0.0.7:5000"]);
  });
});
