// Every `mailmapd` verb, once: its lines in the usage text and what runs it. cli.ts
// dispatches through this table and prints its usage from it, and a test holds the README's
// command table against it. A new verb is one entry here and one row in the README.
// Each module is imported when its verb runs: a command loads only what it needs.

import type { Config } from '../config.js';
import { ExitCode, UsageError } from '../errors.js';

export type Out = (line: string) => void;

export interface VerbContext {
  args: string[];
  /** The -c FILE given, for `serve`, which reads (and on SIGHUP re-reads) its own config. */
  configPath: string | undefined;
  /** The config, read when asked. */
  config(): Config;
  out: Out;
}

export interface Verb {
  name: string;
  /** Its lines in the usage text: what follows `mailmapd`, and what it does. */
  help: ReadonlyArray<readonly [synopsis: string, summary: string]>;
  /** Reads its config itself (serve); every other verb's is read before it runs. */
  ownConfig?: true;
  run(ctx: VerbContext): Promise<number>;
}

/** Hashes a new password with the configured scheme; the hashing libraries load only then. */
const newPasswordHash = (config: Config) => async (pw: string) => (await import('./new-password.js')).hashNewPassword(pw, config);

/** The admin verbs of the native schema: the database URL a command writes to, and a hasher. */
async function admin(ctx: VerbContext, command: (args: string[], deps: import('./admin-client.js').AdminDeps) => Promise<number>): Promise<number> {
  const config = ctx.config();
  const { withDatabaseUrl } = await import('./database.js');
  return withDatabaseUrl(config, (url) => command(ctx.args, { url, out: ctx.out, hash: newPasswordHash(config) }));
}

