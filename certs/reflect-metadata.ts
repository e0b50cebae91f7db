/**
 * The smallest Reflect metadata shim that @peculiar/x509 needs.
 *
 * Why this exists: @peculiar/x509 registers its algorithms through tsyringe, and tsyringe refuses
 * to load unless `Reflect.getMetadata` exists (it reads `design:paramtypes` when a class is
 * decorated with `@injectable()`). The project has no `reflect-metadata` package, and this library
 * must not depend on one being imported first by whoever uses it. So `./x509` imports this module
 * before @peculiar/x509.
 *
 * Contract: installs `Reflect.defineMetadata`, `Reflect.getOwnMetadata` and `Reflect.getMetadata`
 * only when `Reflect.getMetadata` is absent, so a real polyfill loaded earlier wins. Metadata lives
 * in a WeakMap keyed by target, then property key (undefined for the target itself), then metadata
 * key; `getMetadata` walks the prototype chain, `getOwnMetadata` does not. Nothing else of the
 * Reflect Metadata proposal is provided.
 */

type MetadataKey = unknown;
type PropertyKeyOrNone = string | symbol | undefined;

const store = new WeakMap<object, Map<PropertyKeyOrNone, Map<MetadataKey, unknown>>>();

function table(target: object, property: PropertyKeyOrNone, create: boolean): Map<MetadataKey, unknown> | undefined {
  let byProperty = store.get(target);
  if (byProperty === undefined) {
    if (!create) return undefined;
    byProperty = new Map();
    store.set(target, byProperty);
  }
  let byKey = byProperty.get(property);
  if (byKey === undefined) {
    if (!create) return undefined;
    byKey = new Map();
    byProperty.set(property, byKey);
  }
  return byKey;
}

function defineMetadata(key: MetadataKey, value: unknown, target: object, property?: string | symbol): void {
  table(target, property, true)!.set(key, value);
}

function getOwnMetadata(key: MetadataKey, target: object, property?: string | symbol): unknown {
  return table(target, property, false)?.get(key);
}

function getMetadata(key: MetadataKey, target: object, property?: string | symbol): unknown {
  for (let o: object | null = target; o !== null; o = Object.getPrototypeOf(o) as object | null) {
    const t = table(o, property, false);
    if (t !== undefined && t.has(key)) return t.get(key);
  }
  return undefined;
}

const reflect = Reflect as unknown as Record<string, unknown>;
if (typeof reflect.getMetadata !== 'function') {
  for (const [name, fn] of Object.entries({ defineMetadata, getOwnMetadata, getMetadata })) {
    Object.defineProperty(Reflect, name, { value: fn, writable: true, configurable: true, enumerable: false });
  }
}

export {};
