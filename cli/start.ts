// start: `fanrecall start`, everything in the foreground as root. A small supervisor that
// starts, in order: the embedded S3 server (s3rver, as the recall user) when no endpoint is
// configured; the recall service (as the recall user, via setpriv: no capabilities,
// no_new_privs, no supplementary groups) with the S3 settings; the listener (root) without
// them; with --policy-file, the policy engine (root, `fanrecall policy --config FILE`). The recall user is a system user of its own (`fanrecall`, created when missing),
// never root or nobody (65534): a process of the same uid could read or signal the processes
// that hold the S3 secret. The embedded store's credentials are generated once per state
// directory (s3-credentials.ts); the store only serves the recall user's sockets. The secret
// is never on a command line or in an environment: the store and the recall service read it
// from its file (--s3-secret-key-file), and both make themselves non-dumpable. SIGINT/SIGTERM stop the listener first, which answers every held event before its
// group closes, then the recall service, then the store. Children are restarted whenever
// they die; none is given up on. Every child but the holder dies with this process
// (PR_SET_PDEATHSIG, via setpriv): if `fanrecall start` itself is killed, the holder stays and
// answers the watched filesystems fail-closed (stubs EIO) until a new `fanrecall start`
// takes the group from it.
//
// The recall user must be able to read this package (checked first, said in one line). While
// it runs, the instance is recorded in /run/fanrecall/instances (instance-registry.ts) so the
// admin commands find its sockets by the path they are given.
//
// Owns: the child processes, the state directory layout and this instance's record. Holds
// the S3 settings only to pass them to the recall service's environment.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdirSync, chmodSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { adminSocketPath, holderSocketPath, recallGrpcSocketPath, recallSocketDir } from "../ipc/run-dir.js";
import { assertReadableBy } from "./code-access.js";
import { startEmbeddedS3 } from "./embedded-s3.js";
import { registerInstance } from "./instance-registry.js";
import { ensureS3Credentials } from "./s3-credentials.js";
import { PeriodicReconcile } from "./periodic-reconcile.js";
import { SupervisedChild } from "./supervised-child.js";
import { START_HELP, parseStartArgs } from "./start-settings.js";
import { RECALL_USER_NAME, ensureSystemUser, unprivilegedArgs } from "./system-user.js";
import type { EmbeddedS3 } from "./embedded-s3.js";

const BIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "fanrecall.js");

function binPath(): string {
  // From dist/cli/start.js the package root is two levels up; from cli/start.ts (tsx), one.
  if (existsSync(BIN)) return BIN;
  return join(dirname(fileURLToPath(import.meta.url)), "..", "bin", "fanrecall.js");
}

/** setpriv options that make a child die with this process. */
export const DIE_WITH_PARENT = ["--pdeathsig=SIGKILL"];

function setprivArgs(uid: number, gid: number): string[] {
  return [...DIE_WITH_PARENT, ...unprivilegedArgs(uid, gid)];
}

function withoutSecrets(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (!k.startsWith("FANRECALL_S3_")) out[k] = v;
  return out;
}

interface StoreSettings {
  readonly store: EmbeddedS3 | null;
  /** The recall service's environment. */
  readonly env: NodeJS.ProcessEnv;
  /** The recall service's extra arguments (a file name at most: never a secret). */
  readonly argv: string[];
}

/**
 * A configured store: the recall service alone gets its settings, as given (a secret key in
 * FANRECALL_S3_SECRET_KEY is passed on for compatibility; the recall service is non-dumpable).
 * None: the embedded store, with this state directory's credentials, serving the recall user only.
 */
async function storeSettings(
  stateDir: string,
  user: { uid: number; gid: number },
  log: (msg: string) => void,
): Promise<StoreSettings> {
  if (process.env.FANRECALL_S3_ENDPOINT) return { store: null, env: { ...process.env }, argv: [] };
  const credentials = ensureS3Credentials(stateDir, user);
  const store = await startEmbeddedS3({
    dataDir: join(stateDir, "s3"),
    uid: user.uid,
    gid: user.gid,
    credentials: { dir: credentials.dir, accessKey: credentials.accessKey },
    peerUid: user.uid,
    log,
  });
  const env: NodeJS.ProcessEnv = {
    ...withoutSecrets(process.env),
    ...(process.env.FANRECALL_S3_BUCKET ? { FANRECALL_S3_BUCKET: process.env.FANRECALL_S3_BUCKET } : {}),
    FANRECALL_S3_ENDPOINT: store.endpoint,
    FANRECALL_S3_ACCESS_KEY: store.accessKey,
    FANRECALL_S3_REGION: store.region,
  };
  return { store, env, argv: ["--s3-secret-key-file", credentials.secretKeyFile] };
}

