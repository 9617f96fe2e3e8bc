/**
 * A small JSON Schema (2020-12) validator for the keywords bitalloc's schemas use: type, enum, const,
 * required, properties, additionalProperties, items, minItems, maxItems, uniqueItems, minimum,
 * exclusiveMinimum, maximum, exclusiveMaximum, minLength, pattern, allOf, if/then/else and local $ref
 * ("#/$defs/..."). Annotations (title, description, $id, $schema, default) are ignored.
 *
 * It reports every problem, each as `<JSON path>: <what is wrong>`, e.g.
 * `$.memory.offChip.bandwidthGBps: must be > 0`.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface JsonSchema {
  type?: string | string[];
  enum?: JsonValue[];
  const?: JsonValue;
  required?: string[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  minimum?: number;
  exclusiveMinimum?: number;
  maximum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  pattern?: string;
  allOf?: JsonSchema[];
  if?: JsonSchema;
  then?: JsonSchema;
  else?: JsonSchema;
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  [annotation: string]: unknown;
}

const KNOWN_KEYWORDS = new Set([
  'type',
  'enum',
  'const',
  'required',
  'properties',
  'additionalProperties',
  'items',
  'minItems',
  'maxItems',
  'uniqueItems',
  'minimum',
  'exclusiveMinimum',
  'maximum',
  'exclusiveMaximum',
  'minLength',
  'pattern',
  'allOf',
  'if',
  'then',
  'else',
  '$ref',
  '$defs',
  '$schema',
  '$id',
  'title',
  'description',
  'default',
  'examples',
]);

/** Validates `value` against `schema` (whose local $refs resolve against `root`); returns every problem found. */
export function validateJson(value: unknown, schema: JsonSchema, root: JsonSchema = schema, path = '$'): string[] {
  const problems: string[] = [];
  check(value, schema, root, path, problems);
  return problems;
}

/** Keywords a schema uses that this validator does not implement (so a schema edit cannot silently skip checks). */
export function unsupportedKeywords(schema: JsonSchema): string[] {
  const found = new Set<string>();
  const walk = (s: unknown): void => {
    if (!s || typeof s !== 'object') return;
    const obj = s as Record<string, unknown>;
    for (const [k, v] of Object.entries(obj)) {
      if (!KNOWN_KEYWORDS.has(k)) found.add(k);
      if (k === 'properties' || k === '$defs') for (const sub of Object.values(v as Record<string, unknown>)) walk(sub);
      else if (k === 'allOf') for (const sub of v as unknown[]) walk(sub);
      else if (['items', 'additionalProperties', 'if', 'then', 'else'].includes(k)) walk(v);
    }
  };
  walk(schema);
  return [...found];
}

/** `$.a.b[2]` style path of a child. */
export function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function matchesType(v: unknown, t: string): boolean {
  const actual = typeOf(v);
  if (t === 'number') return actual === 'number' || actual === 'integer';
  return actual === t;
}

function describe(v: unknown): string {
  const t = typeOf(v);
  if (t === 'string') return `string ${JSON.stringify(v)}`;
  if (t === 'integer' || t === 'number' || t === 'boolean' || t === 'null') return `${String(v)}`;
  return t === 'array' ? 'an array' : 'an object';
}

function article(t: string): string {
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}

