// graphile-worker on its own PostgreSQL database: node graphile_worker.js JOBS DATABASE_URL
"use strict";
const { run, makeWorkerUtils, Logger } = require("graphile-worker");
const { main, tracker } = require("./common");

const CONCURRENCY = 8;
const quiet = new Logger(() => () => {});

main("graphile-worker", async (url) => {
  const utils = await makeWorkerUtils({ connectionString: url, logger: quiet });
  await utils.migrate();
  const seen = tracker();
  let runner = null;
  return {
    version: require("graphile-worker/package.json").version,
    settings: `concurrency ${CONCURRENCY}, LISTEN/NOTIFY, pollInterval 2 s (default)`,
    add: (data) => utils.addJob("noop", data),
    addBulk: (list) => utils.addJobs(list.map((payload) => ({ identifier: "noop", payload }))),
    startWorkers: async () => {
      runner = await run({
        connectionString: url, concurrency: CONCURRENCY, noHandleSignals: true, logger: quiet,
        taskList: { noop: async (payload) => seen.seen(payload) },
      });
    },
    done: () => seen.count,
    get pickups() { return seen.pickups; },
    stop: async () => { await runner.stop(); await utils.release(); },
  };
});
