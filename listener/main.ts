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
import { LISTENER_HELP, loadListenerConfig, refuseSelfWatch } from "./config.js";
import type { ListenerConfig } from "./config.js";
import { ContentCheck } from "./content-check.js";
import { Dispatcher } from "./dispatcher.js";
import { FAILURE_POLICY } from "./failure-policy.js";
import { FanotifySource } from "./fanotify-source.js";
import type { WatchMode } from "./fanotify-source.js";
import { FdChannel } from "./fd-channel.js";
import { GroupHandoff, answerStale } from "./group-handoff.js";
import { MeshWorker } from "./mesh-worker.js";
import { FdRequests, RecallClient } from "./recall-client.js";
import { RecallRunner } from "./recall-runner.js";
import { StatsReporter } from "./stats-reporter.js";
import { StubStore } from "./stub-store.js";
import { SystemdNotify, takeFromFdStore } from "./systemd-notify.js";
import { WatchedPaths } from "./watched-path.js";
import { WritableViews } from "./writable-view.js";

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
  const handoff = new GroupHandoff(config.holderSocket, log);
  const systemd = new SystemdNotify();
  const notify = (what: string, send: () => boolean) => {
    try {
      send();
    } catch (err: unknown) {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, `systemd notify (${what}) failed`);
    }
  };
  // systemd's fd store first (a crash under systemd), then the holder. Either way the holder
  // hears from this listener before anything is read, so it stops answering the group
  // fail-closed before this listener sweeps stale events and starts serving.
  const stored = takeFromFdStore();
  let taken = stored;
  if (config.holderSocket) {
    if (stored !== null) await handoff.deposit(stored).catch(() => false);
    else taken = await handoff.take().catch(() => null);
  }
  const channel = new FdChannel({ path: join(config.runDir, "recall", "fd.sock"), recallUid: config.recallUid, log });
  const recall = new RecallClient(join(config.runDir, "recall", "recall.sock"));
  const modes = new Map<number, WatchMode>();
  const views = new WritableViews();
  // A release holds a write lease; an open by someone else meanwhile sends SIGIO, whose
  // default action would end this process. The release lets go within milliseconds anyway.
  process.on("SIGIO", () => undefined);
  let dispatcher: Dispatcher | null = null;
  const source = new FanotifySource({
    dirs: config.watch,
    mode: config.mode,
    log,
    views,
    onEvent: (ev) => dispatcher?.onEvent(ev),
    ...(taken === null ? {} : { groupFd: taken }),
  });
  if (taken !== null) {
    // Before reading anything: new event fds could reuse the numbers of the stale ones.
    const stale = answerStale(source.groupFd, FAILURE_POLICY.shutdown.errno);
    const from = stored === null ? "holder" : "systemd fd store";
    log.warn({ stale, reason: "shutdown", from }, "took over the group; answered stale events with EIO");
  }
  const stubs = new StubStore(log);
  const content = new ContentCheck(config.checkRecalledBytes);
  const requests = new FdRequests(channel, log);
  const modeOf = (dev: number) => modes.get(dev) ?? "range";
  const runner = new RecallRunner({
    source,
    requests,
    recall,
    log,
    views,
    stubs,
    content,
    modeOf,
    recallTimeoutMs: config.recallTimeoutMs,
  });
  dispatcher = new Dispatcher({
    source,
    runner,
    stubs,
    log,
    maxRecalls: config.maxRecalls,
    callerShare: config.callerShare,
    maxHeld: 32_768,
    modeOf,
  });
  try {
    for (const w of source.markAll()) modes.set(w.dev, w.mode);
  } catch (err: unknown) {
    log.error({ err: err instanceof Error ? err.message : String(err) }, "cannot watch");
    source.close();
    return 1;
  }
  if (taken === null && config.holderSocket) await handoff.deposit(source.groupFd).catch(() => false);
  if (config.holderSocket) handoff.keep(source.groupFd);
  if (stored === null) notify("FDSTORE", () => systemd.storeGroup(source.groupFd));
  const ops = new AdminOps({
    dispatcher,
    runner,
    stubs,
    content,
    requests,
    source,
    recall,
    log,
    views,
    modeOf: (dev) => modes.get(dev),
  });
  const admin = new AdminServer({ path: config.adminSocket, ops, views, log, watch: config.watch });
  const paths = config.meshAdmin ? new WatchedPaths(config.watch) : null;
  const mesh = paths
    ? new MeshWorker({
        recall,
        ops,
        stubs,
        paths,
        views,
        modeOf: (dev) => modes.get(dev),
        channel,
        log: log.child({ component: "mesh-admin" }),
      })
    : null;
  source.start();
  mesh?.start();
  const d = dispatcher;
  const reporter = new StatsReporter(recall, () => ({
    eventsTotal: d.eventsTotal,
    ignoreMarks: source.ignoreMarks,
    held: d.held,
    counts: d.counts,
  }));
  reporter.start();
  log.info(
    { watch: config.watch, pid: process.pid, tookOver: taken !== null, meshAdmin: config.meshAdmin },
    "listener ready",
  );
  notify("READY", () => systemd.send({ READY: "1", MAINPID: String(process.pid) }));
  const signal = await new Promise<string>((resolve) => {
    for (const s of ["SIGTERM", "SIGINT", "SIGUSR2"] as const) process.once(s, () => resolve(s));
  });
  const upgrade = signal === "SIGUSR2";
  log.info({ signal, queued: dispatcher.queued }, upgrade ? "exiting for an upgrade" : "shutting down");
  notify("STOPPING", () => systemd.send({ STOPPING: "1" }));
  admin.close();
  mesh?.stop();
  paths?.close();
  reporter.stop();
  if (upgrade) {
    // Leave queued events in the group for the next listener: stop reading now.
    source.stop();
  } else {
    // Full stop: no new event after the flush; queued ones are still served normally.
    source.flushMarks();
    source.drainQueued();
  }
  const deadline = Date.now() + SHUTDOWN_GRACE_MS;
  while (dispatcher.queued > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  // Whatever is still held after the grace period gets the shutdown verdict (EIO).
  const answered = dispatcher.drain();
  if (!upgrade) {
    // Every held event is answered and no mark is left: let go of the kept copies too.
    notify("FDSTOREREMOVE", () => systemd.removeGroup());
    await handoff.drop();
  }
  handoff.close();
  source.close();
  views.close();
  channel.reset();
  recall.close();
  log.info({ answered, upgrade }, "listener stopped");
  return 0;
}
