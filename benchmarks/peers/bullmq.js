// BullMQ on Redis, under a key prefix of its own: node bullmq.js JOBS REDIS_URL
"use strict";
const { Queue, Worker } = require("bullmq");
const { main, tracker } = require("./common");

const CONCURRENCY = 8;

main("bullmq", async (url) => {
  const { hostname, port } = new URL(url);
  const connection = { host: hostname, port: Number(port || 6379) };
  const prefix = `bullmq-bench-${process.pid}`;
  const queue = new Queue("noop", { connection, prefix });
  const seen = tracker();
  let worker = null;
  return {
    version: require("bullmq/package.json").version,
    settings: `Worker concurrency ${CONCURRENCY}, completed jobs kept (the default)`,
    add: (data) => queue.add("noop", data),
    addBulk: (list) => queue.addBulk(list.map((data) => ({ name: "noop", data }))),
    startWorkers: async () => {
      worker = new Worker("noop", async (job) => seen.seen(job.data),
        { connection, prefix, concurrency: CONCURRENCY });
    },
    done: () => seen.count,
    get pickups() { return seen.pickups; },
    stop: async () => { await worker.close(true); await queue.obliterate({ force: true }); await queue.close(); },
  };
});
