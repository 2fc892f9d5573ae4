import { describe, expect, it } from 'vitest';
import { isPostgresUrl, redactDbUrl, toPostgresPlaceholders } from '../../../relay/store/postgres.js';

describe('PostgreSQL store helpers', () => {
  it.each([
    ['postgres://u:p@h/db', true],
    ['postgresql://h/db', true],
    ['./data/roost.db', false],
    ['/srv/postgres://x.db', false],
    [':memory:', false],
  ])('isPostgresUrl(%s) is %s', (db, want) => expect(isPostgresUrl(db)).toBe(want));

  it('hides the password of a connection string in logs', () => {
    expect(redactDbUrl('postgres://roost:s3cret@db:5432/roost')).toBe('postgres://roost:***@db:5432/roost');
    expect(redactDbUrl('postgres://db/roost')).toBe('postgres://db/roost');
    expect(redactDbUrl('not a url')).not.toContain('not a url');
  });

  it('numbers the builder placeholders in order', () => {
    expect(toPostgresPlaceholders('a = ? AND b IN (?,?) AND c = ANY(?::text[])')).toBe('a = $1 AND b IN ($2,$3) AND c = ANY($4::text[])');
  });
});
