import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRegistry, counter } from '../src/obs/metrics.ts'

test('metrics: get-or-create shares one instrument per name', async () => {
  const reg = createRegistry()
  const a = counter(reg, 'snapswarm_test_total', 'test', ['source'])
  const b = counter(reg, 'snapswarm_test_total', 'test', ['source'])
  a.inc({ source: 'peer' })
  b.inc({ source: 'peer' }, 2)
  assert.match(await reg.metrics(), /snapswarm_test_total\{source="peer"\} 3/)
})
