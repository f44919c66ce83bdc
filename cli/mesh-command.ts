// mesh-command: `fanrecall mesh status|restore|archive`, a client of the mesh admin API
// (recall.v1.AdminService over TLS) for scripts and operators on other hosts or in other
// pods. Needs no privileges: the server decides what the caller may do.
//
// Owns: argument parsing, the TLS channel (closed before return), output and exit code.
// Holds no fds of watched files; reads only the PEM files it is given.
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { AdminService, RpcError, createClient } from "../proto/index.js";
import type { AdminFileStatus } from "../proto/index.js";

const OPS = ["status", "restore", "archive"] as const;
type MeshOp = (typeof OPS)[number];

export const MESH_HELP = `Usage: fanrecall mesh status|restore|archive --address HOST:PORT --ca FILE
                      [--cert FILE --key FILE] [--server-name NAME] [--timeout-ms MS] [--json] PATH...

Calls the mesh admin API of a recall service (recall.v1.AdminService over TLS; see
'fanrecall recall-service --help'). Each PATH is one regular file beneath a directory that
fanrecall watches, as the listener on that host sees it.
  status   the file's state (resident, archived, released, partial, dirty, lost); no recall
  restore  recall the whole file now, ahead of use
  archive  copy the file to the object store (verified); it stays resident

  --address HOST:PORT  the mesh admin address          (FANRECALL_MESH_ADDRESS)
  --ca FILE            CA that signed the server's certificate  (FANRECALL_MESH_CA)
  --cert FILE          client certificate, when the server requires one (FANRECALL_MESH_CERT)
  --key FILE           its private key                 (FANRECALL_MESH_KEY)
  --server-name NAME   name to check the server's certificate against (default: HOST)
  --timeout-ms MS      per file (default 600000 for restore and archive, 30000 for status)
  --json               one JSON object per file, as 'fanrecall status --json' prints

Exit status: 0 when every file succeeded, 1 when any failed, 2 on a usage error.
`;

interface MeshArgs {
  op: MeshOp;
  address: string;
  ca: string;
  cert: string;
  key: string;
  serverName: string;
  timeoutMs: number;
  json: boolean;
  paths: string[];
}

function parseMeshArgs(argv: readonly string[]): MeshArgs {
  const [op, ...rest] = argv;
  if (!OPS.includes(op as MeshOp)) throw new Error(`the first argument must be status, restore or archive`);
  const env = process.env;
  const a: MeshArgs = {
    op: op as MeshOp,
    address: env.FANRECALL_MESH_ADDRESS ?? "",
    ca: env.FANRECALL_MESH_CA ?? "",
    cert: env.FANRECALL_MESH_CERT ?? "",
    key: env.FANRECALL_MESH_KEY ?? "",
    serverName: "",
    timeoutMs: op === "status" ? 30_000 : 600_000,
    json: false,
    paths: [],
  };
  const valued = { "--address": "address", "--ca": "ca", "--cert": "cert", "--key": "key" } as const;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (arg === "--json") a.json = true;
    else if (arg in valued) a[valued[arg as keyof typeof valued]] = rest[++i] ?? "";
    else if (arg === "--server-name") a.serverName = rest[++i] ?? "";
    else if (arg === "--timeout-ms") a.timeoutMs = Number(rest[++i]);
    else if (arg.startsWith("-")) throw new Error(`unknown option '${arg}'`);
    else a.paths.push(arg);
  }
  if (!/^.+:\d+$/.test(a.address)) throw new Error("--address HOST:PORT is required");
  if (!a.ca) throw new Error("--ca FILE is required (the API is served over TLS only)");
  if (Boolean(a.cert) !== Boolean(a.key)) throw new Error("--cert and --key go together");
  if (!Number.isSafeInteger(a.timeoutMs) || a.timeoutMs <= 0)
    throw new Error("--timeout-ms must be a positive integer");
  if (a.paths.length === 0) throw new Error("at least one PATH is required");
  return a;
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
