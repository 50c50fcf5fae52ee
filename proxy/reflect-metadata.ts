// The three Reflect metadata functions tsyringe (a dependency of @peculiar/x509) insists on at load
// time ("tsyringe requires a reflect polyfill"), installed only where nothing provides them.
// @peculiar/x509 registers its algorithm classes without constructor parameters, so no
// "design:paramtypes" are ever read back; a WeakMap per target is all the store needs. Saves a
// dependency on reflect-metadata, whose full API (decorators, Reflect.metadata) nothing here uses.

type MetadataMap = Map<unknown, unknown>;

const store = new WeakMap<object, MetadataMap>();

function own(target: object): MetadataMap | undefined {
  return store.get(target);
}

/** Installs Reflect.getMetadata, getOwnMetadata and defineMetadata unless they already exist. */
export function installReflectMetadata(): void {
  const r = Reflect as unknown as Record<string, unknown>;
  if (typeof r.getMetadata === 'function') return;
  r.getOwnMetadata = (key: unknown, target: object): unknown => own(target)?.get(key);
  r.getMetadata = (key: unknown, target: object): unknown => {
    for (let t: object | null = target; t !== null; t = Reflect.getPrototypeOf(t)) {
      const m = own(t);
      if (m?.has(key)) return m.get(key);
    }
    return undefined;
  };
  r.defineMetadata = (key: unknown, value: unknown, target: object): void => {
    let m = store.get(target);
    if (!m) store.set(target, m = new Map());
    m.set(key, value);
  };
}
