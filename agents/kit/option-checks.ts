/** The checks an agent's option validator shares: a UserError naming the option, and integer bounds. */
import { UserError } from '../../src/errors.js';

export interface OptionChecks<O> {
  /** The UserError for option `name` of value `got` (the caller throws it). */
  bad: (name: string, expected: string, got: unknown) => UserError;
  /** Throws unless option `name` is an integer >= `min`. */
  int: (name: keyof O & string, min: number) => void;
}

/** Checks for the options `o` of agent `agent`; errors name `${field}.${option}`. */
export function optionChecks<O extends object>(agent: string, o: O, field: string): OptionChecks<O> {
  const bad = (name: string, expected: string, got: unknown): UserError =>
    new UserError(`invalid option '${name}' for agent '${agent}': ${JSON.stringify(got)}`, {
      field: `${field}.${name}`,
      expected,
    });
  const int = (name: keyof O & string, min: number): void => {
    const v = o[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw bad(name, `an integer >= ${min}`, v);
  };
  return { bad, int };
}