export async function startCommand(argv: readonly string[]): Promise<number> {
  const args = parseStartArgs(argv);
  if (process.getuid?.() !== 0)
    throw new Error("'fanrecall start' must run as root (the listener owns a fanotify group)");
  const user = args.user ?? ensureSystemUser(RECALL_USER_NAME);
  // The recall service and the store run this package's code as that user: it must be able to.
  const pkg = dirname(dirname(binPath()));
  const addon = join(pkg, "native", "build", "Release", "fanrecall_native.node");
  assertReadableBy(user, pkg, [binPath(), fileURLToPath(import.meta.url), addon]);
  const runDir = args.runDir;
  mkdirSync(args.stateDir, { recursive: true, mode: 0o755 });
  mkdirSync(runDir, { recursive: true, mode: 0o755 });
  chmodSync(args.stateDir, 0o755);
  const recallDir = recallSocketDir(runDir);
  mkdirSync(recallDir, { recursive: true, mode: 0o750 });
  chownSync(recallDir, user.uid, user.gid);
  chmodSync(recallDir, 0o750);

  const log = (msg: string) => process.stderr.write(`fanrecall start: ${msg}\n`);
  const { store, env: s3Env, argv: s3Argv } = await storeSettings(args.stateDir, user, log);
  const child = (name: string, readyPath: string, spawnIt: () => ChildProcess) =>
    new SupervisedChild({ name, readyPath, log, spawn: spawnIt });
  const detached = { stdio: ["ignore", "inherit", "inherit"] as ["ignore", "inherit", "inherit"], detached: true };
  const holderSocket = holderSocketPath(runDir);
  const holder = child("the group holder", `${holderSocket}.ready`, () =>
    spawn(process.execPath, [binPath(), "holder", "--socket", holderSocket], {
      ...detached,
      env: withoutSecrets(process.env),
    }),
  );
  const recall = child("the recall service", recallGrpcSocketPath(runDir), () =>
    spawn(
      "setpriv",
      [
        ...setprivArgs(user.uid, user.gid),
        process.execPath,
        binPath(),
        "recall-service",
        "--run-dir",
        runDir,
        "--chunk-size",
        args.chunkSize,
        ...s3Argv,
      ],
      {
        ...detached,
        env: s3Env,
      },
    ),
  );
  const listenerArgs = ["listener", "--run-dir", runDir, "--recall-uid", String(user.uid), "--mode", args.mode];
  listenerArgs.push("--recall-timeout-ms", args.timeoutMs, "--holder-socket", holderSocket);
  listenerArgs.push(...args.watch.flatMap((w) => ["--watch", w]));
  listenerArgs.push(...args.namespaces.flatMap((n) => ["--namespace", n]));
  if (args.recallRules !== null) listenerArgs.push("--recall-rules", args.recallRules);
  // The recall service serves the mesh admin API: let the listener take the requests it relays.
  if (process.env.FANRECALL_MESH_ADMIN_ADDRESS) listenerArgs.push("--mesh-admin", "true");
  const listener = child("the listener", adminSocketPath(runDir), () =>
    spawn("setpriv", [...DIE_WITH_PARENT, process.execPath, binPath(), ...listenerArgs], {
      ...detached,
      env: withoutSecrets(process.env),
    }),
  );
  // The space manager, when asked for: a root process of its own, a client of the listener.
  const policyReady = join(runDir, "policy.ready");
  const policy =
    args.policyFile === null
      ? null
      : child("the policy engine", policyReady, () =>
          spawn(
            "setpriv",
            [...DIE_WITH_PARENT, process.execPath, binPath(), "policy", "--config", args.policyFile ?? ""].concat([
              "--run-dir",
              runDir,
              "--ready-file",
              policyReady,
              ...args.watch,
            ]),
            { ...detached, env: withoutSecrets(process.env) },
          ),
        );
  // Stop order: the policy engine first (it only asks the listener); then the listener
  // answers every held access and closes its group; then the holder lets go; then the
  // recall service and the store.
  const reconcile = new PeriodicReconcile({
    bin: binPath(),
    runDir,
    watch: args.watch,
    everyMs: args.reconcileEveryMs,
    retainMs: args.retainMs,
    env: withoutSecrets(process.env),
    log,
  });
  const stopAll = async () => {
    reconcile.stop();
    await policy?.stop();
    await listener.stop();
    await holder.stop();
    await recall.stop();
    await store?.stop();
  };
  let unregister: () => void;
  try {
    await holder.start();
    await recall.start();
    await listener.start();
    await policy?.start();
    unregister = registerInstance({ runDir, stateDir: args.stateDir, watch: args.watch });
    reconcile.start();
  } catch (err: unknown) {
    await stopAll();
    throw err;
  }
  log(`ready: watching ${args.watch.join(", ")}; admin commands find this instance by path (sockets in ${runDir})`);
  const signalled = new Promise<string>((resolveSig) => {
    process.once("SIGINT", () => resolveSig("SIGINT"));
    process.once("SIGTERM", () => resolveSig("SIGTERM"));
  });
  const why = await signalled;
  log(`stopping: ${why}`);
  unregister();
  await stopAll();
  return 0;
}

/** What `fanrecall start` runs and its --help (cli/main.ts loads this module only then). */
export const START_COMMAND = { run: startCommand, help: () => START_HELP };
