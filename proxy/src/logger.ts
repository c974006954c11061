/**
 * The proxy's root pino logger: JSON lines on stdout, ISO timestamps, and redaction of anything that could hold a
 * credential (Authorization headers, tokens, passwords). The proxy never logs request headers or credentials in
 * the first place; redaction is the safety net.
 */
import { destination as pinoDestination, pino, type DestinationStream, type Logger } from "pino";

/**
 * Paths censored in every log line: credentials in the shapes this process could ever log (headers of a request,
 * credential objects, token responses). Exact paths only: a wildcard (`*.token`) makes pino scan every key of every
 * line, which costs 4× the whole serialisation of the per-request line.
 */
export const REDACTED_PATHS: readonly string[] = [
  "authorization",
  "headers.authorization",
  "req.headers.authorization",
  "request.headers.authorization",
  "err.headers.authorization",
  "token",
  "access_token",
  "refresh_token",
  "password",
  "auth",
  "credentials.password",
  "credentials.token",
];

/** Creates the root logger; `destination` defaults to stdout (tests pass a sink). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { component: "kuik-proxy" },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: [...REDACTED_PATHS], censor: "[redacted]" },
    formatters: { level: (label: string) => ({ level: label }) },
  };
  // pino's default stdout stream is asynchronous (every line a libuv threadpool write): measured 0.08 ms of CPU
  // per request here, a third of the proxy's own cost. A synchronous write of one short line is far cheaper.
  return pino(options, destination ?? pinoDestination({ dest: 1, sync: true }));
}
