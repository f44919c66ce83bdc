// The instance registry: admin commands find the instance watching a path by the watched
// directory's (dev, ino), never by string prefix; stale and ambiguous records are handled.
// Uses a temporary registry directory (no root, nothing outside it touched).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findRunDir, liveInstances, registerInstance } from "../../cli/instance-registry.js";

function scratch(): { dir: string; registry: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "fanrecall-registry-"));
  return { dir, registry: join(dir, "run", "instances"), done: () => rmSync(dir, { recursive: true, force: true }) };
}

function startTimeOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

/** A record as another running instance (this process's parent) would have written it. */
function writeOther(registry: string, name: string, runDir: string, watch: string, pid = process.ppid): void {
  const st = statSync(watch);
  const rec = {
    pid,
    startTime: startTimeOf(process.ppid),
    runDir,
    stateDir: "/x",
    watch: [{ path: watch, ...{ dev: st.dev, ino: st.ino } }],
  };
  writeFileSync(join(registry, `${name}.json`), JSON.stringify(rec));
}

test("a path beneath a watched directory finds that instance's run dir; unregister removes the record", (t) => {
  const s = scratch();
  t.after(s.done);
  const watch = join(s.dir, "data");
  mkdirSync(join(watch, "sub"), { recursive: true });
  const unregister = registerInstance({ runDir: "/state/run", stateDir: "/state", watch: [watch] }, s.registry);
  assert.equal(statSync(s.registry).mode & 0o777, 0o700, "the registry is its owner's alone");
  assert.equal(findRunDir([join(watch, "sub", "file-that-does-not-exist")], s.registry), "/state/run");
  assert.equal(findRunDir([watch], s.registry), "/state/run");
  assert.equal(liveInstances(s.registry).length, 1);
  unregister();
  assert.deepEqual(readdirSync(s.registry), []);
  assert.notEqual(findRunDir([join(watch, "sub")], s.registry), "/state/run");
});

test("matching is by the directory's identity: a string prefix, a symlink or a replaced directory does not match", (t) => {
  const s = scratch();
  t.after(s.done);
  const watch = join(s.dir, "a");
  mkdirSync(watch);
  mkdirSync(join(s.dir, "ab"));
  symlinkSync(watch, join(s.dir, "link"));
  const unregister = registerInstance({ runDir: "/r1", stateDir: "/s1", watch: [watch] }, s.registry);
  t.after(unregister);
  assert.equal(findRunDir([join(watch, "f")], s.registry), "/r1", "control: beneath it");
  assert.notEqual(findRunDir([join(s.dir, "ab", "f")], s.registry), "/r1", "a/ is not a prefix of ab/");
  assert.notEqual(findRunDir([join(s.dir, "link", "f")], s.registry), "/r1", "no symlink followed");
  renameSync(watch, `${watch}.old`); // kept, so the new directory cannot reuse its inode
  mkdirSync(watch);
  assert.notEqual(findRunDir([join(watch, "f")], s.registry), "/r1", "another directory at the same path");
});

test("a stale record (pid gone, or reused) is ignored; two instances on one directory, or paths of two, are refused", (t) => {
  const s = scratch();
  t.after(s.done);
  const a = join(s.dir, "a");
  const b = join(s.dir, "b");
  mkdirSync(a);
  mkdirSync(b);
  const unregister = registerInstance({ runDir: "/ra", stateDir: "/sa", watch: [a] }, s.registry);
  t.after(unregister);
  writeOther(s.registry, "stale", "/stale", a, 2 ** 22 + 1); // above pid_max: never running
  assert.equal(findRunDir([join(a, "f")], s.registry), "/ra", "the stale record is ignored");
  writeOther(s.registry, "other", "/rb", b);
  assert.equal(findRunDir([join(b, "f")], s.registry), "/rb");
  assert.throws(() => findRunDir([join(a, "f"), join(b, "f")], s.registry), /different instances \(\/ra, \/rb\)/);
  writeOther(s.registry, "same", "/rc", a);
  assert.throws(() => findRunDir([join(a, "f")], s.registry), /watched by 2 running instances .*pass --run-dir/);
});
