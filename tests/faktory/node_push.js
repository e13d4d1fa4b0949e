// Push COUNT jobs of JOBTYPE to QUEUE with the npm `faktory-worker` client, one PUSH each
// (or in PUSHBs of 500 with "bulk"). Run: node node_push.js URL QUEUE JOBTYPE COUNT [bulk]
const faktory = require("faktory-worker");

const [url, queue, jobtype, count, bulk] = process.argv.slice(2);

(async () => {
  const client = await faktory.connect({ url });
  const jobs = [];
  for (let n = 0; n < Number(count); n += 1) {
    const job = client.job(jobtype, n, 1);
    job.queue = queue;
    job.custom = { from: "node" };
    if (bulk) {
      jobs.push(job);
    } else {
      await job.push();
    }
  }
  for (let start = 0; start < jobs.length; start += 500) {
    const rejected = await client.pushBulk(jobs.slice(start, start + 500));
    if (Object.keys(rejected).length) throw new Error(JSON.stringify(rejected));
  }
  await client.close();
})().catch((e) => { console.error(e); process.exit(1); });
