// Builds a page's script with webpack 5 in production mode, as a site would ship it: used by
// the bundler test (tests/e2e/bundler.test.mjs) and the comparison benchmark (bench/compare.mjs).

import webpack from 'webpack';

/**
 * Builds `entry` (relative to `context`) into `out`/main.js, with `extra` merged into the
 * webpack config; resolves the names of the emitted files, rejects with webpack's errors.
 */
export function buildWithWebpack({ context, entry, out, ...extra }) {
  const compiler = webpack({
    mode: 'production',
    context,
    entry,
    output: { path: out, filename: 'main.js', publicPath: 'auto' },
    performance: { hints: false },
    infrastructureLogging: { level: 'error' },
    ...extra,
  });
  return new Promise((resolve, reject) =>
    compiler.run((err, stats) => {
      compiler.close(() => {});
      if (err) return reject(err);
      if (stats.hasErrors()) return reject(new Error(stats.toString('errors-only')));
      resolve(stats.toJson({ assets: true }).assets.map((a) => a.name));
    }),
  );
}
