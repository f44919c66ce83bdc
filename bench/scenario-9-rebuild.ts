// bench/scenario-9-rebuild.ts: rebuilding a lost filesystem from the namespace in the store.
//
// A snapshot of FILES files (100 directories of 1,000, sizes up to 1 GiB, four owners) is put
// in the store as a reconcile writes it (proto/namespace-format.ts), for the namespace of a
// watched, empty ext4; then `fanrecall rebuild DIR` recreates every file as a released stub
// (through the listener's admin socket, one request a file). Baseline in the same run: the
// same tree made directly (mkdir, create, truncate, chown, chmod, utimes: what a stub needs
// but its trusted state), on the same filesystem. Target: the rebuild within 120 s (the
// issue's limit) for 100,000 files; the ratio to the baseline is reported.
// Owns: its filesystem and bucket (removed at cleanup); the instance is stopped in finally.
import { createHash } from "node:crypto";
import { chownSync, closeSync, ftruncateSync, mkdirSync, openSync, rmSync, utimesSync } from "node:fs";
import { join } from "node:path";
import {
  encodeSnapshotComplete,
  encodeSnapshotLine,
  packParts,
  snapshotCompleteName,
  snapshotPartName,
} from "../proto/namespace-format.js";
import type { FileRecord } from "../proto/namespace-format.js";
import { s3Client } from "../test/helpers/object-server.js";
import type { Scenario } from "./context.js";
import { nowMs } from "./measure.js";
import { compare, figure } from "./report.js";

const FILES = 100_000;
const PER_DIR = 1_000;
const NAMESPACE = "bench-rebuild";
const LIMIT_S = 120;

function records(): FileRecord[] {
  const out: FileRecord[] = [];
  for (let i = 0; i < FILES; i++) {
    const dir = `d${String(Math.floor(i / PER_DIR)).padStart(3, "0")}`;
    out.push({
      path: `tree/${dir}/f${String(i % PER_DIR).padStart(4, "0")}.bin`,
      size: (i * 7919) % (1024 * 1024 * 1024),
      uid: 2000 + (i % 4),
      gid: 2000 + (i % 4),
      mode: 0o640,
      mtimeNs: 1_500_000_000_000_000_000n + BigInt(i),
      atimeNs: 1_500_000_000_000_000_000n + BigInt(i),
      bucket: "unused",
      key: `fanrecall/${NAMESPACE}/objects/${i}`,
      versionId: "",
      manifestVersionId: "",
      chunkSize: 4 * 1024 * 1024,
      contentSha256: createHash("sha256").update(String(i)).digest("hex"),
      manifestSha256: createHash("sha256").update(`m${i}`).digest("hex"),
      recordedAtMs: 1_700_000_000_000,
    });
  }
  return out;
}

/** The same tree made directly, without fanrecall; seconds. */
function plainTree(root: string, files: readonly FileRecord[]): number {
  const t = nowMs();
  for (const r of files) {
    const path = join(root, r.path);
    if (r.path.endsWith("/f0000.bin")) mkdirSync(join(path, ".."), { recursive: true });
    const fd = openSync(path, "wx", 0o600);
    ftruncateSync(fd, r.size);
    closeSync(fd);
    chownSync(path, r.uid, r.gid);
    utimesSync(path, new Date(1_500_000_000_000), new Date(1_500_000_000_000));
  }
  return (nowMs() - t) / 1000;
}

export const scenario9: Scenario = {
  id: 9,
  title: "rebuild: 100,000 released stubs recreated from the namespace in the store",
  async run(ctx) {
    const reps = ctx.reps(2, 1);
    const fs = await ctx.ext4(4096);
    const bucket = await ctx.bucket("rebuild");
    const files = records();
    const client = s3Client(await ctx.swift());
    const takenAtMs = 1_700_000_000_000;
    const parts = packParts(files.map((file) => encodeSnapshotLine({ file })));
    for (let i = 0; i < parts.length; i++) {
      await client.putObject(bucket, `fanrecall/${NAMESPACE}/${snapshotPartName(takenAtMs, i)}`, parts[i]);
    }
    const shas = parts.map((p) => createHash("sha256").update(p).digest("hex"));
    const marker = encodeSnapshotComplete({ namespace: NAMESPACE, takenAtMs, files: FILES, parts: shas });
    await client.putObject(bucket, `fanrecall/${NAMESPACE}/${snapshotCompleteName(takenAtMs)}`, marker);
    const rebuildS: number[] = [];
    const plainS: number[] = [];
    for (let rep = 0; rep < reps; rep++) {
      const root = join(fs.dir, "tree");
      mkdirSync(root);
      const seconds = await ctx.withFanrecall(fs.dir, bucket, ["--namespace", NAMESPACE], async (fr) => {
        const t = nowMs();
        const r = await fr.cli(["rebuild", root], 600_000);
        if (r.code !== 0) throw new Error(`rebuild failed: ${r.stderr.slice(-2000)}`);
        return (nowMs() - t) / 1000;
      });
      rmSync(root, { recursive: true, force: true });
      // The snapshot's paths are relative to the watch root (tree/dNNN/fNNNN.bin).
      const plain = plainTree(fs.dir, files);
      rmSync(root, { recursive: true, force: true });
      rebuildS.push(seconds);
      plainS.push(plain);
      ctx.log(`s9 rep ${rep + 1}/${reps}: rebuild ${seconds.toFixed(1)} s, plain tree ${plain.toFixed(1)} s`);
    }
    const fr = figure("rebuild", "s", rebuildS);
    return {
      reps,
      rows: [
        {
          metric: `rebuild of ${FILES / 1000}k files (s)`,
          fanrecall: fr,
          comparisons: [
            compare(fr, figure(`the ${LIMIT_S} s limit`, "s", [LIMIT_S]), { max: 1 }),
            compare(fr, figure("the same tree made directly", "s", plainS)),
          ],
        },
      ],
      details: { files: FILES, rebuildS, plainS },
    };
  },
};
