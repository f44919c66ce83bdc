// test/helpers/sockets.ts: the sockets tests need and production code never makes, so the
// root addon does not carry them. A connected SOCK_SEQPACKET pair is made with the
// production seqpacketListen/Connect/Accept on a temporary path; a message with several fds
// is sent by python3's socket.sendmsg; a bound unix SOCK_DGRAM socket is bound by python3,
// which hands its fd over SCM_RIGHTS.
//
// Owns: the temporary directory of a pair's listening socket (removed before it returns).
// Must not: be used by production code, or leave a process behind (python3 runs to its end
// inside spawnSync).
// Fds: every fd returned is non-blocking and close-on-exec, and belongs to the caller. The fds
// given to python3 are its copies; the caller keeps its own.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { close, recvWithFd, seqpacketAccept, seqpacketConnect, seqpacketListen } from "../../native/index.js";

/** URL of this module, for child scripts run under tsx. */
export const SOCKETS_HELPER_URL = import.meta.url;

/** Exit code of the python3 sender when the socket is full (EAGAIN). */
const PY_EAGAIN = 11;

/** Sends stdin's bytes on fd 3 with fds 4 .. 3+argv[1] attached (one SCM_RIGHTS message). */
const PY_SEND_FDS = `
import array, socket, sys
count = int(sys.argv[1])
data = sys.stdin.buffer.read()
sock = socket.socket(fileno=3)
try:
    sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", range(4, 4 + count)))], socket.MSG_DONTWAIT)
except BlockingIOError:
    sys.exit(${PY_EAGAIN})
`;

/** Binds a non-blocking SOCK_DGRAM socket at argv[1] ('@': abstract) and sends its fd on fd 3. */
const PY_DGRAM_BIND = `
import array, socket, sys
path = sys.argv[1]
dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
dgram.setblocking(False)
dgram.bind("\\0" + path[1:] if path.startswith("@") else path)
socket.socket(fileno=3).sendmsg([b"fd"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [dgram.fileno()]))])
`;

/** A connected, non-blocking SOCK_SEQPACKET pair, as socketpair(2) gives: [client, server]. */
export function seqpacketPair(): [number, number] {
  const dir = mkdtempSync(join(tmpdir(), "fanrecall-pair-"));
  try {
    const listenFd = seqpacketListen(join(dir, "pair.sock"));
    try {
      const client = seqpacketConnect(join(dir, "pair.sock"));
      const server = seqpacketAccept(listenFd);
      if (server < 0) {
        close(client);
        throw new Error("seqpacketPair: the connection was not pending");
      }
      return [client, server];
    } finally {
      close(listenFd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** How python3 runs: its arguments, the fds it gets as 3, 4, ..., its stdin, the exit codes that are no failure besides 0. */
interface PythonRun {
  readonly args: readonly string[];
  readonly fds: readonly number[];
  readonly input?: Uint8Array;
  readonly allowed?: readonly number[];
}

/** Runs a python3 script to its end; returns its exit code (0 or one of `allowed`), else throws. */
function python(script: string, run: PythonRun): number {
  const r = spawnSync("/usr/bin/python3", ["-c", script, ...run.args], {
    input: run.input,
    stdio: ["pipe", "pipe", "pipe", ...run.fds],
    timeout: 15_000,
  });
  if (r.error) throw r.error;
  if (r.status === 0 || (r.status !== null && (run.allowed ?? []).includes(r.status))) return r.status;
  throw new Error(`python3 ended with ${r.status ?? r.signal}: ${r.stderr.toString()}`);
}

/** Sends one message with several fds on a connected socket (what sendWithFd does with one). False on EAGAIN. */
export function sendWithFds(sockFd: number, data: Uint8Array, fds: readonly number[]): boolean {
  const run = { args: [String(fds.length)], fds: [sockFd, ...fds], input: data, allowed: [PY_EAGAIN] };
  return python(PY_SEND_FDS, run) === 0;
}

/**
 * A bound, non-blocking unix SOCK_DGRAM socket at `path` (a leading '@' is the abstract
 * namespace, as in $NOTIFY_SOCKET); read it with recvWithFd/recvOnce.
 */
export function datagramBind(path: string): number {
  const [here, there] = seqpacketPair();
  try {
    python(PY_DGRAM_BIND, { args: [path], fds: [there] });
    const msg = recvWithFd(here, 8);
    const [fd, ...extra] = msg?.fds ?? [];
    for (const x of extra) close(x);
    if (fd === undefined) throw new Error(`datagramBind ${path}: no fd came back`);
    return fd;
  } finally {
    close(here);
    close(there);
  }
}
