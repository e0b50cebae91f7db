/**
 * The OpenAPI 3 document of the Customer API, built from the same routes and descriptors the
 * transcoder uses, so that it cannot drift from what the gateway accepts: paths and their
 * parameters from the http rules, request bodies and responses as component schemas built from
 * the messages (proto3 JSON names and types), the error body, the bearer scheme, and the .proto
 * comments as descriptions.
 */
import type { Route } from './route-table';
import { FieldType, INT64_TYPES, TIMESTAMP_TYPE, type FieldInfo, type SchemaRegistry, type ServiceInfo } from './schema-registry';

type Schema = Record<string, unknown>;

const STATUS_SCHEMA = 'google.rpc.Status';
const ANY_SCHEMA = 'google.protobuf.Any';
/** How deep a nested message's fields are offered as dotted query parameters (`a.b.c`). */
const MAX_QUERY_DEPTH = 3;

export interface OpenApiInfo {
  title: string;
  version: string;
}

export function buildOpenApi(
  registry: SchemaRegistry,
  service: ServiceInfo,
  routes: readonly Route[],
  info: OpenApiInfo,
): Record<string, unknown> {
  const schemas: Record<string, Schema> = {
    [STATUS_SCHEMA]: {
      type: 'object',
      description: 'The body of every error: a gRPC status code, a message, and typed details.',
      properties: {
        code: { type: 'integer', format: 'int32', description: 'The gRPC status code.' },
        message: { type: 'string' },
        details: { type: 'array', items: ref(ANY_SCHEMA) },
      },
      required: ['code', 'message', 'details'],
    },
    [ANY_SCHEMA]: {
      type: 'object',
      description: 'A typed detail, such as google.rpc.BadRequest with its fieldViolations.',
      properties: { '@type': { type: 'string' } },
      additionalProperties: {},
    },
  };
  const builder = new SchemaBuilder(registry, schemas);
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = route.template.toOpenApiPath();
    paths[path] ??= {};
    paths[path][route.httpMethod.toLowerCase()] = operation(registry, builder, service, route);
  }
  return {
    openapi: '3.0.3',
    info: { ...info, description: service.comment },
    tags: [{ name: service.name, description: service.comment }],
    security: [{ bearerAuth: [] }],
    paths,
    components: {
      securitySchemes: {
        bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API token (`pdm_…`).' },
      },
      schemas,
    },
  };
}

function operation(registry: SchemaRegistry, builder: SchemaBuilder, service: ServiceInfo, route: Route): Record<string, unknown> {
  const pathFields = route.template.variables.map((v) => v.fieldPath.join('.'));
  const parameters: Record<string, unknown>[] = route.template.variables.map((variable) => {
    const field = fieldAt(registry, route.inputType, variable.fieldPath);
    return {
      name: variable.fieldPath.join('.'),
      in: 'path',
      required: true,
      description: field.comment || undefined,
      schema: builder.single(field),
    };
  });
  const bodyField = route.body && route.body !== '*' ? registry.message(route.inputType).field(route.body) : undefined;
  if (route.body !== '*') {
    const skip = new Set([...pathFields, ...(bodyField ? [bodyField.name] : [])]);
    parameters.push(...queryParameters(registry, builder, route.inputType, { proto: '', json: '' }, skip, 0, new Set()));
  }
  const result: Record<string, unknown> = {
    operationId: `${service.name}_${route.methodName}${route.bindingIndex > 0 ? `_${route.bindingIndex + 1}` : ''}`,
    summary: firstSentence(route.comment),
    description: route.comment || undefined,
    tags: [service.name],
    parameters,
  };
  if (route.body === '*') {
    result.requestBody = { required: true, content: { 'application/json': { schema: builder.message(route.inputType) } } };
  } else if (bodyField) {
    result.requestBody = { required: true, content: { 'application/json': { schema: builder.field(bodyField) } } };
  }
  const output = builder.message(route.outputType);
  const success = route.serverStreaming
    ? {
        description: 'A stream: one JSON object per line, or Server-Sent Events with `Accept: text/event-stream`.',
        content: {
          'application/x-ndjson': {
            schema: { type: 'object', properties: { result: output, error: ref(STATUS_SCHEMA) } },
          },
          'text/event-stream': {
            schema: { type: 'string', description: 'Each `data:` line holds one object as in application/x-ndjson.' },
          },
        },
      }
    : { description: 'A successful response.', content: { 'application/json': { schema: output } } };
  result.responses = {
    '200': success,
    default: { description: 'An error.', content: { 'application/json': { schema: ref(STATUS_SCHEMA) } } },
  };
  return result;
}