// Long because it is the table of every verb, one entry each; there is no logic in it to split.
export const verbs: readonly Verb[] = [
  {
    name: 'serve',
    help: [['serve', 'run the daemon']],
    ownConfig: true,
    // Exit explicitly: a client connection or timer left behind must not keep a stopped daemon alive.
    run: async (ctx) => process.exit(await (await import('../serve.js')).serve(ctx.configPath)),
  },
  {
    name: 'migrate',
    help: [['migrate', 'create or upgrade the native schema (idempotent)']],
    run: async (ctx) => (await import('./migrate.js')).migrateCommand(ctx.config(), ctx.out),
  },
  {
    name: 'domain',
    help: [
      ['domain add|rm|list|set', 'manage domains (add DOMAIN [--alias-of TARGET] [--inactive] [--ip ADDR]… [--mx HOST] [--no-dkim]: DKIM keys, DNS records)'],
      [
        'domain set DOMAIN [--send-limit-day N|none] [--mailbox-send-limit-hour N|default] [--mailbox-send-limit-day N|default]',
        "sending limits: the domain's total per day, its mailboxes' defaults (0: no limit)",
      ],
    ],
    run: async (ctx) => admin(ctx, (await import('./admin.js')).domainCommand),
  },
  {
    name: 'mailbox',
    help: [
      ['mailbox add|rm|list|show|passwd|set', 'manage mailboxes (password on stdin or at a prompt); list and show: last login, usage'],
      [
        'mailbox set ADDRESS [--disable S,…] [--enable S,…] [--maintenance on|off] [--send-limit-hour N|default] [--send-limit-day N|default]',
        "per-service access, maintenance, sending limits (0: no limit; default: the domain's)",
      ],
    ],
    run: async (ctx) => admin(ctx, (await import('./admin.js')).mailboxCommand),
  },
  {
    name: 'alias',
    help: [['alias add|rm|list', 'manage aliases (add ADDRESS|@DOMAIN DEST…)']],
    run: async (ctx) => admin(ctx, (await import('./admin.js')).aliasCommand),
  },
  {
    name: 'app-password',
    help: [['app-password add|rm|list', 'app passwords (add ADDRESS --name NAME [--services S,…] prints it once)']],
    // An app password is generated and hashed by the command itself: no password hasher.
    run: async (ctx) => {
      const { withDatabaseUrl } = await import('./database.js');
      const { appPasswordCommand } = await import('./app-password.js');
      return withDatabaseUrl(ctx.config(), (url) => appPasswordCommand(ctx.args, { url, out: ctx.out, hash: async () => '' }));
    },
  },
  {
    name: 'master',
    help: [['master add|rm|list|passwd', 'master users, who log in as any mailbox through Dovecot']],
    run: async (ctx) => admin(ctx, (await import('./master.js')).masterCommand),
  },
  {
    name: 'send-as',
    help: [['send-as add|rm|list', 'who may send as whom (add MAILBOX ADDRESS|@DOMAIN [--inactive])']],
    run: async (ctx) => admin(ctx, (await import('./send-as.js')).sendAsCommand),
  },
  {
    name: 'bcc',
    help: [['bcc add|rm|list', 'copies of mail (add sender|recipient ADDRESS|@DOMAIN COPY-TO [--inactive])']],
    run: async (ctx) => admin(ctx, (await import('./send-as.js')).bccCommand),
  },
  {
    name: 'check',
    help: [['check', 'validate the config and the database, print what is wrong']],
    run: async (ctx) => (await import('./check.js')).checkCommand(ctx.config(), ctx.out),
  },
  {
    name: 'triggers',
    help: [['triggers install|remove|status', "change triggers on an admin panel's own tables (schema = …)"]],
    run: async (ctx) => (await import('./triggers.js')).triggersCommand(ctx.config(), ctx.args, ctx.out),
  },
  {
    name: 'import',
    help: [['import --passwd-file F --virtual F --vmailbox F [--dry-run]', 'flat files into the native schema']],
    run: async (ctx) => (await import('./import.js')).importCommand(ctx.config(), ctx.args, ctx.out),
  },
  {
    name: 'lookup',
    help: [
      [
        'lookup MAP KEY',
        'ask the running daemon, like postmap -q (maps: domains, mailboxes, aliases, senders, transport, relay_domains, …, sender_bcc, recipient_bcc)',
      ],
    ],
    run: async (ctx) => (await import('./lookup.js')).lookupCommand(ctx.config(), ctx.args, ctx.out),
  },
  {
    name: 'postfix-config',
    help: [['postfix-config', "print the main.cf lines for this daemon's socketmap listener"]],
    run: async (ctx) => {
      if (ctx.args.length > 0) throw new UsageError('usage: mailmapd postfix-config');
      process.stdout.write((await import('./postfix-config.js')).postfixConfigOutput(ctx.config()));
      return ExitCode.ok;
    },
  },
  {
    name: 'dovecot-config',
    help: [['dovecot-config [--lua|--oauth2]', 'print the Dovecot conf.d snippets (checkpassword for 2.3; --lua for 2.3 and 2.4; --oauth2: bearer tokens)']],
    run: async (ctx) => {
      if (ctx.args.includes('--oauth2')) {
        if (ctx.args.length > 1) throw new UsageError('usage: mailmapd dovecot-config --oauth2');
        process.stdout.write((await import('./dovecot-oauth2-config.js')).dovecotOauth2Config(ctx.config()));
      } else if (ctx.args.includes('--lua')) {
        if (ctx.args.length > 1) throw new UsageError('usage: mailmapd dovecot-config --lua');
        process.stdout.write((await import('./dovecot-lua-config.js')).dovecotLuaConfig(ctx.config()));
      } else process.stdout.write((await import('./dovecot-config.js')).dovecotConfig(ctx.config(), ctx.args));
      return ExitCode.ok;
    },
  },
  {
    name: 'hash',
    help: [['hash [--scheme S]', 'print {SCHEME}hash for a password on stdin (like doveadm pw)']],
    run: async (ctx) => (await import('./hash.js')).hashCommand(ctx.args, ctx.config(), ctx.out),
  },
  {
    name: 'prune',
    help: [['prune [--older-than D]', 'prune the change log (default changes_retention); safe from cron']],
    run: async (ctx) => (await import('./prune.js')).pruneCommand(ctx.config(), ctx.args, ctx.out),
  },
  {
    name: 'dkim',
    help: [['dkim add|rotate|rm|list', 'DKIM keys (add DOMAIN [--selector S] [--algorithm rsa-2048|ed25519] prints the DNS record)']],
    run: async (ctx) => {
      const config = ctx.config();
      const { withDatabaseUrl } = await import('./database.js');
      const { dkimCommand } = await import('./dkim.js');
      return withDatabaseUrl(config, (url) => dkimCommand(ctx.args, { url, out: ctx.out, keepMs: config.dkim_keep_rotated }));
    },
  },
  {
    name: 'dns',
    help: [
      ['dns DOMAIN [--ip ADDR]… [--mx HOST]', 'print the zone lines a mail domain needs (MX, SPF, DKIM, DMARC, SRV)'],
      ['dns check DOMAIN [same] [--server IP[:PORT]]', 'ask DNS for each of them; exit 1 when one is not right'],
    ],
    run: async (ctx) => {
      const { withDatabaseUrl } = await import('./database.js');
      const { dnsCommand } = await import('./dns.js');
      return withDatabaseUrl(ctx.config(), (url) => dnsCommand(ctx.args, { url, out: ctx.out }));
    },
  },
  {
    name: 'dkim-config',
    help: [['dkim-config', 'print the OpenDKIM, rspamd and Postfix lines for the keys under dkim_dir']],
    run: async (ctx) => {
      if (ctx.args.length > 0) throw new UsageError('usage: mailmapd dkim-config');
      process.stdout.write((await import('./dkim-config.js')).dkimConfig(ctx.config()));
      return ExitCode.ok;
    },
  },
  {
    name: 'send-usage',
    help: [
      ['send-usage [ADDRESS|@DOMAIN]', "recipients sent in the last hour and day (every host's counts)"],
      ['send-usage reset ADDRESS|@DOMAIN', 'clear them'],
    ],
    run: async (ctx) => {
      const { parseSendUsageArgs, sendUsageCommand } = await import('./send-usage.js');
      const { withDatabaseClient } = await import('./database.js');
      // A typo is a usage error before any connection is tried.
      const parsed = parseSendUsageArgs(ctx.args);
      return withDatabaseClient(ctx.config(), 'mailmapd-send-usage', (c) => sendUsageCommand(c, parsed, ctx.out));
    },
  },
];

export function findVerb(name: string): Verb | undefined {
  return verbs.find((v) => v.name === name);
}

/** The usage text, from the table: one line per help entry, summaries in one column. */
export function usageText(): string {
  const lines = verbs.flatMap((v) => v.help).map(([synopsis, summary]) => `  ${synopsis.padEnd(28)}  ${summary}`);
  return `usage: mailmapd [-c FILE] VERB [ARGS]

${lines.join('\n')}

Options: -c, --config FILE (default $MAILMAPD_CONFIG or /etc/mailmapd/mailmapd.conf)
Exit codes: 0 ok, 1 not found, 2 usage or config error, 70 internal error, 75 temporary failure.`;
}
