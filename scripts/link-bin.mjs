// Links this package's own `fanrecall` bin into node_modules/.bin so `npx fanrecall`
// works inside a fresh clone right after `npm ci` (npm links only dependencies' bins).
import { chmodSync, mkdirSync, rmSync, symlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const binDir = join(root, "node_modules", ".bin");
mkdirSync(binDir, { recursive: true });
const link = join(binDir, "fanrecall");
rmSync(link, { force: true });
symlinkSync(join("..", "..", "bin", "fanrecall.js"), link);
chmodSync(join(root, "bin", "fanrecall.js"), 0o755);
