// test/helpers/deploy-k8s.ts: validates rendered Kubernetes objects against the Kubernetes
// OpenAPI schemas, offline, and gives typed views of the few kinds the deploy tests inspect.
//
// The schemas come from the npm package kubernetes-models (Kubernetes 1.33 OpenAPI, compiled
// to ajv validators). Those validators check types, enums, formats and required fields but,
// like the OpenAPI itself, let unknown fields through, and an unknown field is exactly the
// typo that matters here ("mountPropogation" silently means no propagation). So every
// object is validated through a Proxy that records which keys the validator reads: a key it
// never reads is not in the schema, and is reported as an error (kubeconform -strict does the
// same with additionalProperties: false).
//
// Owns: the kind -> schema table and the strictness proxy. Holds no fds.
import type { IDaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import type { IContainer } from "kubernetes-models/v1/Container";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import type { Json, JsonObject } from "./deploy-tools.js";
import { isObject, jsonText } from "./deploy-tools.js";

export type { IContainer, IDaemonSet, IPodSpec };

type Validating = { prototype: { validate(this: unknown): void } };

/** apiVersion/kind -> model; a kind missing here is an error, never skipped. */
const MODELS: ReadonlyMap<string, Validating> = new Map<string, Validating>([
  ["v1/Namespace", Namespace],
  ["v1/ServiceAccount", ServiceAccount],
  ["v1/ConfigMap", ConfigMap],
  ["v1/Secret", Secret],
  ["v1/Service", Service],
  ["apps/v1/DaemonSet", DaemonSet],
  ["apps/v1/Deployment", Deployment],
  ["networking.k8s.io/v1/NetworkPolicy", NetworkPolicy],
]);

interface Visited {
  readonly path: string;
  readonly value: JsonObject;
  readonly read: Set<string>;
}

/**
 * Wraps `value` so that every key read (get, has, enumeration) is recorded per object. One
 * proxy per underlying object: the validator reads `data.metadata` several times, and every
 * read must land in the same record.
 */
function track(value: Json, path: string, visited: Visited[], proxies: WeakMap<object, Json>): Json {
  if (typeof value !== "object" || value === null) return value;
  const existing = proxies.get(value);
  if (existing !== undefined) return existing;
  const read = new Set<string>();
  if (!Array.isArray(value)) visited.push({ path, value, read });
  const handler: ProxyHandler<JsonObject | Json[]> = {
    get(target, key, receiver) {
      const got: unknown = Reflect.get(target, key, receiver);
      if (typeof key !== "string") return got;
      read.add(key);
      return Object.hasOwn(target, key) ? track(got as Json, `${path}/${key}`, visited, proxies) : got;
    },
    has(target, key) {
      if (typeof key === "string") read.add(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      const keys = Reflect.ownKeys(target);
      for (const k of keys) if (typeof k === "string") read.add(k);
      return keys;
    },
  };
  const proxy = new Proxy(value, handler) as Json;
  proxies.set(value, proxy);
  return proxy;
}

/** Every schema error of one object ([] when valid), unknown fields included. */
export function schemaErrors(obj: Json): string[] {
  if (!isObject(obj)) return ["not an object"];
  const key = `${jsonText(obj.apiVersion)}/${jsonText(obj.kind)}`;
  const model = MODELS.get(key);
  if (!model) return [`no schema for ${key} (add the kind to MODELS in test/helpers/deploy-k8s.ts)`];
  const visited: Visited[] = [];
  const errors: string[] = [];
  try {
    model.prototype.validate.call(track(obj, "", visited, new WeakMap()));
  } catch (err: unknown) {
    errors.push(err instanceof Error ? err.message : String(err));
  }
  for (const { path, value, read } of visited) {
    for (const k of Object.keys(value)) if (!read.has(k)) errors.push(`${path}/${k}: unknown field`);
  }
  return errors;
}

/** A name for messages: Kind/name. */
export function describe(obj: Json): string {
  if (!isObject(obj)) return "(not an object)";
  const meta = isObject(obj.metadata) ? obj.metadata : {};
  return `${jsonText(obj.kind)}/${jsonText(meta.name)}`;
}

/** The object's labels (metadata.labels), or {}. */
export function labelsOf(obj: JsonObject): Record<string, Json> {
  const meta = isObject(obj.metadata) ? obj.metadata : {};
  return isObject(meta.labels) ? meta.labels : {};
}

/** The one DaemonSet named `name`, typed (the caller validated the objects first). */
export function daemonSet(objects: Json[], name: string): IDaemonSet {
  const found = objects.filter(
    (o) => isObject(o) && o.kind === "DaemonSet" && isObject(o.metadata) && o.metadata.name === name,
  );
  if (found.length !== 1) throw new Error(`expected one DaemonSet ${name}, found ${found.length}`);
  return found[0] as unknown as IDaemonSet;
}

/** Init containers and regular containers of a pod spec, in start order. */
export function allContainers(spec: IPodSpec): IContainer[] {
  return [...(spec.initContainers ?? []), ...spec.containers];
}

/** The container called `name` (init or regular); throws when there is not exactly one. */
export function container(spec: IPodSpec, name: string): IContainer {
  const found = allContainers(spec).filter((c) => c.name === name);
  if (found.length !== 1) throw new Error(`expected one container ${name}, found ${found.length}`);
  return found[0];
}

/** Names of every Secret a container can read: env, envFrom and mounted volumes. */
export function secretsSeenBy(spec: IPodSpec, c: IContainer): string[] {
  const names = new Set<string>();
  for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef?.name) names.add(e.valueFrom.secretKeyRef.name);
  for (const e of c.envFrom ?? []) if (e.secretRef?.name) names.add(e.secretRef.name);
  const mounted = new Set((c.volumeMounts ?? []).map((m) => m.name));
  for (const v of spec.volumes ?? []) {
    if (!mounted.has(v.name)) continue;
    if (v.secret?.secretName) names.add(v.secret.secretName);
    for (const s of v.projected?.sources ?? []) if (s.secret?.name) names.add(s.secret.name);
  }
  return [...names].sort();
}
