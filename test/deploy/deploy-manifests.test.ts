// The Kubernetes deployment (deploy/kubernetes), checked on what kustomize renders: the base
// alone and both overlays. Every rendered object must be valid against the Kubernetes 1.33
// schemas (strict: unknown fields are errors), carry the app.kubernetes.io labels, and keep
// the privilege split: only the recall service sees the S3 Secret; the listener has no port,
// no host network and exactly its listed capabilities; the recall service is non-root with
// nothing to escalate to; the holder is its own container; the policy is its own root
// container with the walk's capabilities only; all of them share one emptyDir.
// The exec probes are run for real against a seqpacket socket and a gRPC health server.
//
// Renderer: `kubectl kustomize` (or `kustomize build`). Missing: skipped on a workstation,
// a failure with CI=true. No cluster and no network are needed.
import { after, describe, test } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { promisify } from "node:util";
import type { IContainer, IDaemonSet, IPodSpec } from "../helpers/deploy-k8s.js";
import {
  allContainers,
  container,
  daemonSet,
  describe as describeObject,
  labelsOf,
  schemaErrors,
  secretsSeenBy,
} from "../helpers/deploy-k8s.js";
import type { Json, JsonObject } from "../helpers/deploy-tools.js";
import {
  DEPLOY_DIR,
  REPO_ROOT,
  isObject,
  jsonText,
  objectAt,
  parseYamlStream,
  renderKustomization,
  requireTool,
  run,
  stringsAt,
} from "../helpers/deploy-tools.js";
import {
  DEFAULT_RUN_DIR,
  adminSocketPath,
  holderSocketPath,
  recallGrpcSocketPath,
  recallSocketDir,
} from "../../ipc/run-dir.js";
import { POLICY_SPEC } from "../../cli/policy-command.js";
import * as native from "../../native/index.js";
import {
  Health,
  HealthStatus,
  ServingStatus,
  startServer,
  toHandlers,
  toServiceDefinition,
} from "../../proto/index.js";

const execFileAsync = promisify(execFile);
const K8S_DIR = join(DEPLOY_DIR, "kubernetes");
const RENDERERS = ["kubectl", "kustomize"];
const RENDERER_WHY = "kubectl (with its built-in kustomize) renders deploy/kubernetes";

const RECALL_UID = 10001;
/** The policy's walk: list every directory, read the trusted.* stub state and pin. */
const POLICY_CAPS = ["DAC_READ_SEARCH", "SYS_ADMIN"];
const BASE_LISTENER_CAPS = ["DAC_READ_SEARCH", "FOWNER", "LEASE", "SYS_ADMIN"];
const CLASSIFYING_LISTENER_CAPS = ["DAC_READ_SEARCH", "FOWNER", "LEASE", "SYS_ADMIN", "SYS_PTRACE"];
/** Mesh admin: paths are resolved with the recall service's credentials (setfsuid/setfsgid/setgroups). */
const MESH_LISTENER_CAPS = ["DAC_READ_SEARCH", "FOWNER", "LEASE", "SETGID", "SETUID", "SYS_ADMIN", "SYS_PTRACE"];
const LABELS = [
  "app.kubernetes.io/name",
  "app.kubernetes.io/instance",
  "app.kubernetes.io/component",
  "app.kubernetes.io/part-of",
];

interface Variant {
  readonly name: string;
  readonly dir: string;
  /** The listener's capabilities, sorted; hostPID goes with the classifying set. */
  readonly listenerCaps: readonly string[];
  readonly hostPID: boolean;
  /** dev renders the S3 Secret; base and prod expect it to exist in the cluster. */
  readonly rendersS3Secret: boolean;
  /** With components/mesh-admin (rendered through deploy.sh --mesh-admin --render). */
  readonly mesh?: boolean;
}

