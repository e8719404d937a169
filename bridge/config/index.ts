export { loadConfig, ConfigError } from './loader';
export type { ConfigSource, LoadOptions } from './loader';
export { defaultLimits, checkLimit, isLimitName } from './limits';
export { standardSessionServiceDirs, standardSystemServiceDirs } from './servicedirs';
export * from './types';
