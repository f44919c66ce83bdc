// The systemd deployment (deploy/systemd): fanrecall-listener.service,
// fanrecall-recall.service, fanrecall-holder.service and fanrecall-policy.service, checked two ways. `systemd-analyze verify` loads copies of both
// units offline (no systemd as PID 1, no daemon-reload) and must report nothing; a negative
// control with a misspelled directive shows the check can fail. The units are also read as
// text for the privilege split: the recall service is an unprivileged user with no
// capabilities, no way to gain any, and only unix and IP sockets; the listener is root with a
// bounding set, Type=notify and an fd store; the recall service starts before the listener,
// and the listener before the services that read watched data; the policy is root with only
// the walk's capabilities, after and bound to the listener. Cross-checks against
// sysusers.d/fanrecall.conf and install.sh keep the names they share in step.
//
// Owns: these checks only. Writes nothing outside its temporary directory and never edits
// the units under test. Verifier: `systemd-analyze` (Debian package systemd). Missing:
// skipped on a workstation, a failure with CI=true.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { RunResult } from "../helpers/deploy-tools.js";
import { DEPLOY_DIR, REPO_ROOT, requireTool, run } from "../helpers/deploy-tools.js";

const SYSTEMD_DIR = join(DEPLOY_DIR, "systemd");
const LISTENER = "fanrecall-listener.service";
const RECALL = "fanrecall-recall.service";
const HOLDER = "fanrecall-holder.service";
const POLICY = "fanrecall-policy.service";
const UNITS = [LISTENER, RECALL, HOLDER, POLICY] as const;
const VERIFY_WHY = "systemd-analyze verify checks deploy/systemd's units (Debian package systemd)";

// --man=no: the units name no man pages to look up. --generators=no: generators would need a
// running system and write outside the temporary directory. --recursive-errors=one: report
// the named units and their direct dependencies only (the host's stock units are not under
// test), and, with systemd 252, exit non-zero on any warning about a named unit (the default,
// =yes, exits 0 after "Unknown key ..."). No --root=: systemd-analyze would then look for
// ExecStart='s binary and every dependency (sysinit.target, network-online.target, ...)
// inside that root, so the root would need a copy of node and of systemd's unit directory;
// the host's units come with the package that ships systemd-analyze.
const VERIFY_FLAGS = ["verify", "--man=no", "--generators=no", "--recursive-errors=one"];

/** The Kubernetes classifying set, plus the mesh admin component's (one unit serves both). */
const LISTENER_CAPS = [
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_LEASE",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SYS_ADMIN",
  "CAP_SYS_PTRACE",
];
const RECALL_FAMILIES = ["AF_INET", "AF_INET6", "AF_UNIX"];
/** The policy's walk: list every directory, read the trusted.* stub state and pin. */
const POLICY_CAPS = ["CAP_DAC_READ_SEARCH", "CAP_SYS_ADMIN"];
/** The readers of watched data the listener orders itself before. */
const READERS = ["nfs-server.service", "smbd.service"];

const work = mkdtempSync(join(tmpdir(), "fanrecall-deploy-systemd-"));
after(() => rmSync(work, { recursive: true, force: true }));

// --- A unit file as text: [Section] then Key=Value lines, every assignment kept in order.

/** section -> key -> its assignments, in file order (a key may be assigned more than once). */
type Unit = Map<string, Map<string, string[]>>;

