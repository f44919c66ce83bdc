// The failure policy fails closed: every reason that is not "the data is there" denies, and
// only with an errno the kernel accepts for FAN_DENY_ERRNO.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FAILURE_POLICY, fromProtoReason } from "../../listener/failure-policy.js";
import { Reason } from "../../proto/index.js";

const ALLOWED = new Set(["recalled", "resident", "populated", "self", "stub-changed"]);
const KERNEL_ERRNOS = new Set([1, 5, 16, 26, 11, 28, 122]);

test("every reason but the ones that mean 'the data is there' denies, with an errno the kernel accepts", () => {
  for (const [reason, outcome] of Object.entries(FAILURE_POLICY)) {
    if (ALLOWED.has(reason)) assert.equal(outcome.verdict, "allow", reason);
    else {
      assert.equal(outcome.verdict, "deny", reason);
      assert.ok(KERNEL_ERRNOS.has(outcome.errno), `${reason}: errno ${outcome.errno}`);
    }
  }
  assert.equal(FAILURE_POLICY["overloaded"].errno, 11);
  assert.equal(FAILURE_POLICY.timeout.errno, 5);
});

test("unknown or unspecified recall-service reasons become protocol errors (deny)", () => {
  assert.equal(fromProtoReason(Reason.UNSPECIFIED), "protocol-error");
  assert.equal(fromProtoReason(999 as Reason), "protocol-error");
  assert.equal(fromProtoReason(Reason.OBJECT_MISSING), "object-missing");
});
