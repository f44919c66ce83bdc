// main: entry point of `fanrecall recall-service`. Parses the configuration, drops root
// (when started as root) before reading any input, then starts the server and stops it on
// SIGTERM/SIGINT.
//
// Owns: the process: logger, privilege drop, signals. Holds no fds itself.
import { mkdirSync } from "node:fs";
import { pino } from "pino";
import * as native from "../native/index.js";
import { RECALL_SERVICE_HELP, checkOwnUid, loadRecallServiceConfig, recallSocketPaths } from "./config.js";
import type { RecallServiceConfig } from "./config.js";
import { errorMessage } from "./errors.js";
import { startRecallServer } from "./server.js";

function dropPrivileges(config: RecallServiceConfig): void {
  native.setNoNewPrivs();
  if (!config.user) return;
  const { dir } = recallSocketPaths(config.runDir);
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  process.setgroups?.([]);
  process.setgid?.(config.user.gid);
  process.setuid?.(config.user.uid);
  native.setNonDumpable(); // a uid change resets it to fs.suid_dumpable: set it again, whatever that is
}

export async function recallServiceMain(argv: readonly string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(RECALL_SERVICE_HELP);
    return 0;
  }
  let config: RecallServiceConfig;
  try {
    // Before the secret is read: /proc/PID/{environ,mem,...} become root's alone, so no other
    // process of this uid (nor of any other non-root uid) can read it from this one.
    native.setNonDumpable();
    config = loadRecallServiceConfig(argv);
    dropPrivileges(config);
    checkOwnUid(process.getuid?.() ?? 0);
  } catch (err: unknown) {
    process.stderr.write(`fanrecall recall-service: ${errorMessage(err)}\n`);
    return 2;
  }
  const log = pino({
    level: config.logLevel,
    base: { component: "recall-service" },
    redact: ["s3.secretKey", "secretKey", "*.secretKey"],
  });
  if (process.getuid?.() === 0) {
    log.error("refusing to run as root");
    return 2;
  }
  const server = await startRecallServer(config, log);
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  log.info("shutting down");
  await server.stop();
  return 0;
}
