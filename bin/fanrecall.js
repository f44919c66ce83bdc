#!/usr/bin/env node
// fanrecall command-line entry: runs the compiled CLI from dist/ (built by `npm ci`).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const entry = join(root, "dist", "cli", "main.js");
if (!existsSync(entry)) {
  process.stderr.write(`fanrecall: ${entry} is missing; run 'npm ci' (or 'npm run build') in ${root} first\n`);
  process.exit(2);
}
const { main } = await import(pathToFileURL(entry).href);
process.exitCode = await main(process.argv.slice(2));
