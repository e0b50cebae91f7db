/**
 * A response message as proto3 JSON: ts-proto's `toJSON` (camelCase names, enums by name,
 * timestamps as RFC 3339, scalar defaults emitted), then two fixes:
 * - 64-bit integers become strings. The generated code runs with forceLong=number and so emits
 *   them as JSON numbers; proto3 JSON (and grpc-gateway) send strings, which every proto3 JSON
 *   parser, ts-proto's `fromJSON` included, reads back.
 * - empty repeated fields and maps are emitted as [] and {} (ts-proto leaves them out even with
 *   emitDefaultValues), so that, as with grpc-gateway's EmitUnpopulated, a client can rely on
 *   `"hosts": []` being there.
 */
import { FieldType, INT64_TYPES, type SchemaRegistry } from './schema-registry';

export function responseToJson(registry: SchemaRegistry, typeName: string, message: unknown): unknown {
  const json = registry.codec(typeName).toJSON(message as never);
  stringifyInt64(registry, typeName, json);
  return json;
}

/** Rewrites, in place, the 64-bit integer fields of a message's JSON as decimal strings. */
function stringifyInt64(registry: SchemaRegistry, typeName: string, json: unknown): void {
  if (typeof json !== 'object' || json === null || !registry.hasMessage(typeName)) return;
  const object = json as Record<string, unknown>;
  for (const field of registry.message(typeName).fields) {
    const value = object[field.jsonName];
    if (value === undefined && field.repeated) {
      object[field.jsonName] = isMapField(registry, field) ? {} : [];
      continue;
    }
    if (value === undefined || value === null) continue;
    if (INT64_TYPES.has(field.type)) {
      object[field.jsonName] = Array.isArray(value) ? value.map(int64String) : int64String(value);
    } else if (field.type === FieldType.MESSAGE) {
      const entry = registry.message(field.typeName);
      if (entry.mapEntry) {
        const valueField = entry.field('value');
        if (!valueField) continue;
        for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
          if (INT64_TYPES.has(valueField.type)) (value as Record<string, unknown>)[key] = int64String(item);
          else if (valueField.type === FieldType.MESSAGE) stringifyInt64(registry, valueField.typeName, item);
        }
      } else if (Array.isArray(value)) {
        for (const item of value) stringifyInt64(registry, field.typeName, item);
      } else {
        stringifyInt64(registry, field.typeName, value);
      }
    }
  }
}

function isMapField(registry: SchemaRegistry, field: { type: number; typeName: string }): boolean {
  return field.type === FieldType.MESSAGE && registry.hasMessage(field.typeName) && registry.message(field.typeName).mapEntry;
}

function int64String(value: unknown): unknown {
  return typeof value === 'number' ? String(value) : value;
}
