// The listener image carries root code only: its build removes the S3 client, the embedded
// store and the recall service's compiled code before the runtime stage copies anything, and
// fails if they are still there. (Images are not built here: no registry for the base image.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

const root = new URL("../../", import.meta.url).pathname;

test("the listener image drops minio, s3rver and the recall service before its runtime stage copies", () => {
  const text = readFileSync(`${root}deploy/docker/Dockerfile.listener`, "utf8").replace(/\\\n/g, " ");
  const lines = text.split("\n");
  const runtime = lines.findIndex((l) => /^FROM .* AS runtime|^FROM node:\S+-slim/.test(l));
  assert.ok(runtime > 0, "a runtime stage");
  const removal = lines.findIndex(
    (l) => /^RUN /.test(l) && /npm uninstall\b.*\bminio\b.*\bs3rver\b/.test(l) && /rm -rf dist\/recall-service/.test(l),
  );
  assert.ok(removal > 0 && removal < runtime, "minio, s3rver and dist/recall-service removed in the build stage");
  assert.match(lines[removal], /test ! -e node_modules\/minio/);
  assert.match(lines[removal], /test ! -e node_modules\/s3rver/);
  const copies = lines.slice(runtime).filter((l) => /^COPY /.test(l));
  assert.ok(copies.length > 0);
  for (const c of copies) assert.doesNotMatch(c, /recall-service|s3rver|minio/, c);
});
