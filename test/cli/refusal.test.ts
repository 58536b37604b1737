/** How the CLI turns a node's refusal (HTTP status + JSON body) into an error with a code from ErrorCode. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { refusal } from '../../src/cli/node-cmd.ts'

test('a refusal keeps the node\'s code when it is one of ours; an unknown or missing code, or a 5xx, is ERR_REMOTE naming what the node said', () => {
  const exists = refusal(409, { error: 'ERR_BUILD_EXISTS', message: 'build b exists' }, 'pause')
  assert.equal(exists.code, 'ERR_BUILD_EXISTS')
  assert.equal(exists.message, 'pause refused (HTTP 409): build b exists')
  const unknown = refusal(409, { error: 'ERR_FROM_A_NEWER_NODE', message: 'later' }, 'pause')
  assert.equal(unknown.code, 'ERR_REMOTE')
  assert.match(unknown.message, /HTTP 409 ERR_FROM_A_NEWER_NODE\): later$/)
  const server = refusal(502, { error: 'ERR_STORAGE', message: 'gcs down' }, 'pause')
  assert.equal(server.code, 'ERR_REMOTE')
  assert.match(server.message, /HTTP 502 ERR_STORAGE\): gcs down$/)
  const bare = refusal(400, { message: 'no code' }, 'pause')
  assert.equal(bare.code, 'ERR_REMOTE')
  assert.match(bare.message, /HTTP 400\): no code$/)
})
