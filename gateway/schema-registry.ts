/**
 * The schema the gateway transcodes with, read at run time from ts-proto's `protoMetadata`
 * (outputSchema=true): message and enum descriptors, the JSON codecs (`fromJSON`/`toJSON`) of
 * each message, services with their methods and decoded `google.api.http` rules, and the
 * comments of the .proto files (for the OpenAPI document).
 *
 * Only the few descriptor fields the gateway reads are typed here, structurally, so that any
 * generated file's `protoMetadata` fits without importing ts-proto's descriptor package.
 * Type names are kept without the leading dot: `podium.v1.Service`.
 */

/** google.protobuf.FieldDescriptorProto.Type. */
export const FieldType = {
  DOUBLE: 1,
  FLOAT: 2,
  INT64: 3,
  UINT64: 4,
  INT32: 5,
  FIXED64: 6,
  FIXED32: 7,
  BOOL: 8,
  STRING: 9,
  GROUP: 10,
  MESSAGE: 11,
  BYTES: 12,
  UINT32: 13,
  ENUM: 14,
  SFIXED32: 15,
  SFIXED64: 16,
  SINT32: 17,
  SINT64: 18,
} as const;

const LABEL_REPEATED = 3;

/** The types whose proto3 JSON form is a string (64-bit integers, which a double cannot hold). */
export const INT64_TYPES: ReadonlySet<number> = new Set([
  FieldType.INT64,
  FieldType.UINT64,
  FieldType.FIXED64,
  FieldType.SFIXED64,
  FieldType.SINT64,
]);

export const TIMESTAMP_TYPE = 'google.protobuf.Timestamp';

interface FieldDescriptorLike {
  name: string;
  number: number;
  label: number;
  type: number;
  typeName: string;
  jsonName: string;
}

interface MessageDescriptorLike {
  name: string;
  field: FieldDescriptorLike[];
  nestedType: MessageDescriptorLike[];
  enumType: EnumDescriptorLike[];
  options?: { mapEntry?: boolean } | undefined;
}

interface EnumDescriptorLike {
  name: string;
  value: { name: string; number: number }[];
}

interface MethodDescriptorLike {
  name: string;
  inputType: string;
  outputType: string;
  clientStreaming: boolean;
  serverStreaming: boolean;
}

interface ServiceDescriptorLike {
  name: string;
  method: MethodDescriptorLike[];
}

interface SourceLocationLike {
  path: number[];
  leadingComments: string;
}

/** The shape of a ts-proto `protoMetadata` export, as far as the gateway reads it. */
export interface ProtoMetadataLike {
  fileDescriptor: {
    name: string;
    package: string;
    messageType: MessageDescriptorLike[];
    enumType: EnumDescriptorLike[];
    service: ServiceDescriptorLike[];
    sourceCodeInfo?: { location: SourceLocationLike[] } | undefined;
  };
  references: { [key: string]: unknown };
  dependencies?: ProtoMetadataLike[];
  options?: {
    services?: { [service: string]: { methods?: { [method: string]: { [option: string]: unknown } } } };
  };
}

/** What the gateway needs of a generated message codec. */
export interface MessageCodec {
  fromJSON(object: unknown): unknown;
  toJSON(message: never): unknown;
}

export interface FieldInfo {
  /** The proto name (`cpu_millis`). */
  readonly name: string;
  /** The proto3 JSON name (`cpuMillis`). */
  readonly jsonName: string;
  readonly type: number;
  readonly repeated: boolean;
  /** For messages and enums: the full type name without the leading dot. */
  readonly typeName: string;
  readonly comment: string;
}

export interface MessageInfo {
  readonly fullName: string;
  readonly fields: readonly FieldInfo[];
  /** Map entries (`map<k, v>` fields) are synthetic messages with `key` and `value`. */
  readonly mapEntry: boolean;
  readonly comment: string;
  /** The generated codec; absent for messages ts-proto emits none for (map entries aside). */
  readonly codec: MessageCodec | undefined;
  /** Finds a field by its JSON name or its proto name, as proto3 JSON parsers accept both. */
  field(name: string): FieldInfo | undefined;
}

export interface EnumInfo {
  readonly fullName: string;
  readonly values: readonly { name: string; number: number }[];
}

/** One decoded `google.api.http` rule (ts-proto's HttpRule with oneof=unions). */
export interface HttpRuleLike {
  pattern?: { $case: string; [key: string]: unknown } | undefined;
  body?: string;
  responseBody?: string;
  additionalBindings?: HttpRuleLike[];
}

export interface MethodInfo {
  readonly name: string;
  readonly inputType: string;
  readonly outputType: string;
  readonly clientStreaming: boolean;
  readonly serverStreaming: boolean;
  readonly http: HttpRuleLike | undefined;
  readonly comment: string;
}

export interface ServiceInfo {
  readonly fullName: string;
  readonly name: string;
  readonly methods: readonly MethodInfo[];
  readonly comment: string;
}

