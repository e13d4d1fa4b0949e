// What the Node.js peers share with `synthbox bench`: the same sizes, the same arithmetic.
"use strict";

const LATENCY_RATE = 100; // jobs/s
const BULK_SIZE = 1000;

function latencyJobs(jobs) {
  return Math.min(1000, Math.max(20, Math.floor(jobs / 20)));
}

function now() {
  return performance.timeOrigin + performance.now(); // ms since the epoch, sub-ms
}

function percentile(values, pct) {
  const ordered = [...values].sort((a, b) => a - b);
  if (!ordered.length) return null;
  const index = Math.min(ordered.length - 1, Math.max(0, Math.round((pct / 100) * ordered.length) - 1));
  return ordered[index];
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

async function until(predicate, seconds) {
  const deadline = Date.now() + seconds * 1000;
  while (!predicate() && Date.now() < deadline) await sleep(2);
  return predicate();
}

// The run every peer makes: `add(data)` one call at a time for half the jobs,
// `addBulk(list)` of 1,000 for the rest, `startWorkers()` on the full queue until
// `done()` counts them all, then 1,000 jobs at 100 a second with the workers idle.
async function measure(system, jobs, peer) {
  const single = Math.max(1, Math.floor(jobs / 2));
  let started = now();
  for (let i = 0; i < single; i++) await peer.add({ sent: 0 });
  const singleSeconds = (now() - started) / 1000;
  started = now();
  for (let start = single; start < jobs; start += BULK_SIZE) {
    await peer.addBulk(Array.from({ length: Math.min(BULK_SIZE, jobs - start) }, () => ({ sent: 0 })));
  }
  const bulkSeconds = (now() - started) / 1000;

  started = now();
  await peer.startWorkers();
  if (!(await until(() => peer.done() >= jobs, 1200))) throw new Error(`drain stopped at ${peer.done()}`);
  const drainSeconds = (now() - started) / 1000;

  const samples = latencyJobs(jobs);
  let nextAt = now();
  for (let i = 0; i < samples; i++) {
    nextAt += 1000 / LATENCY_RATE;
    await peer.add({ sent: now() });
    await sleep(nextAt - now());
  }
  await until(() => peer.pickups.length >= samples, 30);
  await peer.stop();
  const pickups = peer.pickups;
  const round2 = (v) => (v === null ? null : Math.round(v * 100) / 100);
  return {
    system,
    version: peer.version,
    jobs,
    enqueue_per_s: Math.round(single / singleSeconds),
    enqueue_bulk_per_s: jobs > single ? Math.round((jobs - single) / bulkSeconds) : 0,
    drain_per_s: Math.round(jobs / drainSeconds),
    pickup_p50_ms: round2(percentile(pickups, 50)),
    pickup_p99_ms: round2(percentile(pickups, 99)),
    pickup_samples: pickups.length,
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 102.4) / 10,
    settings: peer.settings,
  };
}

// A job handler's bookkeeping: a done count and, for jobs that carry a send time, the pickup.
function tracker() {
  const state = { count: 0, pickups: [] };
  state.seen = (data) => {
    const at = now();
    state.count += 1;
    if (data && data.sent) state.pickups.push(at - data.sent);
  };
  return state;
}

async function main(system, makePeer) {
  const [jobs, url] = [parseInt(process.argv[2] || "20000", 10), process.argv[3]];
  const peer = await makePeer(url);
  const figures = await measure(system, jobs, peer);
  process.stdout.write(JSON.stringify(figures) + "\n");
  process.exit(0);
}

module.exports = { main, tracker, now };
