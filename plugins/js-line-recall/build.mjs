// Builds a JavaScript verifier into a component with componentize-js's API (what
// `jco componentize` calls):
//   node build.mjs SOURCE.js WIT_DIR OUT.wasm
// Run it from a directory with `@bytecodealliance/componentize-js` in its node_modules.
import { componentize } from "@bytecodealliance/componentize-js";
import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";

const [source, wit, out] = process.argv.slice(2).map((p) => resolve(p));
if (!out) {
  console.error("usage: node build.mjs SOURCE.js WIT_DIR OUT.wasm");
  process.exit(2);
}
const { component } = await componentize({
  sourcePath: source,
  witPath: wit,
  worldName: "verifier",
  // The host offers no HTTP; a component importing it would not link.
  disableFeatures: ["http", "fetch-event"],
});
await writeFile(out, component);
console.log(`${out}: ${component.length} bytes`);
