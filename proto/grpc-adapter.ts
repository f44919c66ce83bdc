// grpc-adapter: turns a protobuf-es v2 service descriptor into a @grpc/grpc-js service
// definition, and gives typed servers and promise clients over unix-domain sockets.
//
// Owns: the mapping from generated descriptors to grpc-js (paths, serializers), deadlines
// on the client side, cancellation signals on the server side.
// Must not own: any service logic, retries or logging. protoc-gen-es emits no grpc-js code
// (bufbuild/protobuf-es#252), so this file is the one hand-written bridge; gen/ stays untouched.
// Holds: the listening socket of each server it starts and the channel of each client.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import * as grpc from "@grpc/grpc-js";

/** What a server handler gets besides the request. */
export interface CallContext {
  /** Aborted when the client cancels or its deadline passes. */
  readonly signal: AbortSignal;
  /** Absolute deadline in ms since the epoch, or Infinity when the client set none. */
  readonly deadlineMs: number;
  /** Who called: the verified TLS client certificate's subject CN when there is one, else the peer address. */
  readonly caller: string;
}

type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: CallContext,
) => Promise<MessageInitShape<O>>;

type StreamHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  send: (message: MessageInitShape<O>) => void,
  ctx: CallContext,
) => Promise<void>;

/** A typed implementation of every method of a generated service. */
export type ServiceImpl<T extends GenServiceMethods> = {
  [K in keyof T]: T[K]["methodKind"] extends "unary"
    ? UnaryHandler<T[K]["input"], T[K]["output"]>
    : T[K]["methodKind"] extends "server_streaming"
      ? StreamHandler<T[K]["input"], T[K]["output"]>
      : never;
};

/** A typed promise client for the unary methods of a generated service. */
export type ServiceClient<T extends GenServiceMethods> = {
  [K in keyof T as T[K]["methodKind"] extends "unary" ? K : never]: (
    request: MessageInitShape<T[K]["input"]>,
    options?: { timeoutMs?: number; signal?: AbortSignal },
  ) => Promise<MessageShape<T[K]["output"]>>;
};

/** A gRPC error with its status code, for callers that map transport failures. */
export class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
    this.name = "RpcError";
  }
}

function serializers<M extends DescMessage>(schema: M) {
  return {
    serialize: (value: MessageShape<M>): Buffer => Buffer.from(toBinary(schema, value)),
    deserialize: (bytes: Buffer): MessageShape<M> => fromBinary(schema, bytes),
  };
}

/** Builds the grpc-js ServiceDefinition for a generated service (unary and server streaming). */
export function toServiceDefinition<T extends GenServiceMethods>(service: GenService<T>): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary" && method.methodKind !== "server_streaming") {
      throw new Error(`grpc-adapter: ${method.methodKind} methods are not supported (${method.name})`);
    }
    const input = serializers(method.input);
    const output = serializers(method.output);
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: false,
      responseStream: method.methodKind === "server_streaming",
      requestSerialize: input.serialize as (value: unknown) => Buffer,
      requestDeserialize: input.deserialize,
      responseSerialize: output.serialize as (value: unknown) => Buffer,
      responseDeserialize: output.deserialize,
    };
  }
  return definition;
}

function callContext(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>) {
  const controller = new AbortController();
  call.on("cancelled", () => controller.abort(new RpcError(grpc.status.CANCELLED, "call cancelled")));
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  const cert = call.getAuthContext().sslPeerCertificate;
  const cn = cert?.subject?.CN;
  const caller = typeof cn === "string" && cn !== "" ? `cn=${cn}` : call.getPeer();
  return { ctx: { signal: controller.signal, deadlineMs, caller }, controller };
}

function toServiceError(err: unknown): grpc.ServiceError {
  const code = err instanceof RpcError ? err.code : grpc.status.INTERNAL;
  const message = err instanceof Error ? err.message : String(err);
  return Object.assign(new Error(message), { code, details: message, metadata: new grpc.Metadata() });
}

