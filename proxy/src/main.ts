/**
 * kuik-proxy: the entry point. Parses flags and environment, wires the proxy, serves until SIGTERM/SIGINT, drains,
 * exits. Startup makes no Kubernetes API call (nor any network call): the proxy is ready as soon as it listens.
 *
 * Exit codes: 0 after a clean shutdown, 1 on a startup failure, 2 on invalid configuration.
 */
import { parseCommandLine } from "./config";
import { usage } from "./flags";
import { isProxyError } from "./errors";
import { createLogger } from "./logger";
import { buildProxy } from "./wiring";

/** Set by proxy/build.mjs; `dev` when run from source. */
const VERSION = process.env.KUIK_PROXY_VERSION ?? "dev";

async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  let command: ReturnType<typeof parseCommandLine>;
  try {
    command = parseCommandLine(argv, env);
  } catch (err) {
    process.stderr.write(`kuik-proxy: ${err instanceof Error ? err.message : String(err)}\n\n${usage()}`);
    return 2;
  }
  if (command.action === "help") {
    process.stdout.write(usage());
    return 0;
  }
  if (command.action === "version") {
    process.stdout.write(`kuik-proxy ${VERSION} (node ${process.versions.node})\n`);
    return 0;
  }
  const { config } = command;
  const log = createLogger(config.logLevel);
  process.on("uncaughtException", err => {
    log.fatal({ err }, "uncaught exception");
    process.exit(1);
  });
  let runtime: ReturnType<typeof buildProxy>;
  try {
    runtime = buildProxy(config, log, { version: VERSION });
    await runtime.start();
  } catch (err) {
    log.fatal({ err, code: isProxyError(err) ? err.code : undefined }, "startup failed");
    return isProxyError(err, "CONFIG_INVALID") ? 2 : 1;
  }
  const ready = { version: VERSION, cache: config.cacheRegistry.origin, gcPacing: runtime.gcPacing };
  log.info({ ...ready, startupMs: Math.round(performance.now()) }, "proxy ready");
  const signal = await new Promise<NodeJS.Signals>(resolve => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  log.info({ signal, timeoutMs: config.shutdownTimeoutMs }, "shutting down");
  const { interrupted } = await runtime.close();
  log.info({ interrupted }, "proxy stopped");
  return 0;
}

main(process.argv.slice(2), process.env).then(
  code => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`kuik-proxy: fatal: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
