/**
 * The HTTP status of each error code, through a real HttpApi on 127.0.0.1: the status table is
 * total over ErrorCode, and codes that used to fall through to 500 answer what was chosen for them.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { HttpApi, httpStatusFor } from '../../src/api/http-api.ts'
import { ResponseBudget } from '../../src/api/response-budget.ts'
import { ERROR_CODES, isErrorCode, SnapswarmError } from '../../src/errors.ts'
import { silentLogger } from '../../src/obs/log.ts'
import { PeerProtocolError, PeerStallError, PeerStreamError } from '../../src/p2p/errors.ts'
import { ObjectRangeError, UploadStateError } from '../../src/storage/store.ts'
import type { ApiHandlers } from '../../src/api/http-api.ts'
import { rawGet } from './http-helpers.ts'

const BUILD = '0b5e4c8a-1f2d-4e3a-9b7c-6d5e4f3a2b1c'

/** An API whose reads fail with `fail()`; everything else is unused by these tests. */
async function apiFailingWith(fail: () => Error): Promise<{ url: string; close: () => Promise<void> }> {
  const unused = () => {
    throw new Error('not used by this test')
  }
  const handlers: ApiHandlers = {
    health: () => ({ ok: true }),
    ready: () => true,
    metrics: unused,
    peers: unused,
    buildInfo: unused,
    openRead: async () => {
      throw fail()
    },
    pause: unused,
  }
  const budget = new ResponseBudget({ maxBytes: 1 << 20, maxWaiting: 4, waitMs: 1000, chunkBytes: 1 << 16 })
  const api = new HttpApi(handlers, silentLogger, { budget, sendTimeoutMs: 5000 })
  const url = await api.listen('127.0.0.1:0')
  return { url, close: () => api.close() }
}

test('regression: ERR_RANGE, ERR_UPLOAD_STATE and ERR_PEER_* fell through the unchecked status map to 500; each answers its chosen status', async () => {
  const cases: { err: () => Error; code: string; status: number }[] = [
    { err: () => new ObjectRangeError('b/memfile', 0, 10, 4), code: 'ERR_RANGE', status: 502 },
    { err: () => new PeerProtocolError('truncated frame'), code: 'ERR_PEER_PROTOCOL', status: 502 },
    { err: () => new PeerStallError(250), code: 'ERR_PEER_STALL', status: 502 },
    { err: () => new PeerStreamError('reset by the remote'), code: 'ERR_PEER_STREAM', status: 502 },
    { err: () => new UploadStateError('part after complete'), code: 'ERR_UPLOAD_STATE', status: 500 },
    // Unchanged ones, for contrast: a client mistake, a missing build, an error without a code.
    { err: () => new SnapswarmError('ERR_INVALID_ARGUMENT', 'bad'), code: 'ERR_INVALID_ARGUMENT', status: 400 },
    { err: () => new SnapswarmError('ERR_NOT_FOUND', 'no such build'), code: 'ERR_NOT_FOUND', status: 404 },
    { err: () => new Error('a bug'), code: 'ERR_INTERNAL', status: 500 },
  ]
  for (const c of cases) {
    const api = await apiFailingWith(c.err)
    try {
      const got = await rawGet(`${api.url}/v1/builds/${BUILD}/memfile`)
      assert.equal(got.status, c.status, `${c.code}: HTTP status`)
      const body = JSON.parse(got.body.toString('utf8')) as { error: string; message: string }
      assert.equal(body.error, c.code, `${c.code}: the body names the code`)
      assert.equal(body.message, c.err().message, `${c.code}: the body carries the message`)
    } finally {
      await api.close()
    }
  }
})

test('every error code has a deliberate HTTP status: 4xx for the client, 5xx for the server, nothing left undefined', () => {
  const allowed = new Set([400, 401, 403, 404, 409, 500, 502, 503, 507])
  for (const code of ERROR_CODES) {
    const status = httpStatusFor(new SnapswarmError(code, 'x'))
    assert.ok(allowed.has(status), `${code}: expected one of ${[...allowed].join(', ')}, found ${status}`)
  }
  assert.equal(new Set(ERROR_CODES).size, ERROR_CODES.length, 'each code listed once')
  assert.equal(isErrorCode('ERR_NOT_FOUND'), true)
  assert.equal(isErrorCode('ERR_NO_SUCH_CODE'), false)
  assert.equal(isErrorCode(42), false)
})