/** Wraps a typed implementation into grpc-js handlers. */
export function toHandlers<T extends GenServiceMethods>(
  service: GenService<T>,
  impl: ServiceImpl<T>,
): grpc.UntypedServiceImplementation {
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const fn = impl[method.localName as keyof T] as unknown;
    if (typeof fn !== "function") throw new Error(`grpc-adapter: no handler for ${method.name}`);
    const outputSchema = method.output;
    if (method.methodKind === "unary") {
      const unary = fn as (req: unknown, ctx: CallContext) => Promise<MessageInitShape<DescMessage>>;
      handlers[method.localName] = (
        call: grpc.ServerUnaryCall<unknown, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        const { ctx, controller } = callContext(call);
        unary(call.request, ctx).then(
          (reply) => callback(null, create(outputSchema, reply)),
          (err: unknown) => callback(toServiceError(err)),
        );
        call.on("finish", () => controller.abort());
      };
    } else {
      const stream = fn as (req: unknown, send: (m: unknown) => void, ctx: CallContext) => Promise<void>;
      handlers[method.localName] = (call: grpc.ServerWritableStream<unknown, unknown>) => {
        const { ctx, controller } = callContext(call);
        const send = (m: unknown) => call.write(create(outputSchema, m as MessageInitShape<DescMessage>));
        stream(call.request, send, ctx).then(
          () => call.end(),
          (err: unknown) => call.destroy(toServiceError(err)),
        );
        call.on("close", () => controller.abort());
      };
    }
  }
  return handlers;
}

/** A started gRPC server bound to one address. */
export interface RunningServer {
  readonly server: grpc.Server;
  readonly address: string;
  /** Graceful stop, forced after graceMs. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts a server with the given services on an address such as `unix:///run/recall/recall.sock`. */
export async function startServer(
  address: string,
  services: ReadonlyArray<{ definition: grpc.ServiceDefinition; handlers: grpc.UntypedServiceImplementation }>,
  credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure(),
): Promise<RunningServer> {
  const server = new grpc.Server({ "grpc.max_receive_message_length": 4 * 1024 * 1024 });
  for (const s of services) server.addService(s.definition, s.handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, credentials, (err, boundPort) => (err ? reject(err) : resolve(boundPort))),
  );
  const bound = address.startsWith("unix:") ? address : address.replace(/:0$/, `:${port}`);
  return {
    server,
    address: bound,
    stop: (graceMs = 2000) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

/** A client plus its channel, so the owner can close it. */
export interface ClientHandle<T extends GenServiceMethods> {
  readonly client: ServiceClient<T>;
  readonly raw: grpc.Client;
  readonly close: () => void;
}

/** Creates a typed promise client. Every call gets a deadline (timeoutMs, default 30 s). */
export function createClient<T extends GenServiceMethods>(
  service: GenService<T>,
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  options: grpc.ClientOptions = {},
): ClientHandle<T> {
  const raw = new grpc.Client(address, credentials, options);
  const client: Record<string, unknown> = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary") continue;
    const input = serializers(method.input);
    const output = serializers(method.output);
    const path = `/${service.typeName}/${method.name}`;
    const inputSchema = method.input;
    client[method.localName] = (
      request: MessageInitShape<DescMessage>,
      opts: { timeoutMs?: number; signal?: AbortSignal } = {},
    ) =>
      new Promise((resolve, reject) => {
        const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
        const call = raw.makeUnaryRequest(
          path,
          input.serialize,
          output.deserialize,
          create(inputSchema, request),
          new grpc.Metadata(),
          { deadline },
          (err, reply) => {
            opts.signal?.removeEventListener("abort", onAbort);
            if (err) reject(new RpcError(err.code, err.details || err.message));
            else resolve(reply);
          },
        );
        const onAbort = () => call.cancel();
        opts.signal?.addEventListener("abort", onAbort, { once: true });
      });
  }
  return { client: client as ServiceClient<T>, raw, close: () => raw.close() };
}