function parseUnit(text: string, what: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i].trim();
    const lineNo = i + 1;
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    // A trailing backslash continues the value on the next line, joined with a space.
    while (line.endsWith("\\") && i + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++i].trim()}`;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      section = unit.get(header[1]) ?? new Map<string, string[]>();
      unit.set(header[1], section);
      continue;
    }
    const eq = line.indexOf("=");
    assert.ok(section, `${what}:${lineNo}: an assignment before any [Section]`);
    assert.ok(eq > 0, `${what}:${lineNo}: not Key=Value: ${line}`);
    const key = line.slice(0, eq).trim();
    const values = section.get(key) ?? [];
    values.push(line.slice(eq + 1).trim());
    section.set(key, values);
  }
  return unit;
}

function assignments(unit: Unit, section: string, key: string): string[] {
  return unit.get(section)?.get(key) ?? [];
}

/** The value of a key assigned at most once (undefined when not assigned). */
function single(unit: Unit, section: string, key: string): string | undefined {
  const all = assignments(unit, section, key);
  assert.ok(all.length <= 1, `[${section}] ${key}= is assigned ${all.length} times: ${all.join(" | ")}`);
  return all[0];
}

/** A space-separated list directive (Before=, CapabilityBoundingSet=, ...): an empty assignment resets it. */
function list(unit: Unit, section: string, key: string): string[] {
  let out: string[] = [];
  for (const v of assignments(unit, section, key)) out = v === "" ? [] : [...out, ...v.split(/\s+/)];
  return out;
}

function isTrue(v: string | undefined): boolean {
  return v !== undefined && ["yes", "true", "on", "1"].includes(v.toLowerCase());
}

const sourceText = (name: string) => readFileSync(join(SYSTEMD_DIR, name), "utf8");
const parsed = (name: string) => parseUnit(sourceText(name), name);

// --- Copies for systemd-analyze: only what cannot exist on a test machine is rewritten.

/** A path as one word of an Exec line: specifiers (%) and variables ($) escaped, quoted if need be. */
function execWord(path: string): string {
  const escaped = path.replace(/[%$]/g, (c) => c + c);
  return /[\s"'\\]/.test(escaped) ? `"${escaped.replace(/["\\]/g, "\\$&")}"` : escaped;
}

/**
 * The unit's text with ExecStart='s /usr/bin/node and /opt/fanrecall/ pointing at this node
 * and this checkout, and EnvironmentFile=/etc/fanrecall/X at a copy of deploy/systemd/X.example
 * in `envDir`. Fails when a unit no longer has what is rewritten, or keeps a path that is not.
 */
function testCopy(name: string, text: string, envDir: string): string {
  let execs = 0;
  let envFiles = 0;
  const out = text.split("\n").map((line) => {
    const exec = /^(ExecStart=)\/usr\/bin\/node (\/opt\/fanrecall\/)(\S+)(.*)$/.exec(line);
    if (exec) {
      execs++;
      const script = join(REPO_ROOT, exec[3]);
      assert.ok(existsSync(script), `${name}: ExecStart='s ${exec[2]}${exec[3]} is ${script} in this checkout`);
      return `${exec[1]}${execWord(process.execPath)} ${execWord(script)}${exec[4]}`;
    }
    const cred = /^(LoadCredential=[\w.-]+:)\/etc\/fanrecall\/([\w.-]+)$/.exec(line);
    if (cred) {
      writeFileSync(join(envDir, cred[2]), "test-secret\n", { mode: 0o600 });
      return `${cred[1]}${join(envDir, cred[2]).replaceAll("%", "%%")}`;
    }
    const env = /^(EnvironmentFile=-?)\/etc\/fanrecall\/([\w.-]+)$/.exec(line);
    if (env) {
      envFiles++;
      const example = join(SYSTEMD_DIR, `${env[2]}.example`);
      assert.ok(existsSync(example), `${name}: EnvironmentFile=/etc/fanrecall/${env[2]} has an example`);
      copyFileSync(example, join(envDir, env[2]));
      return `${env[1]}${join(envDir, env[2]).replaceAll("%", "%%")}`;
    }
    return line;
  });
  assert.equal(execs, 1, `${name}: one ExecStart=/usr/bin/node /opt/fanrecall/... (update the rewrite)`);
  assert.ok(envFiles <= 1, `${name}: at most one EnvironmentFile=/etc/fanrecall/... (update the rewrite)`);
  const left = out.filter((l) => !l.trimStart().startsWith("#") && /\/(opt|etc)\/fanrecall\b/.test(l));
  assert.deepEqual(left, [], `${name}: install paths left in the test copy`);
  return out.join("\n");
}

/** Writes test copies of `units` (name -> text) into a new directory; their absolute paths. */
function writeCopies(dirName: string, units: ReadonlyMap<string, string>): string[] {
  const dir = join(work, dirName);
  const envDir = join(dir, "env");
  mkdirSync(envDir, { recursive: true });
  return [...units].map(([name, text]) => {
    const path = join(dir, name);
    writeFileSync(path, testCopy(name, text, envDir));
    return path;
  });
}

/**
 * What systemd-analyze verify reported: a non-zero exit and every stderr line. Nothing is
 * filtered: a clean run of systemd 252 on these units prints nothing at all.
 */
function verifyProblems(r: RunResult): string[] {
  const problems = r.stderr.split("\n").filter((l) => l.trim() !== "");
  if (r.status !== 0) problems.unshift(`exit status ${r.status}`);
  return problems;
}