export class SchemaRegistry {
  private readonly messages = new Map<string, MessageInfo>();
  private readonly enums = new Map<string, EnumInfo>();
  private readonly services = new Map<string, ServiceInfo>();

  private constructor() {}

  /** Reads a generated file's metadata and, transitively, that of the files it imports. */
  static fromMetadata(root: ProtoMetadataLike): SchemaRegistry {
    const registry = new SchemaRegistry();
    const seen = new Set<string>();
    const visit = (file: ProtoMetadataLike): void => {
      if (seen.has(file.fileDescriptor.name)) return;
      seen.add(file.fileDescriptor.name);
      for (const dependency of file.dependencies ?? []) visit(dependency);
      registry.addFile(file);
    };
    visit(root);
    return registry;
  }

  /** The message named, or throws: a missing type is a build error, not a request error. */
  message(fullName: string): MessageInfo {
    const info = this.messages.get(stripDot(fullName));
    if (!info) throw new Error(`unknown message type ${fullName}`);
    return info;
  }

  hasMessage(fullName: string): boolean {
    return this.messages.has(stripDot(fullName));
  }

  enumType(fullName: string): EnumInfo {
    const info = this.enums.get(stripDot(fullName));
    if (!info) throw new Error(`unknown enum type ${fullName}`);
    return info;
  }

  service(fullName: string): ServiceInfo {
    const info = this.services.get(stripDot(fullName));
    if (!info) throw new Error(`unknown service ${fullName}`);
    return info;
  }

  /** The codec of a message, or throws when the generated module has none. */
  codec(fullName: string): MessageCodec {
    const codec = this.message(fullName).codec;
    if (!codec) throw new Error(`no generated codec for ${fullName}`);
    return codec;
  }

  private addFile(file: ProtoMetadataLike): void {
    const fd = file.fileDescriptor;
    const prefix = fd.package ? `${fd.package}.` : '';
    const comments = new Map<string, string>();
    for (const location of fd.sourceCodeInfo?.location ?? []) {
      const text = location.leadingComments
        .split('\n')
        .map((line) => line.trim())
        .join('\n')
        .trim();
      if (text) comments.set(location.path.join('.'), text);
    }
    const addEnum = (e: EnumDescriptorLike, scope: string): void => {
      const fullName = scope + e.name;
      this.enums.set(fullName, { fullName, values: e.value.map((v) => ({ name: v.name, number: v.number })) });
    };
    const addMessage = (m: MessageDescriptorLike, scope: string, path: string): void => {
      const fullName = scope + m.name;
      const fields: FieldInfo[] = m.field.map((f, i) => ({
        name: f.name,
        jsonName: f.jsonName || f.name,
        type: f.type,
        repeated: f.label === LABEL_REPEATED,
        typeName: stripDot(f.typeName),
        comment: comments.get(`${path}.2.${i}`) ?? '',
      }));
      const byName = new Map<string, FieldInfo>();
      for (const f of fields) {
        byName.set(f.jsonName, f);
        byName.set(f.name, f);
      }
      const codec = asCodec(file.references[`.${fullName}`]);
      this.messages.set(fullName, {
        fullName,
        fields,
        mapEntry: m.options?.mapEntry === true,
        comment: comments.get(path) ?? '',
        codec,
        field: (name) => byName.get(name),
      });
      m.nestedType.forEach((nested, i) => addMessage(nested, `${fullName}.`, `${path}.3.${i}`));
      m.enumType.forEach((nested) => addEnum(nested, `${fullName}.`));
    };
    // Source paths: 4 = message_type, 5 = enum_type, 6 = service, 2 = field / method, 3 = nested.
    fd.messageType.forEach((m, i) => addMessage(m, prefix, `4.${i}`));
    fd.enumType.forEach((e) => addEnum(e, prefix));
    fd.service.forEach((s, i) => {
      const fullName = prefix + s.name;
      const httpOptions = file.options?.services?.[s.name]?.methods ?? {};
      this.services.set(fullName, {
        fullName,
        name: s.name,
        comment: comments.get(`6.${i}`) ?? '',
        methods: s.method.map((method, j) => ({
          name: method.name,
          inputType: stripDot(method.inputType),
          outputType: stripDot(method.outputType),
          clientStreaming: method.clientStreaming,
          serverStreaming: method.serverStreaming,
          http: httpOptions[method.name]?.http as HttpRuleLike | undefined,
          comment: comments.get(`6.${i}.2.${j}`) ?? '',
        })),
      });
    });
  }
}

function stripDot(name: string): string {
  return name.startsWith('.') ? name.slice(1) : name;
}

function asCodec(value: unknown): MessageCodec | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const candidate = value as Partial<MessageCodec>;
  return typeof candidate.fromJSON === 'function' && typeof candidate.toJSON === 'function'
    ? (candidate as MessageCodec)
    : undefined;
}
