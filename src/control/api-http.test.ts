import { describe, expect, it } from 'vitest';
import { errorAnswer, parseTarget } from './api-http.js';
import { HttpError } from './http-error.js';

function targetError(raw: string): HttpError {
  try {
    parseTarget(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(HttpError);
    return e as HttpError;
  }
  throw new Error(`accepted ${raw}`);
}

describe('request targets', () => {
  it('refuses the targets that used to throw out of the handler, with 400', () => {
    for (const raw of ['/networks/%E0%A4%A', '/containers/%', '/capture/%zz', '//%zz/networks', 'http://[zz/networks', '*', 'ftp://x/networks']) {
      const e = targetError(raw);
      expect(e.status, raw).toBe(400);
      expect(e.message, raw).toMatch(/^invalid request target "/);
    }
    expect(targetError('/networks/%E0%A4%A').message).toBe('invalid request target "/networks/%E0%A4%A": bad percent-encoding in "%E0%A4%A"');
  });

  it('decodes origin- and absolute-form targets into segments', () => {
    expect(parseTarget('/networks/my%20net/connect?x=1').parts).toEqual(['networks', 'my net', 'connect']);
    expect(parseTarget('http://x/networks/a').parts).toEqual(['networks', 'a']);
    expect(parseTarget('//networks//a/').parts).toEqual(['networks', 'a']);
    expect(parseTarget('/capture?target=%zz&count=1').url.searchParams.get('target')).toBe('%zz');
  });
});

describe('error answers', () => {
  it('keeps HttpError statuses, maps model errors to 404/400 and bugs to 500, always one line', () => {
    expect(errorAnswer(new HttpError(413, 'too big'))).toEqual({ status: 413, message: 'too big' });
    expect(errorAnswer(new Error('network a\nb not found'))).toEqual({ status: 404, message: 'network a\\nb not found' });
    expect(errorAnswer(new Error('invalid subnet'))).toEqual({ status: 400, message: 'invalid subnet' });
    expect(errorAnswer(new TypeError('x.startsWith is not a function')).status).toBe(500);
    expect(errorAnswer('a string').status).toBe(500);
  });
});
