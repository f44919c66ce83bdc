// The audit record's pod uid, derived from the cgroup path of the process that caused a
// recall, for both kubelet cgroup drivers, and nothing for a path that names no pod.
import { test } from "node:test";
import assert from "node:assert/strict";
import { podUidFromCgroup } from "../../proto/accessor.js";

const UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

test("pod uid from a systemd-driver cgroup path", () => {
  const path = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID.replace(/-/g, "_")}.slice/cri-containerd-abc.scope`;
  assert.equal(podUidFromCgroup(path), UID);
  assert.equal(podUidFromCgroup(`/kubepods.slice/kubepods-pod${UID.replace(/-/g, "_")}.slice/x.scope`), UID);
});

test("pod uid from a cgroupfs-driver cgroup path", () => {
  assert.equal(podUidFromCgroup(`/kubepods/besteffort/pod${UID}/0123456789abcdef`), UID);
  assert.equal(podUidFromCgroup(`/kubepods/pod${UID.toUpperCase()}/c`), UID);
});

test("no pod for host processes or malformed paths", () => {
  assert.equal(podUidFromCgroup("/user.slice/user-1000.slice/session-2.scope"), null);
  assert.equal(podUidFromCgroup("/system.slice/smbd.service"), null);
  assert.equal(podUidFromCgroup("/kubepods/burstable/podnot-a-uid/c"), null);
  assert.equal(podUidFromCgroup(""), null);
});
