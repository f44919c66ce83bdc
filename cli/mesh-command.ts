// mesh-command: `fanrecall mesh status|restore|archive`, a client of the mesh admin API
// (recall.v1.AdminService over TLS) for scripts and operators on other hosts or in other
// pods. Needs no privileges: the server decides what the caller may do.
//
// Owns: its settings table (settings/ parses it), the TLS channel (closed before return), output and exit code.
// Holds no fds of watched files; reads only the PEM files it is given.
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { AdminService, RpcError, createClient } from "../proto/index.js";
import type { AdminFileStatus } from "../proto/index.js";
import { helpText } from "../settings/help-text.js";
import { loadSettings } from "../settings/settings.js";
import type { CommandSpec } from "../settings/setting-types.js";

const OPS = ["status", "restore", "archive"] as const;
type MeshOp = (typeof OPS)[number];

export const MESH_SPEC = {
  usage: `fanrecall mesh status|restore|archive --address HOST:PORT --ca FILE
                      [--cert FILE --key FILE] [--server-name NAME] [--timeout-ms MS] [--json] PATH...`,
  about: `Calls the mesh admin API of a recall service (recall.v1.AdminService over TLS; see
'fanrecall recall-service --help'). Each PATH is one regular file beneath a directory that
fanrecall watches, as the listener on that host sees it.
  status   the file's state (resident, archived, released, partial, dirty, lost); no recall
  restore  recall the whole file now, ahead of use
  archive  copy the file to the object store (verified); it stays resident`,
  settings: [
    {
      name: "address",
      key: "address",
      env: "FANRECALL_MESH_ADDRESS",
      type: "string",
      arg: "HOST:PORT",
      pattern: /^.+:\d+$/,
      shape: "HOST:PORT",
      required: true,
      help: "the mesh admin address",
    },
    {
      name: "ca",
      key: "ca",
      env: "FANRECALL_MESH_CA",
      type: "path",
      arg: "FILE",
      required: true,
      help: "CA that signed the server's certificate (the API is served over TLS only)",
    },
    {
      name: "cert",
      key: "cert",
      env: "FANRECALL_MESH_CERT",
      type: "path",
      arg: "FILE",
      allowEmpty: true,
      help: "client certificate, when the server requires one",
    },
    {
      name: "key",
      key: "key",
      env: "FANRECALL_MESH_KEY",
      type: "path",
      arg: "FILE",
      allowEmpty: true,
      help: "its private key",
    },
    {
      name: "server-name",
      key: "serverName",
      type: "string",
      arg: "NAME",
      defaultText: "HOST",
      help: "name to check the server's certificate against",
    },
    {
      name: "timeout-ms",
      key: "timeoutMs",
      type: "int",
      arg: "MS",
      min: 1,
      max: 2147483647,
      defaultText: "600000 for restore and archive, 30000 for status",
      help: "per file",
    },
    { name: "json", key: "json", type: "flag", help: "one JSON object per file, as 'fanrecall status --json' prints" },
  ],
  positionals: { name: "PATH", min: 1 },
  footer: "Exit status: 0 when every file succeeded, 1 when any failed, 2 on a usage error.",
} as const satisfies CommandSpec;

export const MESH_HELP = helpText(MESH_SPEC);

interface MeshArgs {
  op: MeshOp;
  address: string;
  ca: string;
  cert: string;
  key: string;
  serverName: string;
  timeoutMs: number;
  json: boolean;
  paths: readonly string[];
}

export function parseMeshArgs(
  argv: readonly string[],
  env: Record<string, string | undefined> = process.env,
): MeshArgs {
  const [op, ...rest] = argv;
  if (!OPS.includes(op as MeshOp)) throw new Error(`the first argument must be status, restore or archive`);
  const s = loadSettings(MESH_SPEC, rest, env);
  const cert = s.cert ?? "";
  const key = s.key ?? "";
  if (Boolean(cert) !== Boolean(key)) throw new Error("--cert and --key go together");
  return {
    op: op as MeshOp,
    address: s.address,
    ca: s.ca,
    cert,
    key,
    serverName: s.serverName ?? "",
    timeoutMs: s.timeoutMs ?? (op === "status" ? 30_000 : 600_000),
    json: s.json,
    paths: s.positionals,
  };
}

function line(s: AdminFileStatus, json: boolean): string {
  const object = s.object ? { bucket: s.object.bucket, key: s.object.key, versionId: s.object.versionId } : null;
  const size = Number(s.size);
  const populatedBytes = Number(s.populatedBytes);
  if (json) return JSON.stringify({ path: s.path, state: s.state, size, populatedBytes, object });
  return `${s.state.padEnd(9)} ${String(size).padStart(14)} ${String(populatedBytes).padStart(14)}  ${s.path}`;
}

export async function meshCommand(argv: readonly string[]): Promise<number> {
  let args: MeshArgs;
  try {
    args = parseMeshArgs(argv);
  } catch (err: unknown) {
    process.stderr.write(`fanrecall mesh: ${err instanceof Error ? err.message : String(err)}\n\n${MESH_HELP}`);
    return 2;
  }
  const creds = grpc.credentials.createSsl(
    readFileSync(args.ca),
    args.key ? readFileSync(args.key) : null,
    args.cert ? readFileSync(args.cert) : null,
  );
  const options = args.serverName ? { "grpc.ssl_target_name_override": args.serverName } : {};
  const { client, close } = createClient(AdminService, args.address, creds, options);
  let failed = 0;
  try {
    for (const path of args.paths) {
      try {
        const reply = await client[args.op]({ path }, { timeoutMs: args.timeoutMs });
        if (reply.status) process.stdout.write(`${line(reply.status, args.json)}\n`);
      } catch (err: unknown) {
        failed++;
        const why = err instanceof RpcError ? `${err.message} (${grpc.status[err.code]})` : String(err);
        process.stderr.write(`fanrecall mesh ${args.op}: ${path}: ${why}\n`);
      }
    }
  } finally {
    close();
  }
  return failed > 0 ? 1 : 0;
}

/** What `fanrecall mesh` runs and its --help (cli/main.ts loads this module only then). */
export const MESH_COMMAND = { run: meshCommand, help: () => MESH_HELP };