function resolveRef(ref: string, root: JsonSchema): JsonSchema {
  if (!ref.startsWith('#/')) throw new Error(`schema: only local $ref are supported, got ${ref}`);
  let node: unknown = root;
  for (const part of ref.slice(2).split('/')) {
    node = (node as Record<string, unknown> | undefined)?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  if (!node || typeof node !== 'object') throw new Error(`schema: unresolved $ref ${ref}`);
  return node as JsonSchema;
}

function isValid(value: unknown, schema: JsonSchema, root: JsonSchema, path: string): boolean {
  const p: string[] = [];
  check(value, schema, root, path, p);
  return p.length === 0;
}

function check(value: unknown, schema: JsonSchema, root: JsonSchema, path: string, out: string[]): void {
  if (schema.$ref !== undefined) check(value, resolveRef(schema.$ref, root), root, path, out);

  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => matchesType(value, t))) {
      out.push(`${path}: must be ${types.map(article).join(' or ')}, got ${describe(value)}`);
      return; // the other keywords would only repeat the type problem
    }
  }
  if (schema.const !== undefined && !deepEqual(value, schema.const)) {
    out.push(`${path}: must be ${JSON.stringify(schema.const)}, got ${describe(value)}`);
  }
  if (schema.enum !== undefined && !schema.enum.some((e) => deepEqual(value, e))) {
    out.push(`${path}: must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}, got ${describe(value)}`);
  }

  if (typeof value === 'number') {
    if (!Number.isFinite(value)) {
      // JSON has no Infinity or NaN, but a literal such as 1e999 parses to Infinity
      out.push(
        `${path}: must be a finite number, got ${value}${value === Infinity || value === -Infinity ? ' (a number too large for a double, such as 1e999)' : ''}`,
      );
      return;
    }
    // a schema may give both: exclusiveMinimum 0 (the quantity must be positive) and a minimum (the
    // smallest plausible value); a value that breaks the first gets only that message
    if (schema.exclusiveMinimum !== undefined && !(value > schema.exclusiveMinimum)) {
      out.push(`${path}: must be > ${schema.exclusiveMinimum}, got ${value}`);
    } else if (schema.minimum !== undefined && !(value >= schema.minimum))
      out.push(`${path}: must be >= ${schema.minimum}, got ${value}`);
    if (schema.maximum !== undefined && !(value <= schema.maximum))
      out.push(`${path}: must be <= ${schema.maximum}, got ${value}`);
    if (schema.exclusiveMaximum !== undefined && !(value < schema.exclusiveMaximum)) {
      out.push(`${path}: must be < ${schema.exclusiveMaximum}, got ${value}`);
    }
  }

  if (typeof value === 'string') {
    if (schema.minLength !== undefined && value.length < schema.minLength) {
      out.push(
        schema.minLength === 1
          ? `${path}: must not be empty`
          : `${path}: must have at least ${schema.minLength} characters`,
      );
    }
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) {
      out.push(`${path}: must match ${schema.pattern}, got ${JSON.stringify(value)}`);
    }
  }

  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) {
      out.push(`${path}: must have at least ${schema.minItems} item${schema.minItems === 1 ? '' : 's'}`);
    }
    if (schema.maxItems !== undefined && value.length > schema.maxItems)
      out.push(`${path}: must have at most ${schema.maxItems} items`);
    if (schema.items !== undefined)
      value.forEach((item, i) => check(item, schema.items as JsonSchema, root, childPath(path, i), out));
    if (schema.uniqueItems) {
      for (let i = 0; i < value.length; i++) {
        for (let j = 0; j < i; j++) {
          if (deepEqual(value[i], value[j])) out.push(`${childPath(path, i)}: repeats ${childPath(path, j)}`);
        }
      }
    }
  }

  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    for (const name of schema.required ?? []) {
      if (!(name in obj)) out.push(`${childPath(path, name)}: required field is missing`);
    }
    const props = schema.properties ?? {};
    for (const [k, v] of Object.entries(obj)) {
      const sub = props[k];
      if (sub !== undefined) check(v, sub, root, childPath(path, k), out);
      else if (schema.additionalProperties === false) {
        const allowed = Object.keys(props);
        out.push(`${childPath(path, k)}: unknown field${allowed.length ? ` (allowed: ${allowed.join(', ')})` : ''}`);
      } else if (schema.additionalProperties !== undefined && schema.additionalProperties !== true) {
        check(v, schema.additionalProperties, root, childPath(path, k), out);
      }
    }
  }

  for (const sub of schema.allOf ?? []) check(value, sub, root, path, out);
  if (schema.if !== undefined) {
    if (isValid(value, schema.if, root, path)) {
      if (schema.then !== undefined) check(value, schema.then, root, path, out);
    } else if (schema.else !== undefined) check(value, schema.else, root, path, out);
  }
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => deepEqual(x, bb[i]));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b as object);
  return (
    ka.length === kb.length &&
    ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
  );
}