const VARIANTS: readonly Variant[] = [
  { name: "base", dir: "base", listenerCaps: BASE_LISTENER_CAPS, hostPID: false, rendersS3Secret: false },
  { name: "dev", dir: "overlays/dev", listenerCaps: CLASSIFYING_LISTENER_CAPS, hostPID: true, rendersS3Secret: true },
  {
    name: "prod",
    dir: "overlays/prod",
    listenerCaps: CLASSIFYING_LISTENER_CAPS,
    hostPID: true,
    rendersS3Secret: false,
  },
  {
    name: "prod with the mesh admin API",
    dir: "overlays/prod",
    listenerCaps: MESH_LISTENER_CAPS,
    hostPID: true,
    rendersS3Secret: false,
    mesh: true,
  },
];

const rendered = new Map<string, Json[]>();

/** The rendered objects of a variant (rendered once), or null when the test was skipped. */
function objectsOf(t: TestContext, variant: Variant): Json[] | null {
  const cached = rendered.get(variant.name);
  if (cached) return cached;
  const tool = requireTool(t, RENDERERS, RENDERER_WHY);
  if (!tool) return null;
  const text = variant.mesh
    ? renderWithDeployScript(["--overlay", "prod", "--mesh-admin", "--render"])
    : renderKustomization(tool, join(K8S_DIR, variant.dir));
  const objects = parseYamlStream(text, variant.name);
  rendered.set(variant.name, objects);
  return objects;
}

function renderWithDeployScript(args: readonly string[]): string {
  const r = run("bash", [join(DEPLOY_DIR, "deploy.sh"), ...args]);
  assert.equal(r.status, 0, `deploy.sh ${args.join(" ")} failed:\n${r.stderr}`);
  return r.stdout;
}

function node(objects: Json[]): { ds: IDaemonSet; pod: IPodSpec } {
  const ds = daemonSet(objects, "fanrecall-node");
  assert.ok(ds.spec?.template.spec, "the DaemonSet has a pod spec");
  return { ds, pod: ds.spec.template.spec };
}

function ofKind(objects: Json[], kind: string): JsonObject[] {
  return objects.filter((o): o is JsonObject => isObject(o) && o.kind === kind);
}

function nameOf(o: JsonObject): string {
  return jsonText(objectAt(o.metadata, "metadata").name);
}

/** The data of the generated ConfigMap whose name starts with `prefix`. */
function configData(objects: Json[], prefix: string): Record<string, string> {
  const found = ofKind(objects, "ConfigMap").filter((c) => nameOf(c).startsWith(`${prefix}-`));
  assert.equal(found.length, 1, `one ConfigMap ${prefix}-*`);
  const data = objectAt(found[0].data, `${prefix} data`);
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, jsonText(v)]));
}

function capsAdded(c: IContainer): string[] {
  return [...(c.securityContext?.capabilities?.add ?? [])].sort();
}

function execCommand(c: IContainer, probe: "readinessProbe" | "livenessProbe" | "startupProbe"): string[] {
  const command = c[probe]?.exec?.command;
  assert.ok(command && command.length > 0, `${c.name} has an exec ${probe}`);
  return command;
}

