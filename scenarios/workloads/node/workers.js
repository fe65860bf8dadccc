'use strict';
// The Node.js workload: worker threads share the work of a segmented prime
// sieve, publish into a SharedArrayBuffer with Atomics, and hash their
// segment with node:crypto; the main thread checks and combines. Every line
// printed is independent of scheduling and architecture.
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
const os = require('node:os');

const LIMIT = 2_000_000;
const WORKERS = 4;

function sieveSegment(from, to) {
  // Primes in [from, to), by trial division with the small primes.
  const root = Math.ceil(Math.sqrt(to));
  const small = new Uint8Array(root + 1);
  const basePrimes = [];
  for (let i = 2; i <= root; i++) {
    if (!small[i]) {
      basePrimes.push(i);
      for (let j = i * i; j <= root; j += i) small[j] = 1;
    }
  }
  const composite = new Uint8Array(to - from);
  for (const p of basePrimes) {
    let start = Math.max(p * p, Math.ceil(from / p) * p);
    for (let j = start; j < to; j += p) composite[j - from] = 1;
  }
  const primes = [];
  for (let n = Math.max(from, 2); n < to; n++) if (!composite[n - from]) primes.push(n);
  return primes;
}

if (isMainThread) {
  const shared = new SharedArrayBuffer(8 * Int32Array.BYTES_PER_ELEMENT);
  const counters = new Int32Array(shared);
  const step = LIMIT / WORKERS;
  const jobs = [];
  for (let w = 0; w < WORKERS; w++) {
    jobs.push(new Promise((resolve, reject) => {
      const worker = new Worker(__filename, { workerData: { w, from: w * step, to: (w + 1) * step, shared } });
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => code === 0 || reject(new Error(`worker ${w} exited ${code}`)));
    }));
  }
  Promise.all(jobs).then((results) => {
    results.sort((a, b) => a.w - b.w);
    const total = results.reduce((sum, r) => sum + r.count, 0);
    const digest = crypto.createHash('sha256');
    for (const r of results) digest.update(r.digest);
    console.log(`machine: ${os.machine()}`);
    console.log(`primes below ${LIMIT}: ${total} (shared counter ${Atomics.load(counters, 0)})`);
    console.log(`per worker: ${results.map((r) => r.count).join(' ')}`);
    console.log(`largest: ${results[WORKERS - 1].largest}`);
    console.log(`sha256 of the primes: ${digest.digest('hex')}`);
    console.log(`workers done: ${Atomics.load(counters, 1)}`);
  }).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  const { w, from, to, shared } = workerData;
  const counters = new Int32Array(shared);
  const primes = sieveSegment(from, to);
  for (let i = 0; i < primes.length; i++) Atomics.add(counters, 0, 1);
  Atomics.add(counters, 1, 1);
  // The segment's primes as decimal lines, hashed in the worker.
  const digest = crypto.createHash('sha256').update(primes.join('\n') + '\n').digest();
  parentPort.postMessage({ w, count: primes.length, largest: primes[primes.length - 1], digest });
}
