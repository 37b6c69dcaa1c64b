// Helpers for the JavaScript API's result objects: one call across the wasm boundary builds an
// object that would otherwise take a call per field. Minified in the release package
// (scripts/build.mjs).

// Resolves a `retryDeadLetters` promise with its counts.
export function retryResult(resolve, retried, succeeded, failed) {
  resolve({ retried, succeeded, failed });
}
