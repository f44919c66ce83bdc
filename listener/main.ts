// main: entry point of `fanrecall listener` (root), in named steps: load the configuration
// and refuse unsafe watches; take the group over (systemd's fd store, else the holder) or
// open a new one, answering stale events; build the parts (stub store, content check, fd
// requests, recall runner, dispatcher); mark the watches and let the holder and systemd keep
// copies of the group; serve (admin socket, mesh worker, stats); and on SIGTERM/SIGINT (or
// SIGUSR2 for an upgrade) shut down in order: every held event is answered before the group
// is closed (closing first would allow them all: zeros for readers).
//
// Owns: the process, the logger and the order of start and shutdown. Holds the group fd
// through FanotifySource, and nothing else of its own.
import type { Logger } from "pino";
import { mkdirSync } from "node:fs";
import { pino } from "pino";
import { fdChannelSocketPath, recallGrpcSocketPath } from "../ipc/run-dir.js";
import { AdminOps } from "./admin-ops.js";
import { AdminServer } from "./admin-server.js";
import { FilePlaces } from "./file-places.js";
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
  const config = startupConfig(argv);
  if (config === null) return 2;
  const log = pino({ level: config.logLevel, base: { component: "listener" } });
  const handoff = new GroupHandoff(config.holderSocket, log);
  const systemd = new SystemdNotify();
  // systemd's fd store first (a crash under systemd), then the holder. Either way the holder
  // hears from this listener before anything is read, so it stops answering the group
  // fail-closed before this listener sweeps stale events and starts serving.
  const stored = takeFromFdStore();
  let taken = stored;
  if (config.holderSocket) {
    if (stored !== null) await handoff.deposit(stored).catch(() => false);
    else taken = await handoff.take().catch(() => null);
  }
  const channel = new FdChannel({ path: fdChannelSocketPath(config.runDir), recallUid: config.recallUid, log });
  const recall = new RecallClient(recallGrpcSocketPath(config.runDir));
  const modes = new Map<number, WatchMode>();
  const views = new WritableViews();
  const group = { handoff, systemd, stored, taken };
  const parts = buildParts({ config, log, channel, recall, modes, views }, group);
  if (!watchAll(parts)) return 1;
  await keepGroup(parts, group);
  const serving = serve(parts, group);
  const signal = await new Promise<string>((resolve) => {
    for (const s of ["SIGTERM", "SIGINT", "SIGUSR2"] as const) process.once(s, () => resolve(s));
  });
  await shutdown(parts, serving, group, signal);
  return 0;
}

/** The configuration, checked: null (the error written to stderr) when the listener must not start. */
function startupConfig(argv: readonly string[]): ListenerConfig | null {
  try {
    const config = loadListenerConfig(argv);
    if (process.getuid?.() !== 0) throw new Error("the listener must run as root (it owns a fanotify group)");
    mkdirSync(config.runDir, { recursive: true, mode: 0o755 });
    refuseSelfWatch(config);
    return config;
  } catch (err: unknown) {
    process.stderr.write(`fanrecall listener: ${errorMessage(err)}\n`);
    return null;
  }
}

/** Where the group came from, and who keeps copies of it. */
interface Group {
  readonly handoff: GroupHandoff;
  readonly systemd: SystemdNotify;
  /** The group fd systemd's fd store gave back, or null. */
  readonly stored: number | null;
  /** The group fd taken over (from systemd's store or the holder), or null for a new group. */
  readonly taken: number | null;
}

/** What buildParts is given: the configuration, the log and the wire to the recall service. */
interface Wiring {
  readonly config: ListenerConfig;
  readonly log: Logger;
  readonly channel: FdChannel;
  readonly recall: RecallClient;
  /** The watch mode of each watched filesystem, by dev (filled in by watchAll). */
  readonly modes: Map<number, WatchMode>;
  readonly views: WritableViews;
}

/** Everything the listener runs, built once at start and taken apart in order at shutdown. */
interface Parts extends Wiring {
  readonly source: FanotifySource;
  readonly stubs: StubStore;
  readonly dispatcher: Dispatcher;
  readonly ops: AdminOps;
}

/**
 * Opens the group (or takes it over, answering stale events before anything is read) and
 * builds what decides and serves its events.
 */
