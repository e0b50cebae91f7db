/**
 * The REST routes, derived at run time from the `google.api.http` rules of a service's methods
 * (and their `additional_bindings`). Nothing here is written per method: a new annotated RPC is
 * a new route the moment the generated code is rebuilt.
 *
 * Derivation fails loudly at start-up when a rule names a field the request message lacks, so
 * that a contract mistake never becomes a silent 400 or an ignored path segment.
 */
import { PathTemplate } from './path-template';
import { FieldType, TIMESTAMP_TYPE, type HttpRuleLike, type MethodInfo, type SchemaRegistry } from './schema-registry';

export interface Route {
  /** The RPC, e.g. `CreateService`. */
  readonly methodName: string;
  /** `/podium.v1.PodApi/CreateService`: the gRPC path, and the key to its client definition. */
  readonly grpcPath: string;
  readonly httpMethod: string;
  readonly template: PathTemplate;
  /** '' (no body), '*' (the whole request) or a top-level request field's proto name. */
  readonly body: string;
  readonly inputType: string;
  readonly outputType: string;
  readonly serverStreaming: boolean;
  readonly comment: string;
  /** 0 for the rule itself, 1… for its additional bindings (OpenAPI operation ids). */
  readonly bindingIndex: number;
}

export type RouteMatch =
  | { kind: 'found'; route: Route; params: Map<string, string> }
  | { kind: 'method-not-allowed'; allow: string[]; template: string }
  | { kind: 'not-found' };

export class RouteTable {
  private constructor(readonly routes: readonly Route[]) {}

  /** Routes of every annotated method of the service; methods without a rule are not exposed. */
  static fromService(registry: SchemaRegistry, serviceFullName: string): RouteTable {
    const service = registry.service(serviceFullName);
    const routes: Route[] = [];
    for (const method of service.methods) {
      if (!method.http) continue;
      if (method.clientStreaming) {
        throw new Error(`${method.name}: client-streaming methods cannot be transcoded to REST`);
      }
      const rules = [method.http, ...(method.http.additionalBindings ?? [])];
      rules.forEach((rule, bindingIndex) => {
        routes.push(routeFromRule(registry, service.fullName, method, rule, bindingIndex));
      });
    }
    // Most literal segments first, so that `/v1/hosts/summary` beats `/v1/hosts/{host}`;
    // the sort is stable, so equally specific routes keep the order of the .proto file.
    routes.sort((a, b) => b.template.literalCount - a.template.literalCount);
    return new RouteTable(routes);
  }

  /** The route for a request; when only the method is wrong, the methods the path allows. */
  match(httpMethod: string, pathname: string): RouteMatch {
    const allow = new Set<string>();
    let template = '';
    for (const route of this.routes) {
      const params = route.template.match(pathname);
      if (!params) continue;
      if (route.httpMethod === httpMethod) return { kind: 'found', route, params };
      allow.add(route.httpMethod);
      template ||= route.template.text;
    }
    return allow.size > 0 ? { kind: 'method-not-allowed', allow: [...allow].sort(), template } : { kind: 'not-found' };
  }
}

function routeFromRule(
  registry: SchemaRegistry,
  serviceFullName: string,
  method: MethodInfo,
  rule: HttpRuleLike,
  bindingIndex: number,
): Route {
  const { httpMethod, path } = patternOf(rule, method.name);
  const template = PathTemplate.parse(path);
  for (const variable of template.variables) {
    checkPathField(registry, method.inputType, variable.fieldPath, `${method.name} ${path}`);
  }
  const body = rule.body ?? '';
  if (body !== '' && body !== '*' && !registry.message(method.inputType).field(body)) {
    throw new Error(`${method.name}: body "${body}" is not a field of ${method.inputType}`);
  }
  return {
    methodName: method.name,
    grpcPath: `/${serviceFullName}/${method.name}`,
    httpMethod,
    template,
    body,
    inputType: method.inputType,
    outputType: method.outputType,
    serverStreaming: method.serverStreaming,
    comment: method.comment,
    bindingIndex,
  };
}

function patternOf(rule: HttpRuleLike, methodName: string): { httpMethod: string; path: string } {
  const pattern = rule.pattern;
  if (!pattern) throw new Error(`${methodName}: http rule without a pattern`);
  if (pattern.$case === 'custom') {
    const custom = pattern.custom as { kind?: unknown; path?: unknown } | undefined;
    if (typeof custom?.kind !== 'string' || typeof custom.path !== 'string') {
      throw new Error(`${methodName}: malformed custom http pattern`);
    }
    return { httpMethod: custom.kind.toUpperCase(), path: custom.path };
  }
  const path = pattern[pattern.$case];
  if (typeof path !== 'string') throw new Error(`${methodName}: malformed http pattern`);
  return { httpMethod: pattern.$case.toUpperCase(), path };
}

/** A path variable must name a singular scalar (or Timestamp) field, through singular messages. */
function checkPathField(registry: SchemaRegistry, inputType: string, fieldPath: readonly string[], where: string): void {
  let message = registry.message(inputType);
  fieldPath.forEach((name, i) => {
    const field = message.field(name);
    if (!field || field.repeated) throw new Error(`${where}: "${fieldPath.join('.')}" is not a singular field`);
    const last = i === fieldPath.length - 1;
    if (field.type === FieldType.MESSAGE && field.typeName !== TIMESTAMP_TYPE) {
      if (last) throw new Error(`${where}: "${fieldPath.join('.')}" is a message, not a scalar`);
      message = registry.message(field.typeName);
    } else if (!last) {
      throw new Error(`${where}: "${fieldPath.join('.')}" goes through a scalar`);
    }
  });
}
