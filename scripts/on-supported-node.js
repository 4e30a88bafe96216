#!/usr/bin/env node
/** Runs `node <args>` on a Node that package.json's engines allows (scripts/node-runtime.js), e.g. the CLI. */
const { spawnSync } = require("node:child_process");
const { supportedNode } = require("./node-runtime");

const result = spawnSync(supportedNode(), process.argv.slice(2), { stdio: "inherit" });
process.exit(result.status ?? 1);
