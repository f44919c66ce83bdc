// test/helpers/root.ts: registers tests that need uid 0.
//
// Owns: the skip-or-fail decision for root-only tests. Not root: the test is skipped with a
// reason, unless CI=true or RECALL_REQUIRE_ROOT_TESTS=1, where it fails with a clear message
// (a CI run that silently skips the fanotify tests is a failed run).
// Must not: escalate privileges or touch the system. Holds no fds.
import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";

export type RootTestOptions = { timeout?: number };

export function rootRequired(): boolean {
  return process.env.CI === "true" || process.env.RECALL_REQUIRE_ROOT_TESTS === "1";
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function rootTest(
  name: string,
  fn: (t: TestContext) => Promise<void> | void,
  options: RootTestOptions = {},
): void {
  const timeout = options.timeout ?? 30_000;
  if (isRoot()) {
    test(name, { timeout }, fn);
  } else if (rootRequired()) {
    test(name, () => {
      assert.fail(
        `"${name}" needs root (uid 0, CAP_SYS_ADMIN) and root tests are required here (CI or RECALL_REQUIRE_ROOT_TESTS=1)`,
      );
    });
  } else {
    test(name, { skip: "needs root (uid 0); set RECALL_REQUIRE_ROOT_TESTS=1 to fail instead of skipping" }, () => {});
  }
}
