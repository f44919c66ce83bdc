// tcp-peer-uid: the uid that owns the other end of an accepted loopback TCP connection, read
// from the kernel's socket table (/proc/net/tcp, /proc/net/tcp6). The client's socket is the
// entry whose local address is the connection's remote address and whose remote address is
// the connection's local address; its uid column is the fsuid of the process that created
// that socket (sock_i_uid), which the client cannot choose.
//
// Owns: parsing the tables. Must not own: deciding what to do with the uid (the embedded
// store closes connections that are not the recall user's). Holds no fds (each table is read
// in one readFileSync).
import { isIPv4, isIPv6 } from "node:net";
import { readFileSync } from "node:fs";

/** The kernel's hex form of an address: each 32-bit word of it printed in host (little-endian) order. */
export function procNetAddress(ip: string, port: number): string {
  const bytes = ipBytes(ip);
  let hex = "";
  for (let i = 0; i < bytes.length; i += 4) {
    hex += Buffer.from(bytes.subarray(i, i + 4))
      .readUInt32LE(0)
      .toString(16)
      .toUpperCase()
      .padStart(8, "0");
  }
  return `${hex}:${port.toString(16).toUpperCase().padStart(4, "0")}`;
}

function ipBytes(ip: string): Uint8Array {
  if (isIPv4(ip)) return Uint8Array.from(ip.split(".").map(Number));
  if (!isIPv6(ip)) throw new Error(`not an IP address: '${ip}'`);
  const mapped = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  let text = ip;
  if (mapped) {
    const [a, b, c, d] = mapped[2].split(".").map(Number);
    text = `${mapped[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split("::");
  const words = (s: string | undefined): number[] => (s ? s.split(":").map((w) => parseInt(w, 16)) : []);
  const h = words(head);
  const t = words(tail);
  const all = tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const out = new Uint8Array(16);
  all.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

export interface TcpEnds {
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
}

/**
 * The uid owning the client socket of an accepted connection (seen from the server side),
 * or null when no socket of this network namespace matches (the peer is not local).
 */
export function tcpPeerUid(conn: TcpEnds): number | null {
  const table = isIPv4(conn.remoteAddress) ? "/proc/net/tcp" : "/proc/net/tcp6";
  const local = procNetAddress(conn.remoteAddress, conn.remotePort);
  const remote = procNetAddress(conn.localAddress, conn.localPort);
  for (const line of readFileSync(table, "latin1").split("\n").slice(1)) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    const f = line.trim().split(/\s+/);
    if (f[1] === local && f[2] === remote) return Number(f[7]);
  }
  return null;
}
