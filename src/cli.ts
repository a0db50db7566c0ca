#!/usr/bin/env node
// `mailmapd VERB …`: parses the global options, dispatches to one module per verb, and maps
// errors to exit codes (errors.ts): 0 ok, 1 not found / auth failed, 2 usage or config
// error, 70 internal error, 75 temporary failure (database down, daemon unreachable).

import { readFileSync } from 'node:fs';
import { loadConfig, type Config } from './config.js';
import { withDatabaseClient, withDatabaseUrl } from './cli/database.js';
import { currentVersion, latestVersion, migrate } from './db/schema.js';
import { aliasCommand, domainCommand, mailboxCommand } from './cli/admin.js';
import { ExitCode, exitCodeFor, UsageError } from './errors.js';
import { serve } from './serve.js';
import type pg from 'pg';

const usage = `usage: mailmapd [-c FILE] VERB [ARGS]

  serve                         run the daemon
  migrate                       create or upgrade the native schema (idempotent)
  domain add|rm|list            manage domains (add DOMAIN [--alias-of TARGET] [--inactive])
  mailbox add|rm|list|show|passwd|set  manage mailboxes (password on stdin or at a prompt); list and show: last login, usage
  alias add|rm|list             manage aliases (add ADDRESS|@DOMAIN DEST…)
  mailbox set ADDRESS [--disable S,…] [--enable S,…] [--maintenance on|off]   per-service access, maintenance
  app-password add|rm|list      app passwords (add ADDRESS --name NAME [--services S,…] prints it once)
  master add|rm|list|passwd     master users, who log in as any mailbox through Dovecot
  check                         validate the config and the database, print what is wrong
  triggers install|remove|status  change triggers on an admin panel's own tables (schema = …)
  import --passwd-file F --virtual F --vmailbox F [--dry-run]   flat files into the native schema
  lookup MAP KEY                ask the running daemon, like postmap -q (maps: domains, mailboxes, aliases, senders, transport, relay_domains, …)
  postfix-config                print the main.cf lines for this daemon's socketmap listener
  dovecot-config [--lua]        print the Dovecot conf.d snippets (checkpassword for 2.3; --lua for 2.3 and 2.4)
  hash [--scheme S]             print {SCHEME}hash for a password on stdin (like doveadm pw)
  prune [--older-than D]        prune the change log (default changes_retention); safe from cron
  send-usage [ADDRESS|@DOMAIN]  recipients sent in the last hour and day (every host's counts)
  send-usage reset ADDRESS|@DOMAIN  clear them

Options: -c, --config FILE (default $MAILMAPD_CONFIG or /etc/mailmapd/mailmapd.conf)
Exit codes: 0 ok, 1 not found, 2 usage or config error, 70 internal error, 75 temporary failure.`;

const out = (line: string) => process.stdout.write(`${line}\n`);

function splitGlobal(argv: string[]): { configPath: string | undefined; verb: string | undefined; args: string[] } {
  let configPath: string | undefined;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-c' || a === '--config') {
      configPath = argv[++i];
      if (configPath === undefined) throw new UsageError(`${a} needs a file name`);
    } else if (a.startsWith('--config=')) configPath = a.slice(9);
    else rest.push(a);
  }
  const [verb, ...args] = rest;
  return { configPath, verb, args };
}

async function migrateCommand(config: Config): Promise<number> {
  return withDatabaseClient(config, 'mailmapd-migrate', async (c) => {
    const r = await migrate(c);
    out(r.applied.length === 0 ? `schema is up to date (version ${r.to})` : `migrated from version ${r.from} to ${r.to}`);
    return ExitCode.ok;
  });
}

/** Rows written before the schema refused names that climb out of a home directory. */
async function unsafeNames(c: pg.ClientBase): Promise<string[]> {
  const { unsafeNameQueries } = await import('./db/migrations/path-safe-names.js');
  const found: string[] = [];
  for (const q of unsafeNameQueries) {
    for (const r of (await c.query<{ name: string }>(q.sql)).rows) {
      found.push(`${q.table}: "${r.name}" would make a home outside its directory ("/", "..", or a leading "."): the daemon refuses it; rename or remove it`);
    }
  }
  return found;
}

