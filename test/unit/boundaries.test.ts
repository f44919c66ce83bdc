// The privilege split, checked mechanically: the root listener imports no S3 client, no
// network module and nothing from the recall service; the recall service imports nothing
// from the listener; the listener never opens a path except through stat-like calls.
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

test("listener/ never opens a path (only /proc reads in classify-access and config files)", () => {
  for (const { file, text } of sources("listener")) {
    assert.doesNotMatch(text, /\bopenPath\(|\bopenSync\(|createReadStream\(/, `${file} opens a path`);
    if (!["listener/classify-access.ts", "listener/config.ts"].includes(file)) {
      assert.doesNotMatch(text, /readFileSync\(/, `${file} reads a file by path`);
    }
  }
  const classify = readFileSync(join(root, "listener/classify-access.ts"), "utf8");
  for (const m of classify.matchAll(/readProc\(`([^`]+)`\)/g)) assert.match(m[1], /^\/proc\//);
});

test("every module starts with a charter comment", () => {
  for (const dir of ["listener", "recall-service", "holder", "cli", "proto"]) {
    for (const { file, text } of sources(dir)) assert.match(text, /^\/\/ \S/, `${file} has no charter comment`);
  }
});
