// The settings module: flags win over the environment, which wins over the --config file,
// which wins over the default; each type refuses what it must, always in the same words
// (the words --help shows); --help lists every setting of the table.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, loadSettings } from "../../settings/settings.js";
import { helpText } from "../../settings/help-text.js";
import type { CommandSpec } from "../../settings/setting-types.js";

const SETTINGS = [
  { name: "timeout-ms", key: "timeoutMs", env: "T_TIMEOUT", type: "int", min: 100, max: 1000, default: 300, help: "t" },
  {
    name: "uid",
    key: "uid",
    env: "T_UID",
    type: "int",
    min: 1,
    max: 4294967294,
    check: (n: number) => (n === 65534 ? "not 65534 (nobody)" : null),
    help: "u",
  },
  { name: "share", key: "share", env: "T_SHARE", type: "number", above: 0, max: 1, default: 0.5, help: "s" },
  {
    name: "name",
    key: "name",
    env: "T_NAME",
    type: "string",
    pattern: /^[a-z]+$/,
    shape: "lower-case letters",
    help: "n",
  },
  { name: "dir", key: "dir", env: "T_DIR", type: "path", default: "/run/x", help: "d" },
  { name: "sock", key: "sock", env: "T_SOCK", type: "path", allowEmpty: true, help: "k" },
  { name: "on", key: "on", env: "T_ON", type: "bool", default: false, help: "o" },
  { name: "json", key: "json", type: "flag", help: "j" },
  { name: "watch", key: "watch", env: "T_WATCH", type: "list", separator: ":", paths: true, help: "w" },
  {
    name: "mode",
    key: "mode",
    env: "T_MODE",
    type: "enum",
    choices: ["auto", "range", "whole"],
    default: "auto",
    help: "m",
  },
  { name: "user", key: "user", env: "T_USER", type: "user", help: "r" },
  { name: "address", key: "address", env: "T_ADDRESS", type: "address", help: "a" },
] as const;

const SPEC = { usage: "t [options]", settings: SETTINGS, configFile: true } satisfies CommandSpec;

const load = (argv: string[], env: Record<string, string> = {}) => loadSettings(SPEC, argv, env);

