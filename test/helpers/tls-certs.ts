// test/helpers/tls-certs.ts: a throwaway PKI for TLS tests, made with openssl at test time:
// a CA, a server certificate for 127.0.0.1/localhost, a client certificate the CA signed,
// and a client certificate from an unrelated CA (which a server must refuse).
//
// Owns: one temporary directory of PEM files (loop-fs.ts makeScratchDir: removed by cleanup(),
// or when the process ends first; a failed set-up removes it at once). The server key is
// given to `keyOwner` (mode 0400): a service that drops root must still read it.
import { chmodSync, chownSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runChild } from "./child.js";
import { makeScratchDir } from "./loop-fs.js";

export interface TestPki {
  readonly dir: string;
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  readonly rogueCert: string;
  readonly rogueKey: string;
  read(file: string): Buffer;
  cleanup(): void;
}

async function openssl(args: readonly string[]): Promise<void> {
  const r = await runChild(["openssl", ...args], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
}

async function makeCa(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
  await openssl(["req", "-x509", "-new", "-key", key, "-days", "2", "-subj", `/CN=${name}`, "-out", cert]);
  return { cert, key };
}

async function issue(
  dir: string,
  name: string,
  signer: { cert: string; key: string },
  ext: string,
): Promise<{ cert: string; key: string }> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, ext);
  await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
  await openssl(["req", "-new", "-key", key, "-subj", `/CN=${name}`, "-out", csr]);
  await openssl(
    ["x509", "-req", "-in", csr, "-CA", signer.cert, "-CAkey", signer.key, "-CAcreateserial"].concat([
      "-days",
      "2",
      "-extfile",
      extFile,
      "-out",
      cert,
    ]),
  );
  return { cert, key };
}

export async function makeTestPki(keyOwner: number): Promise<TestPki> {
  const scratch = makeScratchDir("fanrecall-pki-", 0o755);
  try {
    return await makePki(scratch.dir, keyOwner, () => scratch.cleanup());
  } catch (err: unknown) {
    scratch.cleanup();
    throw err;
  }
}

async function makePki(dir: string, keyOwner: number, cleanup: () => void): Promise<TestPki> {
  const root = await makeCa(dir, "test-ca");
  const rogueCa = await makeCa(dir, "rogue-ca");
  const server = await issue(
    dir,
    "server",
    root,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
  );
  const client = await issue(dir, "prefetcher", root, "extendedKeyUsage=clientAuth\n");
  const rogue = await issue(dir, "rogue", rogueCa, "extendedKeyUsage=clientAuth\n");
  chownSync(server.key, keyOwner, keyOwner);
  chmodSync(server.key, 0o400);
  return {
    dir,
    caCert: root.cert,
    serverCert: server.cert,
    serverKey: server.key,
    clientCert: client.cert,
    clientKey: client.key,
    rogueCert: rogue.cert,
    rogueKey: rogue.key,
    read: (file) => readFileSync(file),
    cleanup,
  };
}
