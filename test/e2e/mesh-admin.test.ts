// The mesh admin API end to end: a real `fanrecall start` serves recall.v1.AdminService and
// grpc.health.v1 on TCP with TLS, client certificates required (a CA made at test time).
// A client with a certificate the CA signed can query, prefetch (restore) and archive files;
// the bytes read back afterwards are the original ones; no path can lead outside a watched
// directory; a file the recall service's user could not read is never archived through the
// mesh; a client without a certificate, or with one from another CA, gets nothing.
// Both watch modes: range (ext4) and whole-file (tmpfs), since restore raises its event
// differently in each.
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { AdminService, Health, RpcError, ServingStatus, createClient } from "../../proto/index.js";
import { isRoot, rootTest } from "../helpers/root.js";
import { NOBODY, runAsNobody, runChild } from "../helpers/child.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import { startS3rver } from "../helpers/object-server.js";
import type { ObjectServer } from "../helpers/object-server.js";
import { BIN, recallUser, startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";
import { sha256 } from "../helpers/reader-files.js";
import { makeTestPki } from "../helpers/tls-certs.js";
import type { TestPki } from "../helpers/tls-certs.js";

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  cleanup(): Promise<void>;
}

async function startMeshFanrecall(pki: TestPki, store: ObjectServer, mode: "range" | "whole"): Promise<MeshSetup> {
  let dir: string;
  let unmount: () => Promise<void>;
  if (mode === "range") {
    const fs = await makeExt4(256);
    dir = fs.dir;
    unmount = () => fs.cleanup();
  } else {
    dir = mkdtempSync(join(tmpdir(), "fanrecall-mesh-tmpfs-"));
    const m = await runChild(["mount", "-t", "tmpfs", "-o", "size=128m,mode=0755", "tmpfs", dir]);
    assert.equal(m.code, 0, m.stderr);
    unmount = async () => {
      await runChild(["umount", "-l", dir]);
      rmSync(dir, { recursive: true, force: true });
    };
  }
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
  const deadline = Date.now() + 20_000;
  let m: RegExpExecArray | null;
  while ((m = /"meshAdminPort":(\d+)/.exec(fr.output())) === null) {
    assert.ok(Date.now() < deadline, `the recall service did not report its mesh admin port:\n${fr.output()}`);
    await sleep(100);
  }
  assert.match(fr.output(), new RegExp(`"mode":"${mode}"`));
  return {
    dir,
    fr,
    address: `127.0.0.1:${m[1]}`,
    cleanup: async () => {
      await fr.stop();
      await unmount();
    },
  };
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
    let pki: TestPki;
    let store: ObjectServer;
    let mesh: MeshSetup;
    let client: ReturnType<typeof meshClient>;

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
        store = await startS3rver();
        mesh = await startMeshFanrecall(pki, store, mode);
        client = meshClient(pki, mesh.address, "client");
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

    after(
      async () => {
        if (!isRoot()) return;
        client?.admin.close();
        client?.health.close();
        await mesh?.cleanup();
        await store?.stop();
        pki?.cleanup();
      },
      { timeout: 60_000 },
    );

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
        const s = (await client.admin.client.status({ path: secret }, { timeoutMs: 10_000 })).status;
        assert.equal(s?.state, "resident");
      },
      { timeout: 120_000 },
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