function withConfig(content: unknown, fn: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "fanrecall-settings-"));
  try {
    const path = join(dir, "config.json");
    writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
    fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("defaults when nothing is given; undefined for a setting without one", () => {
  const s = load([]);
  assert.equal(s.timeoutMs, 300);
  assert.equal(s.share, 0.5);
  assert.equal(s.dir, "/run/x");
  assert.equal(s.on, false);
  assert.equal(s.json, false);
  assert.deepEqual(s.watch, []);
  assert.equal(s.mode, "auto");
  assert.equal(s.uid, undefined);
  assert.equal(s.user, undefined);
  assert.equal(s.address, undefined);
  assert.deepEqual(s.positionals, []);
});

test("precedence: flag over environment over config file over default", () => {
  withConfig({ timeoutMs: 400, watch: ["/f1", "/f2"], mode: "whole" }, (path) => {
    const env = { T_TIMEOUT: "500", FANRECALL_CONFIG: path };
    assert.equal(load(["--timeout-ms", "600"], env).timeoutMs, 600);
    assert.equal(load([], env).timeoutMs, 500);
    assert.equal(load([], { FANRECALL_CONFIG: path }).timeoutMs, 400);
    assert.equal(load(["--config", path]).timeoutMs, 400);
    assert.equal(load([]).timeoutMs, 300);
    // Lists: the flags (all of them) replace the environment's items, which replace the file's.
    assert.deepEqual(load(["--watch", "/a", "--watch=/b"], { ...env, T_WATCH: "/e" }).watch, ["/a", "/b"]);
    assert.deepEqual(load([], { ...env, T_WATCH: "/e1::/e2" }).watch, ["/e1", "/e2"]);
    assert.deepEqual(load([], env).watch, ["/f1", "/f2"]);
    assert.equal(load([], env).mode, "whole");
    // A repeated single-valued flag: the last one.
    assert.equal(load(["--timeout-ms", "200", "--timeout-ms", "700"]).timeoutMs, 700);
  });
});

test("int: whole numbers within bounds only; never NaN, a fraction, an exponent or empty", () => {
  assert.equal(load(["--uid", "1234"]).uid, 1234);
  for (const bad of ["x", "", "1.5", "1e3", "0x10", " 12", "-1", "0", "4294967295", "99999999999999999999"]) {
    assert.throws(() => load(["--uid", bad]), {
      message: `--uid: must be an integer from 1 to 4294967294, not '${bad}'`,
    });
  }
  assert.throws(() => load(["--uid", "65534"]), { message: "--uid: must be not 65534 (nobody), not '65534'" });
  assert.throws(() => load(["--timeout-ms=99"]), {
    message: "--timeout-ms: must be an integer from 100 to 1000, not '99'",
  });
});

test("number, string pattern, bool, enum", () => {
  assert.equal(load(["--share", "1"]).share, 1);
  assert.equal(load(["--share", ".25"]).share, 0.25);
  for (const bad of ["0", "1.01", "x", "", "NaN", "Infinity"]) {
    assert.throws(() => load(["--share", bad]), {
      message: `--share: must be a number above 0 and at most 1, not '${bad}'`,
    });
  }
  assert.equal(load(["--name", "abc"]).name, "abc");
  assert.throws(() => load(["--name", "A"]), { message: "--name: must be lower-case letters, not 'A'" });
  assert.equal(load(["--on", "true"]).on, true);
  assert.equal(load([], { T_ON: "false" }).on, false);
  assert.throws(() => load(["--on", "yes"]), { message: "--on: must be true or false, not 'yes'" });
  assert.equal(load(["--mode", "range"]).mode, "range");
  assert.throws(() => load(["--mode", "sideways"]), {
    message: "--mode: must be auto, range or whole, not 'sideways'",
  });
});

test("path: made absolute; empty only where allowed, and then kept empty", () => {
  assert.equal(load(["--dir", "rel/x"]).dir, resolve("rel/x"));
  assert.throws(() => load(["--dir", ""]), { message: "--dir: must be a path, not ''" });
  assert.equal(load(["--sock", ""]).sock, "");
  assert.equal(load([], { T_SOCK: "" }).sock, "");
  assert.deepEqual(load(["--watch", "w"]).watch, [resolve("w")]);
});

test("flag: true when given, and refuses a value", () => {
  assert.equal(load(["--json"]).json, true);
  assert.throws(() => load(["--json=1"]), { message: "--json: takes no value, not '1'" });
});

test("user and address", () => {
  assert.deepEqual(load(["--user", "1000"]).user, { uid: 1000, gid: 1000 });
  assert.deepEqual(load(["--user", "1000:2000"]).user, { uid: 1000, gid: 2000 });
  for (const bad of ["x", "1000:", ":1", "-1", "4294967295", "1000:x"]) {
    assert.throws(() => load(["--user", bad]), /^Error: --user: must be UID or UID:GID/);
  }
  assert.deepEqual(load(["--address", "0.0.0.0:9443"]).address, { host: "0.0.0.0", port: 9443 });
  assert.deepEqual(load(["--address", "[::1]:0"]).address, { host: "::1", port: 0 });
  assert.equal(load([], { T_ADDRESS: "" }).address, undefined);
  for (const bad of ["9443", ":9443", "h:65536", "h:x"]) {
    assert.throws(() => load(["--address", bad]), {
      message: `--address: must be ${describe(SETTINGS[11])}, not '${bad}'`,
    });
  }
});

test("the same refusal from a flag, the environment and the config file, each saying where", () => {
  const rule = "must be an integer from 100 to 1000, not '5'";
  assert.throws(() => load(["--timeout-ms", "5"]), { message: `--timeout-ms: ${rule}` });
  assert.throws(() => load([], { T_TIMEOUT: "5" }), { message: `--timeout-ms: ${rule} (from T_TIMEOUT)` });
  withConfig({ timeoutMs: 5 }, (path) => {
    assert.throws(() => load(["--config", path]), { message: `--timeout-ms: ${rule} (from "timeoutMs" in ${path})` });
  });
  withConfig({ timeoutMs: { a: 1 } }, (path) => {
    assert.throws(() => load(["--config", path]), /^Error: --timeout-ms: must be a string, number or boolean/);
  });
  withConfig("[1]", (path) => {
    assert.throws(() => load(["--config", path]), { message: `--config: ${path} must hold a JSON object` });
  });
  withConfig("{", (path) => assert.throws(() => load(["--config", path]), /^Error: --config: cannot read/));
});

test("unknown options, missing values, positionals, required settings", () => {
  assert.throws(() => load(["--bogus", "1"]), { message: "unknown option '--bogus'" });
  assert.throws(() => load(["-x"]), { message: "unknown option '-x'" });
  assert.throws(() => load(["--uid"]), { message: "--uid: needs a value" });
  assert.throws(() => load(["stray"]), { message: "unexpected argument 'stray'" });
  // A value may start with '-': it is then refused as a value, not mistaken for a missing one.
  assert.throws(() => load(["--uid", "-5"]), /^Error: --uid: must be an integer/);
  const paths = { usage: "p PATH...", settings: SETTINGS.slice(7, 8), positionals: { name: "PATH", min: 1 } };
  assert.deepEqual(loadSettings(paths, ["a", "--json", "--", "--b"], {}).positionals, ["a", "--b"]);
  assert.equal(loadSettings(paths, ["a", "--json"], {}).json, true);
  assert.throws(() => loadSettings(paths, ["--json"], {}), { message: "at least one PATH is required" });
  const required = {
    usage: "r",
    configFile: true,
    settings: [
      { name: "watch", key: "watch", env: "W", type: "list", separator: ":", arg: "DIR", required: true, help: "w" },
    ],
  } as const;
  assert.throws(() => loadSettings(required, [], { W: "" }), {
    message: `--watch DIR, or W, or "watch" in the --config file is required`,
  });
  assert.deepEqual(loadSettings(required, ["--watch", "/d"], {}).watch, ["/d"]);
});

test("--help lists every setting with its environment variable, key, rule and default", () => {
  const help = helpText({ ...SPEC, about: "About it.", footer: "Footer." });
  assert.ok(help.startsWith("Usage: t [options]\n\nAbout it.\n"), help);
  assert.ok(help.endsWith("Footer.\n"), help);
  for (const s of SETTINGS) {
    assert.match(help, new RegExp(`^  --${s.name}\\b`, "m"), s.name);
    if ("env" in s) assert.ok(help.includes(s.env), s.env);
    assert.ok(help.includes(`"${s.key}"`), s.key);
  }
  // The rule is the one an error states, word for word.
  assert.ok(help.includes("(an integer from 100 to 1000; default 300)"), help);
  assert.ok(help.includes("auto, range or whole; default auto"), help);
  assert.match(help, /^ {2}--config FILE +FANRECALL_CONFIG$/m);
  for (const line of help.split("\n")) assert.ok(line.length <= 96, line);
});

test("duration: 0 or a number with a unit, within bounds, loaded as milliseconds; help shows the unit", () => {
  const spec = {
    usage: "t",
    settings: [
      {
        name: "retain",
        key: "retain",
        type: "duration",
        min: 0,
        max: 3650 * 86_400_000,
        default: 30 * 86_400_000,
        help: "keep",
      },
    ],
  } as const satisfies CommandSpec;
  assert.equal(loadSettings(spec, []).retain, 30 * 86_400_000);
  const cases: Array<[string, number]> = [
    ["0", 0],
    ["500ms", 500],
    ["90s", 90_000],
    ["15m", 900_000],
    ["1h", 3_600_000],
    ["2d", 172_800_000],
  ];
  for (const [raw, ms] of cases) assert.equal(loadSettings(spec, ["--retain", raw]).retain, ms, raw);
  for (const bad of ["", "5", "1w", "-1d", "1.5h", "3651d", " 1d", "1d "]) {
    assert.throws(() => loadSettings(spec, ["--retain", bad]), /--retain: must be a duration such as 0, 500ms/, bad);
  }
  assert.match(helpText(spec), /--retain DURATION[\s\S]*default 30d/);
});
