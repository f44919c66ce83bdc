// main: entry point of `fanrecall listener` (root). Loads the configuration, refuses unsafe
// watches, creates the fanotify group and marks, and wires the dispatcher, the fd channel,
// the recall client and the admin socket. On SIGTERM/SIGINT it answers every held event
// before it closes the group (closing first would allow them all: zeros for readers).
//
// Owns: the process, the logger and the order of shutdown.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { AdminOps } from "./admin-ops.js";
import { AdminServer } from "./admin-server.js";
import { LISTENER_HELP, adminSocketPath, loadListenerConfig, refuseSelfWatch } from "./config.js";
import type { ListenerConfig } from "./config.js";
import { Dispatcher } from "./dispatcher.js";
import { FanotifySource } from "./fanotify-source.js";
import type { WatchMode } from "./fanotify-source.js";
import { FdChannel } from "./fd-channel.js";
import { RecallClient } from "./recall-client.js";

const SHUTDOWN_GRACE_MS = 5_000;

export async function listenerMain(argv: readonly string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(LISTENER_HELP);
    return 0;
  }
  let config: ListenerConfig;
  try {
    config = loadListenerConfig(argv);
    if (process.getuid?.() !== 0) throw new Error("the listener must run as root (it owns a fanotify group)");
    mkdirSync(config.runDir, { recursive: true, mode: 0o755 });
    refuseSelfWatch(config);
  } catch (err: unknown) {
    process.stderr.write(`fanrecall listener: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  const log = pino({ level: config.logLevel, base: { component: "listener" } });
  const channel = new FdChannel({ path: join(config.runDir, "recall", "fd.sock"), recallUid: config.recallUid, log });
  const recall = new RecallClient(join(config.runDir, "recall", "recall.sock"));
  const modes = new Map<number, WatchMode>();
  let dispatcher: Dispatcher | null = null;
  const source = new FanotifySource({
    dirs: config.watch,
    mode: config.mode,
    log,
    onEvent: (ev) => dispatcher?.onEvent(ev),
  });
  dispatcher = new Dispatcher({
    source,
    channel,
    recall,
    log,
    recallTimeoutMs: config.recallTimeoutMs,
    maxInFlight: config.maxInFlight,
    modeOf: (dev) => modes.get(dev) ?? "range",
  });
  try {
    for (const w of source.markAll()) modes.set(w.dev, w.mode);
  } catch (err: unknown) {
    log.error({ err: err instanceof Error ? err.message : String(err) }, "cannot watch");
    source.close();
    return 1;
  }
  const ops = new AdminOps({
    dispatcher,
    source,
    channel,
    recall,
    log,
    modeOf: (dev) => modes.get(dev),
    triggerTimeoutMs: 10_000,
    recallTimeoutMs: config.recallTimeoutMs,
  });
  const admin = new AdminServer(adminSocketPath(config.runDir), ops, log);
  source.start();
  log.info({ watch: config.watch, pid: process.pid }, "listener ready");
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  log.info({ queued: dispatcher.queued }, "shutting down");
  admin.close();
  const deadline = Date.now() + SHUTDOWN_GRACE_MS;
  while (dispatcher.queued > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const answered = dispatcher.drain();
  source.close();
  channel.reset();
  recall.close();
  log.info({ answered }, "listener stopped");
  return 0;
}
