/**
 * Environment variables read outside the config file's own list (load.ts ENV_KEYS), each in one place.
 */

/**
 * The GCS endpoint named by STORAGE_EMULATOR_HOST (the variable Google's SDKs and e2b read for an
 * emulator), as given: with or without a scheme; undefined when unset or empty.
 */
export function storageEmulatorHost(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const v = env.STORAGE_EMULATOR_HOST
  return v === undefined || v === '' ? undefined : v
}
