/**
 * Checks a JSON value against a message's descriptors before ts-proto's `fromJSON` sees it.
 * `fromJSON` coerces silently ("three" → NaN → 0 replicas, "yes" → true, an unknown field
 * dropped); a customer who made a typo must hear about it, by field, instead.
 *
 * What proto3 JSON allows is allowed: either the JSON name or the proto name of a field, numbers
 * as JSON numbers or decimal strings, 64-bit integers as strings, enums by name or number, null
 * for "default". Unknown fields are refused (grpc-gateway discards them; we prefer that a typo
 * such as `cpu_milis` fail rather than deploy with 0).
 *
 * Violations name fields by their JSON path (`service.resources.cpuMillis`, `service.command[2]`),
 * and never quote the offending value, which could be a secret typed into the wrong field.
 */
import type { FieldViolation } from './gateway-error';
import { FieldType, INT64_TYPES, TIMESTAMP_TYPE, type FieldInfo, type SchemaRegistry } from './schema-registry';

/** Past this depth a request is refused: no message of ours nests that deep. */
const MAX_DEPTH = 32;

/** Enough to show a customer everything wrong with a form, not a wall. */
const MAX_VIOLATIONS = 20;

const INT32_RANGE = { min: -(2 ** 31), max: 2 ** 31 - 1 };
const UINT32_RANGE = { min: 0, max: 2 ** 32 - 1 };
// forceLong=number: a 64-bit integer is a JS number, so beyond 2^53 it would be silently rounded.
const INT64_RANGE = { min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER };
const UINT64_RANGE = { min: 0, max: Number.MAX_SAFE_INTEGER };
const FLOAT32_MAX = 3.4028234663852886e38;

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const DECIMAL_INTEGER = /^-?\d+$/;
const DECIMAL_NUMBER = /^-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** Every violation (up to a cap) of `value` as the JSON of message `typeName`; [] when valid. */
export function checkJson(registry: SchemaRegistry, typeName: string, value: unknown, path = ''): FieldViolation[] {
  const violations: FieldViolation[] = [];
  checkMessage(registry, typeName, value, path, 0, violations);
  return violations.slice(0, MAX_VIOLATIONS);
}

function checkMessage(
  registry: SchemaRegistry,
  typeName: string,
  value: unknown,
  path: string,
  depth: number,
  out: FieldViolation[],
): void {
  if (value === null) return;
  if (typeName === TIMESTAMP_TYPE) {
    if (typeof value !== 'string' || !RFC3339.test(value) || Number.isNaN(Date.parse(value))) {
      out.push(violation(path, 'must be an RFC 3339 timestamp such as "2024-05-01T12:00:00Z"'));
    }
    return;
  }
  if (!isPlainObject(value)) {
    out.push(violation(path, `must be a JSON object, not ${describe(value)}`));
    return;
  }
  if (depth > MAX_DEPTH) {
    out.push(violation(path, 'is nested too deeply'));
    return;
  }
  const message = registry.message(typeName);
  const seen = new Map<FieldInfo, string>();
  for (const [key, fieldValue] of Object.entries(value)) {
    if (out.length >= MAX_VIOLATIONS) return;
    const fieldPath = join(path, key);
    const field = message.field(key);
    if (!field) {
      out.push(violation(fieldPath, 'is not a known field'));
      continue;
    }
    const other = seen.get(field);
    if (other !== undefined) {
      out.push(violation(fieldPath, `is the same field as "${other}" and may be given once`));
      continue;
    }
    seen.set(field, key);
    checkField(registry, field, fieldValue, join(path, field.jsonName), depth, out);
  }
}

