// Deaths with readers held, real processes only: the listener SIGKILLed over and over,
// `fanrecall start` itself SIGKILLed (its holder stays and answers fail-closed until a new
// `fanrecall start` takes the group), the recall service crash-looping, and systemd giving up
// on a listener (the holder alone keeps the group). Readers run as uid 1234. Each one must
// end within the recall deadline + 5 s with exactly the original bytes or EIO: never zeros,
// never other bytes. Readers are held at the moment of a death by freezing (SIGSTOP) the
// recall service; every stub is shown `released` by `fanrecall status` before it is read.
import { describe } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import * as native from "../../native/index.js";
import { rootTest } from "../helpers/root.js";
import { runChild, setprivAs, spawnChild } from "../helpers/child.js";
import type { Spawned } from "../helpers/child.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import { datagramBind } from "../helpers/sockets.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { startS3rver } from "../helpers/object-server.js";
import type { ObjectServer } from "../helpers/object-server.js";
import { BIN, recallUser, startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";
import { sha256, writeRandomFiles } from "../helpers/reader-files.js";
import { alive, fanrecallPids, killAllWith, openersOf, procsWith, signalPid, waitFor } from "../helpers/procs.js";
import { Teardown } from "../helpers/teardown.js";
import { ReadLedger, spawnReader } from "../helpers/timed-readers.js";
import type { TimedReader } from "../helpers/timed-readers.js";
import { adminSocketPath, holderSocketPath, recallGrpcSocketPath, recallSocketDir } from "../../ipc/run-dir.js";

const KiB = 1024;
const DEADLINE_MS = 5_000;
/** Every reader ends within this, from its spawn. */
const LIMIT_MS = DEADLINE_MS + 5_000;
/** Listener kills in the first case (FANRECALL_TEST_LISTENER_KILLS, for a shorter run by hand). */
const LISTENER_KILLS = Number(process.env.FANRECALL_TEST_LISTENER_KILLS ?? 12);
const TIMEOUT_ENV = { FANRECALL_RECALL_TIMEOUT_MS: String(DEADLINE_MS) };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A scratch ext4 and a `fanrecall start` on it (embedded store), cleaned up by `c`. */
async function setup(c: Teardown): Promise<{ fs: Ext4; fr: FanrecallInstance }> {
  const fs = await makeExt4(256);
  c.add(() => fs.cleanup());
  const fr = await startFanrecall({ watch: [fs.dir], env: TIMEOUT_ENV });
  const stateDir = fr.stateDir;
  c.add(() => killAllWith(stateDir));
  c.add(async () => {
    await fr.stop();
  });
  return { fs, fr };
}

/** Whether `path` holds no data blocks (a stub: at most its xattr block). */
function punched(path: string): boolean {
  return statSync(path).blocks * 512 <= 8 * KiB;
}

/**
 * Stub files for readers: each is handed out only when `fanrecall status` showed it
 * `released` since it was last read (refill() releases the ones read back to resident).
 */
class StubPool {
  private ready: string[] = [];
  /** How often a release found a file still open. */
  busyRetries = 0;
  /** Files found filled behind a `released` state. */
  filledBehindState = 0;

  constructor(
    private readonly fr: () => FanrecallInstance,
    readonly files: Map<string, string>,
  ) {}

  async refill(): Promise<void> {
    const paths = [...this.files.keys()];
    const before = await this.fr().status(paths);
    // A recall the recall service finished after its listener died fills the file with the
    // right bytes but leaves the stub state `released` (only the listener writes it), and
    // status cannot tell: such a file is no stub to test with. Restore it, release it again.
    const filled = before.filter((s) => s.state === "released" && !punched(s.path)).map((s) => s.path);
    this.filledBehindState += filled.length;
    if (filled.length > 0) await this.run("restore", filled);
    await this.run("release", [...before.filter((s) => s.state !== "released").map((s) => s.path), ...filled]);
    const now = await this.fr().status(paths);
    assert.deepEqual(
      now.filter((s) => s.state !== "released" || !punched(s.path)).map((s) => `${s.path}: ${s.state}`),
      [],
      "every pool file is a released stub (no data blocks) before it is read",
    );
    this.ready = paths;
  }

  /**
   * `fanrecall op paths`. A file someone still has open (a recall that outlived its reader,
   * an fd parked with the recall service until it expires) is "busy": tried again for a while.
   */
  private async run(op: "release" | "restore", paths: string[]): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (paths.length > 0) {
      const r = await this.fr().cli([op, ...paths]);
      if (r.code === 0) return;
      const busy = paths.filter((p) => r.stderr.includes(`${p}: the file is open`));
      if (busy.length === 0 || Date.now() > deadline) {
        const open = busy.flatMap((p) => openersOf(basename(p)));
        assert.fail(`${op}: ${r.stderr}\nopen by:\n${open.join("\n")}\n${this.fr().output().slice(-3000)}`);
      }
      this.busyRetries++;
      paths = busy;
      await sleep(1_000);
    }
  }

  take(): string | undefined {
    return this.ready.shift();
  }

  get available(): number {
    return this.ready.length;
  }
}

