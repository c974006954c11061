/**
 * The part of undici the proxy uses (bundle only, see build.mjs): its full entry point also loads fetch,
 * WebSocket, EventSource, the cache stores and the mock agents, ~15 MiB of RSS the proxy never needs. The API
 * verbs (request, stream, …) are installed on Dispatcher.prototype exactly as undici's index.js does.
 */
import Dispatcher from "undici/lib/dispatcher/dispatcher.js";
import api from "undici/lib/api/index.js";
import Agent from "undici/lib/dispatcher/agent.js";
import EnvHttpProxyAgent from "undici/lib/dispatcher/env-http-proxy-agent.js";
// registry-client's AddressPolicy wraps undici's own connector (the address check at connect time).
import buildConnector from "undici/lib/core/connect.js";

Object.assign(Dispatcher.prototype, api);

export { Agent, buildConnector, Dispatcher, EnvHttpProxyAgent };