for (const variant of VARIANTS) {
  describe(`deploy/kubernetes ${variant.name}`, () => {
    test("renders, and every object is valid against the Kubernetes schema (unknown fields are errors)", (t) => {
      const objects = objectsOf(t, variant);
      if (!objects) return;
      assert.ok(objects.length >= 5, `rendered ${objects.length} objects`);
      const errors = objects.flatMap((o) => schemaErrors(o).map((e) => `${describeObject(o)}: ${e}`));
      assert.deepEqual(errors, []);
    });

    test("app.kubernetes.io/{name,instance,component,part-of} on every object and pod template", (t) => {
      const objects = objectsOf(t, variant);
      if (!objects) return;
      for (const o of objects) {
        const obj = objectAt(o, "object");
        const labels = labelsOf(obj);
        for (const l of LABELS) assert.ok(labels[l], `${describeObject(o)} has label ${l}`);
        const spec = isObject(obj.spec) ? obj.spec : {};
        if (isObject(spec.template)) {
          const tl = labelsOf(spec.template);
          for (const l of LABELS) assert.ok(tl[l], `${describeObject(o)}'s pod template has label ${l}`);
        }
      }
    });

    test("only the recall-service container sees the S3 Secret, through two named keys", (t) => {
      const objects = objectsOf(t, variant);
      if (!objects) return;
      const { pod } = node(objects);
      for (const c of allContainers(pod)) {
        const seen = secretsSeenBy(pod, c);
        if (c.name === "recall-service") {
          const s3 = seen.filter((name) => name !== "fanrecall-mesh-tls");
          assert.deepEqual(seen.length - s3.length, variant.mesh ? 1 : 0, "the mesh TLS Secret only with mesh admin");
          assert.equal(s3.length, 1, `recall-service sees one S3 Secret, not ${seen.join(", ")}`);
          assert.match(s3[0], /^fanrecall-s3(-[a-z0-9]+)?$/);
          assert.deepEqual(
            (c.env ?? []).filter((e) => e.valueFrom?.secretKeyRef).map((e) => e.valueFrom!.secretKeyRef!.key),
            ["access-key"],
            "the secret key is never in the environment",
          );
          assert.ok(!(c.env ?? []).some((e) => e.name === "FANRECALL_S3_SECRET_KEY"));
          const file = (c.env ?? []).find((e) => e.name === "FANRECALL_S3_SECRET_KEY_FILE")?.value ?? "";
          const mount = (c.volumeMounts ?? []).find((m) => file.startsWith(`${m.mountPath}/`));
          assert.ok(mount?.readOnly, `FANRECALL_S3_SECRET_KEY_FILE '${file}' is on a read-only mount`);
          const vol = (pod.volumes ?? []).find((v) => v.name === mount.name);
          assert.match(vol?.secret?.secretName ?? "", /^fanrecall-s3(-[a-z0-9]+)?$/);
          assert.deepEqual(
            vol?.secret?.items?.map((i) => [i.key, `${mount.mountPath}/${i.path}`]),
            [["secret-key", file]],
            "the volume holds the secret key alone, at FANRECALL_S3_SECRET_KEY_FILE",
          );
          assert.deepEqual(c.envFrom?.filter((e) => e.secretRef) ?? [], [], "no envFrom secretRef");
        } else {
          assert.deepEqual(seen, [], `${c.name} sees no Secret`);
        }
      }
      const s3Secrets = ofKind(objects, "Secret").filter((s) => nameOf(s).startsWith("fanrecall-s3"));
      if (variant.rendersS3Secret) {
        assert.equal(s3Secrets.length, 1);
        assert.deepEqual(
          secretsSeenBy(pod, container(pod, "recall-service")).filter((n) => n !== "fanrecall-mesh-tls"),
          [nameOf(s3Secrets[0])],
        );
        assert.deepEqual(Object.keys(objectAt(s3Secrets[0].data, "data")).sort(), ["access-key", "secret-key"]);
      } else {
        assert.deepEqual(s3Secrets, [], "the S3 Secret is created out of band, never rendered from git");
      }
      for (const cm of ofKind(objects, "ConfigMap")) {
        for (const k of Object.keys(objectAt(cm.data, "data"))) assert.doesNotMatch(k, /SECRET|ACCESS_KEY|PASSWORD/);
      }
    });

    test("listener: root, no ports, no hostNetwork, drop ALL then exactly its capabilities", (t) => {
      const objects = objectsOf(t, variant);
      if (!objects) return;
      const { pod } = node(objects);
      const l = container(pod, "listener");
      assert.ok(pod.containers.includes(l), "the listener is a regular container");
      assert.equal(l.ports, undefined, "the listener declares no port");
      assert.notEqual(pod.hostNetwork, true);
      assert.notEqual(pod.hostIPC, true);
      assert.equal(pod.hostPID ?? false, variant.hostPID);
      const sc = l.securityContext!;
      assert.equal(sc.runAsUser, 0);
      assert.notEqual(sc.privileged, true);
      assert.equal(sc.readOnlyRootFilesystem, true);
      assert.deepEqual(sc.capabilities?.drop, ["ALL"]);
      assert.deepEqual(capsAdded(l), variant.listenerCaps);
      const watch = (l.volumeMounts ?? []).find((m) => m.name === "watch");
      assert.equal(watch?.mountPropagation, "HostToContainer");
      assert.notEqual(watch?.readOnly, true, "admin triggers through a read-only mount get no writable event fd");
      execCommand(l, "livenessProbe");
      execCommand(l, "readinessProbe");
      assert.equal(pod.automountServiceAccountToken, false);
    });

    test("policy: its own root container of the listener image running `policy`, the walk's capabilities, read-only mounts", (t) => {
      const objects = objectsOf(t, variant);
      if (!objects) return;
      const { pod } = node(objects);
      const p = container(pod, "policy");
      assert.ok(pod.containers.includes(p), "the policy is a regular container");
      assert.equal(p.image?.split(":")[0], container(pod, "listener").image?.split(":")[0], "the listener's image");
      assert.deepEqual(p.command?.slice(0, 3), ["node", "/app/bin/fanrecall.js", "policy"]);
      assert.ok(!p.command?.includes("--once") && !p.command?.includes("--dry-run"), "it runs until SIGTERM");
      assert.equal(p.ports, undefined, "the policy declares no port");
      const sc = p.securityContext!;
      assert.equal(sc.runAsUser, 0);
      assert.notEqual(sc.privileged, true);
      assert.equal(sc.readOnlyRootFilesystem, true);
      assert.deepEqual(sc.capabilities?.drop, ["ALL"]);
      assert.deepEqual(capsAdded(p), POLICY_CAPS);
      assert.equal(p.envFrom, undefined, "no ConfigMap of another container's settings");
      const mounts = new Map((p.volumeMounts ?? []).map((m) => [m.name, m]));
      assert.equal(mounts.get("watch")?.readOnly, true, "the listener reopens its fds through its own view");
      assert.equal(mounts.get("watch")?.mountPropagation, "HostToContainer");
      const settings = mounts.get("policy-settings");
      assert.ok(settings?.readOnly, "its settings are mounted read-only");
      const config = p.command?.[p.command.indexOf("--config") + 1] ?? "";
      assert.equal(dirname(config), settings.mountPath, "--config names the mounted policy.json");
      const volume = (pod.volumes ?? []).find((v) => v.name === "policy-settings");
      const cm = ofKind(objects, "ConfigMap").find((c) => nameOf(c) === volume?.configMap?.name);
      assert.ok(cm && nameOf(cm).startsWith("fanrecall-policy-"), "the volume is the generated ConfigMap");
      const file = jsonText(objectAt(cm.data, "policy data")[basename(config)]);
      const keys = Object.keys(JSON.parse(file) as object);
      for (const k of keys) assert.ok(POLICY_SPEC.settings.some((s) => s.key === k), `policy.json: ${k} is a setting`);
      assert.equal(p.command?.at(-1), configData(objects, "fanrecall-listener").FANRECALL_WATCH, "the watched path");
    });

    test("recall-service: non-root 10001, drop ALL, read-only root, no privilege escalation, RuntimeDefault seccomp", (t) => {
      const objects = objectsOf(t, variant);
      if (!objects) return;
      const { pod } = node(objects);
      const r = container(pod, "recall-service");
      const sc = r.securityContext!;
      assert.equal(sc.runAsNonRoot, true);
      assert.equal(sc.runAsUser, RECALL_UID);
      assert.equal(sc.runAsGroup, RECALL_UID);
      assert.deepEqual(sc.capabilities?.drop, ["ALL"]);
      assert.deepEqual(sc.capabilities?.add ?? [], []);
      assert.equal(sc.readOnlyRootFilesystem, true);
      assert.equal(sc.allowPrivilegeEscalation, false);
      assert.notEqual(sc.privileged, true);
      assert.equal(sc.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type, "RuntimeDefault");
      assert.deepEqual(
        (r.volumeMounts ?? []).map((m) => m.name).sort(),
        variant.mesh ? ["mesh-tls", "run", "s3-secret-key"] : ["run", "s3-secret-key"],
        "the recall service mounts only the socket directory and its secrets (never the data filesystem)",
      );
      assert.deepEqual(
        (r.ports ?? []).map((p) => [p.name, p.containerPort]),
        variant.mesh
          ? [
              ["metrics", 9464],
              ["mesh-admin", 9443],
            ]
          : [["metrics", 9464]],
      );
      for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"] as const) execCommand(r, probe);
    });

    test("mesh admin API: TLS with client certificates on 9443, relayed to the listener, node-local Service", (t) => {
      const objects = objectsOf(t, variant);
      if (!objects) return;
      const { pod } = node(objects);
      const r = container(pod, "recall-service");
      const env = Object.fromEntries((r.env ?? []).map((e) => [e.name, e.value ?? ""]));
      const l = container(pod, "listener");
      const listenerEnv = Object.fromEntries((l.env ?? []).map((e) => [e.name, e.value ?? ""]));
      const services = ofKind(objects, "Service").filter((o) => nameOf(o) === "fanrecall-mesh-admin");
      if (!variant.mesh) {
        assert.equal(env.FANRECALL_MESH_ADMIN_ADDRESS, undefined, "off unless asked for");
        assert.equal(listenerEnv.FANRECALL_MESH_ADMIN, undefined);
        assert.deepEqual(services, []);
        return;
      }
      assert.equal(env.FANRECALL_MESH_ADMIN_ADDRESS, "0.0.0.0:9443");
      const mount = (r.volumeMounts ?? []).find((m) => m.name === "mesh-tls");
      assert.equal(mount?.readOnly, true);
      for (const k of ["FANRECALL_MESH_TLS_CERT", "FANRECALL_MESH_TLS_KEY", "FANRECALL_MESH_TLS_CLIENT_CA"]) {
        assert.ok(env[k]?.startsWith(`${mount?.mountPath}/`), `${k} is in the mounted Secret`);
      }
      assert.equal(listenerEnv.FANRECALL_MESH_ADMIN, "true");
      assert.equal(l.ports, undefined, "the listener still declares no port");
      for (const c of allContainers(pod)) {
        if (c.name !== "recall-service") {
          assert.ok(
            !(c.volumeMounts ?? []).some((m) => m.name === "mesh-tls"),
            `${c.name} does not mount the TLS Secret`,
          );
        }
      }
      assert.equal(services.length, 1);
      const spec = objectAt(services[0].spec, "Service spec");
      assert.equal(spec.internalTrafficPolicy, "Local");
      assert.equal(jsonText(objectAt(spec.selector, "selector")["app.kubernetes.io/component"]), "node");
      const policy = ofKind(objects, "NetworkPolicy")[0];
      assert.ok(JSON.stringify(policy.spec).includes('"port":9443'), "the NetworkPolicy admits 9443");
    });

    test("the holder is a separate container: a root sidecar without capabilities, started before the listener", (t) => {
      const objects = objectsOf(t, variant);
      if (!objects) return;
      const { pod } = node(objects);
      const h = container(pod, "holder");
      assert.ok(pod.initContainers?.includes(h), "the holder is a native sidecar (an init container)");
      assert.equal(h.restartPolicy, "Always");
      assert.deepEqual(h.command?.slice(-3), ["holder", "--socket", holderSocketPath(DEFAULT_RUN_DIR)]);
      assert.equal(h.securityContext?.runAsUser, 0);
      assert.deepEqual(h.securityContext?.capabilities?.drop, ["ALL"]);
      assert.deepEqual(h.securityContext?.capabilities?.add ?? [], []);
      assert.equal(h.securityContext?.allowPrivilegeEscalation, false);
      assert.deepEqual(
        pod.initContainers?.map((c) => c.name),
        ["prepare", "holder", "recall-service"],
        "start order: prepare, holder, recall-service, then the listener",
      );
      assert.deepEqual(
        pod.containers.map((c) => c.name),
        ["listener", "policy"],
      );
    });

    test("all containers share the emptyDir at /run/fanrecall", (t) => {
      const objects = objectsOf(t, variant);
      if (!objects) return;
      const { pod } = node(objects);
      const run = (pod.volumes ?? []).find((v) => v.name === "run");
      assert.ok(run?.emptyDir, "volume run is an emptyDir");
      const names = allContainers(pod).map((c) => c.name);
      assert.deepEqual(names.sort(), ["holder", "listener", "policy", "prepare", "recall-service"]);
      for (const c of allContainers(pod)) {
        const m = (c.volumeMounts ?? []).filter((v) => v.name === "run");
        assert.deepEqual(
          m.map((v) => [v.mountPath, v.readOnly ?? false]),
          [[DEFAULT_RUN_DIR, false]],
          `${c.name} mounts the socket directory`,
        );
      }
      for (const v of pod.volumes ?? []) {
        if (v.hostPath) assert.equal(v.name, "watch", "the only hostPath is the watched data filesystem");
      }
    });

    test("RollingUpdate surges before unavailability (maxSurge 1, maxUnavailable 0)", (t) => {
      const objects = objectsOf(t, variant);
      if (!objects) return;
      const { ds } = node(objects);
      assert.equal(ds.spec?.updateStrategy?.type, "RollingUpdate");
      assert.equal(ds.spec?.updateStrategy?.rollingUpdate?.maxSurge, 1);
      assert.equal(ds.spec?.updateStrategy?.rollingUpdate?.maxUnavailable, 0);
    });

    test("ServiceAccount without a token, resources on every container", (t) => {
      const objects = objectsOf(t, variant);
      if (!objects) return;
      const { pod } = node(objects);
      const sa = ofKind(objects, "ServiceAccount").find((s) => nameOf(s) === pod.serviceAccountName);
      assert.ok(sa, `ServiceAccount ${pod.serviceAccountName} is rendered`);
      assert.equal(sa.automountServiceAccountToken, false);
      for (const o of [...ofKind(objects, "DaemonSet"), ...ofKind(objects, "Deployment")]) {
        const spec = (o as unknown as IDaemonSet).spec!.template.spec!;
        for (const c of allContainers(spec)) {
          for (const k of ["requests", "limits"] as const) {
            assert.ok(c.resources?.[k]?.memory && c.resources[k].cpu, `${describeObject(o)} ${c.name} has ${k}`);
          }
        }
      }
    });

    test("the numbers and paths that must agree do agree", (t) => {
      const objects = objectsOf(t, variant);
      if (!objects) return;
      const { pod } = node(objects);
      const listenerEnv = configData(objects, "fanrecall-listener");
      const recallEnv = configData(objects, "fanrecall-recall-service");
      const r = container(pod, "recall-service");
      const l = container(pod, "listener");
      assert.equal(Number(listenerEnv.FANRECALL_RECALL_UID), r.securityContext?.runAsUser);
      assert.equal(Number(recallEnv.FANRECALL_LISTENER_UID), l.securityContext?.runAsUser);
      assert.deepEqual(pod.securityContext?.supplementalGroups, [r.securityContext?.runAsGroup]);
      const prepareScript = container(pod, "prepare").command?.join(" ") ?? "";
      assert.match(prepareScript, new RegExp(`chown ${RECALL_UID}:${RECALL_UID} /run/fanrecall/recall`));
      assert.equal(listenerEnv.FANRECALL_RUN_DIR, DEFAULT_RUN_DIR);
      assert.equal(recallEnv.FANRECALL_RUN_DIR, DEFAULT_RUN_DIR);
      assert.equal(listenerEnv.FANRECALL_HOLDER_SOCKET, container(pod, "holder").command?.at(-1));
      const watchVolume = (pod.volumes ?? []).find((v) => v.name === "watch");
      const watchDirs = listenerEnv.FANRECALL_WATCH.split(":");
      assert.deepEqual(watchDirs, [watchVolume?.hostPath?.path], "FANRECALL_WATCH is the hostPath");
      for (const name of ["listener", "prepare"]) {
        const m = (container(pod, name).volumeMounts ?? []).find((v) => v.name === "watch");
        assert.equal(m?.mountPath, watchDirs[0], `${name} mounts the watched path at the host's path`);
      }
    });

    test("API server rules the schema does not carry", (t) => {
      const objects = objectsOf(t, variant);
      if (!objects) return;
      const { pod } = node(objects);
      const configMaps = new Set(ofKind(objects, "ConfigMap").map(nameOf));
      const volumes = new Set((pod.volumes ?? []).map((v) => v.name));
      const names = allContainers(pod).map((c) => c.name);
      assert.equal(new Set(names).size, names.length, "container names are unique");
      for (const c of allContainers(pod)) {
        const sc = c.securityContext ?? {};
        const adds = sc.capabilities?.add ?? [];
        if (sc.allowPrivilegeEscalation === false) {
          assert.notEqual(sc.privileged, true, `${c.name}: allowPrivilegeEscalation false with privileged`);
          assert.ok(
            !adds.includes("SYS_ADMIN") && !adds.includes("CAP_SYS_ADMIN"),
            `${c.name}: allowPrivilegeEscalation false with CAP_SYS_ADMIN is rejected`,
          );
        }
        for (const m of c.volumeMounts ?? [])
          assert.ok(volumes.has(m.name), `${c.name} mounts unknown volume ${m.name}`);
        for (const e of c.envFrom ?? []) {
          if (e.configMapRef) assert.ok(configMaps.has(e.configMapRef.name!), `${c.name}: ConfigMap exists`);
        }
      }
      for (const c of pod.initContainers ?? []) {
        if (c.restartPolicy !== "Always") {
          for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"] as const) {
            assert.equal(c[probe], undefined, `${c.name}: a plain init container cannot have a ${probe}`);
          }
        }
      }
      const ns = ofKind(objects, "Namespace");
      assert.equal(ns.length, 1);
      assert.equal(labelsOf(ns[0])["pod-security.kubernetes.io/enforce"], "privileged");
    });
  });
}

