// pg-boss on its own PostgreSQL database: node pg_boss.js JOBS DATABASE_URL
"use strict";
const PgBoss = require("pg-boss");
const { main, tracker } = require("./common");

// pg-boss polls (no LISTEN/NOTIFY) and waits out its polling interval after every fetch,
// so one job per fetch would drain 16 jobs/s: 8 workers of a batch of 100 each.
const WORKERS = 8;
const BATCH = 100;
const POLL_SECONDS = 0.5; // the smallest pg-boss accepts

main("pg-boss", async (url) => {
  const boss = new PgBoss({ connectionString: url, max: WORKERS + 2 });
  boss.on("error", (err) => process.stderr.write(`${err}\n`));
  await boss.start();
  await boss.createQueue("noop");
  const seen = tracker();
  return {
    version: require("pg-boss/package.json").version,
    settings: `${WORKERS} workers, batchSize ${BATCH}, pollingIntervalSeconds ${POLL_SECONDS}`,
    add: (data) => boss.send("noop", data),
    addBulk: (list) => boss.insert(list.map((data) => ({ name: "noop", data }))),
    startWorkers: async () => {
      for (let i = 0; i < WORKERS; i++) {
        await boss.work("noop", { batchSize: BATCH, pollingIntervalSeconds: POLL_SECONDS },
          async (jobs) => { for (const job of jobs) seen.seen(job.data); });
      }
    },
    done: () => seen.count,
    get pickups() { return seen.pickups; },
    stop: () => boss.stop({ graceful: false, wait: true }),
  };
});
