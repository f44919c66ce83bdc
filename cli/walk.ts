// walk: expands the PATH arguments of admin commands into regular files (directories
// recursively, symlinks never followed). Owns nothing; holds no fds.
import { lstatSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";

export interface WalkProblem {
  readonly path: string;
  readonly error: string;
}

/** Yields absolute paths of regular files; problems (missing paths, specials) go to `problems`. */
export function* walkFiles(paths: readonly string[], problems: WalkProblem[]): Generator<string> {
  for (const p of paths) yield* walkOne(resolve(p), problems, true);
}

function* walkOne(path: string, problems: WalkProblem[], explicit: boolean): Generator<string> {
  let st;
  try {
    st = lstatSync(path);
  } catch (err: unknown) {
    problems.push({ path, error: err instanceof Error ? err.message : String(err) });
    return;
  }
  if (st.isFile()) {
    yield path;
  } else if (st.isDirectory()) {
    let names: string[];
    try {
      names = readdirSync(path).sort();
    } catch (err: unknown) {
      problems.push({ path, error: err instanceof Error ? err.message : String(err) });
      return;
    }
    for (const name of names) yield* walkOne(join(path, name), problems, false);
  } else if (explicit) {
    problems.push({ path, error: "not a regular file or directory" });
  }
}
