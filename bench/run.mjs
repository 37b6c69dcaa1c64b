// Benchmark entry point (npm run bench). The benchmark itself is not written yet.
console.log('bench: not yet implemented');
process.exit(0);