describe("the strict schema check", () => {
  test("rejects a misspelled field, a wrong type and a kind it has no schema for", () => {
    const ds: Json = {
      apiVersion: "apps/v1",
      kind: "DaemonSet",
      metadata: { name: "x", labels: { a: "b" } },
      spec: {
        selector: { matchLabels: { a: "b" } },
        template: {
          metadata: { labels: { a: "b" } },
          spec: {
            containers: [
              {
                name: "c",
                image: "i",
                ports: [{ containerPort: "9464" }],
                volumeMounts: [{ name: "v", mountPath: "/m", mountPropogation: "HostToContainer" }],
              },
            ],
          },
        },
      },
    };
    const errors = schemaErrors(ds).join("\n");
    assert.match(errors, /containerPort must be integer/);
    assert.match(errors, /volumeMounts\/0\/mountPropogation: unknown field/);
    assert.match(schemaErrors({ apiVersion: "example.com/v1", kind: "Widget" }).join(), /no schema/);
    assert.deepEqual(schemaErrors({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "ok" } }), []);
  });
});

describe("deploy/deploy.sh", () => {
  const script = join(DEPLOY_DIR, "deploy.sh");

  test("--help describes it and exits 0; an unknown option fails", () => {
    const help = run("bash", [script, "--help"]);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /usage: deploy\/deploy\.sh/);
    assert.match(help.stdout, /kubectl apply -k/);
    assert.notEqual(run("bash", [script, "--bogus"]).status, 0);
  });

  test("--render prints the overlay offline, with image overrides applied", (t) => {
    if (!requireTool(t, ["kubectl"], "deploy.sh renders and applies with kubectl")) return;
    const r = run("bash", [
      script,
      "--render",
      "--overlay",
      "prod",
      "--listener-image",
      "registry.example:5000/fanrecall/listener:1.2.3",
      "--recall-image",
      "registry.example/fanrecall/recall-service@sha256:" + "ab".repeat(32),
    ]);
    assert.equal(r.status, 0, r.stderr);
    const { pod } = node(parseYamlStream(r.stdout, "deploy.sh --render"));
    for (const name of ["prepare", "holder", "listener"]) {
      assert.equal(container(pod, name).image, "registry.example:5000/fanrecall/listener:1.2.3");
    }
    assert.equal(
      container(pod, "recall-service").image,
      "registry.example/fanrecall/recall-service@sha256:" + "ab".repeat(32),
    );
  });

  test("a prod deploy refuses the placeholder S3 endpoint before it touches a cluster", (t) => {
    if (!requireTool(t, ["kubectl"], "deploy.sh renders and applies with kubectl")) return;
    const r = run("bash", [script, "--overlay", "prod", "--context", "fanrecall-test-no-such-context"]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /set FANRECALL_S3_ENDPOINT/);
  });
});

