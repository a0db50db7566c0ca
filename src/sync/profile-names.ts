// The names `schema =` accepts: the built-in profiles, one file each under profiles/, and
// `custom:/path`. The config checks a name against this list; profile-select.ts maps each
// to its profile through a record over it, so a name without a profile does not compile.

export const builtinProfileNames = ['native', 'postfixadmin', 'modoboa', 'dinomail', 'django', 'laravel'] as const;

export type BuiltinProfileName = (typeof builtinProfileNames)[number];

/** mailmapd's own tables, whose change triggers come with `mailmapd migrate`. */
export const NATIVE: BuiltinProfileName = 'native';

export const CUSTOM_PREFIX = 'custom:';

export function isBuiltinProfileName(name: string): name is BuiltinProfileName {
  return (builtinProfileNames as readonly string[]).includes(name);
}

/**
 * Whether the directory is read from mailmapd's own tables, whose change triggers come with
 * `mailmapd migrate` (nothing for `triggers install` to do): `schema = native` as the config
 * says it, or the profile that name selects. The one such test.
 */
export function isNative(schema: string | { name: string; watches?: readonly unknown[] }): boolean {
  return typeof schema === 'string' ? schema === NATIVE : schema.name === NATIVE && schema.watches === undefined;
}
