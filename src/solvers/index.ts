/** Exact solvers agents use: the multiple-choice knapsack (one option per layer, several budgets). */
export * from './knapsack.js';
