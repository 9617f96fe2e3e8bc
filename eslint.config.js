// ESLint for the TypeScript sources (flat config, type-aware through the project's tsconfig.json).
// `npm run lint` runs `eslint .` and `prettier --check .`. The rules, and why:
//
// Base: @eslint/js recommended + typescript-eslint recommendedTypeChecked (floating promises, `any` leaking out of
// a value, unused names, awaiting non-promises, ...), with these choices:
// - no-unused-vars: a name starting with "_" is deliberately unused (ignored parameters, destructured leftovers).
// - no-unnecessary-type-assertion: casts that change nothing (`xs[i] as T` while noUncheckedIndexedAccess is
//   off). `eslint --fix` removed them in one sweep; four that tsc needs carry a disable comment with the reason.
//   An error. It also reports `f(...) as T` where `f` is generic: write the type argument, `f<T>(...)`, which tsc
//   checks, instead of the assertion, which it does not (e.g. `tf.mean<tf.Scalar>(x)`, `t.reshape<tf.Tensor1D>(s)`).
// - no-non-null-assertion: off. In the numeric code `xs[i]!` after a bounds check reads as "checked above".
// - require-await: off. The Agent and evaluator interfaces return promises; an implementation that happens to
//   be synchronous stays `async` so its signature matches the interface.
// - no-base-to-string: off. Error messages stringify unknown JSON values with String(v) on purpose.
// - restrict-template-expressions: numbers, booleans, arrays and never are fine in messages.
// Tests (tests/**): node:test's test()/describe() return promises the runner itself awaits; tests inspect parsed
// JSON and browser DOM values (no DOM lib in tsconfig) where `any` is the honest type; they destructure dynamic
// imports of node modules (unbound-method sees methods) and `await` agents' methods uniformly whether or not a
// given agent's implementation is synchronous.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'runs/**', 'eslint.config.js', 'bin/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/no-unnecessary-type-assertion': 'error',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-base-to-string': 'off',
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowBoolean: true, allowArray: true, allowNever: true },
      ],
    },
  },
  {
    files: ['tests/**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/await-thenable': 'off',
    },
  },
);
