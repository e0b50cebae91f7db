/**
 * google.api.http path templates, the subset the gateway needs:
 *
 *   Template = "/" Segments [ ":" Verb ]
 *   Segment  = "*" | "**" | LITERAL | Variable
 *   Variable = "{" FieldPath [ "=" Segments ] "}"      e.g. {environment}, {a.b}, {name=envs/*}
 *
 * `*` matches one non-empty segment, `**` the rest of the path (last position only). A variable
 * without `=` is `{x=*}`. Matching returns each variable's raw (still percent-encoded) text:
 * the transcoder decodes it, so that a bad escape is a 400 for the caller and not a 404.
 */

type PatternSegment = { kind: 'literal'; value: string } | { kind: 'any' } | { kind: 'rest' };

export interface TemplateVariable {
  /** The request field it binds, as written: `a.b` → ['a', 'b']. */
  readonly fieldPath: readonly string[];
  /** Index of its first segment in `segments`. */
  readonly start: number;
  /** Number of segments it spans; a trailing `**` counts as one and takes the rest. */
  readonly length: number;
}

export class PathTemplate {
  private constructor(
    readonly text: string,
    private readonly segments: readonly PatternSegment[],
    readonly variables: readonly TemplateVariable[],
    readonly verb: string,
  ) {}

  /** Parses a template; throws on syntax this subset does not support. */
  static parse(text: string): PathTemplate {
    if (!text.startsWith('/')) throw new Error(`path template must start with "/": ${text}`);
    const { path, verb } = splitVerb(text);
    const segments: PatternSegment[] = [];
    const variables: TemplateVariable[] = [];
    for (const raw of splitTopLevel(path.slice(1), text)) {
      if (raw.startsWith('{')) {
        if (!raw.endsWith('}')) throw new Error(`malformed variable "${raw}" in ${text}`);
        const inner = raw.slice(1, -1);
        const eq = inner.indexOf('=');
        const fieldPath = (eq < 0 ? inner : inner.slice(0, eq)).split('.');
        if (fieldPath.some((p) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(p))) {
          throw new Error(`bad field path in "${raw}" in ${text}`);
        }
        const pattern = eq < 0 ? ['*'] : inner.slice(eq + 1).split('/');
        const start = segments.length;
        for (const p of pattern) segments.push(patternSegment(p, text));
        variables.push({ fieldPath, start, length: pattern.length });
      } else {
        segments.push(patternSegment(raw, text));
      }
    }
    const restAt = segments.findIndex((s) => s.kind === 'rest');
    if (restAt >= 0 && restAt !== segments.length - 1) throw new Error(`"**" must be last in ${text}`);
    return new PathTemplate(text, segments, variables, verb);
  }

  /** How many literal segments: more literals = more specific, tried first. */
  get literalCount(): number {
    return this.segments.filter((s) => s.kind === 'literal').length;
  }

  /**
   * Matches a request path (without query). Returns each variable's raw text, keyed by its
   * dotted field path, or null when the path does not fit.
   */
  match(pathname: string): Map<string, string> | null {
    if (!pathname.startsWith('/')) return null;
    let rest = pathname.slice(1);
    if (this.verb) {
      if (!rest.endsWith(`:${this.verb}`)) return null;
      rest = rest.slice(0, -(this.verb.length + 1));
    }
    const parts = rest.split('/');
    const hasRest = this.segments.length > 0 && this.segments[this.segments.length - 1].kind === 'rest';
    if (hasRest ? parts.length < this.segments.length - 1 : parts.length !== this.segments.length) return null;
    for (let i = 0; i < this.segments.length; i++) {
      const segment = this.segments[i];
      if (segment.kind === 'rest') break;
      const part = parts[i];
      if (segment.kind === 'literal' ? part !== segment.value : part === '') return null;
    }
    const values = new Map<string, string>();
    for (const variable of this.variables) {
      const last = this.segments[variable.start + variable.length - 1];
      const end = last.kind === 'rest' ? parts.length : variable.start + variable.length;
      values.set(variable.fieldPath.join('.'), parts.slice(variable.start, end).join('/'));
    }
    return values;
  }

  /** The OpenAPI form: each variable as `{a.b}`, whatever its pattern. */
  toOpenApiPath(): string {
    const out: string[] = [];
    let i = 0;
    while (i < this.segments.length) {
      const variable = this.variables.find((v) => v.start === i);
      if (variable) {
        out.push(`{${variable.fieldPath.join('.')}}`);
        i += variable.length;
        continue;
      }
      const segment = this.segments[i];
      out.push(segment.kind === 'literal' ? segment.value : segment.kind === 'any' ? '*' : '**');
      i++;
    }
    return `/${out.join('/')}${this.verb ? `:${this.verb}` : ''}`;
  }
}

function patternSegment(raw: string, template: string): PatternSegment {
  if (raw === '*') return { kind: 'any' };
  if (raw === '**') return { kind: 'rest' };
  if (raw === '' || /[{}*]/.test(raw)) throw new Error(`unsupported segment "${raw}" in ${template}`);
  return { kind: 'literal', value: raw };
}

/** Splits on "/" outside braces, so that `{name=envs/*}` stays one piece. */
function splitTopLevel(path: string, template: string): string[] {
  const pieces: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of path) {
    if (ch === '{') depth++;
    if (ch === '}') depth--;
    if (depth < 0 || depth > 1) throw new Error(`unbalanced braces in ${template}`);
    if (ch === '/' && depth === 0) {
      pieces.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  if (depth !== 0) throw new Error(`unbalanced braces in ${template}`);
  pieces.push(current);
  return pieces;
}

/** The verb is a ":" after the last "/" and outside any variable. */
function splitVerb(text: string): { path: string; verb: string } {
  const lastSlash = text.lastIndexOf('/');
  const lastBrace = text.lastIndexOf('}');
  const colon = text.indexOf(':', Math.max(lastSlash, lastBrace));
  if (colon < 0) return { path: text, verb: '' };
  return { path: text.slice(0, colon), verb: text.slice(colon + 1) };
}
