/**
 * Duplicate keys in a JSON request body. JSON.parse keeps the last of two equal keys and says
 * nothing, so `{"replicas": 3, …, "replicas": 30}` would deploy 30 replicas of what a reviewer read
 * as 3; JSON itself (RFC 8259 §4) only says names SHOULD be unique. The gateway refuses them, at
 * any depth, as it refuses unknown fields: a body means one thing or is sent back.
 *
 * JSON.parse stays the parser of the values; this only walks the same text with jsonc-parser's
 * visitor, in its strict mode (no comments, no trailing commas), and keeps one set of keys per
 * open object. Keys are compared after unescaping, as JSON.parse compares them, so `"a"` and
 * `"\u0061"` are the same key.
 */
import { printParseErrorCode, visit, type JSONPath, type ParseErrorCode } from 'jsonc-parser';
import { GatewayError, type FieldViolation } from './gateway-error';

/**
 * Objects and arrays nested deeper than this are refused. jsonc-parser recurses once per level
 * and would overflow the stack on a megabyte of "[" (which JSON.parse accepts); no request of
 * ours nests near this (json-check refuses messages nested past 32).
 */
export const MAX_NESTING = 64;

/** As json-check: enough to show everything wrong with a form, not a wall. */
const MAX_VIOLATIONS = 20;

const DESCRIPTION = 'is given more than once';

/** Thrown from a callback to stop the visitor at once (it has no other way to stop). */
class StopVisit extends Error {}

/**
 * One violation for each key given more than once in one object of `text` (each key named
 * once, by its JSON path under `prefix`, e.g. `service.resources.cpuMillis`, `items[2].name`),
 * at most 20; [] when there are none. Values are never quoted.
 *
 * `text` should be JSON that JSON.parse accepted. Throws GatewayError(INVALID_ARGUMENT) when the
 * text nests deeper than MAX_NESTING or the strict visitor finds it malformed after all.
 */
export function duplicateKeyViolations(text: string, prefix: string): FieldViolation[] {
  const violations: FieldViolation[] = [];
  // One entry per open object or array: the keys seen so far and those already reported
  // (null for an array, whose elements have no keys).
  const open: Array<{ seen: Set<string>; reported: Set<string> } | null> = [];
  const enter = (entry: (typeof open)[number]): void => {
    if (open.length >= MAX_NESTING) {
      throw GatewayError.invalidArgument(`request body is nested more than ${MAX_NESTING} levels deep`);
    }
    open.push(entry);
  };
  let syntaxError: { code: ParseErrorCode; offset: number } | undefined;
  try {
    visit(
      text,
      {
        onObjectBegin: () => enter({ seen: new Set(), reported: new Set() }),
        onArrayBegin: () => enter(null),
        onObjectEnd: () => void open.pop(),
        onArrayEnd: () => void open.pop(),
        onObjectProperty: (key, _offset, _length, _line, _column, pathSupplier) => {
          const object = open[open.length - 1];
          if (!object) return;
          if (!object.seen.has(key)) {
            object.seen.add(key);
            return;
          }
          if (object.reported.has(key)) return;
          object.reported.add(key);
          violations.push({ field: formatPath(prefix, [...pathSupplier(), key]), description: DESCRIPTION });
          if (violations.length >= MAX_VIOLATIONS) throw new StopVisit();
        },
        onError: (code, offset) => {
          syntaxError = { code, offset };
          throw new StopVisit();
        },
      },
      { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false },
    );
  } catch (err) {
    if (!(err instanceof StopVisit)) throw err;
  }
  if (syntaxError) {
    // JSON.parse accepted the text, so this is a disagreement between the two parsers: refuse
    // the body rather than judge it by one of them only. The reason and offset, never a snippet.
    throw GatewayError.invalidArgument(
      `request body is not valid JSON: ${printParseErrorCode(syntaxError.code)} at position ${syntaxError.offset}`,
    );
  }
  return violations;
}

/** `service` + ["resources", "cpuMillis"] → `service.resources.cpuMillis`; indices as `[i]`. */
function formatPath(prefix: string, path: JSONPath): string {
  let out = prefix;
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out = out === '' ? segment : `${out}.${segment}`;
  }
  return out;
}
