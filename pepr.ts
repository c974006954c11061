import { PeprModule } from "pepr";
// cfg loads the pepr section of package.json (uuid, onError, rbac, env…)
import cfg from "./package.json";
import { ImageRewriter } from "./capabilities";

/**
 * kuik's Pepr module. In a cluster Pepr's controller runs it on port 3000; locally (test/e2e, `npm run up`)
 * the admission and watcher processes run side by side, so the port comes from KUIK_PEPR_PORT.
 */
const module = new PeprModule(cfg, [ImageRewriter], { deferStart: true });
if (process.env.PEPR_MODE !== "build") {
  module.start(Number(process.env.KUIK_PEPR_PORT ?? 3000));
}