describe("the exec probes in the manifest", () => {
  const dir = mkdtempSync(join(tmpdir(), "fanrecall-probe-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs a probe command from the manifest against this checkout and the temporary run dir. */
  async function probe(command: readonly string[]): Promise<number> {
    const local = command.map((arg) =>
      arg
        .replaceAll("/app/dist/native/index.js", join(REPO_ROOT, "native", "index.ts"))
        .replaceAll("/app/node_modules/", join(REPO_ROOT, "node_modules") + "/")
        .replaceAll(`${DEFAULT_RUN_DIR}/`, `${dir}/`),
    );
    assert.equal(local[0], "node");
    try {
      await execFileAsync(process.execPath, ["--import", "tsx", ...local.slice(1)], {
        cwd: REPO_ROOT,
        timeout: 15_000,
      });
      return 0;
    } catch (err: unknown) {
      const code = (err as { code?: unknown }).code;
      return typeof code === "number" ? code : -1;
    }
  }

  function baseNode(t: TestContext): IPodSpec | null {
    const objects = objectsOf(t, VARIANTS[0]);
    return objects ? node(objects).pod : null;
  }

  test("the listener's probe passes only while the admin socket is served", async (t) => {
    const pod = baseNode(t);
    if (!pod) return;
    const command = execCommand(container(pod, "listener"), "readinessProbe");
    assert.deepEqual(execCommand(container(pod, "listener"), "livenessProbe"), command);
    const path = adminSocketPath(dir);
    mkdirSync(dirname(path), { recursive: true });
    const fd = native.seqpacketListen(path, 4);
    try {
      assert.equal(await probe(command), 0, "served: the probe passes");
    } finally {
      native.close(fd);
    }
    assert.notEqual(await probe(command), 0, "a stale socket file fails the probe");
    rmSync(path, { force: true });
    assert.notEqual(await probe(command), 0, "no socket fails the probe");
  });

  test("the recall service's probes: startup and liveness follow the server, readiness the recall path", async (t) => {
    const pod = baseNode(t);
    if (!pod) return;
    const r = container(pod, "recall-service");
    const live = execCommand(r, "startupProbe");
    assert.deepEqual(execCommand(r, "livenessProbe"), live);
    const ready = execCommand(r, "readinessProbe");
    assert.notDeepEqual(ready, live);
    for (const command of [live, ready]) {
      assert.ok(stringsAt(command, "probe").join(" ").includes(recallGrpcSocketPath(DEFAULT_RUN_DIR)));
    }
    mkdirSync(recallSocketDir(dir), { recursive: true });
    const health = new HealthStatus();
    health.set("", ServingStatus.SERVING);
    health.set("recall.v1.RecallService", ServingStatus.NOT_SERVING);
    const server = await startServer(`unix://${recallGrpcSocketPath(dir)}`, [
      { definition: toServiceDefinition(Health), handlers: toHandlers(Health, health.impl()) },
    ]);
    try {
      assert.equal(await probe(live), 0, "the server serves: liveness passes");
      assert.notEqual(await probe(ready), 0, "store or listener missing: not ready");
      health.set("recall.v1.RecallService", ServingStatus.SERVING);
      assert.equal(await probe(ready), 0, "recall path SERVING: ready");
      health.set("", ServingStatus.NOT_SERVING);
      assert.notEqual(await probe(live), 0, "NOT_SERVING fails liveness");
    } finally {
      await server.stop(1000);
    }
    assert.notEqual(await probe(live), 0, "no server fails liveness");
    assert.notEqual(await probe(ready), 0, "no server fails readiness");
  });
});
