// A worker made with the npm `faktory-worker` client, as its users write one. Every job it
// runs is a line in OUT: `jobtype [args]`. Run: node node_worker.js URL QUEUES OUT
const fs = require("fs");
const faktory = require("faktory-worker");

const [url, queues, out] = process.argv.slice(2);
const note = (kind, args) => fs.appendFileSync(out, `${kind} ${JSON.stringify(args)}\n`);

faktory.register("add", async (x, y) => { note("add", [x, y]); return x + y; });
faktory.register("boom", async (why) => {
  note("boom", [why]);
  throw new Error(`boom: ${why}`);
});
faktory.register("hold", async (seconds) => {
  note("hold", [seconds]);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
});

faktory.work({ url, queues: queues.split(","), concurrency: 4, beatInterval: 1,
               labels: ["node"] })
  .then((worker) => {
    note("started", [worker.wid]);
    worker.on("error", () => {});
  })
  .catch((error) => { console.error(`worker failed to start: ${error}`); process.exit(1); });
