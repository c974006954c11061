import { Log, PeprModule } from "pepr";
// cfg loads the pepr section of package.json (uuid, onError, rbac, env…)
import cfg from "./package.json";
import { createKuik, type Kuik } from "./capabilities";
import { installFastClone } from "./capabilities/shared/pepr-runtime";

/**
 * kuik's Pepr module. Configuration errors stop the process at once, all listed. In a cluster Pepr's controller
 * runs this on port 3000; locally the admission and watcher processes run side by side on KUIK_PEPR_PORT.
 */
let kuik: Kuik;
try {
  kuik = createKuik(process.env, cfg.version);
  // Before PeprModule: Pepr's per-request ramda.clone → structuredClone for JSON data (issue #5).
  const fastClone = installFastClone({ enabled: kuik.config.peprFastClone });
  Log[fastClone.installed ? "info" : "warn"]({ fastClone }, "Pepr request cloning");
} catch (err) {
  Log.fatal({ err }, "kuik cannot start");
  process.exit(1);
}
const begin = (): void => {
  const module = new PeprModule(cfg, kuik.capabilities, { deferStart: true });
  if (process.env.PEPR_MODE !== "build") {
    module.start(Number(process.env.KUIK_PEPR_PORT ?? 3000));
    kuik.start();
  }
};
// Pepr's watches start with the module: in the watcher, kuik's CRDs first (KUIK_BOOTSTRAP, capabilities/bootstrap).
if (kuik.runtime === undefined) begin();
else void kuik.runtime.prepare({ bootstrap: kuik.config.bootstrap }).then(begin);
