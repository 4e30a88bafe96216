#!/usr/bin/env node
/**
 * `npm start`: builds (incrementally: nothing to do when dist/ is current) and runs dist/main.js on a Node that
 * package.json's engines allows (scripts/node-runtime.js), passing SIGTERM/SIGINT on so the server drains.
 */
const { spawn, spawnSync } = require("node:child_process");
const { delimiter, dirname, join } = require("node:path");
const { supportedNode, SERVER_NODE_FLAGS, SERVER_ENV } = require("./node-runtime");

const node = supportedNode();
const env = { ...SERVER_ENV, ...process.env, PATH: `${dirname(node)}${delimiter}${process.env.PATH ?? ""}` };
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const build = spawnSync(npm, ["run", "--silent", "build"], { stdio: "inherit", env });
if (build.status !== 0) process.exit(build.status ?? 1);

const server = spawn(node, [...SERVER_NODE_FLAGS, join(__dirname, "..", "dist", "main.js")], { stdio: "inherit", env });
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.kill(signal));
server.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
