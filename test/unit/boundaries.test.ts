// The privilege split, checked mechanically: the root listener imports no S3 client, no
// network module and nothing from the recall service; the recall service imports nothing
// from the listener; the listener opens no watched file by a name it was given, except
// through the confined resolution of mesh admin requests (watched-path.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

const root = new URL("../../", import.meta.url).pathname;

function sources(dir: string): Array<{ file: string; text: string }> {
  return readdirSync(join(root, dir))
    .filter((f) => f.endsWith(".ts"))
    .map((f) => ({ file: `${dir}/${f}`, text: readFileSync(join(root, dir, f), "utf8") }));
}

function imports(text: string): string[] {
  return [...text.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+"([^"]+)"/gms)].map((m) => m[1]);
}

test("listener/ imports no S3 client, no network module and nothing from recall-service/", () => {
  const banned = /^(minio|s3rver|node:net|net|node:http|http|node:https|https|node:dgram|node:tls)$|recall-service\//;
  for (const { file, text } of sources("listener")) {
    for (const spec of imports(text)) assert.doesNotMatch(spec, banned, `${file} imports ${spec}`);
  }
});

test("recall-service/ imports nothing from listener/", () => {
  for (const { file, text } of sources("recall-service")) {
    for (const spec of imports(text)) assert.doesNotMatch(spec, /listener\//, `${file} imports ${spec}`);
  }
});

test("listener/ opens no watched file by a name: only watch roots (O_PATH) and O_PATH fds it resolved", () => {
  const opens = /\bopenPath\(|\bopenSync\(|createReadStream\(|\bopenAsync\(|\bopenBeneath\(|\bopen as\b|\bfs\.open\b/;
  for (const { file, text } of sources("listener")) {
    if (!["listener/watched-path.ts", "listener/mesh-worker.ts"].includes(file)) {
      assert.doesNotMatch(text, opens, `${file} opens a path`);
    }
    if (!["listener/classify-access.ts", "listener/config.ts"].includes(file)) {
      assert.doesNotMatch(text, /readFileSync\(/, `${file} reads a file by path`);
    }
  }
  const classify = readFileSync(join(root, "listener/classify-access.ts"), "utf8");
  for (const m of classify.matchAll(/readProc\(`([^`]+)`\)/g)) assert.match(m[1], /^\/proc\//);
  // watched-path: the configured watch roots, as O_PATH directories; everything beneath them
  // only through openat2 confined to those roots.
  const watched = readFileSync(join(root, "listener/watched-path.ts"), "utf8");
  assert.deepEqual(
    [...watched.matchAll(/\b(openPath|openBeneath)\(([^)]*)\)/g)].map((m) => `${m[1]}(${m[2]})`),
    ["openPath(dir, FAN.O_PATH | FAN.O_DIRECTORY)", "openBeneath(root.fd, rel)"],
  );
  // mesh-worker: reopens only an O_PATH fd that watched-path resolved, through /proc/self/fd.
  const mesh = readFileSync(join(root, "listener/mesh-worker.ts"), "utf8");
  const calls = [...mesh.matchAll(/\b(openPath|openAsync)\(([^,]*),/g)];
  assert.ok(calls.length > 0);
  for (const m of calls) assert.match(m[2], /^procFd\(\w+\)$/, `mesh-worker opens ${m[2]}`);
  assert.match(mesh, /const procFd = \(fd: number\) => `\/proc\/self\/fd\/\$\{fd\}`;/);
});

test("every module starts with a charter comment", () => {
  for (const dir of ["listener", "recall-service", "holder", "cli", "proto"]) {
    for (const { file, text } of sources(dir)) assert.match(text, /^\/\/ \S/, `${file} has no charter comment`);
  }
});
