/**
 * HTTP request → gRPC request message, for any route: the body (whole, or into one field), then
 * the query parameters, then the path variables (last, so the path always wins), all as proto3
 * JSON; checked field by field against the descriptors; then the generated `fromJSON`.
 *
 * Nothing reaches the Pod API unless the whole request is well-formed: a malformed body, a key
 * given twice, a wrong type or an unknown field is an INVALID_ARGUMENT answered here.
 */
import { duplicateKeyViolations } from './duplicate-keys';
import { GatewayError, type FieldViolation } from './gateway-error';
import { checkJson } from './json-check';
import { applyQueryParams, jsonFromText, resolveField, setJsonPath } from './query-params';
import type { Route } from './route-table';
import { FieldType, TIMESTAMP_TYPE, type SchemaRegistry } from './schema-registry';

export interface HttpRequestParts {
  /** Raw (percent-encoded) values of the path variables, from `PathTemplate.match`. */
  readonly params: ReadonlyMap<string, string>;
  readonly query: URLSearchParams;
  /** The request body; undefined or empty when there is none. */
  readonly body: Buffer | undefined;
}

/** The request message for the route's RPC; throws GatewayError(INVALID_ARGUMENT). */
export function transcodeRequest(registry: SchemaRegistry, route: Route, parts: HttpRequestParts): unknown {
  const json: Record<string, unknown> = {};
  const bound: string[] = [];
  const violations: FieldViolation[] = [];

  if (route.body !== '' && parts.body !== undefined && parts.body.length > 0) {
    if (route.body === '*') {
      const body = parseJsonBody(parts.body, '');
      if (!isPlainObject(body)) throw GatewayError.invalidArgument('request body must be a JSON object');
      Object.assign(json, body);
    } else {
      const field = registry.message(route.inputType).field(route.body);
      if (!field) throw new Error(`route ${route.methodName}: body field ${route.body} vanished`);
      const body = parseJsonBody(parts.body, field.jsonName);
      const wantsObject = field.type === FieldType.MESSAGE && !field.repeated && field.typeName !== TIMESTAMP_TYPE;
      if (wantsObject && !isPlainObject(body)) throw GatewayError.invalidArgument('request body must be a JSON object');
      json[field.jsonName] = body;
    }
  }
  const bodyField = route.body === '' || route.body === '*' ? undefined : registry.message(route.inputType).field(route.body);
  if (bodyField) bound.push(bodyField.jsonName);

  const pathFields = [...parts.params.entries()].map(([dotted, raw]) => {
    const resolved = resolveField(registry, route.inputType, dotted);
    // RouteTable checked every template variable against the request message at start-up.
    if (!resolved) throw new Error(`route ${route.methodName}: path field ${dotted} vanished`);
    return { resolved, text: decodePathValue(raw, resolved.jsonPath.join('.')) };
  });
  for (const { resolved } of pathFields) bound.push(resolved.jsonPath.join('.'));

  // With body "*" every field may come from the body, and grpc-gateway reads no query then.
  if (route.body !== '*') {
    violations.push(...applyQueryParams(registry, route.inputType, json, parts.query, bound));
  }
  for (const { resolved, text } of pathFields) {
    setJsonPath(json, resolved.jsonPath, jsonFromText(resolved.field, text));
  }

  violations.push(...checkJson(registry, route.inputType, json));
  if (violations.length > 0) throw GatewayError.invalidArgument(summarize(violations), violations);
  return registry.codec(route.inputType).fromJSON(json);
}

/**
 * The body's value, by JSON.parse; refused when it is not UTF-8, not JSON, or gives a key twice
 * in one object (violations named under `prefix`, the JSON path the body is bound to).
 */
function parseJsonBody(body: Buffer, prefix: string): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw GatewayError.invalidArgument('request body is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // V8 quotes a snippet of the input ('…, "{pass: …" is not valid JSON'): the snippet could be
    // a secret, so only the reason and position stay.
    const reason = (err instanceof Error ? err.message : String(err)).replace(/, ".*" is not valid JSON$/s, '');
    throw GatewayError.invalidArgument(`request body is not valid JSON: ${reason}`);
  }
  // After JSON.parse, so that malformed JSON keeps JSON.parse's reason and position.
  const duplicates = duplicateKeyViolations(text, prefix);
  if (duplicates.length > 0) throw GatewayError.invalidArgument(summarize(duplicates), duplicates);
  return value;
}

/** Each segment decoded on its own, so that a multi-segment variable keeps its "/". */
function decodePathValue(raw: string, field: string): string {
  try {
    return raw
      .split('/')
      .map((segment) => decodeURIComponent(segment))
      .join('/');
  } catch {
    throw GatewayError.invalidArgument(`path parameter ${field} is not valid percent-encoding`, [
      { field, description: 'is not valid percent-encoding' },
    ]);
  }
}

function summarize(violations: readonly FieldViolation[]): string {
  const first = `${violations[0].field} ${violations[0].description}`;
  const more = violations.length - 1;
  return more > 0 ? `invalid request: ${first} (and ${more} more)` : `invalid request: ${first}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