/** Fresh readers of pool stubs, one every `everyMs` while fewer than `max` run. */
class ReaderLoop {
  private timer: NodeJS.Timeout | null = null;
  private readonly inFlight = new Set<Promise<void>>();
  readonly readers: TimedReader[] = [];

  constructor(
    private readonly pool: StubPool,
    private readonly ledger: ReadLedger,
    private readonly label: string,
    private readonly everyMs: number,
    private readonly max: number,
  ) {}

  /** Spawns one reader now (if the pool has a stub); it is judged when it ends. */
  spawn(label = this.label): TimedReader | undefined {
    const path = this.pool.take();
    if (path === undefined) return undefined;
    const reader = spawnReader(path);
    this.readers.push(reader);
    const done = reader.result.then((r) => {
      this.ledger.add(label, path, r, this.pool.files.get(path)!);
    });
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
    return reader;
  }

  start(): void {
    this.timer = setInterval(() => {
      if (this.inFlight.size < this.max) this.spawn();
    }, this.everyMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  killAll(): void {
    for (const r of this.readers) r.spawned.kill();
  }
}

function onlyOne(pids: number[], what: string): number {
  assert.equal(pids.length, 1, `expected one ${what}, found ${pids.join(", ") || "none"}`);
  return pids[0];
}

/** The listener of `fr` once it is ready (its admin socket exists), other than `not`. */
function readyListener(fr: FanrecallInstance, not: number, timeoutMs: number): Promise<number> {
  return waitFor(
    `a new listener (not ${not})`,
    () => {
      const pids = fanrecallPids(fr.runDir, "listener").filter((p) => p !== not);
      return pids.length === 1 && existsSync(adminSocketPath(fr.runDir)) ? pids[0] : undefined;
    },
    timeoutMs,
  );
}

function readyRecallService(fr: FanrecallInstance, not: number, timeoutMs: number): Promise<number> {
  return waitFor(
    `a new recall service (not ${not})`,
    () => {
      const pids = fanrecallPids(fr.runDir, "recall-service").filter((p) => p !== not);
      return pids.length === 1 && existsSync(recallGrpcSocketPath(fr.runDir)) ? pids[0] : undefined;
    },
    timeoutMs,
  );
}

/** Reads every file once (status-checked `released` first): all must get the right bytes. */
async function allRight(fr: FanrecallInstance, files: Map<string, string>, what: string): Promise<void> {
  const states = await fr.status([...files.keys()]);
  assert.deepEqual(
    states.filter((s) => s.state !== "released" || !punched(s.path)).map((s) => `${s.path}: ${s.state}`),
    [],
    `${what}: stubs are released (no data blocks) before the read`,
  );
  const ledger = new ReadLedger(LIMIT_MS);
  const readers = [...files.keys()].map((p) => ({ p, r: spawnReader(p) }));
  for (const { p, r } of readers) ledger.add(what, p, await r.result, files.get(p)!);
  assert.deepEqual(ledger.problems, [], `${what}: ${ledger.toString()}\n${fr.output().slice(-3000)}`);
  assert.equal(ledger.right, files.size, `${what}: every read gets the right bytes (${ledger.toString()})`);
}

describe("deaths with readers held", () => {
  rootTest(
    "the listener SIGKILLed 20 times while fresh readers keep reading stubs: right bytes or EIO in time, never zeros",
    async (t: TestContext) => {
      const c = new Teardown();
      let frozen = -1;
      let loop: ReaderLoop | undefined;
      try {
        const { fs, fr } = await setup(c);
        c.add(() => {
          if (frozen > 0) signalPid(frozen, "SIGCONT");
          loop?.killAll();
        });
        const pool = new StubPool(() => fr, writeRandomFiles(fs.dir, "lk", 48, 256 * KiB));
        const ledger = new ReadLedger(LIMIT_MS);
        const holder = onlyOne(fanrecallPids(fr.runDir, "holder"), "holder");
        let listener = onlyOne(fanrecallPids(fr.runDir, "listener"), "listener");
        const started = Date.now();
        const restartMs: number[] = [];
        for (let i = 0; i < LISTENER_KILLS; i++) {
          await pool.refill();
          frozen = onlyOne(fanrecallPids(fr.runDir, "recall-service"), "recall service");
          signalPid(frozen, "SIGSTOP");
          loop = new ReaderLoop(pool, ledger, `round ${i}`, 300, 6);
          const held = [0, 1, 2].map(() => loop!.spawn(`round ${i} held`)!);
          loop.start();
          await sleep(700);
          for (const r of held.filter((h) => !h.running())) {
            void r.result.then((x) =>
              ledger.problems.push(
                `round ${i}: a reader of ${basename(r.path)} was not held at the kill: exit ${x.code} after ${x.ms} ms ${x.code === 0 ? (sha256(x.stdout) === pool.files.get(r.path) ? "right bytes" : "OTHER bytes") : x.stderr.trim()}`,
              ),
            );
          }
          const killedAt = Date.now();
          signalPid(listener, "SIGKILL");
          // Half the rounds let the recall service go before the successor comes (it then
          // serves the queued events), half after.
          if (i % 2 === 0) {
            signalPid(frozen, "SIGCONT");
            frozen = -1;
          }
          listener = await readyListener(fr, listener, 60_000);
          restartMs.push(Date.now() - killedAt);
          if (frozen > 0) signalPid(frozen, "SIGCONT");
          frozen = -1;
          await sleep(300);
          await loop.stop();
        }
        const loopMs = Date.now() - started;
        t.diagnostic(`${LISTENER_KILLS} kills in ${loopMs} ms; successor ready after ${restartMs.join(", ")} ms`);
        t.diagnostic(
          `${ledger.toString()}; releases retried for a busy file ${pool.busyRetries} times; ${pool.filledBehindState} stubs found filled behind a released state`,
        );
        assert.deepEqual(ledger.problems, [], `${ledger.toString()}\n${fr.output().slice(-4000)}`);
        assert.ok(ledger.eio > 0, "the deaths failed some held reads (EIO)");
        assert.equal(fr.child.exitCode, null, "fanrecall start is still running");
        assert.ok(alive(holder), "the holder outlived every listener");
        await pool.refill();
        await allRight(fr, pool.files, `after ${LISTENER_KILLS} listener kills`);
      } finally {
        await c.run();
      }
    },
    { timeout: 900_000 },
  );

  rootTest(
    "fanrecall start SIGKILLed with readers held: EIO in time, only the holder is left and answers fail-closed; a new start takes over",
    async (t: TestContext) => {
      const c = new Teardown();
      const readers: TimedReader[] = [];
      try {
        const { fs, fr } = await setup(c);
        const files = writeRandomFiles(fs.dir, "sk", 6, 1024 * KiB);
        const plain = writeRandomFiles(fs.dir, "plain", 2, 64 * KiB);
        const pool = new StubPool(() => fr, files);
        await pool.refill();
        const stateDir = fr.stateDir;
        const oldHolder = onlyOne(fanrecallPids(fr.runDir, "holder"), "holder");
        const recall = onlyOne(fanrecallPids(fr.runDir, "recall-service"), "recall service");
        signalPid(recall, "SIGSTOP");
        const paths = [...files.keys()];
        for (const p of paths.slice(0, 4)) readers.push(spawnReader(p));
        await sleep(800);
        assert.equal(readers.filter((r) => r.running()).length, 4, "4 readers are held before the kill");
        fr.child.kill("SIGKILL");
        const ledger = new ReadLedger(LIMIT_MS);
        for (const r of readers) ledger.add("held at the kill", r.path, await r.result, files.get(r.path)!);
        const took = await Promise.all(readers.map(async (r) => (await r.result).ms));
        t.diagnostic(`held readers: ${ledger.toString()}; ended after ${took.join(", ")} ms`);
        assert.deepEqual(ledger.problems, [], `${ledger.toString()}\n${fr.output().slice(-4000)}`);
        // Only the holder is left (the s3rver follows when its stdin closes).
        const left = await waitFor(
          "only the holder left",
          () => {
            const procs = procsWith(stateDir);
            return procs.length === 1 && procs[0].pid === oldHolder ? procs : undefined;
          },
          15_000,
        ).catch(() => procsWith(stateDir));
        assert.deepEqual(
          left.map((p) => p.pid),
          [oldHolder],
          `only the holder outlives fanrecall start:\n${left.map((p) => `${p.pid} ${p.cmd}`).join("\n")}`,
        );
        assert.equal(procsWith("s3rver-main.js", stateDir).length, 0, "no s3rver left");
        // A new read of a stub: EIO at once (the holder answers, nothing is held).
        const fresh = spawnReader(paths[4]);
        const fr1 = await fresh.result;
        assert.match(fr1.stderr, /Input\/output error/, `a stub read with only the holder: ${fr1.stderr}`);
        assert.ok(fr1.ms < 5_000, `EIO after ${fr1.ms} ms`);
        assert.notEqual(fr1.code, 0);
        // Plain files: one written before the kill, one after.
        const after = join(fs.dir, "plain-after.bin");
        const data = randomBytes(100 * KiB);
        writeFileSync(after, data);
        chmodSync(after, 0o644);
        plain.set(after, sha256(data));
        for (const [p, sum] of plain) {
          const r = await spawnReader(p).result;
          assert.equal(r.code, 0, `a plain file with only the holder: ${r.stderr}`);
          assert.equal(sha256(r.stdout), sum);
        }
        assert.match(fr.output(), /answering the group fail-closed/);
        signalPid(recall, "SIGCONT"); // gone with its parent anyway

        // A new `fanrecall start` on the same state directory takes the group.
        const fr2 = await startFanrecall({ watch: [fs.dir], env: TIMEOUT_ENV, stateDir });
        c.add(async () => {
          await fr2.stop();
        });
        await waitFor("the old holder to exit", () => !alive(oldHolder), 15_000);
        assert.match(fr.output(), /handed the group to a new holder; retiring/);
        const newHolder = onlyOne(fanrecallPids(fr2.runDir, "holder"), "holder");
        assert.notEqual(newHolder, oldHolder);
        await allRight(fr2, files, "after the new start took over");
        const code = await fr2.stop();
        assert.equal(code, 0, fr2.output().slice(-3000));
        const rest = await waitFor("no process left", () => procsWith(stateDir).length === 0, 15_000).catch(() =>
          procsWith(stateDir),
        );
        assert.equal(rest, true, `processes left: ${JSON.stringify(rest)}`);
      } finally {
        for (const r of readers) r.spawned.kill();
        await c.run();
      }
    },
    { timeout: 300_000 },
  );

  rootTest(
    "the recall service crash-looping (SIGKILLed 15 times): readers get right bytes or EIO in time; start never gives up",
    async (t: TestContext) => {
      const c = new Teardown();
      let loop: ReaderLoop | undefined;
      try {
        const { fs, fr } = await setup(c);
        const pool = new StubPool(() => fr, writeRandomFiles(fs.dir, "rk", 80, 256 * KiB));
        await pool.refill();
        // Stubs kept for the first reads once the killing stops.
        const reserve = new StubPool(() => fr, writeRandomFiles(fs.dir, "rr", 10, 256 * KiB));
        await reserve.refill();
        const ledger = new ReadLedger(LIMIT_MS);
        const listener = onlyOne(fanrecallPids(fr.runDir, "listener"), "listener");
        let victim = onlyOne(fanrecallPids(fr.runDir, "recall-service"), "recall service");
        loop = new ReaderLoop(pool, ledger, "crash loop", 500, 3);
        loop.start();
        await sleep(500);
        const started = Date.now();
        for (let i = 0; i < 15; i++) {
          signalPid(victim, "SIGKILL");
          if (i === 14) break;
          const last = victim;
          // As soon as the next one appears (ready or not).
          victim = await waitFor(
            "a new recall service",
            () => fanrecallPids(fr.runDir, "recall-service").find((p) => p !== last),
            60_000,
            10,
          );
        }
        const killMs = Date.now() - started;
        const back = await readyRecallService(fr, victim, 60_000);
        const readyAt = Date.now();
        await loop.stop();
        t.diagnostic(`15 kills in ${killMs} ms; ${ledger.toString()}; ${pool.available} stubs unused`);
        assert.deepEqual(ledger.problems, [], `${ledger.toString()}\n${fr.output().slice(-4000)}`);
        assert.equal(fr.child.exitCode, null, "fanrecall start is still running");
        assert.ok(alive(back), "a recall service runs again");
        assert.deepEqual(fanrecallPids(fr.runDir, "listener"), [listener], "the listener was never restarted");
        assert.match(fr.output(), /the recall service exited \(SIGKILL\)/);
        // Once the killing stops and the service is back, reads get the right bytes. One
        // read at a time, each of a stub never read before, until one does (at most 10).
        const recovery: string[] = [];
        const after = new ReadLedger(LIMIT_MS);
        for (let path = reserve.take(); path !== undefined; path = reserve.take()) {
          const from = Date.now() - readyAt;
          const r = await spawnReader(path).result;
          const v = after.add("after the crash loop", path, r, reserve.files.get(path)!);
          recovery.push(`${v ?? "PROBLEM"} (started ${from} ms after the service was ready, took ${r.ms} ms)`);
          if (v === "right") break;
          await sleep(1_000);
        }
        t.diagnostic(`reads once the service was back: ${recovery.join("; ")}`);
        assert.deepEqual(after.problems, [], after.problems.join("\n"));
        assert.equal(
          after.eio,
          0,
          `reads fail after the recall service is back: ${recovery.join("; ")}\n${fr.output().slice(-3000)}`,
        );
        await pool.refill();
        await allRight(fr, pool.files, "after the crash loop");
      } finally {
        loop?.killAll();
        await c.run();
      }
    },
    { timeout: 900_000 },
  );

  rootTest(
    "systemd gives up on a SIGKILLed listener: the holder alone answers fail-closed (stubs EIO, plain files read)",
    async (t: TestContext) => {
      const c = new Teardown();
      const kept: number[] = [];
      const readers: TimedReader[] = [];
      let notifySock = -1;
      let recallService: Spawned | undefined;
      let holder: Spawned | undefined;
      let frozen = -1;
      try {
        const fs = await makeExt4(256);
        c.add(() => fs.cleanup());
        const store: ObjectServer = await startS3rver();
        c.add(() => store.stop());
        const dir = mkdtempSync(join(tmpdir(), "fanrecall-giveup-"));
        c.add(() => rmSync(dir, { recursive: true, force: true }));
        c.add(() => killAllWith(dir));
        chmodSync(dir, 0o755);
        const runDir = join(dir, "run");
        mkdirSync(runDir, { mode: 0o755 });
        mkdirSync(recallSocketDir(runDir), { mode: 0o750 });
        const ru = recallUser(); // never 65534, the readers' uid
        chownSync(recallSocketDir(runDir), ru.uid, ru.gid);
        const notifyPath = join(dir, "notify.sock");
        notifySock = datagramBind(notifyPath);
        c.add(() => {
          for (const fd of kept.splice(0)) native.close(fd);
          if (notifySock >= 0) native.close(notifySock);
        });
        const holderSocket = holderSocketPath(runDir);

        // fanrecall-holder.service
        holder = spawnChild([process.execPath, BIN, "holder", "--socket", holderSocket], { timeoutMs: 600_000 });
        c.add(async () => {
          holder?.child.kill("SIGTERM");
          await holder?.result;
        });
        await waitFor("the holder", () => existsSync(`${holderSocket}.ready`), 20_000);

        // fanrecall-recall.service
        recallService = spawnChild(
          [...setprivAs(ru.uid, ru.gid), process.execPath, BIN, "recall-service", "--run-dir", runDir],
          {
            env: {
              ...process.env,
              FANRECALL_S3_ENDPOINT: store.endpoint,
              FANRECALL_S3_ACCESS_KEY: store.accessKey,
              FANRECALL_S3_SECRET_KEY: store.secretKey,
              FANRECALL_S3_REGION: store.region,
              FANRECALL_S3_BUCKET: "fanrecall-giveup",
            },
            timeoutMs: 600_000,
          },
        );
        c.add(async () => {
          recallService?.child.kill("SIGCONT");
          recallService?.child.kill("SIGTERM");
          await recallService?.result;
        });
        await waitFor("the recall service", () => existsSync(recallGrpcSocketPath(runDir)), 20_000);

        // fanrecall-listener.service: NOTIFY_SOCKET, the fd store, and the holder.
        const env: NodeJS.ProcessEnv = {
          ...process.env,
          NOTIFY_SOCKET: notifyPath,
          FANRECALL_LOG_LEVEL: "info",
          FANRECALL_HOLDER_SOCKET: holderSocket,
        };
        for (const k of Object.keys(env)) if (k.startsWith("FANRECALL_S3_")) delete env[k];
        const listenerArgs = [
          "listener",
          "--watch",
          fs.dir,
          "--run-dir",
          runDir,
          "--recall-uid",
          String(recallUser().uid),
        ];
        listenerArgs.push("--recall-timeout-ms", String(DEADLINE_MS));
        const listener = spawnChild(
          ["sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', process.execPath, BIN, ...listenerArgs],
          { env, timeoutMs: 600_000 },
        );
        c.add(async () => {
          listener.kill();
          await listener.result;
        });
        let stored = 0;
        for (;;) {
          const msg = await native.recvOnce(notifySock, 4096, 30_000);
          const text = msg.data.toString("utf8");
          kept.push(...msg.fds);
          if (/^FDSTORE=1$/m.test(text)) stored += msg.fds.length;
          if (/^READY=1$/m.test(text)) break;
        }
        assert.equal(stored, 1, "the listener stored its group fd with systemd");

        const files = writeRandomFiles(fs.dir, "gu", 8, 1024 * KiB);
        const plain = writeRandomFiles(fs.dir, "plain", 3, 64 * KiB);
        const rel = await runChild([process.execPath, BIN, "release", "--run-dir", runDir, ...files.keys()], {
          timeoutMs: 60_000,
        });
        assert.equal(rel.code, 0, rel.stderr);
        const st = await runChild([process.execPath, BIN, "status", "--json", "--run-dir", runDir, ...files.keys()], {
          timeoutMs: 60_000,
        });
        const states = st.stdout
          .toString()
          .trim()
          .split("\n")
          .map((l) => (JSON.parse(l) as { state: string }).state);
        assert.deepEqual(
          states,
          [...files.keys()].map(() => "released"),
        );

        frozen = recallService.pid;
        signalPid(frozen, "SIGSTOP");
        const paths = [...files.keys()];
        for (const p of paths.slice(0, 5)) readers.push(spawnReader(p));
        await sleep(800);
        assert.equal(readers.filter((r) => r.running()).length, 5, "5 readers are held before the kill");
        listener.child.kill("SIGKILL");
        await listener.result;
        // systemd gives up: the fd store is emptied and the listener is not restarted.
        for (const fd of kept.splice(0)) native.close(fd);
        const ledger = new ReadLedger(LIMIT_MS);
        for (const r of readers) ledger.add("held at the kill", r.path, await r.result, files.get(r.path)!);
        const took = await Promise.all(readers.map(async (r) => (await r.result).ms));
        t.diagnostic(`held readers: ${ledger.toString()}; ended after ${took.join(", ")} ms`);
        // New reads of stubs: EIO at once; plain files are read.
        for (const p of paths.slice(5)) {
          const r = await spawnReader(p).result;
          ledger.add("after the give-up", p, r, files.get(p)!);
          if (r.code === 0) ledger.problems.push(`${p}: a stub was served with no listener (recall service frozen)`);
          else if (r.ms > 5_000) ledger.problems.push(`${p}: EIO only after ${r.ms} ms`);
        }
        for (const [p, sum] of plain) {
          const r = await spawnReader(p).result;
          assert.equal(r.code, 0, `a plain file with only the holder: ${r.stderr}`);
          assert.equal(sha256(r.stdout), sum);
        }
        signalPid(frozen, "SIGCONT");
        frozen = -1;
        // Still EIO once the recall service runs: nobody recalls without a listener.
        const again = await spawnReader(paths[0]).result;
        ledger.add("recall service running, no listener", paths[0], again, files.get(paths[0])!);
        if (again.code === 0) ledger.problems.push(`${paths[0]}: served with no listener`);
        const holderOut = (await stopHolder(holder)).stdout.toString();
        assert.deepEqual(ledger.problems, [], `${ledger.toString()}\nholder:\n${holderOut}`);
        assert.equal(ledger.right, 0);
        assert.match(holderOut, /answering the group fail-closed/);
      } finally {
        for (const r of readers) r.spawned.kill();
        if (frozen > 0) signalPid(frozen, "SIGCONT");
        await c.run();
      }
    },
    { timeout: 300_000 },
  );
});

async function stopHolder(holder: Spawned) {
  holder.child.kill("SIGTERM");
  const r = await holder.result;
  assert.equal(r.code, 0, `the holder stops cleanly: ${r.stderr}`);
  return r;
}
