/** The choice of engine for the search's forward passes (no heavy imports: the experiment validator uses it). */
export const EVAL_BACKENDS = ['auto', 'onnxruntime', 'tfjs'] as const;
export type EvalBackendChoice = (typeof EVAL_BACKENDS)[number];
