/**
 * Path variables and query parameters onto the request's JSON, as grpc-gateway maps them:
 * `?after_sequence=5` or `?afterSequence=5`; `?a.b=x` into a nested message; a repeated field by
 * repetition (`?command=a&command=b`). Parameters that name no field are ignored (grpc-gateway
 * does the same, and browsers and proxies add cache-busters); parameters naming a field bound
 * by the path or the body are ignored too, so the path always wins.
 *
 * Text becomes the JSON that proto3 JSON would carry (`"true"` → true, an enum number → number,
 * everything else a string); `json-check` then judges it like any body, so one set of rules
 * speaks for body, path and query.
 */
import type { FieldViolation } from './gateway-error';
import { FieldType, TIMESTAMP_TYPE, type FieldInfo, type SchemaRegistry } from './schema-registry';

export interface ResolvedField {
  /** The JSON names from the request message down to the field: ['service', 'replicas']. */
  readonly jsonPath: readonly string[];
  readonly field: FieldInfo;
}

/**
 * Resolves a dotted name (JSON or proto names) through singular message fields; undefined when
 * it names no field.
 */
export function resolveField(registry: SchemaRegistry, typeName: string, dotted: string): ResolvedField | undefined {
  let message = registry.message(typeName);
  const jsonPath: string[] = [];
  const names = dotted.split('.');
  for (let i = 0; i < names.length; i++) {
    const field = message.field(names[i]);
    if (!field) return undefined;
    jsonPath.push(field.jsonName);
    if (i === names.length - 1) return { jsonPath, field };
    if (field.type !== FieldType.MESSAGE || field.repeated || field.typeName === TIMESTAMP_TYPE) return undefined;
    message = registry.message(field.typeName);
    if (message.mapEntry) return undefined;
  }
  return undefined;
}

/** The proto3 JSON value a text stands for, given the field it goes into. */
export function jsonFromText(field: FieldInfo, text: string): unknown {
  if (field.type === FieldType.BOOL) {
    if (text === 'true' || text === '1') return true;
    if (text === 'false' || text === '0') return false;
  }
  if (field.type === FieldType.ENUM && /^-?\d+$/.test(text)) return Number(text);
  // Numbers stay strings: proto3 JSON accepts "42", and json-check refuses "forty-two".
  return text;
}

/** Sets `json[a][b]… = value`, creating the objects on the way. */
export function setJsonPath(json: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let target = json;
  for (const key of path.slice(0, -1)) {
    const next = target[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) target[key] = {};
    target = target[key] as Record<string, unknown>;
  }
  target[path[path.length - 1]] = value;
}

/**
 * Applies the query parameters to `json` (the request being built), skipping the fields under
 * any of `bound` (JSON paths already set by the path template or the body). Returns what cannot
 * be mapped: a message or map field, or a singular field given more than once.
 */
export function applyQueryParams(
  registry: SchemaRegistry,
  typeName: string,
  json: Record<string, unknown>,
  query: URLSearchParams,
  bound: readonly string[],
): FieldViolation[] {
  const violations: FieldViolation[] = [];
  const applied = new Set<string>();
  for (const name of new Set(query.keys())) {
    const resolved = resolveField(registry, typeName, name);
    if (!resolved) continue;
    const dotted = resolved.jsonPath.join('.');
    if (bound.some((b) => dotted === b || dotted.startsWith(`${b}.`))) continue;
    if (applied.has(dotted)) {
      violations.push({ field: dotted, description: 'is given under both its JSON and its proto name' });
      continue;
    }
    applied.add(dotted);
    const { field } = resolved;
    const isMessage = field.type === FieldType.MESSAGE && field.typeName !== TIMESTAMP_TYPE;
    if (isMessage) {
      violations.push({ field: dotted, description: 'cannot be set from a query parameter' });
      continue;
    }
    const texts = query.getAll(name);
    if (field.repeated) {
      setJsonPath(json, resolved.jsonPath, texts.map((t) => jsonFromText(field, t)));
    } else if (texts.length > 1) {
      violations.push({ field: dotted, description: 'is not repeated and may be given once' });
    } else {
      setJsonPath(json, resolved.jsonPath, jsonFromText(field, texts[0]));
    }
  }
  return violations;
}