describe("deploy/systemd: systemd-analyze verify", () => {
  test("every unit verifies offline: exit status 0 and nothing on stderr", (t) => {
    const tool = requireTool(t, ["systemd-analyze"], VERIFY_WHY);
    if (!tool) return;
    const paths = writeCopies("good", new Map(UNITS.map((u) => [u, sourceText(u)])));
    const r = run(tool, [...VERIFY_FLAGS, ...paths]);
    assert.deepEqual(verifyProblems(r), [], `${basename(tool)} ${VERIFY_FLAGS.join(" ")} ${paths.join(" ")}`);
  });

  test("negative control: a misspelled directive (NoNewPrivilegs=) is reported", (t) => {
    const tool = requireTool(t, ["systemd-analyze"], VERIFY_WHY);
    if (!tool) return;
    const good = sourceText(RECALL);
    const bad = good.replace(/^NoNewPrivileges=yes$/m, "NoNewPrivilegs=yes");
    assert.notEqual(bad, good, "the misspelling went in");
    const paths = writeCopies("misspelled", new Map([[RECALL, bad]]));
    const problems = verifyProblems(run(tool, [...VERIFY_FLAGS, ...paths]));
    assert.ok(problems.length > 0, "the misspelled unit verified clean: the check cannot fail");
    assert.match(problems.join("\n"), /Unknown key 'NoNewPrivilegs'/);
  });
});

