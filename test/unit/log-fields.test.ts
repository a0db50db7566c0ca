// Client-supplied text in a log line is bounded: a field of any length is cut to
// MAX_FIELD_CHARS and says how long it was; short fields are written whole.

import { describe, expect, it } from 'vitest';
import { createLogger, MAX_FIELD_CHARS } from '../../src/log.js';

describe('log fields', () => {
  it('cuts a long client field and keeps short ones whole, on one line', () => {
    const lines: string[] = [];
    const log = createLogger('info', (l) => lines.push(l));
    log.info('login failed', { user: 'u'.repeat(900), service: 'imap', rip: `1.2.3.4\n${'x'.repeat(2000)}` });
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line.split('\n')).toHaveLength(2); // the terminating newline only
    expect(line).toContain(`user="${'u'.repeat(MAX_FIELD_CHARS)}…(900 chars)"`);
    expect(line).toContain('service=imap');
    expect(line.length).toBeLessThan(3 * MAX_FIELD_CHARS + 200);
  });
});
