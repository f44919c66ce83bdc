// The listener image carries root code only: its build removes the S3 client, the embedded
// store and the recall service's compiled code before the runtime stage copies anything, and
// fails if they are still there. Neither image carries build tools (node-gyp) or the embedded
// demo store (s3rver, an optionalDependency). Both build every source directory tsc compiles
// (a new top-level directory root code imports must reach the listener image). (Images are
// not built here: no registry for the base image.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";

const root = new URL("../../", import.meta.url).pathname;

test("the listener image drops minio, s3rver and the recall service before its runtime stage copies", () => {
  const text = readFileSync(`${root}deploy/docker/Dockerfile.listener`, "utf8").replace(/\\\n/g, " ");
  const lines = text.split("\n");
  const runtime = lines.findIndex((l) => /^FROM .* AS runtime|^FROM node:\S+-slim/.test(l));
  assert.ok(runtime > 0, "a runtime stage");
  const removal = lines.findIndex(
    (l) => /^RUN /.test(l) && /npm uninstall\b.*\bminio\b.*\bs3rver\b/.test(l) && /rm -rf dist\/recall-service/.test(l),
  );
  assert.ok(removal > 0 && removal < runtime, "minio, s3rver and dist/recall-service removed in the build stage");
  assert.match(lines[removal], /test ! -e node_modules\/minio/);
  assert.match(lines[removal], /test ! -e node_modules\/s3rver/);
  const copies = lines.slice(runtime).filter((l) => /^COPY /.test(l));
  assert.ok(copies.length > 0);
  for (const c of copies) assert.doesNotMatch(c, /recall-service|s3rver|minio/, c);
});

interface LockEntry {
  readonly dev?: boolean;
  readonly optional?: boolean;
  readonly dependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
}

function readJson(rel: string): unknown {
  return JSON.parse(readFileSync(`${root}${rel}`, "utf8"));
}

test("both images build every source directory tsc compiles (tsconfig.build.json), and their context lets it in", () => {
  const build = readJson("tsconfig.build.json") as { include: string[] };
  const dirs = build.include.filter((d) => /^[a-z-]+$/.test(d));
  assert.ok(dirs.includes("listener") && dirs.includes("ipc"), "the plain directories of the build");
  for (const file of ["Dockerfile.listener", "Dockerfile.recall-service"]) {
    const lines = readFileSync(`${root}deploy/docker/${file}`, "utf8").split("\n");
    const ignore = readFileSync(`${root}deploy/docker/${file}.dockerignore`, "utf8").split("\n");
    for (const d of dirs) {
      assert.ok(lines.includes(`COPY ${d} ${d}`), `${file} copies ${d}/`);
      assert.ok(ignore.includes(`!${d}/`), `${file}.dockerignore lets ${d}/ in`);
    }
  }
});

test("node-gyp is a build dependency only and s3rver an optional one, in package.json and the lockfile", () => {
  const pkg = readJson("package.json") as Record<string, Record<string, string> | undefined>;
  assert.equal(pkg.dependencies?.["node-gyp"], undefined, "node-gyp is not a runtime dependency");
  assert.ok(pkg.devDependencies?.["node-gyp"], "node-gyp is a devDependency");
  assert.equal(pkg.dependencies?.s3rver, undefined, "s3rver is not a required runtime dependency");
  assert.ok(pkg.optionalDependencies?.s3rver, "s3rver is an optionalDependency (the quick start's demo store)");
  const lock = (readJson("package-lock.json") as { packages: Record<string, LockEntry> }).packages;
  assert.equal(lock["node_modules/node-gyp"]?.dev, true, "the lockfile has node-gyp in the dev tree only");
  assert.equal(lock["node_modules/s3rver"]?.optional, true, "the lockfile has s3rver as optional");
  // What `npm prune --omit=dev --omit=optional` keeps: none of s3rver's or node-gyp's packages.
  const kept = Object.keys(lock).filter((k) => k !== "" && !lock[k].dev && !lock[k].optional);
  assert.ok(kept.includes("node_modules/@grpc/grpc-js") && kept.includes("node_modules/pino"), "a runtime tree");
  for (const k of kept) assert.doesNotMatch(k, /(^|\/)node_modules\/(s3rver|node-gyp|koa)$/, k);
  assert.ok(kept.length < 100, `${kept.length} runtime packages (s3rver and node-gyp brought 207)`);
});

test("the recall-service image prunes dev and optional dependencies (node-gyp, s3rver) before its runtime stage", () => {
  for (const file of ["Dockerfile.recall-service", "Dockerfile.listener"]) {
    const lines = readFileSync(`${root}deploy/docker/${file}`, "utf8").replace(/\\\n/g, " ").split("\n");
    const runtime = lines.findIndex((l) => /^FROM node:\S+-slim/.test(l));
    assert.ok(runtime > 0, `${file}: a runtime stage`);
    const prune = lines.findIndex((l) => /^RUN npm prune\b.*--omit=dev\b.*--omit=optional\b/.test(l));
    assert.ok(prune > 0 && prune < runtime, `${file}: pruned in the build stage`);
    assert.match(lines[prune], /test ! -e node_modules\/s3rver/, file);
    assert.match(lines[prune], /test ! -e node_modules\/node-gyp/, file);
    assert.match(lines[prune], /dist\/cli\/s3rver-main\.js/, `${file}: the embedded store's entry removed`);
    const copies = lines.slice(runtime).filter((l) => /^COPY /.test(l));
    assert.ok(
      copies.some((c) => /node_modules/.test(c)),
      `${file}: copies the pruned node_modules`,
    );
    for (const c of copies) assert.doesNotMatch(c, /s3rver|node-gyp/, c);
  }
});

test("s3rver is loaded only by the embedded store's own process (cli/s3rver-main.ts), which nothing imports", () => {
  const dirs = ["cli", "listener", "recall-service", "holder", "ipc", "proto", "native"];
  for (const dir of dirs) {
    for (const f of readdirSync(`${root}${dir}`).filter((n) => n.endsWith(".ts"))) {
      const text = readFileSync(`${root}${dir}/${f}`, "utf8");
      assert.doesNotMatch(text, /from\s+"[^"]*s3rver-main(\.js)?"|import\(\s*"[^"]*s3rver-main/, `${dir}/${f}`);
      if (`${dir}/${f}` === "cli/s3rver-main.ts") continue;
      assert.doesNotMatch(
        text,
        /(from\s+|import\(\s*|require(Cjs)?\(\s*)"s3rver(\/[^"]*)?"/,
        `${dir}/${f} loads s3rver`,
      );
    }
  }
});
