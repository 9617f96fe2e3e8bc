/**
 * Loading hardware profiles: built-in ones by name (hardware-profiles/<id>.json) or any file.
 * A profile is checked against hardware-profiles/schema.json (every problem with its JSON path),
 * then compiled (expressions, mode tables, lookup tables), which may add problems of its own.
 * Any problem is a UserError naming the file.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';
import { createComputeModel } from './compute/index.js';
import type { ComputeModel } from './compute/types.js';
import { unsupportedKeywords, validateJson, type JsonSchema } from './json-schema.js';
import { createMemoryModel, type MemoryModel } from './memory.js';
import type { ProfileSpec } from './profile-types.js';

/** A validated, compiled profile. */
export interface Profile {
  readonly id: string;
  readonly spec: ProfileSpec;
  /** The file it was read from (absolute), or a label for profiles built in memory. */
  readonly file: string;
  readonly compute: ComputeModel;
  /** Null only for lookup profiles without a memory section. */
  readonly memory: MemoryModel | null;
}

export interface BuiltinProfileInfo {
  id: string;
  description: string;
  computeModel: string;
  file: string;
}

let profilesDirCache: string | null = null;
let schemaCache: JsonSchema | null = null;

/** The hardware-profiles folder of the bitalloc package. */
export function profilesDir(): string {
  if (profilesDirCache) return profilesDirCache;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'hardware-profiles');
    if (existsSync(join(candidate, 'schema.json'))) return (profilesDirCache = candidate);
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the hardware-profiles folder of the bitalloc package');
    dir = parent;
  }
}

/** The profile JSON Schema (hardware-profiles/schema.json). */
export function profileSchema(): JsonSchema {
  if (schemaCache) return schemaCache;
  const schema = JSON.parse(readFileSync(join(profilesDir(), 'schema.json'), 'utf8')) as JsonSchema;
  const unknown = unsupportedKeywords(schema);
  if (unknown.length)
    throw new Error(
      `hardware-profiles/schema.json uses keywords the validator does not implement: ${unknown.join(', ')}`,
    );
  return (schemaCache = schema);
}

/** Reads and parses a JSON file; a missing file or invalid JSON is a UserError naming the file. */
export function readJsonFile(file: string, what = 'file'): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? `${what} not found` : `cannot read ${what}: ${code ?? String(e)}`, {
      file,
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new UserError(`not valid JSON: ${msg}${lineColumn(text, msg)}`, {
      file,
      field: '$',
      expected: 'a JSON object',
    });
  }
}

function lineColumn(text: string, message: string): string {
  const m = /position (\d+)/.exec(message);
  if (!m || /line \d+/.test(message)) return '';
  const pos = Number(m[1]);
  const before = text.slice(0, pos).split('\n');
  return ` (line ${before.length}, column ${before[before.length - 1].length + 1})`;
}

/** Every problem with a profile's content: schema first, then what compiling it finds. Empty = valid. */
export function profileProblems(data: unknown, file: string, baseDir = dirname(file)): string[] {
  return compile(data, file, baseDir).problems;
}

function compile(data: unknown, file: string, baseDir: string): { problems: string[]; profile: Profile | null } {
  const problems = validateJson(data, profileSchema());
  if (problems.length > 0) return { problems, profile: null };
  const spec = data as ProfileSpec;
  const ctx = { spec, file, baseDir, problems };
  const compute = createComputeModel(spec.compute, ctx);
  const memory = createMemoryModel(spec, problems);
  if (problems.length > 0) return { problems, profile: null };
  return { problems, profile: { id: spec.id, spec, file, compute, memory } };
}

/** Validates and compiles profile data (already parsed). `file` names it in errors; relative table paths resolve against `baseDir`. */
export function parseProfile(data: unknown, file: string, baseDir = dirname(resolve(file))): Profile {
  const { problems, profile } = compile(data, file, baseDir);
  if (!profile) {
    throw new UserError(`invalid hardware profile (${problems.length} problem${problems.length === 1 ? '' : 's'})`, {
      file,
      problems,
      expected: 'a profile as described by hardware-profiles/schema.json and docs/hardware-profiles.md',
    });
  }
  return profile;
}

/** Reads, validates and compiles a profile file. */
export function loadProfileFile(file: string): Profile {
  const abs = resolve(file);
  return parseProfile(readJsonFile(abs, 'profile file'), abs);
}

/** Built-in profiles, sorted by id. */
export function listBuiltinProfiles(): BuiltinProfileInfo[] {
  const dir = profilesDir();
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json') && f !== 'schema.json')
    .sort()
    .map((f) => {
      const file = join(dir, f);
      const data = readJsonFile(file) as Partial<ProfileSpec>;
      return {
        id: String(data.id ?? basename(f, '.json')),
        description: String(data.description ?? ''),
        computeModel: String(data.compute?.model ?? '?'),
        file,
      };
    });
}

/** True when `spec` names a file rather than a built-in profile. */
export function looksLikePath(spec: string): boolean {
  return spec.endsWith('.json') || spec.includes('/') || spec.includes('\\');
}

/** Loads a built-in profile by name or a profile file by path. */
export function loadProfile(nameOrFile: string): Profile {
  if (looksLikePath(nameOrFile) || existsSync(nameOrFile)) return loadProfileFile(nameOrFile);
  const file = join(profilesDir(), `${nameOrFile}.json`);
  if (!existsSync(file)) {
    throw new UserError(`unknown hardware profile '${nameOrFile}'`, {
      field: '--profile',
      expected: `a built-in profile (${listBuiltinProfiles()
        .map((p) => p.id)
        .join(', ')}) or a path to a profile .json file`,
    });
  }
  return loadProfileFile(file);
}