function buildParts(w: Wiring, group: Group): Parts {
  const { config, log, channel, recall, modes, views } = w;
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
    ...(group.taken === null ? {} : { groupFd: group.taken }),
  });
  if (group.taken !== null) {
    // Before reading anything: new event fds could reuse the numbers of the stale ones.
    const stale = answerStale(source.groupFd, FAILURE_POLICY.shutdown.errno);
    const from = group.stored === null ? "holder" : "systemd fd store";
    log.warn({ stale, reason: "shutdown", from }, "took over the group; answered stale events with EIO");
  }
  const stubs = new StubStore(log);
  const content = new ContentCheck(config.checkRecalledBytes);
  const requests = new FdRequests(channel, log);
  const modeOf = (dev: number) => modes.get(dev) ?? "range";
  const timeouts = { recallTimeoutMs: config.recallTimeoutMs };
  const runner = new RecallRunner({ source, requests, recall, log, views, stubs, content, modeOf, ...timeouts });
  const limits = { maxRecalls: config.maxRecalls, callerShare: config.callerShare, maxHeld: 32_768 };
  const rules = { rules: config.recallRules, lowWaitMs: config.recallTimeoutMs };
  dispatcher = new Dispatcher({ source, runner, stubs, log, modeOf, ...limits, ...rules });
  const known = (dev: number) => modes.get(dev);
  const ops = new AdminOps({ dispatcher, runner, stubs, content, requests, source, recall, log, views, modeOf: known });
  return { ...w, source, stubs, dispatcher, ops };
}

/** Marks every watched directory; false (the group closed) when one cannot be watched. */
function watchAll(parts: Parts): boolean {
  try {
    for (const w of parts.source.markAll()) parts.modes.set(w.dev, w.mode);
    return true;
  } catch (err: unknown) {
    parts.log.error({ err: errorMessage(err) }, "cannot watch");
    parts.source.close();
    return false;
  }
}

/** Copies of the group for the holder and systemd's fd store, so a crash leaves readers held, not allowed. */
async function keepGroup(parts: Parts, group: Group): Promise<void> {
  const { config, source } = parts;
  if (group.taken === null && config.holderSocket) await group.handoff.deposit(source.groupFd).catch(() => false);
  if (config.holderSocket) group.handoff.keep(source.groupFd);
  if (group.stored === null) notifySystemd(parts.log, "FDSTORE", () => group.systemd.storeGroup(source.groupFd));
}

interface Serving {
  readonly admin: AdminServer;
  readonly paths: WatchedPaths | null;
  readonly mesh: MeshWorker | null;
  readonly reporter: StatsReporter;
}

/** Opens the admin socket, starts reading events, the mesh worker and the stats reporter; tells systemd it is ready. */
function serve(parts: Parts, group: Group): Serving {
  const { config, log, source, stubs, dispatcher: d, ops, views, recall, channel, modes } = parts;
  const places = new FilePlaces(config.watch, config.namespaces);
  const admin = new AdminServer({ path: config.adminSocket, ops, views, log, watch: config.watch, places });
  const paths = config.meshAdmin ? new WatchedPaths(config.watch) : null;
  const mesh = paths
    ? new MeshWorker({
        recall,
        ops,
        stubs,
        paths,
        places,
        views,
        modeOf: (dev) => modes.get(dev),
        channel,
        log: log.child({ component: "mesh-admin" }),
      })
    : null;
  source.start();
  mesh?.start();
  const reporter = new StatsReporter(recall, () => ({
    eventsTotal: d.eventsTotal,
    ignoreMarks: source.ignoreMarks,
    held: d.held,
    counts: d.counts,
    rules: d.ruleDecisions(),
  }));
  reporter.start();
  log.info(
    {
      watch: config.watch,
      pid: process.pid,
      tookOver: group.taken !== null,
      meshAdmin: config.meshAdmin,
      recallRules: config.recallRules.length,
    },
    "listener ready",
  );
  notifySystemd(log, "READY", () => group.systemd.send({ READY: "1", MAINPID: String(process.pid) }));
  return { admin, paths, mesh, reporter };
}

/**
 * Stops in order: no new work, then (a full stop) no new event and the queued ones served,
 * a grace period for recalls under way, every event still held answered (EIO), and only then
 * the group let go of and closed.
 */
async function shutdown(parts: Parts, serving: Serving, group: Group, signal: string): Promise<void> {
  const { log, source, dispatcher } = parts;
  const upgrade = signal === "SIGUSR2";
  log.info({ signal, queued: dispatcher.queued }, upgrade ? "exiting for an upgrade" : "shutting down");
  notifySystemd(log, "STOPPING", () => group.systemd.send({ STOPPING: "1" }));
  serving.admin.close();
  serving.mesh?.stop();
  serving.paths?.close();
  serving.reporter.stop();
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
    notifySystemd(log, "FDSTOREREMOVE", () => group.systemd.removeGroup());
    await group.handoff.drop();
  }
  group.handoff.close();
  source.close();
  parts.views.close();
  parts.channel.reset();
  parts.recall.close();
  log.info({ answered, upgrade }, "listener stopped");
}

/** A systemd notification; a failure is logged, never fatal. */
function notifySystemd(log: Logger, what: string, send: () => boolean): void {
  try {
    send();
  } catch (err: unknown) {
    log.warn({ err: errorMessage(err) }, `systemd notify (${what}) failed`);
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