async function checkCommand(config: Config): Promise<number> {
  out(`config ${config.source}: ok`);
  return withDatabaseClient(config, 'mailmapd-check', async (c) => {
    out(`database ${c.host}:${c.port}/${c.database}: reachable`);
    const problems: string[] = [];
    if (config.schema === 'native') {
      const v = await currentVersion(c);
      if (v === 0) problems.push('the native schema is missing: run `mailmapd migrate`');
      else if (v < latestVersion) problems.push(`the native schema is version ${v}, this mailmapd wants ${latestVersion}: run \`mailmapd migrate\``);
      else out(`native schema: version ${v}`);
      if (v >= 2) problems.push(...(await unsafeNames(c)));
    } else {
      const { profileFor } = await import('./sync/profile-select.js');
      const { checkProfile } = await import('./sync/profile-check.js');
      const { triggerProblems } = await import('./cli/triggers.js');
      const profile = await profileFor(config.schema);
      problems.push(...(await checkProfile(c, profile)), ...(await triggerProblems(c, profile)));
      if (problems.length === 0) out(`schema ${config.schema}: queries, columns and change triggers ok`);
    }
    for (const p of problems) out(`problem: ${p}`);
    return problems.length === 0 ? ExitCode.ok : ExitCode.usage;
  });
}

async function main(argv: string[]): Promise<number> {
  const { configPath, verb, args } = splitGlobal(argv);
  if (verb === undefined || verb === 'help' || verb === '--help' || verb === '-h') {
    (verb === undefined ? process.stderr : process.stdout).write(`${usage}\n`);
    return verb === undefined ? ExitCode.usage : ExitCode.ok;
  }
  if (verb === '--version' || verb === 'version') {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    out(`mailmapd ${pkg.version}`);
    return ExitCode.ok;
  }
  if (verb === 'serve') {
    // Exit explicitly: a client connection or timer left behind must not keep a stopped daemon alive.
    process.exit(await serve(configPath));
  }
  const config = loadConfig({ path: configPath });
  switch (verb) {
    case 'migrate':
      return migrateCommand(config);
    case 'check':
      return checkCommand(config);
    case 'triggers':
      return (await import('./cli/triggers.js')).triggersCommand(config, args, out);
    case 'import':
      return (await import('./cli/import.js')).importCommand(config, args, out);
    case 'lookup':
      return (await import('./cli/lookup.js')).lookupCommand(config, args, out);
    case 'postfix-config':
      if (args.length > 0) throw new UsageError('usage: mailmapd postfix-config');
      process.stdout.write((await import('./cli/postfix-config.js')).postfixConfigOutput(config));
      return ExitCode.ok;
    case 'dovecot-config':
      if (args.includes('--lua')) {
        if (args.length > 1) throw new UsageError('usage: mailmapd dovecot-config --lua');
        process.stdout.write((await import('./cli/dovecot-lua-config.js')).dovecotLuaConfig(config));
      } else process.stdout.write((await import('./cli/dovecot-config.js')).dovecotConfig(config, args));
      return ExitCode.ok;
    case 'hash':
      return (await import('./cli/hash.js')).hashCommand(args, config, out);
    case 'prune':
      return (await import('./cli/prune.js')).pruneCommand(config, args, out);
    case 'send-usage': {
      const { parseSendUsageArgs, sendUsageCommand } = await import('./cli/send-usage.js');
      const parsed = parseSendUsageArgs(args);
      return withDatabaseClient(config, 'mailmapd-send-usage', (c) => sendUsageCommand(c, parsed, out));
    }
    case 'app-password':
      return withDatabaseUrl(config, async (url) => (await import('./cli/app-password.js')).appPasswordCommand(args, { url, out, hash: async () => '' }));
    case 'master':
      return withDatabaseUrl(config, async (url) =>
        (await import('./cli/master.js')).masterCommand(args, {
          url,
          out,
          hash: async (pw) => (await import('./cli/new-password.js')).hashNewPassword(pw, config),
        }),
      );
    case 'domain':
    case 'mailbox':
    case 'alias': {
      const command = { domain: domainCommand, mailbox: mailboxCommand, alias: aliasCommand }[verb];
      // Loaded on demand: the hashing libraries are only needed for a new password.
      const hash = async (pw: string) => (await import('./cli/new-password.js')).hashNewPassword(pw, config);
      return withDatabaseUrl(config, (url) => command(args, { url, out, hash }));
    }
    default:
      throw new UsageError(`unknown verb "${verb}"\n${usage}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`mailmapd: ${message}\n`);
    process.exitCode = exitCodeFor(err);
  },
);
