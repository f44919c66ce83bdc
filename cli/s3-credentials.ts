// s3-credentials: the embedded store's credentials, generated once per state directory and
// kept in STATE_DIR/s3-credentials/{access-key,secret-key}, each 0600 and owned by the recall
// user (the only user that runs the store and its client). Reused on every later start, so
// the archived data stays reachable.
//
// Owns: creating the directory (root's, 0755: the recall user may read its files but never
// swap them) and the two files (O_EXCL|O_NOFOLLOW, random bytes), and re-owning them when
// the recall user changed. Must not own: passing the secret anywhere: the store and the
// recall service read it from the file themselves (the secret never is on a command line
// or in an environment). Holds an fd only while it creates or checks a file.
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  closeSync,
  constants,
  fchownSync,
  fchmodSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";

export interface S3CredentialFiles {
  readonly dir: string;
  readonly accessKeyFile: string;
  readonly secretKeyFile: string;
  /** The access key identifies the account; knowing it is not enough to get anything. */
  readonly accessKey: string;
}

function ensureFile(path: string, bytes: number, owner: { uid: number; gid: number }): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    writeSync(fd, randomBytes(bytes).toString("hex"));
  } catch (err: unknown) {
    if (!(err instanceof Error && "code" in err && err.code === "EEXIST")) throw err;
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  }
  try {
    if (!fstatSync(fd).isFile()) throw new Error(`${path} is not a regular file`);
    fchownSync(fd, owner.uid, owner.gid);
    fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
}

/** Creates the credentials of stateDir's embedded store when missing; returns where they are. */
export function ensureS3Credentials(stateDir: string, owner: { uid: number; gid: number }): S3CredentialFiles {
  const dir = join(stateDir, "s3-credentials");
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  const accessKeyFile = join(dir, "access-key");
  const secretKeyFile = join(dir, "secret-key");
  ensureFile(accessKeyFile, 10, owner);
  ensureFile(secretKeyFile, 32, owner);
  return { dir, accessKeyFile, secretKeyFile, accessKey: readKeyFile(accessKeyFile) };
}

/** A key file's content, without surrounding whitespace; refuses an empty one and symlinks. */
export function readKeyFile(path: string): string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const key = readFileSync(fd, "utf8").trim();
    if (key === "") throw new Error(`${path} is empty`);
    return key;
  } finally {
    closeSync(fd);
  }
}
