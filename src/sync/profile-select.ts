// `schema = NAME` in the config → the profile the sync reads with. Built-in profiles are
// one file each under profiles/; `custom:/path` reads an administrator's query file.

import { readFile } from 'node:fs/promises';
import { ConfigError } from '../errors.js';
import { nativeProfile, type Profile } from './profile.js';
import { parseCustomProfile, ProfileSyntaxError } from './profiles/custom.js';
import { dinomailProfile } from './profiles/dinomail.js';
import { djangoProfile } from './profiles/django.js';
import { laravelProfile } from './profiles/laravel.js';
import { modoboaProfile } from './profiles/modoboa.js';
import { postfixadminProfile } from './profiles/postfixadmin.js';
import { builtinProfileNames, CUSTOM_PREFIX, isBuiltinProfileName, type BuiltinProfileName } from '../config.js';

const builtinProfiles: Readonly<Record<BuiltinProfileName, Profile>> = {
  native: nativeProfile,
  postfixadmin: postfixadminProfile,
  modoboa: modoboaProfile,
  dinomail: dinomailProfile,
  django: djangoProfile,
  laravel: laravelProfile,
};

/** Throws ConfigError (exit code 2) for an unknown name, an unreadable or malformed file. */
export async function profileFor(schema: string): Promise<Profile> {
  if (schema.startsWith(CUSTOM_PREFIX)) {
    const path = schema.slice(CUSTOM_PREFIX.length);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new ConfigError(`schema: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    try {
      return parseCustomProfile(text, path);
    } catch (err) {
      if (err instanceof ProfileSyntaxError) throw new ConfigError(`schema: ${err.message}`);
      throw err;
    }
  }
  if (!isBuiltinProfileName(schema))
    throw new ConfigError(`schema: unknown profile "${schema}" (expected ${builtinProfileNames.join(', ')} or ${CUSTOM_PREFIX}/path)`);
  return builtinProfiles[schema];
}
