// tcp-peer-uid: the kernel's address format, and a real loopback connection in this process
// (the client socket's owner is this process's uid). No root; no network beyond loopback.
import assert from "node:assert/strict";
import { once } from "node:events";
import { createConnection, createServer, type Socket } from "node:net";
import { test } from "node:test";
import { procNetAddress, tcpPeerUid } from "../../cli/tcp-peer-uid.js";

test("procNetAddress prints what /proc/net/tcp{,6} print", () => {
  assert.equal(procNetAddress("127.0.0.1", 8080), "0100007F:1F90");
  assert.equal(procNetAddress("::1", 80), "00000000000000000000000001000000:0050");
  assert.equal(procNetAddress("::ffff:127.0.0.1", 1), "0000000000000000FFFF00000100007F:0001");
});

for (const host of ["127.0.0.1", "::1"]) {
  test(`tcpPeerUid finds the client socket's owner over ${host}`, async (t) => {
    const server = createServer();
    server.listen(0, host);
    try {
      await once(server, "listening");
    } catch (err: unknown) {
      t.skip(`cannot listen on ${host}: ${String(err)}`);
      return;
    }
    const port = (server.address() as { port: number }).port;
    const accepted = once(server, "connection") as Promise<[Socket]>;
    const client = createConnection({ host, port });
    const [conn] = await accepted;
    try {
      const ends = {
        localAddress: conn.localAddress ?? "",
        localPort: conn.localPort ?? 0,
        remoteAddress: conn.remoteAddress ?? "",
        remotePort: conn.remotePort ?? 0,
      };
      assert.equal(tcpPeerUid(ends), process.getuid?.());
      assert.equal(tcpPeerUid({ ...ends, remotePort: ends.remotePort === 1 ? 2 : 1 }), null, "no such peer");
    } finally {
      client.destroy();
      conn.destroy();
      server.close();
    }
  });
}
