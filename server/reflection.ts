/**
 * gRPC server reflection, so that `grpcurl … list` and `describe` work.
 *
 * The descriptors are the exact per-file ones ts-proto embeds in the generated code
 * (outputSchema=true), handed to @grpc/reflection as they are. Going through
 * @grpc/proto-loader instead merges the files of one package and loses the references between
 * them (grpc/grpc-node#3018: grpcurl then fails on google.protobuf.Timestamp). The standard
 * health service is listed too, so that `grpcurl … grpc.health.v1.Health/Check` works.
 */
import { ReflectionService } from '@grpc/reflection';
import type { Server } from '@grpc/grpc-js';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { FileDescriptorProto } from '../gen/google/protobuf/descriptor';
import { protoMetadata as agentSchema } from '../gen/podium/v1/agent';
import { protoMetadata as certificateSchema } from '../gen/podium/v1/certificate';
import { protoMetadata as podApiSchema } from '../gen/podium/v1/pod_api';

interface Schema {
  fileDescriptor: unknown;
  dependencies?: Schema[];
}

/** Every file reachable from `roots`, dependencies first, each once, encoded. */
function encodedFiles(roots: Schema[]): Buffer[] {
  const seen = new Map<string, Buffer>();
  const visit = (s: Schema) => {
    const fd = s.fileDescriptor as FileDescriptorProto;
    const name = fd.name ?? '';
    if (seen.has(name)) return;
    for (const d of s.dependencies ?? []) visit(d);
    seen.set(name, Buffer.from(FileDescriptorProto.encode(fd).finish()));
  };
  roots.forEach(visit);
  return [...seen.values()];
}

export function addReflection(server: Server): void {
  const files = encodedFiles([podApiSchema, agentSchema, certificateSchema]);
  // The health service is one self-contained file: proto-loader describes it correctly.
  const health = loadSync(healthProtoPath);
  // @grpc/reflection reads only `fileDescriptorProtos` of each entry.
  const pkg = { ...health, 'podium.v1': { fileDescriptorProtos: files } } as unknown as PackageDefinition;
  new ReflectionService(pkg).addToServer(server);
}
