/**
 * The agent registry: one entry per agent, `createAgent(name, opts)` builds one.
 * Options are checked against the entry's defaults (unknown names and wrong types are UserErrors)
 * and merged over them before `create` sees them, so `create` always receives a full option set.
 */
import { UserError } from '../src/errors.js';
import type { Agent } from '../envs/types.js';
import { amedAgentEntry } from './amed.js';
import { ddpgAgentEntry } from './ddpg.js';
import { evolutionAgentEntry } from './evolution.js';
import { ppoAgentEntry } from './ppo.js';
import { randomAgentEntry } from './random.js';
import { reinforceAgentEntry } from './reinforce.js';
import { sensitivityAgentEntry } from './sensitivity.js';
import { sspsAgentEntry } from './ssps.js';
import { uniformAgentEntry } from './uniform.js';

export interface AgentEntry {
  /** One line: what the agent does (CLI help, `bitalloc agents`). */
  describe: string;
  /** Every option the agent takes, with its default; the default's JSON type is the option's type (null: any). */
  defaults: Record<string, unknown>;
  /**
   * Checks the values of a full option set (defaults overridden by the user's options) and throws a UserError
   * naming `${field}.<option>` (e.g. `$.agents[0].options.epochs`) and what is valid. Runs when an experiment is
   * loaded, so a bad value is reported before any work starts.
   */
  validate(opts: Record<string, unknown>, field: string): void;
  /** Receives the defaults overridden by the user's options. */
  create(opts: Record<string, unknown>): Agent;
}

export const AGENTS: Record<string, AgentEntry> = {
  random: randomAgentEntry,
  uniform: uniformAgentEntry,
  reinforce: reinforceAgentEntry,
  evolution: evolutionAgentEntry,
  ppo: ppoAgentEntry,
  ddpg: ddpgAgentEntry,
  amed: amedAgentEntry,
  sensitivity: sensitivityAgentEntry,
  ssps: sspsAgentEntry,
};

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/**
 * Checks `opts` against `defaults`: every key must exist there and have the same type
 * (a null default accepts anything). Returns defaults overridden by opts.
 */
export function resolveAgentOptions(
  name: string,
  defaults: Record<string, unknown>,
  opts: Record<string, unknown>,
  field = 'agentOptions',
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...defaults };
  const valid = Object.keys(defaults);
  for (const [key, value] of Object.entries(opts)) {
    if (!(key in defaults)) {
      throw new UserError(`unknown option '${key}' for agent '${name}'`, {
        field: `${field}.${key}`,
        expected: valid.length > 0 ? `one of ${valid.join(', ')}` : 'no options',
      });
    }
    const d = defaults[key];
    if (d !== null && typeName(value) !== typeName(d)) {
      throw new UserError(`option '${key}' of agent '${name}' must be a ${typeName(d)}, got ${typeName(value)}`, {
        field: `${field}.${key}`,
        expected: `${typeName(d)} (default ${JSON.stringify(d)})`,
      });
    }
    if (typeof value === 'number' && !Number.isFinite(value)) {
      throw new UserError(`option '${key}' of agent '${name}' must be finite`, {
        field: `${field}.${key}`,
        expected: 'a finite number',
      });
    }
    out[key] = value;
  }
  const entry = Object.prototype.hasOwnProperty.call(AGENTS, name) ? AGENTS[name] : undefined;
  entry?.validate(out, field);
  return out;
}

/** One option of an agent, as `bitalloc agents` lists it. */
export interface AgentOptionInfo {
  name: string;
  /** The JSON type of the default (`null` when the default is null: any value, or null for "automatic"). */
  type: string;
  default: unknown;
}

/** An agent's name, description and options with defaults and types (`bitalloc agents --json`). */
export interface AgentInfo {
  name: string;
  describe: string;
  options: AgentOptionInfo[];
}

/** Every registered agent, in registry order. */
export function agentInfos(): AgentInfo[] {
  return Object.entries(AGENTS).map(([name, entry]) => ({
    name,
    describe: entry.describe,
    options: Object.entries(entry.defaults).map(([option, d]) => ({ name: option, type: typeName(d), default: d })),
  }));
}

/** The registered agent names, in registry order. */
export const AGENT_NAMES: readonly string[] = Object.keys(AGENTS);

/** Builds the named agent; an unknown name or option is a UserError listing the valid ones. */
export function createAgent(name: string, opts: Record<string, unknown> = {}, field = 'agent'): Agent {
  const entry = Object.prototype.hasOwnProperty.call(AGENTS, name) ? AGENTS[name] : undefined;
  if (!entry) {
    throw new UserError(`unknown agent '${name}'`, { field, expected: `one of ${Object.keys(AGENTS).join(', ')}` });
  }
  return entry.create(resolveAgentOptions(name, entry.defaults, opts, `${field}Options`));
}
