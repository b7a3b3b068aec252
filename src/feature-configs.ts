import { AppConfig, ConfigCheck, loadConfig } from './config/app-config';
import { checkFileSourcesConfig, FileSourcesEnvVars } from './file-sources/file-sources.config';
import { checkQuotaConfig, QuotaEnvVars } from './quota/quota.config';

/**
 * The features that own settings of their own (their schema lives in the feature, config/ imports none of them:
 * README "Module map"). The service's start runs their checks with config/'s, so a bad start lists every problem.
 */
/** Their variables' class-validator schemas (scripts/check-docker.ts: the variables the service reads). */
export const FEATURE_ENV_SCHEMAS: readonly (new () => object)[] = [FileSourcesEnvVars, QuotaEnvVars];

export const FEATURE_CONFIG_CHECKS: readonly ConfigCheck[] = [checkFileSourcesConfig, checkQuotaConfig];

/** The whole configuration checked at once: config/'s settings and every feature's (what main.ts starts with). */
export function loadAppConfig(env: Record<string, string | undefined> = process.env): AppConfig {
  return loadConfig(env, FEATURE_CONFIG_CHECKS);
}