function checkField(
  registry: SchemaRegistry,
  field: FieldInfo,
  value: unknown,
  path: string,
  depth: number,
  out: FieldViolation[],
): void {
  if (value === null) return;
  const entry = field.type === FieldType.MESSAGE ? registry.message(field.typeName) : undefined;
  if (entry?.mapEntry) {
    if (!isPlainObject(value)) {
      out.push(violation(path, `must be a JSON object (a map), not ${describe(value)}`));
      return;
    }
    const valueField = entry.field('value');
    if (!valueField) return;
    for (const [key, item] of Object.entries(value)) {
      if (item === null) out.push(violation(`${path}.${key}`, 'must not be null'));
      else checkSingle(registry, valueField, item, `${path}.${key}`, depth + 1, out);
    }
    return;
  }
  if (field.repeated) {
    if (!Array.isArray(value)) {
      out.push(violation(path, `must be a JSON array, not ${describe(value)}`));
      return;
    }
    value.forEach((item, i) => {
      if (item === null) out.push(violation(`${path}[${i}]`, 'must not be null'));
      else checkSingle(registry, field, item, `${path}[${i}]`, depth + 1, out);
    });
    return;
  }
  checkSingle(registry, field, value, path, depth, out);
}

/** One value of the field's type (an element, for repeated fields). */
function checkSingle(
  registry: SchemaRegistry,
  field: FieldInfo,
  value: unknown,
  path: string,
  depth: number,
  out: FieldViolation[],
): void {
  const problem = scalarProblem(registry, field, value);
  if (problem === 'message') checkMessage(registry, field.typeName, value, path, depth + 1, out);
  else if (problem) out.push(violation(path, problem));
}

/** What is wrong with a scalar value, '' if nothing, 'message' to descend into a message. */
function scalarProblem(registry: SchemaRegistry, field: FieldInfo, value: unknown): string {
  switch (field.type) {
    case FieldType.MESSAGE:
    case FieldType.GROUP:
      return 'message';
    case FieldType.STRING:
      return typeof value === 'string' ? '' : `must be a string, not ${describe(value)}`;
    case FieldType.BOOL:
      return typeof value === 'boolean' ? '' : `must be true or false, not ${describe(value)}`;
    case FieldType.BYTES:
      return typeof value === 'string' && BASE64.test(value) ? '' : 'must be base64-encoded bytes';
    case FieldType.ENUM: {
      const values = registry.enumType(field.typeName).values;
      const known =
        typeof value === 'string' ? values.some((v) => v.name === value) : values.some((v) => v.number === value);
      return known ? '' : `must be one of ${values.map((v) => v.name).join(', ')}`;
    }
    case FieldType.DOUBLE:
    case FieldType.FLOAT:
      return floatProblem(value, field.type === FieldType.FLOAT);
    case FieldType.INT32:
    case FieldType.SINT32:
    case FieldType.SFIXED32:
      return integerProblem(value, INT32_RANGE, 'a 32-bit integer');
    case FieldType.UINT32:
    case FieldType.FIXED32:
      return integerProblem(value, UINT32_RANGE, 'an unsigned 32-bit integer');
    default:
      if (INT64_TYPES.has(field.type)) {
        const unsigned = field.type === FieldType.UINT64 || field.type === FieldType.FIXED64;
        return integerProblem(value, unsigned ? UINT64_RANGE : INT64_RANGE, unsigned ? 'an unsigned integer' : 'an integer');
      }
      return 'has a type this gateway cannot read';
  }
}

function integerProblem(value: unknown, range: { min: number; max: number }, what: string): string {
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && DECIMAL_INTEGER.test(value)) n = Number(value);
  else return `must be ${what}, not ${describe(value)}`;
  if (!Number.isInteger(n)) return `must be ${what}, not a fraction`;
  if (n < range.min || n > range.max) return `must be ${what} between ${range.min} and ${range.max}`;
  return '';
}

function floatProblem(value: unknown, float32: boolean): string {
  let n: number;
  if (typeof value === 'number') n = value;
  else if (value === 'NaN' || value === 'Infinity' || value === '-Infinity') return '';
  else if (typeof value === 'string' && DECIMAL_NUMBER.test(value)) n = Number(value);
  else return `must be a number, not ${describe(value)}`;
  if (float32 && Math.abs(n) > FLOAT32_MAX) return 'is out of range for a 32-bit float';
  return '';
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The JSON type of a value, never the value itself. */
function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function violation(field: string, description: string): FieldViolation {
  return { field: field || '(body)', description };
}
