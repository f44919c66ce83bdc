// The mesh admin API end to end: a real `fanrecall start` serves recall.v1.AdminService and
// grpc.health.v1 on TCP with TLS, client certificates required (a CA made at test time).
// A client with a certificate the CA signed can query, prefetch (restore) and archive files;
// the bytes read back afterwards are the original ones; no path can lead outside a watched
// directory; a file the recall service's user could not read is never archived through the
// mesh; a client without a certificate, or with one from another CA, gets nothing.
// Authorisation is the kernel's, for the recall service's own credentials: a 0644 file in a
// 0700 directory is PERMISSION_DENIED for status, restore and archive (and a missing name
// there too: nothing is told about what that user may not see), a file readable only through
// a POSIX ACL entry for that user is served. A flood of 2,000 requests at once leaves the
// listener serving readers of stubs, with its fd count bounded. And a hostile recall service
// (a proxy in front of the real one that answers every TakeAdminWork at once with thousands
// of restores and statuses, and holds every FinishAdminWork): the listener keeps serving
// reads of stubs with the right bytes, its fds and memory stay bounded.
// Both watch modes: range (ext4) and whole-file (tmpfs), since restore raises its event
// differently in each.
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import {
  AdminOp,
  AdminService,
  Health,
  RecallService,
  RpcError,
  ServingStatus,
  createClient,
  startServer,
  toHandlers,
  toServiceDefinition,
} from "../../proto/index.js";
import type { CallContext } from "../../proto/index.js";
import { isRoot, rootTest } from "../helpers/root.js";
import { NOBODY, OTHER_UID, runAsNobody, runAsUid, runChild, setprivAs, spawnChild } from "../helpers/child.js";
import { makeExt4, makeScratchDir, makeTmpfs } from "../helpers/loop-fs.js";
import { startS3rver } from "../helpers/object-server.js";
import type { ObjectServer } from "../helpers/object-server.js";
import { BIN, recallUser, startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";
import { fanrecallPids, waitFor } from "../helpers/procs.js";
import { sha256 } from "../helpers/reader-files.js";
import { makeTestPki } from "../helpers/tls-certs.js";
import type { TestPki } from "../helpers/tls-certs.js";
import { Teardown } from "../helpers/teardown.js";
import { fdChannelSocketPath, recallGrpcSocketPath, recallSocketDir } from "../../ipc/run-dir.js";

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The real uid of a process (/proc/PID/status). */
function uidOf(pid: number): number {
  const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(m, `no Uid line for ${pid}`);
  return Number(m[1]);
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}

async function rejectsWith(p: Promise<unknown>, code: grpc.status, what: string): Promise<void> {
  await assert.rejects(
    p,
    (err: unknown) => err instanceof RpcError && err.code === code,
    `${what}: expected ${grpc.status[code]}`,
  );
}

interface MeshSetup {
  dir: string;
  fr: FanrecallInstance;
  address: string;
}

/** A watched filesystem for `mode` (tmpfs refuses range events) and `fanrecall start` on it; undone by `teardown`. */
async function startMeshFanrecall(
  pki: TestPki,
  store: ObjectServer,
  mode: "range" | "whole",
  teardown: Teardown,
): Promise<MeshSetup> {
  const fs = mode === "range" ? await makeExt4(256) : await makeTmpfs(128);
  teardown.add(() => fs.cleanup());
  const dir = fs.dir;
  const fr = await startFanrecall({
    watch: [dir],
    server: store,
    bucket: `fanrecall-mesh-${mode}`,
    extraArgs: ["--chunk-size", String(MiB)],
    env: {
      FANRECALL_MESH_ADMIN_ADDRESS: "127.0.0.1:0",
      FANRECALL_MESH_TLS_CERT: pki.serverCert,
      FANRECALL_MESH_TLS_KEY: pki.serverKey,
      FANRECALL_MESH_TLS_CLIENT_CA: pki.caCert,
    },
  });
  teardown.add(() => fr.stop());
  const deadline = Date.now() + 20_000;
  let m: RegExpExecArray | null;
  while ((m = /"meshAdminPort":(\d+)/.exec(fr.output())) === null) {
    assert.ok(Date.now() < deadline, `the recall service did not report its mesh admin port:\n${fr.output()}`);
    await sleep(100);
  }
  assert.match(fr.output(), new RegExp(`"mode":"${mode}"`));
  return { dir, fr, address: `127.0.0.1:${m[1]}` };
}

function meshClient(pki: TestPki, address: string, cert: "client" | "rogue" | "none") {
  const creds =
    cert === "none"
      ? grpc.credentials.createSsl(pki.read(pki.caCert))
      : grpc.credentials.createSsl(
          pki.read(pki.caCert),
          pki.read(cert === "client" ? pki.clientKey : pki.rogueKey),
          pki.read(cert === "client" ? pki.clientCert : pki.rogueCert),
        );
  // The certificate names 127.0.0.1 too; the override only keeps Node from sending an IP as SNI.
  const options = { "grpc.ssl_target_name_override": "localhost" };
  return {
    admin: createClient(AdminService, address, creds, options),
    health: createClient(Health, address, creds, options),
  };
}

function meshSuite(mode: "range" | "whole"): void {
  describe(`mesh admin API over TLS (${mode} mode)`, () => {
    const teardown = new Teardown();
    let pki: TestPki;
    let store: ObjectServer;
    let mesh: MeshSetup;
    let client: ReturnType<typeof meshClient>;
    /** The recall service's uid, as the harness started it (whatever the default is). */
    let recallUid: number;

    /** A world-readable file of random bytes beneath the watched directory, optionally released. */
    async function makeFile(name: string, size: number, release: boolean): Promise<{ path: string; data: Buffer }> {
      const path = join(mesh.dir, name);
      const data = randomBytes(size);
      writeFileSync(path, data);
      chmodSync(path, 0o644);
      if (release) {
        const rel = await mesh.fr.cli(["release", path]);
        assert.equal(rel.code, 0, rel.stderr);
      }
      return { path, data };
    }

    before(
      async () => {
        if (!isRoot()) return;
        pki = await makeTestPki(recallUser().uid);
        teardown.add(() => pki.cleanup());
        store = await startS3rver();
        teardown.add(() => store.stop());
        mesh = await startMeshFanrecall(pki, store, mode, teardown);
        client = meshClient(pki, mesh.address, "client");
        teardown.add(() => {
          client.admin.close();
          client.health.close();
        });
        const [recallPid] = fanrecallPids(mesh.fr.runDir, "recall-service");
        assert.ok(recallPid, "the recall service's pid");
        recallUid = uidOf(recallPid);
        assert.notEqual(recallUid, 0);
        // The listener's first long poll may still be on its way.
        const deadline = Date.now() + 10_000;
        for (;;) {
          try {
            await client.admin.client.status({ path: join(mesh.dir, "none") }, { timeoutMs: 5_000 });
          } catch (err: unknown) {
            if (err instanceof RpcError && err.code === grpc.status.NOT_FOUND) break;
            if (Date.now() > deadline) throw err;
            await sleep(200);
          }
        }
      },
      { timeout: 120_000 },
    );

    after(() => teardown.run(), { timeout: 60_000 });

    rootTest("health answers over TLS", async () => {
      const h = await client.health.client.check({ service: "" }, { timeoutMs: 5_000 });
      assert.equal(h.status, ServingStatus.SERVING);
    });

    rootTest(
      "status of a released file, restore brings every byte back, and readers then see the original",
      async () => {
        const { path, data } = await makeFile("video.bin", 5 * MiB + 123, true);

        const before = (await client.admin.client.status({ path }, { timeoutMs: 10_000 })).status;
        assert.ok(before);
        assert.equal(before.state, "released");
        assert.equal(before.size, BigInt(data.length));
        assert.equal(before.populatedBytes, 0n);
        assert.ok(before.object?.key);

        // Three clients prefetch the same file at once: one recall, three answers.
        const all = await Promise.all(
          [0, 1, 2].map(() => client.admin.client.restore({ path }, { timeoutMs: 60_000 })),
        );
        const restored = all[0].status;
        assert.ok(restored);
        for (const r of all) assert.equal(r.status?.state, "archived");
        assert.equal(restored.state, "archived");
        assert.equal(restored.populatedBytes, BigInt(data.length));
        const [cli] = await mesh.fr.status([path]);
        assert.equal(cli.state, "archived");
        assert.equal(cli.populatedBytes, data.length);

        const r = await runAsNobody(["cat", path]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(sha256(r.stdout), sha256(data));
        assert.match(mesh.fr.output(), /"audit":"admin","op":"restore"[^\n]*"caller":"cn=prefetcher"/);
        assert.match(mesh.fr.output(), /"audit":"admin","op":"restore"[^\n]*"code":"OK"/);
      },
      { timeout: 120_000 },
    );

    rootTest(
      "archive copies a readable file (verified later by release); no fd of a file the recall user cannot read",
      async () => {
        const { path: open, data } = await makeFile("report.pdf", 2 * MiB + 7, false);
        const archived = (await client.admin.client.archive({ path: open }, { timeoutMs: 60_000 })).status;
        assert.ok(archived);
        assert.equal(archived.state, "archived");
        assert.ok(archived.object?.key);
        const rel = await mesh.fr.cli(["release", open]);
        assert.equal(rel.code, 0, rel.stderr);
        const r = await runAsNobody(["sha256sum", open]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.toString().split(" ")[0], sha256(data));

        const secret = join(mesh.dir, "secret.txt");
        writeFileSync(secret, "root only\n");
        chmodSync(secret, 0o600);
        for (const op of ["archive", "restore"] as const) {
          await rejectsWith(
            client.admin.client[op]({ path: secret }, { timeoutMs: 10_000 }),
            grpc.status.PERMISSION_DENIED,
            `${op} of a 0600 root file`,
          );
        }
        const [st] = await mesh.fr.status([secret]);
        assert.equal(st.state, "resident");
        // Status tells nothing of a file the recall user cannot read either.
        await rejectsWith(
          client.admin.client.status({ path: secret }, { timeoutMs: 10_000 }),
          grpc.status.PERMISSION_DENIED,
          "status of a 0600 root file",
        );
      },
      { timeout: 120_000 },
    );

    rootTest(
      "a 0644 file in a 0700 directory is PERMISSION_DENIED for status, restore and archive; nothing about it is told",
      async () => {
        const dir = join(mesh.dir, "private");
        mkdirSync(dir, { mode: 0o700 });
        chmodSync(dir, 0o700);
        const { path } = await makeFile("private/inner.bin", MiB + 5, true);
        const missing = join(dir, "no-such-file");
        for (const p of [path, missing]) {
          for (const op of ["status", "restore", "archive"] as const) {
            await assert.rejects(
              client.admin.client[op]({ path: p }, { timeoutMs: 10_000 }),
              (err: unknown) =>
                err instanceof RpcError &&
                err.code === grpc.status.PERMISSION_DENIED &&
                !/released|archived|resident|[0-9a-f]{16}/.test(err.message),
              `${op} ${p}: expected PERMISSION_DENIED telling nothing of the file`,
            );
          }
        }
        const [st] = await mesh.fr.status([path]);
        assert.equal(st.state, "released", "the denied restore recalled nothing");
        assert.equal(st.populatedBytes, 0);
        // Once the directory is searchable, the same file is served.
        chmodSync(dir, 0o755);
        const ok = (await client.admin.client.status({ path }, { timeoutMs: 10_000 })).status;
        assert.equal(ok?.state, "released");
        await rejectsWith(
          client.admin.client.status({ path: missing }, { timeoutMs: 10_000 }),
          grpc.status.NOT_FOUND,
          "a missing name where the recall user may look",
        );
      },
      { timeout: 120_000 },
    );

    rootTest(
      "a file readable only through POSIX ACL entries for the recall user is served; removing the entry denies it",
      async () => {
        const dir = join(mesh.dir, "acl-dir");
        mkdirSync(dir, { mode: 0o700 });
        chmodSync(dir, 0o700);
        const { path, data } = await makeFile("acl-dir/shared.bin", 2 * MiB + 3, true);
        chmodSync(path, 0o600);
        const acl = async (args: string[]) => {
          const r = await runChild(["setfacl", ...args]);
          assert.equal(r.code, 0, `setfacl ${args.join(" ")}: ${r.stderr}`);
        };
        await rejectsWith(
          client.admin.client.status({ path }, { timeoutMs: 10_000 }),
          grpc.status.PERMISSION_DENIED,
          "status before any ACL entry",
        );
        await acl(["-m", `u:${recallUid}:x`, dir]);
        await rejectsWith(
          client.admin.client.restore({ path }, { timeoutMs: 10_000 }),
          grpc.status.PERMISSION_DENIED,
          "restore with the directory searchable but the 0600 file not readable",
        );
        await acl(["-m", `u:${recallUid}:r`, path]);
        const st = (await client.admin.client.status({ path }, { timeoutMs: 10_000 })).status;
        assert.equal(st?.state, "released");
        const restored = (await client.admin.client.restore({ path }, { timeoutMs: 60_000 })).status;
        assert.equal(restored?.state, "archived");
        assert.equal(restored?.populatedBytes, BigInt(data.length));
        assert.equal(sha256(readFileSync(path)), sha256(data));
        await acl(["-x", `u:${recallUid}`, path]);
        for (const op of ["status", "restore", "archive"] as const) {
          await rejectsWith(
            client.admin.client[op]({ path }, { timeoutMs: 10_000 }),
            grpc.status.PERMISSION_DENIED,
            `${op} once the ACL entry is gone`,
          );
        }
      },
      { timeout: 120_000 },
    );

    rootTest(
      "a flood of 2,000 mesh requests at once: readers of stubs get the right bytes, the listener's fds stay bounded",
      async () => {
        const targets = await Promise.all([0, 1, 2, 3].map((i) => makeFile(`flood-${i}.bin`, 3 * MiB + i, true)));
        const { path: readPath, data: readData } = await makeFile("flood-read.bin", 2 * MiB + 11, true);
        const [listenerPid] = fanrecallPids(mesh.fr.runDir, "listener");
        assert.ok(listenerPid, "the listener's pid");
        const fdsBefore = fdCount(listenerPid);
        const rssBefore = rssKiB(listenerPid);
        let fdsMax = fdsBefore;
        let rssMax = rssBefore;
        const sampler = setInterval(() => {
          fdsMax = Math.max(fdsMax, fdCount(listenerPid));
          rssMax = Math.max(rssMax, rssKiB(listenerPid));
        }, 5);
        try {
          const flood = Array.from({ length: 2_000 }, (_, i) => {
            const op = i % 2 === 0 ? "restore" : "status";
            const target = targets[Math.floor(i / 2) % targets.length];
            return client.admin.client[op]({ path: target.path }, { timeoutMs: 120_000 });
          });
          const settled = Promise.allSettled(flood);
          const reader = runAsUid(OTHER_UID, ["cat", readPath], { timeoutMs: 60_000 });
          const read = await reader;
          assert.equal(read.code, 0, read.stderr);
          assert.equal(sha256(read.stdout), sha256(readData), "the reader got the stub's own bytes during the flood");
          const results = await settled;
          const codes = new Map<string, number>();
          for (const r of results) {
            const code =
              r.status === "fulfilled"
                ? "OK"
                : r.reason instanceof RpcError
                  ? `${grpc.status[r.reason.code]}${r.reason.code === grpc.status.RESOURCE_EXHAUSTED ? "" : `: ${r.reason.message}`}`
                  : String(r.reason);
            codes.set(code, (codes.get(code) ?? 0) + 1);
          }
          const ok = codes.get("OK") ?? 0;
          const busy = codes.get("RESOURCE_EXHAUSTED") ?? 0;
          assert.equal(ok + busy, 2_000, `only OK or RESOURCE_EXHAUSTED: ${JSON.stringify([...codes])}`);
          assert.ok(ok >= 256, `at least the relay's queue is served: ${JSON.stringify([...codes])}`);
        } finally {
          clearInterval(sampler);
        }
        for (const t of targets) {
          const [st] = await mesh.fr.status([t.path]);
          assert.equal(st.state, "archived");
          assert.equal(sha256(readFileSync(t.path)), sha256(t.data));
        }
        // 16 requests in flight, each with its O_PATH fd, one view fd and a restore's writable fd.
        assert.ok(fdsMax - fdsBefore <= 64, `listener fds ${fdsBefore} -> max ${fdsMax}`);
        assert.ok(rssMax - rssBefore < 150 * 1024, `listener RSS ${rssBefore} -> max ${rssMax} KiB`);
        process.stderr.write(
          `# flood: listener fds ${fdsBefore} -> max ${fdsMax}, RSS ${rssBefore} -> max ${rssMax} KiB\n`,
        );
      },
      { timeout: 240_000 },
    );

    rootTest("no path leads outside a watched directory or to anything but a regular file", async () => {
      mkdirSync(join(mesh.dir, "sub"), { recursive: true });
      writeFileSync(join(mesh.dir, "sub", "f"), "x");
      symlinkSync("/etc/passwd", join(mesh.dir, "passwd-link"));
      symlinkSync(mesh.dir, join(mesh.dir, "sub", "loop"));
      const cases: Array<[string, grpc.status]> = [
        ["/etc/passwd", grpc.status.INVALID_ARGUMENT],
        [`${mesh.dir}/../etc/passwd`, grpc.status.INVALID_ARGUMENT],
        [`${mesh.dir}/sub/./f`, grpc.status.INVALID_ARGUMENT],
        [join(mesh.dir, "passwd-link"), grpc.status.INVALID_ARGUMENT],
        [join(mesh.dir, "sub", "loop", "sub", "f"), grpc.status.INVALID_ARGUMENT],
        [join(mesh.dir, "sub"), grpc.status.INVALID_ARGUMENT],
        [mesh.dir, grpc.status.INVALID_ARGUMENT],
        ["relative/path", grpc.status.INVALID_ARGUMENT],
        [join(mesh.dir, "missing"), grpc.status.NOT_FOUND],
      ];
      for (const [path, code] of cases) {
        for (const op of ["status", "restore", "archive"] as const) {
          await rejectsWith(client.admin.client[op]({ path }, { timeoutMs: 10_000 }), code, `${op} ${path}`);
        }
      }
      const ok = (await client.admin.client.status({ path: join(mesh.dir, "sub", "f") }, { timeoutMs: 10_000 })).status;
      assert.equal(ok?.state, "resident");
    });

    rootTest("`fanrecall mesh` as an unprivileged user: status and restore, JSON out, errors exit 1", async () => {
      const { path, data } = await makeFile("cli.bin", MiB + 1, true);
      for (const f of [pki.clientCert, pki.clientKey]) chownSync(f, NOBODY, NOBODY);
      const tls = ["--address", mesh.address, "--ca", pki.caCert, "--cert", pki.clientCert, "--key", pki.clientKey];
      const mesh$ = (args: readonly string[]) =>
        runAsNobody([process.execPath, BIN, "mesh", ...args, "--server-name", "localhost"], { timeoutMs: 60_000 });
      const st = await mesh$(["status", ...tls, "--json", path]);
      assert.equal(st.code, 0, st.stderr);
      assert.equal((JSON.parse(st.stdout.toString()) as { state: string }).state, "released");
      const rs = await mesh$(["restore", ...tls, "--json", path, join(mesh.dir, "missing")]);
      assert.equal(rs.code, 1, "one of the two paths failed");
      assert.match(rs.stderr, /missing: .*NOT_FOUND/);
      const restored = JSON.parse(rs.stdout.toString().trim()) as { state: string; populatedBytes: number };
      assert.equal(restored.state, "archived");
      assert.equal(restored.populatedBytes, data.length);
      const bad = await mesh$(["status", "--address", mesh.address, path]);
      assert.equal(bad.code, 2, "no --ca: usage error");
    });

    rootTest("a client without a certificate, or with one another CA signed, is refused", async () => {
      for (const cert of ["none", "rogue"] as const) {
        const c = meshClient(pki, mesh.address, cert);
        try {
          await rejectsWith(
            c.health.client.check({ service: "" }, { timeoutMs: 5_000 }),
            grpc.status.UNAVAILABLE,
            `health with ${cert} certificate`,
          );
          await rejectsWith(
            c.admin.client.status({ path: join(mesh.dir, "video.bin") }, { timeoutMs: 5_000 }),
            grpc.status.UNAVAILABLE,
            `status with ${cert} certificate`,
          );
        } finally {
          c.admin.close();
          c.health.close();
        }
      }
    });
  });
}

meshSuite("range");
meshSuite("whole");

/** The recall service's uid in the hostile setup (any unprivileged uid that is not a reader's). */
const HOSTILE_RECALL_UID = 2345;

describe("a hostile recall service flooding mesh work", () => {
  rootTest(
    "the listener keeps serving reads of stubs (right bytes), its fds and memory stay bounded",
    async () => {
      const teardown = new Teardown();
      try {
        const fs = await makeExt4(128);
        teardown.add(() => fs.cleanup());
        const store = await startS3rver();
        teardown.add(() => store.stop());
        const scratch = makeScratchDir("fanrecall-hostile-");
        teardown.add(() => scratch.cleanup());
        const stateDir = scratch.dir;
        const realRun = join(stateDir, "real");
        const proxyRun = join(stateDir, "proxy");
        mkdirSync(recallSocketDir(realRun), { recursive: true, mode: 0o750 });
        chownSync(recallSocketDir(realRun), HOSTILE_RECALL_UID, HOSTILE_RECALL_UID);
        mkdirSync(recallSocketDir(proxyRun), { recursive: true, mode: 0o755 });
        for (const d of [stateDir, realRun, proxyRun]) chmodSync(d, 0o755);
        const recallService = spawnChild(
          [
            ...setprivAs(HOSTILE_RECALL_UID),
            process.execPath,
            BIN,
            "recall-service",
            "--run-dir",
            realRun,
            "--chunk-size",
            String(MiB),
          ],
          {
            env: {
              ...process.env,
              FANRECALL_S3_ENDPOINT: store.endpoint,
              FANRECALL_S3_ACCESS_KEY: store.accessKey,
              FANRECALL_S3_SECRET_KEY: store.secretKey,
              FANRECALL_S3_REGION: store.region,
              FANRECALL_S3_BUCKET: "fanrecall-hostile",
            },
            timeoutMs: 600_000,
          },
        );
        teardown.add(() => {
          recallService.child.kill("SIGTERM");
          return recallService.result;
        });
        await waitFor("the recall service", () => existsSync(recallGrpcSocketPath(realRun)), 30_000).catch(
          async (err: unknown) => {
            recallService.kill();
            throw new Error(`${String(err)}: ${(await recallService.result).stderr}`);
          },
        );

        // The proxy: the listener's recall.sock; fd.sock is the real service's (a symlink).
        symlinkSync(fdChannelSocketPath(realRun), fdChannelSocketPath(proxyRun));
        const real = createClient(RecallService, `unix://${recallGrpcSocketPath(realRun)}`);
        teardown.add(() => real.close());
        let hostile = false;
        let nextWork = 1n;
        let targets: string[] = [];
        let taken = 0;
        let finished = 0;
        type Forward = (req: unknown, opts: { timeoutMs: number; signal: AbortSignal }) => Promise<unknown>;
        const forward = real.client as unknown as Record<string, Forward>;
        const impl: Record<string, (req: unknown, ctx: CallContext) => Promise<unknown>> = {};
        for (const m of RecallService.methods) {
          impl[m.localName] = (req, ctx) =>
            forward[m.localName](req, {
              timeoutMs: Number.isFinite(ctx.deadlineMs) ? Math.max(1, ctx.deadlineMs - Date.now()) : 600_000,
              signal: ctx.signal,
            });
        }
        impl.takeAdminWork = async (_req, ctx) => {
          if (!hostile) {
            await sleep(200);
            return { items: [] };
          }
          // Every poll answered at once: 4,000 items (over any cap), or 64 (within it), alternately.
          const count = taken % 2 === 0 ? 4_000 : 64;
          taken++;
          const items = Array.from({ length: count }, (_, i) => ({
            workId: nextWork++,
            op: i % 3 === 0 ? AdminOp.STATUS : AdminOp.RESTORE,
            path: targets[i % targets.length],
            deadlineUnixMs: BigInt(Date.now() + 600_000),
          }));
          if (ctx.signal.aborted) return { items: [] };
          return { items };
        };
        impl.finishAdminWork = async (_req, ctx) => {
          finished++;
          // Held until the listener's own deadline for it.
          await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
          return {};
        };
        const proxy = await startServer(`unix://${recallGrpcSocketPath(proxyRun)}`, [
          { definition: toServiceDefinition(RecallService), handlers: toHandlers(RecallService, impl as never) },
        ]);
        teardown.add(() => proxy.stop(500));

        const listener = spawnChild(
          [
            process.execPath,
            BIN,
            "listener",
            "--watch",
            fs.dir,
            "--run-dir",
            proxyRun,
            "--recall-uid",
            String(HOSTILE_RECALL_UID),
            "--mesh-admin",
            "true",
          ],
          { env: { ...process.env, FANRECALL_LOG_LEVEL: "info" }, timeoutMs: 600_000 },
        );
        teardown.add(() => {
          listener.child.kill("SIGTERM");
          return listener.result;
        });
        let out = "";
        listener.child.stdout?.on("data", (b: Buffer) => (out += b.toString()));
        await waitFor("the listener", () => out.includes("listener ready"), 30_000);

        const files = new Map<string, Buffer>();
        for (let i = 0; i < 6; i++) {
          const path = join(fs.dir, `h-${i}.bin`);
          const data = randomBytes(MiB + 17 * i);
          writeFileSync(path, data);
          chmodSync(path, 0o644);
          files.set(path, data);
        }
        const paths = [...files.keys()];
        const rel = await runChild([process.execPath, BIN, "release", "--run-dir", proxyRun, ...paths], {
          timeoutMs: 120_000,
        });
        assert.equal(rel.code, 0, rel.stderr);
        // The flood names the first three; the readers read the other three (still stubs).
        targets = paths.slice(0, 3);
        const pid = listener.pid;
        const fdsBefore = fdCount(pid);
        const rssBefore = rssKiB(pid);
        let fdsMax = fdsBefore;
        let rssMax = rssBefore;
        const sampler = setInterval(() => {
          fdsMax = Math.max(fdsMax, fdCount(pid));
          rssMax = Math.max(rssMax, rssKiB(pid));
        }, 5);
        hostile = true;
        try {
          await sleep(3_000);
          for (const p of paths.slice(3)) {
            const started = Date.now();
            const r = await runAsUid(OTHER_UID, ["cat", p], { timeoutMs: 60_000 });
            assert.equal(r.code, 0, `${p}: ${r.stderr}`);
            assert.equal(sha256(r.stdout), sha256(files.get(p)!), `${p}: the stub's own bytes during the flood`);
            assert.ok(Date.now() - started < 30_000, `${p} read in ${Date.now() - started} ms`);
          }
          await sleep(2_000);
        } finally {
          hostile = false;
          clearInterval(sampler);
        }
        process.stderr.write(
          `# hostile: ${taken} floods, ${finished} results held; listener fds ${fdsBefore} -> max ${fdsMax}, ` +
            `RSS ${rssBefore} -> max ${rssMax} KiB\n`,
        );
        assert.ok(taken >= 2, "the listener polled the hostile service");
        assert.ok(fdsMax - fdsBefore <= 64, `listener fds ${fdsBefore} -> max ${fdsMax}`);
        assert.ok(rssMax - rssBefore < 150 * 1024, `listener RSS ${rssBefore} -> max ${rssMax} KiB`);
        assert.ok(listener.child.exitCode === null, "the listener is still running");
      } finally {
        await teardown.run();
      }
    },
    { timeout: 300_000 },
  );
});
