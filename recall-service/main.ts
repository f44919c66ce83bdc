// main: entry point of `fanrecall recall-service`. Parses the configuration, drops root
// (when started as root) before reading any input, then starts the server and stops it on
// SIGTERM/SIGINT.
//
// Owns: the process: logger, privilege drop, signals. Holds no fds itself.
import { mkdirSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
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

/**
 * Every socket read of a GET allocates a fresh 64 KiB buffer, and V8 counts that external
 * memory against its old generation: with incremental marking it started a full GC every few
 * MiB recalled (about 60 per GiB, a third of the service's CPU per GiB recalled, measured).
 * Without it V8 runs a full GC only at the old generation's limit (about 20 per GiB, each a
 * pause of a few ms on this small heap). Set before the server allocates anything.
 */
function tuneGc(): void {
  setFlagsFromString("--no-incremental-marking");
}

export async function recallServiceMain(argv: readonly string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(RECALL_SERVICE_HELP);
    return 0;
  }
  tuneGc();
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
