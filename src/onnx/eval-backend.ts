/** The choice of engine for the search's forward passes (no heavy imports: the experiment validator uses it). */
import { UserError } from '../errors.js';

export const EVAL_BACKENDS = ['auto', 'onnxruntime', 'tfjs'] as const;
export type EvalBackendChoice = (typeof EVAL_BACKENDS)[number];

/**
 * Why a network cannot run in onnxruntime (`e`, from building its graph or session), as a message for the
 * fallback to tfjs; when onnxruntime was asked for by name there is no fallback, and this throws the
 * UserError naming --eval-backend instead.
 */
export function ortFallbackReason(choice: EvalBackendChoice, e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (choice === 'onnxruntime')
    throw new UserError(`the network cannot run in onnxruntime: ${msg}`, {
      field: '--eval-backend',
      expected: 'auto or tfjs',
    });
  return msg;
}