describe("deploy/systemd: the privilege split in the unit files", () => {
  test(`${RECALL}: a non-root user, no capabilities, NoNewPrivileges, only AF_UNIX/AF_INET/AF_INET6`, () => {
    const u = parsed(RECALL);
    const user = single(u, "Service", "User");
    const dynamic = isTrue(single(u, "Service", "DynamicUser"));
    assert.ok(
      dynamic || (user !== undefined && user !== "" && user !== "root" && user !== "0"),
      "User= or DynamicUser=yes",
    );
    assert.deepEqual(assignments(u, "Service", "CapabilityBoundingSet"), [""], "CapabilityBoundingSet= (empty), once");
    assert.deepEqual(list(u, "Service", "AmbientCapabilities"), [], "no ambient capabilities");
    assert.equal(single(u, "Service", "NoNewPrivileges"), "yes");
    const families = list(u, "Service", "RestrictAddressFamilies");
    assert.deepEqual([...families].sort(), RECALL_FAMILIES, "an allow list (no ~) of exactly these families");
    assert.equal(single(u, "Service", "ProtectSystem"), "strict");
  });

  test(`${LISTENER}: root, Type=notify with an fd store, a bounding set of exactly its capabilities`, () => {
    const u = parsed(LISTENER);
    assert.equal(single(u, "Service", "User"), undefined, "no User=: the listener runs as root");
    assert.ok(!isTrue(single(u, "Service", "DynamicUser")), "no DynamicUser=");
    assert.equal(single(u, "Service", "Type"), "notify");
    const fdStore = Number(single(u, "Service", "FileDescriptorStoreMax"));
    assert.ok(Number.isInteger(fdStore) && fdStore >= 1, `FileDescriptorStoreMax= >= 1 (got ${fdStore})`);
    const caps = list(u, "Service", "CapabilityBoundingSet");
    assert.ok(caps.includes("CAP_SYS_ADMIN"), "the bounding set keeps CAP_SYS_ADMIN (fanotify)");
    assert.deepEqual([...caps].sort(), LISTENER_CAPS, "an allow list (no ~) of exactly these capabilities");
    assert.deepEqual(list(u, "Service", "AmbientCapabilities"), []);
    assert.equal(single(u, "Service", "NoNewPrivileges"), "yes");
    assert.deepEqual(list(u, "Service", "RestrictAddressFamilies"), ["AF_UNIX"]);
    assert.ok(isTrue(single(u, "Service", "PrivateNetwork")), "PrivateNetwork=yes");
  });

  test(`${POLICY}: root, a bounding set of the walk's capabilities only, read-only, no network`, () => {
    const u = parsed(POLICY);
    assert.equal(single(u, "Service", "User"), undefined, "no User=: the policy runs as root");
    assert.deepEqual([...list(u, "Service", "CapabilityBoundingSet")].sort(), POLICY_CAPS);
    assert.deepEqual(list(u, "Service", "AmbientCapabilities"), []);
    assert.equal(single(u, "Service", "NoNewPrivileges"), "yes");
    assert.equal(single(u, "Service", "ProtectSystem"), "strict");
    assert.deepEqual(assignments(u, "Service", "ReadWritePaths"), [], "it writes nothing");
    assert.deepEqual(list(u, "Service", "RestrictAddressFamilies"), ["AF_UNIX"]);
    assert.ok(isTrue(single(u, "Service", "PrivateNetwork")), "PrivateNetwork=yes");
    assert.deepEqual(list(u, "Service", "SystemCallFilter"), ["@system-service"]);
    assert.ok(list(u, "Service", "SupplementaryGroups").includes("fanrecall"), "it reaches recall.sock (metrics)");
    assert.match(single(u, "Service", "ExecStart") ?? "", / policy \$FANRECALL_POLICY_DIRS$/);
    for (const dep of ["Requires", "After"])
      assert.ok(list(u, "Unit", dep).includes(LISTENER), `${POLICY} has ${dep}=${LISTENER}`);
    assert.ok(!list(parsed(LISTENER), "Unit", "After").includes(POLICY), "the listener never waits for the policy");
  });

  test("start order: the recall service, then the listener, then the readers of watched data", () => {
    const l = parsed(LISTENER);
    const r = parsed(RECALL);
    const before = list(l, "Unit", "Before");
    for (const reader of READERS) assert.ok(before.includes(reader), `${LISTENER} has Before=${reader}`);
    assert.ok(list(l, "Unit", "After").includes(RECALL), `${LISTENER} has After=${RECALL}`);
    assert.ok(list(l, "Unit", "Wants").includes(RECALL), `${LISTENER} has Wants=${RECALL}`);
    // systemd-analyze verify does not report an ordering cycle between two units it loads.
    assert.ok(!list(r, "Unit", "After").includes(LISTENER), `${RECALL} is not After= the listener (a cycle)`);
    assert.ok(!list(l, "Unit", "Before").includes(RECALL), `${LISTENER} is not Before= the recall service`);
  });

  test("the names and ids the units, sysusers.d and install.sh share agree", () => {
    const l = parsed(LISTENER);
    const r = parsed(RECALL);
    const sysusers = readFileSync(join(SYSTEMD_DIR, "sysusers.d", "fanrecall.conf"), "utf8")
      .split("\n")
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f[0] === "u")
      .map((f) => f[1]);
    const user = single(r, "Service", "User");
    assert.ok(user && sysusers.includes(user), `User=${user} is created by sysusers.d/fanrecall.conf`);
    assert.equal(single(r, "Service", "Group"), user, "a u line also creates the group of that name");
    assert.ok(list(l, "Service", "SupplementaryGroups").includes(user), "the listener joins the recall group");
    const env = list(r, "Service", "Environment");
    assert.ok(env.includes("FANRECALL_LISTENER_UID=0"), "the recall service expects a root listener");
    const install = readFileSync(join(SYSTEMD_DIR, "install.sh"), "utf8");
    for (const unit of UNITS) assert.ok(install.includes(`"$src/${unit}"`), `install.sh installs ${unit}`);
    assert.ok(install.includes(`"$src/sysusers.d/fanrecall.conf"`), "install.sh installs sysusers.d/fanrecall.conf");
  });

  test(`${RECALL}: the S3 secret key is a credential file, never in the environment`, () => {
    const r = parsed(RECALL);
    const creds = assignments(r, "Service", "LoadCredential");
    assert.deepEqual(creds, ["s3-secret-key:/etc/fanrecall/s3-secret-key"]);
    const env = list(r, "Service", "Environment");
    assert.ok(env.includes("FANRECALL_S3_SECRET_KEY_FILE=%d/s3-secret-key"), env.join(" "));
    assert.ok(!env.some((e) => e.startsWith("FANRECALL_S3_SECRET_KEY=")), "no secret in Environment=");
    const example = readFileSync(join(SYSTEMD_DIR, "recall-service.env.example"), "utf8");
    assert.doesNotMatch(example, /^\s*FANRECALL_S3_SECRET_KEY=/m, "no secret key in the EnvironmentFile");
    const install = readFileSync(join(SYSTEMD_DIR, "install.sh"), "utf8");
    assert.match(install, /-m 0600 \/dev\/null "\$root\/etc\/fanrecall\/s3-secret-key"/, "install.sh makes it 0600");
  });
});
