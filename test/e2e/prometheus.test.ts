// The Grafana dashboard against a real Prometheus: Debian's `prometheus` (scripts/setup-system.sh)
// runs on 127.0.0.1 with its own config, data directory and port, scraping a real
// `fanrecall start`'s /metrics every second. After recalls, one denied recall (its object
// deleted), one mesh admin call and one `fanrecall policy` pass, every query of deploy/grafana/fanrecall-dashboard.json
// (Grafana's variables substituted as Grafana would for a 1 s scrape interval) must parse and
// return numbers over the test's time range (some above 0, but for gauges of the moment), both
// for "All" instances and for the one instance the $instance variable offers (which it must
// offer before any recall happened).
// And `promtool check metrics` passes on the exposition.
//
// Owns: the Prometheus child (SIGTERM in after(), SIGKILL from an exit hook if the run dies
// first) and its temp dir, plus the loop fs, s3rver, PKI and fanrecall instance it starts.
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isRoot, rootTest } from "../helpers/root.js";
import { runAsNobody } from "../helpers/child.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import type { Ext4 } from "../helpers/loop-fs.js";
import { findFreePortBlock, s3Client, startS3rver } from "../helpers/object-server.js";
import type { ObjectServer } from "../helpers/object-server.js";
import { recallUser, startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";
import { checkReaders, writeRandomFiles } from "../helpers/reader-files.js";
import { makeTestPki } from "../helpers/tls-certs.js";
import type { TestPki } from "../helpers/tls-certs.js";

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DASHBOARD = new URL("../../deploy/grafana/fanrecall-dashboard.json", import.meta.url);
const BUCKET = "fanrecall-prometheus";

interface Panel {
  title?: string;
  targets?: Array<{ expr?: string }>;
  panels?: Panel[];
}
interface Dashboard {
  panels: Panel[];
  templating: { list: Array<{ name: string; definition?: string }> };
}

/** Every panel query of the dashboard, with its panel's title (rows' nested panels too). */
function dashboardQueries(d: Dashboard): Array<{ title: string; expr: string }> {
  const out: Array<{ title: string; expr: string }> = [];
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ title: p.title ?? "?", expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(d.panels);
  return out;
}

/**
 * Grafana's substitutions for a 1 s scrape interval and a 1 s step: $__rate_interval is
 * max($__interval + scrape interval, 4 x scrape interval). Anything left starting with `$`
 * is a variable this test does not know, and fails.
 */
function substitute(expr: string, instance: string): string {
  const out = expr
    .replaceAll("$__rate_interval", "4s")
    .replaceAll("$__interval", "1s")
    .replaceAll(/\$\{instance(?::\w+)?\}|\$instance/g, instance);
  assert.doesNotMatch(out, /\$/, `an unknown Grafana variable in ${expr}`);
  return out;
}

interface Prometheus {
  url: string;
  output(): string;
  stop(): Promise<void>;
}

async function startPrometheus(target: string): Promise<Prometheus> {
  const which = spawnSync("sh", ["-c", "command -v prometheus"], { encoding: "utf8" });
  assert.equal(which.status, 0, "prometheus is not installed: run scripts/setup-system.sh as root");
  const dir = mkdtempSync(join(tmpdir(), "fanrecall-prometheus-"));
  const config = join(dir, "prometheus.yml");
  writeFileSync(
    config,
    [
      "global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }",
      "scrape_configs:",
      "  - job_name: fanrecall",
      `    static_configs: [{ targets: ["${target}"] }]`,
      "",
    ].join("\n"),
  );
  const port = await findFreePortBlock(1);
  const child: ChildProcess = spawn(
    "prometheus",
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout?.setEncoding("utf8").on("data", (s: string) => (out += s));
  child.stderr?.setEncoding("utf8").on("data", (s: string) => (out += s));
  const killNow = () => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL");
  process.once("exit", killNow);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const timer = setTimeout(killNow, 10_000);
      await exited;
      clearTimeout(timer);
    }
    process.off("exit", killNow);
    rmSync(dir, { recursive: true, force: true });
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) return { url, output: () => out, stop };
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus did not become ready:\n${out}`);
    }
    await sleep(200);
  }
}

interface ApiResponse {
  status: string;
  error?: string;
  data: unknown;
}

async function api(prom: Prometheus, path: string, params: Record<string, string>): Promise<ApiResponse> {
  const res = await fetch(`${prom.url}${path}?${new URLSearchParams(params).toString()}`);
  const text = await res.text();
  try {
    return JSON.parse(text) as ApiResponse;
  } catch {
    return { status: "error", error: `HTTP ${res.status}: ${text}`, data: null };
  }
}

/**
 * Gauges of the moment (recalls running, events held): between recalls they are 0, and a
 * scrape may well never land inside one. Every other query must show the test's activity.
 */
const MAY_STAY_ZERO = /_in_flight|_queue_depth/;

/**
 * Why a range query fails the dashboard (a parse error, no series, no number, or only zeros
 * where the test's activity must show), or null when it does not.
 */
async function rangeProblem(prom: Prometheus, query: string, startS: number): Promise<string | null> {
  const endS = Date.now() / 1000;
  const r = await api(prom, "/api/v1/query_range", { query, start: String(startS), end: String(endS), step: "1" });
  if (r.status !== "success") return `error: ${r.error ?? "?"}`;
  const series = (r.data as { result: Array<{ values: Array<[number, string]> }> }).result;
  if (series.length === 0) return "no series";
  const numbers = series.flatMap((s) => s.values.map(([, v]) => Number(v))).filter(Number.isFinite);
  if (numbers.length === 0) return "only NaN/Inf values";
  if (!MAY_STAY_ZERO.test(query) && !numbers.some((n) => n > 0)) return "only zeros";
  return null;
}

describe("the Grafana dashboard on a real Prometheus", () => {
  let fs: Ext4;
  let store: ObjectServer;
  let pki: TestPki;
  let fr: FanrecallInstance;
  let prom: Prometheus;
  let instance = "";
  let meshAddress = "";

  async function portFromLog(field: string): Promise<string> {
    const deadline = Date.now() + 20_000;
    let m: RegExpExecArray | null;
    while ((m = new RegExp(`"${field}":(\\d+)`).exec(fr.output())) === null) {
      assert.ok(Date.now() < deadline, `the recall service did not report ${field}:\n${fr.output()}`);
      await sleep(100);
    }
    return `127.0.0.1:${m[1]}`;
  }

  before(
    async () => {
      if (!isRoot()) return;
      fs = await makeExt4(64);
      store = await startS3rver();
      pki = await makeTestPki(recallUser().uid);
      fr = await startFanrecall({
        watch: [fs.dir],
        server: store,
        bucket: BUCKET,
        extraArgs: ["--chunk-size", String(MiB)],
        env: {
          FANRECALL_METRICS_ADDRESS: "127.0.0.1:0",
          FANRECALL_MESH_ADMIN_ADDRESS: "127.0.0.1:0",
          FANRECALL_MESH_TLS_CERT: pki.serverCert,
          FANRECALL_MESH_TLS_KEY: pki.serverKey,
          FANRECALL_MESH_TLS_CLIENT_CA: pki.caCert,
        },
      });
      instance = await portFromLog("metricsPort");
      meshAddress = await portFromLog("meshAdminPort");
      prom = await startPrometheus(instance);
    },
    { timeout: 90_000 },
  );

  after(
    async () => {
      if (!isRoot()) return;
      const steps = [
        () => prom?.stop(),
        () => fr?.stop(),
        () => store?.stop(),
        () => fs?.cleanup(),
        () => pki?.cleanup(),
      ];
      for (const step of steps) await Promise.resolve(step()).catch((err: unknown) => console.error(err));
    },
    { timeout: 60_000 },
  );

  rootTest(
    "promtool check metrics passes on the exposition",
    async () => {
      const text = await (await fetch(`http://${instance}/metrics`)).text();
      const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8", timeout: 30_000 });
      assert.equal(r.status, 0, `promtool check metrics:\n${r.stdout}${r.stderr}\n--- exposition:\n${text}`);
    },
    { timeout: 30_000 },
  );

  rootTest(
    "every dashboard query parses and returns data after a recall, a denied recall, a mesh admin call and a policy pass",
    async () => {
      const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as Dashboard;
      const startS = Date.now() / 1000 - 2;

      // The $instance variable lists this instance before anything was recalled.
      const variable = dashboard.templating.list.find((v) => v.name === "instance");
      const lv = /^label_values\((\w+), instance\)$/.exec(variable?.definition ?? "");
      assert.ok(lv, `the instance variable is label_values(METRIC, instance): ${variable?.definition}`);
      const deadline = Date.now() + 15_000;
      let values: string[] = [];
      while (!values.includes(instance) && Date.now() < deadline) {
        await sleep(500);
        values = (await api(prom, "/api/v1/label/instance/values", { "match[]": lv[1] })).data as string[];
      }
      assert.ok(
        values.includes(instance),
        `$instance offers ${JSON.stringify(values)}, not ${instance}, before a recall`,
      );

      const files = writeRandomFiles(fs.dir, "prom", 2, 3 * MiB);
      const lost = writeRandomFiles(fs.dir, "prom-lost", 1, 256 * 1024);
      const rel = await fr.cli(["release", ...files.keys(), ...lost.keys()]);
      assert.equal(rel.code, 0, rel.stderr);
      const [lostStatus] = await fr.status([...lost.keys()]);
      await s3Client(store).removeObject(BUCKET, lostStatus.object!.key);
      const reads = await Promise.all([...files.keys()].map((p) => runAsNobody(["cat", p], { timeoutMs: 30_000 })));
      assert.equal(checkReaders(reads, files, false), 0);
      const denied = await runAsNobody(["cat", ...lost.keys()], { timeoutMs: 30_000 });
      assert.match(denied.stderr, /Input\/output error/, "a stub whose object is gone is denied");
      const mesh = await fr.cli([
        ...["mesh", "status", "--address", meshAddress, "--ca", pki.caCert, "--server-name", "localhost"],
        ...["--cert", pki.clientCert, "--key", pki.clientKey, ...files.keys()],
      ]);
      assert.equal(mesh.code, 0, mesh.stderr);
      // One policy pass: it archives the new file ahead (watermarks hold: nothing to release)
      // and reports its actions, bytes, pass duration and filesystem use.
      writeRandomFiles(fs.dir, "prom-policy", 1, MiB);
      const pass = await fr.cli(["policy", "--once", "--json", "--archive-after", "0", "--min-size", "0", fs.dir]);
      assert.equal(pass.code, 0, pass.stderr);
      assert.match(pass.stdout.toString(), /"action":"archive"/);
      assert.doesNotMatch(pass.stderr, /cannot report/);

      // The listener reports every 5 s; Prometheus scrapes every second.
      const queries = dashboardQueries(dashboard);
      assert.ok(queries.length >= 10, `only ${queries.length} queries found in the dashboard`);
      const problems = new Map<string, string>();
      const until = Date.now() + 25_000;
      do {
        problems.clear();
        for (const q of queries) {
          for (const inst of [".*", instance]) {
            const problem = await rangeProblem(prom, substitute(q.expr, inst), startS);
            if (problem !== null) problems.set(`${q.title} [instance=~"${inst}"]: ${q.expr}`, problem);
          }
        }
        if (problems.size > 0) await sleep(1_000);
      } while (problems.size > 0 && Date.now() < until);
      assert.equal(
        problems.size,
        0,
        `queries without data:\n${[...problems].map(([k, v]) => `${k}\n  -> ${v}`).join("\n")}`,
      );
    },
    { timeout: 90_000 },
  );
});
