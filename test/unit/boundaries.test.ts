// The privilege split, checked mechanically: the root listener imports no S3 client, no
// network module and nothing from the recall service; the recall service imports nothing
// from the listener; the listener opens no watched file by a name it was given, except
// through the confined resolution of mesh admin requests (watched-path.ts). The root addon's
// facade exports nothing that only tests call.
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

test("settings/ imports nothing but node: builtins, itself and the run dir's layout, which imports only builtins (both halves load them)", () => {
  const files = sources("settings");
  assert.ok(files.length > 0);
  for (const { file, text } of files) {
    for (const spec of imports(text)) {
      assert.match(spec, /^node:|^\.\/[a-z-]+\.js$|^\.\.\/ipc\/run-dir\.js$/, `${file} imports ${spec}`);
    }
  }
  for (const spec of imports(readFileSync(join(root, "ipc/run-dir.ts"), "utf8"))) {
    assert.match(spec, /^node:/, `ipc/run-dir.ts imports ${spec}`);
  }
});

test("ipc/ imports nothing but node: builtins, native/ and itself (root code and the recall service both load it)", () => {
  const files = sources("ipc");
  assert.ok(files.length > 0);
  for (const { file, text } of files) {
    for (const spec of imports(text)) {
      assert.match(spec, /^node:|^\.\/[a-z-]+\.js$|^\.\.\/native\/index\.js$/, `${file} imports ${spec}`);
    }
  }
});

test("recall-service/ imports nothing from listener/", () => {
  for (const { file, text } of sources("recall-service")) {
    for (const spec of imports(text)) assert.doesNotMatch(spec, /listener\//, `${file} imports ${spec}`);
  }
});

test("listener/ and holder/ open no watched file by a name: only watch roots (O_PATH), then handles through the private view", () => {
  const opens =
    /\bopenPath\(|\bopenSync\(|createReadStream\(|\bopenAsync\(|\bopenBeneath(As)?\(|\bopen as\b|\bfs\.open\b/;
  for (const { file, text } of [...sources("listener"), ...sources("holder")]) {
    if (file !== "listener/watched-path.ts") {
      assert.doesNotMatch(text, opens, `${file} opens a path`);
    }
    if (!["listener/classify-access.ts", "listener/config.ts"].includes(file)) {
      assert.doesNotMatch(text, /readFileSync\(/, `${file} reads a file by path`);
    }
  }
  const classify = readFileSync(join(root, "listener/classify-access.ts"), "utf8");
  const procReads = [...classify.matchAll(/readProc\(`([^`]+)`\)/g)];
  assert.ok(procReads.length > 0);
  for (const m of procReads) assert.match(m[1], /^\/proc\//);
  // watched-path: the configured watch roots, as O_PATH directories; everything beneath them
  // only through openat2 confined to those roots, with the recall service's credentials.
  const watched = readFileSync(join(root, "listener/watched-path.ts"), "utf8");
  assert.deepEqual(
    [...watched.matchAll(/\b(openPath|openBeneath|openBeneathAs)\(([^)]*)\)/g)].map((m) => `${m[1]}(${m[2]})`),
    ["openPath(dir, FAN.O_PATH | FAN.O_DIRECTORY)", "openBeneathAs(root.fd, root.dir, rel, cred)"],
  );
  // writable-view: files are entered by handle only, never by a name.
  const view = readFileSync(join(root, "listener/writable-view.ts"), "utf8");
  assert.deepEqual(
    [...view.matchAll(/native\.(\w+)\(/g)].map((m) => m[1]).filter((f) => /open|reopen/i.test(f)),
    ["openTreeClone", "reopenByHandle"],
  );
});

test("every module starts with a charter comment", () => {
  for (const dir of ["listener", "recall-service", "holder", "cli", "proto", "settings", "ipc"]) {
    for (const { file, text } of sources(dir)) assert.match(text, /^\/\/ \S/, `${file} has no charter comment`);
  }
});

test("native/index.ts exports only what production code calls (tests bring their own helpers)", () => {
  const facade = readFileSync(join(root, "native/index.ts"), "utf8");
  const exported = [...facade.matchAll(/^export (?:function|const|class) (\w+)/gm)].map((m) => m[1]);
  assert.ok(exported.length > 0);
  const used = new Set<string>();
  for (const dir of ["listener", "recall-service", "holder", "cli", "settings", "proto", "ipc"]) {
    for (const { text } of sources(dir)) {
      for (const m of text.matchAll(/\bnative\.(\w+)/g)) used.add(m[1]);
      for (const m of text.matchAll(/import \{([^}]*)\} from "\.\.\/native\/index\.js"/g)) {
        for (const name of m[1].split(",")) used.add(name.trim());
      }
    }
  }
  for (const name of exported)
    assert.ok(used.has(name), `native/index.ts exports ${name}, which no production code calls`);
});
