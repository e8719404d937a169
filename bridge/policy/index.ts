export { compilePolicy, compileRule } from './compile';
export type { CompiledPolicy, CompiledRule, CompiledBlock, CompileOptions, RuleKind } from './compile';
export { ruleProblem } from './validate';
export { systemAccounts } from './accounts';
export type { Accounts } from './accounts';
