// This module's URL as the page sees it. Served as files (a `<script type="module">` page) or
// built by a bundler that rewrites `import.meta.url` per module (webpack), it differs from the
// entry's; a bundler that put both modules in one file without rewriting (esbuild, Rollup
// without an asset plugin, Vite's dev pre-bundling) leaves them equal.
export const moduleUrl = import.meta.url;