/** The singular scalar, enum, timestamp and repeated-scalar fields, nested ones dotted. */
function queryParameters(
  registry: SchemaRegistry,
  builder: SchemaBuilder,
  typeName: string,
  prefix: { proto: string; json: string },
  skip: ReadonlySet<string>,
  depth: number,
  visiting: Set<string>,
): Record<string, unknown>[] {
  const params: Record<string, unknown>[] = [];
  visiting.add(typeName);
  for (const field of registry.message(typeName).fields) {
    // Path and body fields are skipped by their proto names (as the http rule writes them);
    // parameters are offered under their JSON names, like the bodies (both are accepted).
    if (skip.has(prefix.proto + field.name)) continue;
    const name = prefix.json + field.jsonName;
    const isMessage = field.type === FieldType.MESSAGE && field.typeName !== TIMESTAMP_TYPE;
    if (isMessage) {
      const nested = registry.message(field.typeName);
      if (field.repeated || nested.mapEntry || depth + 1 >= MAX_QUERY_DEPTH || visiting.has(field.typeName)) continue;
      const nestedPrefix = { proto: `${prefix.proto}${field.name}.`, json: `${name}.` };
      params.push(...queryParameters(registry, builder, field.typeName, nestedPrefix, skip, depth + 1, visiting));
      continue;
    }
    const schema = field.repeated ? { type: 'array', items: builder.single(field) } : builder.single(field);
    params.push({
      name,
      in: 'query',
      required: false,
      description: field.comment || undefined,
      schema,
      ...(field.repeated ? { style: 'form', explode: true } : {}),
    });
  }
  visiting.delete(typeName);
  return params;
}

/** Component schemas for messages and enums, added as they are first referenced. */
class SchemaBuilder {
  constructor(
    private readonly registry: SchemaRegistry,
    private readonly schemas: Record<string, Schema>,
  ) {}

  /** A reference to the message's component (or the inline form of a well-known type). */
  message(typeName: string): Schema {
    if (typeName === TIMESTAMP_TYPE) return { type: 'string', format: 'date-time' };
    if (!(typeName in this.schemas)) {
      const message = this.registry.message(typeName);
      const properties: Record<string, Schema> = {};
      this.schemas[typeName] = { type: 'object', description: message.comment || undefined, properties };
      for (const field of message.fields) {
        const schema = this.field(field);
        // In OpenAPI 3.0 a $ref takes no siblings: referenced fields go without description.
        properties[field.jsonName] =
          '$ref' in schema || !field.comment
            ? schema
            : { ...schema, description: field.comment, ...(isOutputOnly(field) ? { readOnly: true } : {}) };
      }
    }
    return ref(typeName);
  }

  /** A field as a whole: arrays for repeated fields, objects for maps. */
  field(field: FieldInfo): Schema {
    if (field.type === FieldType.MESSAGE) {
      const entry = this.registry.message(field.typeName);
      if (entry.mapEntry) {
        const value = entry.field('value');
        return { type: 'object', additionalProperties: value ? this.single(value) : {} };
      }
    }
    return field.repeated ? { type: 'array', items: this.single(field) } : this.single(field);
  }

  /** One value of the field's type. */
  single(field: FieldInfo): Schema {
    switch (field.type) {
      case FieldType.MESSAGE:
      case FieldType.GROUP:
        return this.message(field.typeName);
      case FieldType.ENUM:
        return this.enumRef(field.typeName);
      case FieldType.STRING:
        return { type: 'string' };
      case FieldType.BOOL:
        return { type: 'boolean' };
      case FieldType.BYTES:
        return { type: 'string', format: 'byte' };
      case FieldType.DOUBLE:
        return { type: 'number', format: 'double' };
      case FieldType.FLOAT:
        return { type: 'number', format: 'float' };
      case FieldType.UINT32:
      case FieldType.FIXED32:
        return { type: 'integer', format: 'int64', minimum: 0 };
      case FieldType.INT32:
      case FieldType.SINT32:
      case FieldType.SFIXED32:
        return { type: 'integer', format: 'int32' };
      default:
        if (INT64_TYPES.has(field.type)) {
          // proto3 JSON: 64-bit integers travel as strings.
          const unsigned = field.type === FieldType.UINT64 || field.type === FieldType.FIXED64;
          return { type: 'string', format: unsigned ? 'uint64' : 'int64' };
        }
        return {};
    }
  }

  private enumRef(typeName: string): Schema {
    if (!(typeName in this.schemas)) {
      const values = this.registry.enumType(typeName).values;
      this.schemas[typeName] = { type: 'string', enum: values.map((v) => v.name) };
    }
    return ref(typeName);
  }
}

function fieldAt(registry: SchemaRegistry, typeName: string, fieldPath: readonly string[]): FieldInfo {
  let message = registry.message(typeName);
  let field: FieldInfo | undefined;
  for (const name of fieldPath) {
    field = message.field(name);
    if (!field) throw new Error(`${typeName} has no field ${fieldPath.join('.')}`);
    if (field.type === FieldType.MESSAGE && field.typeName !== TIMESTAMP_TYPE) message = registry.message(field.typeName);
  }
  if (!field) throw new Error(`empty field path in ${typeName}`);
  return field;
}

/** The contract marks status fields with an "Output only" comment (spec apart from status). */
function isOutputOnly(field: FieldInfo): boolean {
  return field.comment.startsWith('Output only');
}

function ref(name: string): Schema {
  return { $ref: `#/components/schemas/${name}` };
}

function firstSentence(comment: string): string | undefined {
  const line = comment.split('\n')[0].trim();
  if (!line) return undefined;
  const end = line.search(/\.(\s|$)/);
  return end >= 0 ? line.slice(0, end + 1) : line;
}
