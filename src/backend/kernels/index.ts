/**
 * Training kernels for the wasm backend (stub: filled in by the kernels module).
 * Returns the names of the kernels registered or replaced.
 */
export function registerWasmTrainingKernels(): string[] {
  return [];
}
